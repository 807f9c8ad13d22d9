"""Replies actor: understands what a client answered and acts on it at once.

1. The inbound message joins the conversation; the 24-hour window opens. A message from
   OWNER_WHATSAPP_NUMBER opens the owner's own window, so that alerts can go out as freeform.
2. Opt-out keywords (STOP, ARRÊT, UNSUBSCRIBE, DÉSINSCRIRE, a STOP button…) are handled
   deterministically, before any AI; START re-subscribes.
3. Otherwise the classifier (Gemini with a JSON schema, or the offline rules) reads the reply,
   and the plan is applied, each step a conditional state move:
   paid → stop (+ thank-you); promise_to_pay → pause until the date + 1 day; question → answer
   from the contact's data only, else a person; dispute / wrong_person → stop and flag;
   opt_out → as STOP; low confidence or failure → pause and flag, never a guess.

The client's text is data: it never reaches a prompt as instructions, and every answer drafted
here passes the same facts check as the follow-ups.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime, time, timedelta
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.cadence import flag_contact, pause_contact, stop_contact
from shared.classifier import claims_payment
from shared.factcheck import check_draft
from shared.models import Contact, FollowUpState, Language, MessageState, OutboundMessage
from shared.offline import amount_text, date_text
from shared.phones import mask_phone
from shared.policy import window_open, zone
from shared.ports import Classification, ClassifyRequest, DraftRequest, HistoryItem, Intent
from shared.queue import ACTOR_DISPATCH_INBOUND, ACTOR_INBOUND, QUEUE_REPLIES
from workers.deps import Deps, declare_actor, give_up_after_failures

log = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = {
    "stop", "stop all", "stopall", "arret", "arreter", "unsubscribe", "desinscrire", "desabonner",
    "cancel", "end", "quit", "optout", "opt out",
}
OPT_OUT_PHRASES = ("ne plus recevoir", "plus recevoir de message", "plus recevoir ces message", "desinscri",
                   "desabonn")
OPT_IN_KEYWORDS = {"start", "unstop", "subscribe"}
PROMISE_GRACE = timedelta(days=1)
PAID_OPT_OUT = "opted out, says the invoice is paid: check the payment"
OPEN_STATES = (FollowUpState.SCHEDULED, FollowUpState.QUEUED, FollowUpState.DRAFTING, FollowUpState.AWAITING_SEND,
               FollowUpState.PAUSED)


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


# ------------------------------------------------------------------ texts we send back
def _sign(deps: Deps, text: str) -> str:
    return f"{text}\n{deps.settings.business_name}"


def thank_you_text(deps: Deps, contact: Contact) -> str:
    """The thank-you sent after a client says they paid."""
    if contact.language == Language.EN:
        return _sign(deps, f"Thank you {contact.name}, we have noted your payment. We will check that it has "
                           "arrived and will not send you further reminders about it.")
    return _sign(deps, f"Merci {contact.name}, nous avons bien noté votre règlement. Nous vérifions sa bonne "
                       "réception et ne vous relancerons plus à ce sujet.")


def promise_text(deps: Deps, contact: Contact, promised: str) -> str:
    """The acknowledgement of a promise to pay (the date comes from the classifier, checked)."""
    shown = date_text(promised, contact.language)
    if contact.language == Language.EN:
        return _sign(deps, f"Thank you {contact.name}, noted: we expect your payment by {shown}.")
    return _sign(deps, f"Merci {contact.name}, c'est noté : nous attendons votre règlement pour le {shown}.")


def answer_text(deps: Deps, contact: Contact, topic: str) -> str | None:
    """A plain answer to a question about one fact of the contact's data, or None."""
    facts, en = contact.fields, contact.language == Language.EN
    ref = facts.get("invoice_number") or facts.get("quote_number") or ""
    about = (f" {ref}" if ref else "")
    value = facts.get(topic, "")
    if not value:
        return None
    if topic == "amount":
        shown = amount_text(value, facts.get("currency", ""), contact.language)
        text = (f"The amount of invoice{about} is {shown}." if en
                else f"Le montant de la facture{about} est de {shown}.")
    elif topic == "due_date":
        shown = date_text(value, contact.language)
        text = f"Invoice{about} was due on {shown}." if en else f"La facture{about} était à régler le {shown}."
    elif topic == "payment_link":
        text = (f"You can pay invoice{about} here: {value}" if en
                else f"Vous pouvez régler la facture{about} ici : {value}")
    elif topic in ("invoice_number", "quote_number"):
        text = f"It is about {value}." if en else f"Il s'agit de la référence {value}."
    elif topic == "currency":
        text = f"The amount is in {value}." if en else f"Le montant est en {value}."
    else:
        return None
    return _sign(deps, text)


def _facts_request(deps: Deps, contact: Contact, extra: dict[str, str] | None = None) -> DraftRequest:
    return DraftRequest(contact_name=contact.name, language=contact.language,
                        facts={**contact.fields, **(extra or {})},
                        step_index=0, step_count=1, tone="courteous", business_name=deps.settings.business_name,
                        campaign_name="", max_chars=deps.settings.max_message_chars)


# ------------------------------------------------------------------ actions
def queue_reply(deps: Deps, contact: Contact, inbound_sid: str, body: str, *, source: str,
                extra_facts: dict[str, str] | None = None) -> str | None:
    """Store and enqueue one reply to an inbound message (at most one per inbound message).

    Returns its id, also when it was stored already (the inbound event redelivered after a
    crash): the send is asked for again, which changes nothing if it was sent.
    """
    problems = check_draft(body, _facts_request(deps, contact, extra_facts))
    if problems:
        log.warning("reply to inbound=%s refused by the facts check: %s", inbound_sid, problems[0])
        return None
    message = OutboundMessage(
        id=f"reply:{inbound_sid}", followup_id=None, contact_id=contact.id, campaign_id=None, step=-1,
        purpose="reply", state=MessageState.READY, kind="freeform", body=body, language=contact.language,
        draft_source=source,
    )
    deps.store.insert_message(message, deps.clock.now())
    deps.queue.send_message(message.id)
    return message.id


# What the owner reads (in French, as the rest of the alert) for a hand-over reason, by its start;
# the details, in the conversation's record, are one `relance conversation PHONE` away.
OWNER_REASONS = (
    ("dispute", "contestation de la facture"),
    ("wrong_person", "mauvaise personne ou mauvais numéro"),
    ("question the data cannot answer", "question à laquelle ses données ne répondent pas"),
    ("unclear reply", "réponse peu claire"),
    ("low confidence", "réponse incertaine"),
    ("promise to pay without a usable date", "promesse de paiement sans date précise"),
    ("promised date in the past", "date de paiement promise déjà passée"),
    ("classifier failed", "lecture automatique impossible"),
    ("invalid confidence", "lecture automatique impossible"),
    ("reply not processed automatically", "réponse non traitée automatiquement"),
    (PAID_OPT_OUT, "ne veut plus de messages et dit avoir payé : vérifiez le paiement"),
)


def owner_reason(reason: str) -> str:
    """The hand-over reason as the owner reads it (French); an unknown one as it is."""
    return next((french for start, french in OWNER_REASONS if reason.startswith(start)), reason)


def owner_alert_variables(contact: Contact, reason: str) -> dict[str, str]:
    """The variables of OWNER_ALERT_TEMPLATE_SID: {"1": contact name, "2": reason, "3": contact phone}."""
    # WhatsApp refuses template variables that are empty or hold line breaks or tabs.
    return {"1": " ".join(contact.name.split()) or contact.phone, "2": " ".join(owner_reason(reason).split()) or "-",
            "3": contact.phone}


def alert_owner(deps: Deps, contact: Contact, inbound_sid: str, reason: str) -> None:
    """Tell the business owner on WhatsApp that a conversation needs them (when configured).

    Inside the owner's 24-hour window (they wrote to the sender less than 24 h ago) the alert is
    freeform text; outside it, OWNER_ALERT_TEMPLATE_SID when set. Without a template freeform is
    still tried (the window may be open without our knowing), and a 63016 refusal is handled in
    :mod:`workers.delivery` (template re-send, or a warning saying what to set up).
    """
    settings = deps.settings
    owner = settings.owner_whatsapp_number
    if not owner:
        return
    body = (f"Relance : {contact.name} ({contact.phone}) a besoin d'une réponse de votre part "
            f"({owner_reason(reason)}). "
            f"Historique : relance conversation {contact.phone} ; une fois traité : "
            f"relance handled {contact.phone} (--resume pour reprendre les relances, --stop pour les arrêter)")
    variables = owner_alert_variables(contact, reason)
    template_sid = settings.owner_alert_template_sid
    use_template = bool(template_sid) and not window_open(deps.store.owner_last_inbound(owner), deps.clock.now())
    message = OutboundMessage(
        id=f"alert:{inbound_sid}", followup_id=None, contact_id=None, campaign_id=None, step=-1,
        purpose="alert", to=owner, state=MessageState.READY, kind="template" if use_template else "freeform",
        body=body, language=Language.FR, content_sid=template_sid if use_template else None,
        content_variables=variables, draft_source="template" if use_template else "system",
        fallback_reason="owner_outside_window" if use_template else None,
    )
    if deps.store.insert_message(message, deps.clock.now()):
        deps.queue.send_message(message.id)


def hand_over(deps: Deps, contact: Contact, inbound_sid: str, reason: str, *, stop: str | None = None) -> str:
    """Stop (with ``stop`` as reason) or pause the contact's follow-ups, flag them, alert the owner."""
    now = deps.clock.now()
    if stop:
        stop_contact(deps.store, contact.id, reason=stop, now=now, needs_human=True, detail=reason)
    else:
        pause_contact(deps.store, contact.id, until=None, reason="needs_human", now=now, needs_human=True,
                      detail=reason)
    if not flag_contact(deps.store, contact.id, reason=reason, now=now):
        # A reply to the last reminder, once the cadence is over: that follow-up is the one to look at.
        flag_contact(deps.store, contact.id, reason=reason, now=now, finished=True)
    alert_owner(deps, contact, inbound_sid, reason)
    return f"needs_human: {reason}"


def _pause_until(promised: str, contact: Contact, deps: Deps) -> datetime:
    day = datetime.strptime(promised, "%Y-%m-%d").date() + PROMISE_GRACE
    return datetime.combine(day, time(9, 0), tzinfo=zone(contact.timezone))


def apply_plan(deps: Deps, contact: Contact, inbound_sid: str, result: Classification,
               needs_human: str | None, *, text: str = "") -> str:
    """Carry out what the classification says; returns the outcome (for logs and tests).

    ``text`` is the client's reply, read here only by deterministic rules (see opt-out).
    """
    store, now = deps.store, deps.clock.now()
    intent = result.intent
    if intent == Intent.OPT_OUT and result.confidence >= deps.settings.classifier_threshold:
        store.set_opt_out(contact.id, True, now)
        if claims_payment(text):
            # "I've already paid, stop harassing me": honoured, and the owner checks the payment,
            # or the invoice would go unchased on the client's word alone.
            stopped = stop_contact(store, contact.id, reason="opt_out", now=now, needs_human=True,
                                   detail=PAID_OPT_OUT)
            alert_owner(deps, contact, inbound_sid, PAID_OPT_OUT)
            return f"opt_out stopped={stopped} needs_human: {PAID_OPT_OUT}"
        return f"opt_out stopped={stop_contact(store, contact.id, reason='opt_out', now=now)}"
    if needs_human:
        return hand_over(deps, contact, inbound_sid, needs_human)
    if intent == Intent.PAID:
        stopped = stop_contact(store, contact.id, reason="paid", now=now)
        if deps.settings.thank_you_on_paid:
            queue_reply(deps, contact, inbound_sid, thank_you_text(deps, contact), source="system")
        return f"paid stopped={stopped}"
    if intent == Intent.PROMISE_TO_PAY and result.promised_date is not None:
        promised = result.promised_date.isoformat()
        paused = pause_contact(store, contact.id, until=_pause_until(promised, contact, deps),
                               reason="promise_to_pay", now=now)
        store.followups.update_many({"contact_id": contact.id, "pause_reason": "promise_to_pay"},
                                    {"$set": {"promised_date": promised}})
        queue_reply(deps, contact, inbound_sid, promise_text(deps, contact, promised), source="system",
                    extra_facts={"promised_date": promised})
        return f"promise_to_pay until={promised} paused={paused}"
    if intent == Intent.QUESTION:
        return _answer(deps, contact, inbound_sid, result)
    if intent == Intent.DISPUTE:
        return hand_over(deps, contact, inbound_sid, "dispute", stop="dispute")
    if intent == Intent.WRONG_PERSON:
        return hand_over(deps, contact, inbound_sid, "wrong_person", stop="wrong_person")
    if intent == Intent.ACKNOWLEDGED:
        return "acknowledged"
    return hand_over(deps, contact, inbound_sid, f"unclear reply ({intent.value})")


def _answer(deps: Deps, contact: Contact, inbound_sid: str, result: Classification) -> str:
    """Answer a question from the contact's data only; anything else goes to a person.

    The classifier says which fact is asked for; the answer is :func:`answer_text`'s, built from
    that fact and nothing else. Text written by a model is never sent in reply: a facts check
    catches a wrong amount or link, not "the invoice is cancelled" or "you may pay by card".
    """
    if result.question_topic:
        text = answer_text(deps, contact, result.question_topic)
        if text and queue_reply(deps, contact, inbound_sid, text, source="data"):
            return f"question answered ({result.question_topic})"
    return hand_over(deps, contact, inbound_sid, "question the data cannot answer")


def _classify(deps: Deps, contact: Contact, event: dict[str, Any]) -> tuple[Classification, str | None]:
    today = deps.clock.now().astimezone(zone(contact.timezone)).date()
    history = tuple(
        HistoryItem(direction=str(d.get("direction", "")), body=str(d.get("body", "")), at=d["created_at"])
        for d in deps.store.conversation(contact.id, limit=8) if d.get("body")
    )
    request = ClassifyRequest(text=str(event.get("body", "")), language=contact.language,
                              facts=dict(contact.fields), today=today, business_name=deps.settings.business_name,
                              has_media=int(event.get("num_media", 0) or 0) > 0, history=history)
    from shared.classifier import OfflineClassifier, classify_safely

    classifier = deps.classifier or OfflineClassifier()
    return classify_safely(classifier, request, threshold=deps.settings.classifier_threshold)


def _sender(event: dict[str, Any]) -> str:
    return str(event.get("from", "")).removeprefix("whatsapp:")


def _from_owner(deps: Deps, phone: str) -> bool:
    return bool(deps.settings.owner_whatsapp_number) and phone == deps.settings.owner_whatsapp_number


def _record_inbound(deps: Deps, event_id: str, event: dict[str, Any], contact_id: str | None,
                    from_owner: bool, followup_ids: list[str] | None = None) -> str:
    """The inbound message in the conversation (once), linked to the follow-ups it answers; returns its id."""
    inbound_id = f"in:{event['sid']}"
    deps.store.insert_inbound(
        {"_id": inbound_id, "twilio_sid": event["sid"], "contact_id": contact_id, "followup_ids": followup_ids or [],
         "unknown_sender": contact_id is None and not from_owner, "from_owner": from_owner, "from": _sender(event),
         "body": event.get("body", ""),
         "num_media": event.get("num_media", 0), "media_urls": event.get("media_urls", []),
         "button_payload": event.get("button_payload", ""), "event_id": event_id},
        event.get("received_at", deps.clock.now()),
    )
    return inbound_id


def process_inbound(deps: Deps, event_id: str) -> str | None:
    """Process a stored inbound event once; returns what was done (for logs and tests)."""
    store, now = deps.store, deps.clock.now()
    event = store.get_event(event_id)
    if event is None or event.get("state") != "received":
        return None
    phone = _sender(event)
    contact = store.contact_by_phone(phone)
    received_at = event.get("received_at", now)
    from_owner = _from_owner(deps, phone)
    if from_owner:
        # The owner wrote to the sender: freeform alerts may reach them for the next 24 hours.
        store.touch_owner_inbound(phone, received_at)
    # The follow-ups this message answers: the contact's open ones when it came, else those whose
    # cadence is over (a reply to the last reminder still matters: the invoice may be unpaid).
    open_followups = store.followups_of_contact(contact.id, OPEN_STATES) if contact else []
    if contact and not open_followups:
        open_followups = store.followups_of_contact(contact.id, (FollowUpState.COMPLETED,))
    inbound_id = _record_inbound(deps, event_id, event, contact.id if contact else None, from_owner,
                                 [f.id for f in open_followups])
    if contact is None and from_owner:
        outcome = "owner"
        log.info("inbound event=%s from the owner %s: their 24-hour window is open", event_id, mask_phone(phone))
    elif contact is None:
        outcome = "unknown_sender"
        log.info("inbound event=%s from unknown number %s kept and flagged", event_id, mask_phone(phone))
    else:
        store.touch_inbound(contact.id, received_at)
        body, button = str(event.get("body", "")), str(event.get("button_payload", ""))
        if is_opt_out(body, button):
            store.set_opt_out(contact.id, True, now)
            outcome = f"opt_out stopped={stop_contact(store, contact.id, reason='opt_out', now=now)}"
        elif is_opt_in(body):
            store.set_opt_out(contact.id, False, now)
            outcome = "opt_in"
        elif contact.opted_out:
            outcome = "recorded (contact opted out)"
        elif not open_followups:
            outcome = "recorded (no open follow-up)"
        else:
            result, needs_human = _classify(deps, contact, event)
            store.messages.update_one({"_id": inbound_id}, {"$set": {"classification": {
                "intent": result.intent.value, "confidence": result.confidence, "source": result.source,
                "promised_date": result.promised_date.isoformat() if result.promised_date else None,
                "question_topic": result.question_topic, "reason": result.reason, "needs_human": needs_human,
            }}})
            outcome = apply_plan(deps, contact, event["sid"], result, needs_human, text=str(event.get("body", "")))
    store.messages.update_one({"_id": inbound_id}, {"$set": {"outcome": outcome}})
    store.mark_event(event_id, "received", "processed", now)
    log.info("inbound event=%s contact=%s outcome=%s", event_id, contact.id if contact else None, outcome)
    return outcome


def process_inbound_or_hand_over(deps: Deps, event_id: str) -> str | None:
    """The replies actor: :func:`process_inbound`; a reply that keeps failing goes to a person.

    See :func:`workers.deps.give_up_after_failures` (outages are retried without counting) and
    :func:`hand_over_unprocessed`. Without this, such a reply would hold every message to that
    contact for ever (the sending hold).
    """
    return give_up_after_failures(deps, event_id, lambda: process_inbound(deps, event_id),
                                  lambda error: hand_over_unprocessed(deps, event_id, error))


def hand_over_unprocessed(deps: Deps, event_id: str, error: str) -> str | None:
    """Give a reply that could not be processed to a person, so nothing is sent meanwhile.

    The contact is read raw (its record may be what fails): a STOP is still honoured by keyword;
    otherwise its follow-ups are paused and flagged ``needs_human``, and the owner alerted. The
    message joins the conversation with its outcome, and the event ends ``failed``, which
    releases the sending hold and the scheduler's retries. If any of this fails, the event stays
    waiting (and the contact held): never a send while a reply may say STOP.
    """
    store, now = deps.store, deps.clock.now()
    event = store.get_event(event_id)
    if event is None or event.get("state") != "received":
        return None
    phone = _sender(event)
    reason = f"reply not processed automatically ({error})"
    doc = store.contacts.find_one({"phone": phone}, {"_id": 1, "name": 1})
    inbound_id = _record_inbound(deps, event_id, event, str(doc["_id"]) if doc else None, _from_owner(deps, phone))
    if doc is None:
        outcome = f"not processed: {error}"
    elif is_opt_out(str(event.get("body", "")), str(event.get("button_payload", ""))):
        store.set_opt_out(str(doc["_id"]), True, now)
        outcome = f"opt_out stopped={stop_contact(store, str(doc['_id']), reason='opt_out', now=now)} ({reason})"
    else:  # what hand_over needs of the contact, read raw
        contact = Contact(id=str(doc["_id"]), phone=phone, name=str(doc.get("name") or phone))
        outcome = hand_over(deps, contact, str(event["sid"]), reason)
    store.messages.update_one({"_id": inbound_id}, {"$set": {"outcome": outcome}})
    store.mark_event(event_id, "received", "failed", now)
    return outcome


def dispatch_inbound(deps: Deps, event_ids: list[str]) -> int:
    """Fan a batch the webhook stored out to one ``process_inbound`` message per event.

    Sent again (a retry, a redelivery), it enqueues the same ids again: harmless, since
    ``process_inbound`` acts on an event only while it is ``received``.
    """
    ids = [str(event_id) for event_id in event_ids]
    deps.queue.process_inbound_each(ids)
    log.debug("dispatched %d inbound event(s)", len(ids))
    return len(ids)


def register(broker: RedisBroker, deps: Deps) -> dramatiq.Actor[..., str | None]:
    """Declare the replies actors on ``broker`` (``process_inbound``, ``dispatch_inbound``), bound to ``deps``."""
    declare_actor(broker, deps, dispatch_inbound, name=ACTOR_DISPATCH_INBOUND, queue=QUEUE_REPLIES)
    return declare_actor(broker, deps, process_inbound_or_hand_over, name=ACTOR_INBOUND, queue=QUEUE_REPLIES)
