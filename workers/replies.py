"""Replies actor: records what a client wrote and honours opt-outs at once.

This is the deterministic first stage of reply handling: the inbound message joins the
conversation, the 24-hour window opens, STOP-like keywords opt the contact out of every
follow-up and START re-subscribes. Understanding free text is built on top of this.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.cadence import stop_contact
from shared.errors import PermanentError
from shared.phones import mask_phone
from shared.queue import ACTOR_INBOUND, QUEUE_REPLIES
from workers.deps import Deps

log = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = {
    "stop", "stop all", "stopall", "arret", "arreter", "unsubscribe", "desinscrire", "desabonner",
    "cancel", "end", "quit", "optout", "opt out",
}
OPT_OUT_PHRASES = ("ne plus recevoir", "plus recevoir de message", "plus recevoir ces message", "desinscri", "desabonn")
OPT_IN_KEYWORDS = {"start", "unstop", "subscribe"}


def normalise_text(text: str) -> str:
    """Lower-case, accents removed, punctuation and emoji dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]+", " ", stripped)).strip()


def is_opt_out(text: str, button_payload: str = "") -> bool:
    """True when the message asks to stop, whatever its case, accents or punctuation."""
    if normalise_text(button_payload) in OPT_OUT_KEYWORDS:
        return True
    words = normalise_text(text)
    return words in OPT_OUT_KEYWORDS or any(p in words for p in OPT_OUT_PHRASES)


def is_opt_in(text: str) -> bool:
    """True when the message asks to receive messages again (START)."""
    return normalise_text(text) in OPT_IN_KEYWORDS


def process_inbound(deps: Deps, event_id: str) -> str | None:
    """Process a stored inbound event once; returns what was done (for logs and tests)."""
    store, now = deps.store, deps.clock.now()
    event = store.get_event(event_id)
    if event is None or event.get("state") != "received":
        return None
    phone = str(event.get("from", "")).removeprefix("whatsapp:")
    contact = store.contact_by_phone(phone)
    received_at = event.get("received_at", now)
    store.insert_inbound(
        {"_id": f"in:{event['sid']}", "twilio_sid": event["sid"], "contact_id": contact.id if contact else None,
         "unknown_sender": contact is None, "from": phone, "body": event.get("body", ""),
         "num_media": event.get("num_media", 0), "button_payload": event.get("button_payload", ""),
         "event_id": event_id},
        received_at,
    )
    outcome = "recorded"
    if contact is None:
        outcome = "unknown_sender"
        log.info("inbound event=%s from unknown number %s kept and flagged", event_id, mask_phone(phone))
    else:
        store.touch_inbound(contact.id, received_at)
        body, button = str(event.get("body", "")), str(event.get("button_payload", ""))
        if is_opt_out(body, button):
            store.set_opt_out(contact.id, True, now)
            stopped = stop_contact(store, contact.id, reason="opt_out", now=now)
            outcome = f"opt_out stopped={stopped}"
        elif is_opt_in(body):
            store.set_opt_out(contact.id, False, now)
            outcome = "opt_in"
    store.mark_event(event_id, "received", "processed", now)
    log.info("inbound event=%s contact=%s outcome=%s", event_id, contact.id if contact else None, outcome)
    return outcome


def register(broker: RedisBroker, deps: Deps) -> dramatiq.Actor[[str], str | None]:
    """Declare the replies actor on ``broker``, bound to ``deps``."""

    def run(event_id: str) -> str | None:
        return process_inbound(deps, event_id)

    run.__name__ = ACTOR_INBOUND
    return dramatiq.actor(
        broker=broker, actor_name=ACTOR_INBOUND, queue_name=QUEUE_REPLIES,
        max_retries=8, min_backoff=1000, max_backoff=60_000, time_limit=120_000, throws=(PermanentError,),
    )(run)
