"""What the webhook stores and moves: the event documents of status callbacks and inbound messages.

A failed delivery status and an inbound message are stored once under a dedupe key (their event
id) and enqueued; every status moves its message forward (:func:`apply_status`, one conditional
update). See docs/twilio.md.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from services.webhook_request import BadRequest
from shared.domain.events import status_event_doc
from shared.domain.states import ActionState, EventState

if TYPE_CHECKING:
    from services.webhook import WebhookDeps

log = logging.getLogger(__name__)


def _small_int(raw: str, digits: int = 9) -> int | None:
    """``raw`` as an int when it is 1 to ``digits`` ASCII digits, else None.

    ``str.isdigit`` alone accepts ``²`` (which ``int`` refuses) and any length (``int`` refuses
    over 4300 digits, BSON over 8 bytes): both used to escape as a 500.
    """
    if 0 < len(raw) <= digits and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def _error_code(form: dict[str, str]) -> int | None:
    raw = form.get("ErrorCode", "").strip()
    if not raw:
        return None
    code = _small_int(raw)
    if code is None:
        raise BadRequest(400, "ErrorCode must be a number")
    return code


def status_event(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The event id and document of a status callback (raises BadRequest on a bad ErrorCode)."""
    return status_event_doc(form["MessageSid"], form["MessageStatus"].lower(), _error_code(form))


def apply_status(deps: WebhookDeps, event_id: str, event: dict[str, Any], message_id: str = "", *,
                 fresh: bool = False) -> None:
    """Move the message forward (one conditional update); enqueue the action of a newly stored failure.

    Forward only, so a duplicate or a late callback changes nothing (a failure stored just before
    MongoDB went away is finished when Twilio retries it). ``message_id``, the StatusCallback
    URL's ``mid``: the same update adopts the SID when the callback comes before the sending
    worker stored it, or the worker lost Twilio's answer (``MessageRepository.apply_status``).
    """
    sid = event["sid"]
    deps.store.messages.apply_status(sid, event["status"], event["error_code"], deps.clock.now(),
                                     message_id=message_id or None)
    if fresh and event["action_state"] == ActionState.PENDING:
        try:
            deps.queue.process_status(event_id)
        except Exception:  # Redis down: the scheduler re-enqueues pending actions later.
            log.warning("status event %s stored but not enqueued (Redis unavailable)", sid)


def inbound_event(form: dict[str, str], idempotency_token: str = "") -> tuple[str, dict[str, Any]]:
    """The event id and document of an inbound message, every field Twilio sent kept.

    ``form`` keeps the whole form as posted (a :class:`SignedForm`'s ``body``, else re-encoded):
    one string holds every field (media types, Referral*, fields Twilio adds later) whatever
    its name, where a BSON key cannot take '.', '$' or NUL, and costs the store less than a
    list of pairs. ``urllib.parse.parse_qsl(event["form"], keep_blank_values=True)`` reads it.
    """
    sid = form["MessageSid"]
    media = list(itertools.takewhile(bool, (form.get(f"MediaUrl{i}") for i in itertools.count())))
    event: dict[str, Any] = {
        "kind": "inbound", "sid": sid, "state": EventState.RECEIVED.value,
        "from": form.get("From", ""), "to": form.get("To", ""), "body": form.get("Body", ""),
        "num_media": _small_int(form.get("NumMedia", "0"), digits=4) or 0, "media_urls": media,
        "profile_name": form.get("ProfileName", ""), "wa_id": form.get("WaId", ""),
        "button_payload": form.get("ButtonPayload", ""), "button_text": form.get("ButtonText", ""),
        "idempotency_token": idempotency_token,
        "form": getattr(form, "body", "") or urlencode(form),
    }
    return f"inbound:{sid}", event
