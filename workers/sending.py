"""Sending actor: checks the rules once more, then hands one message to Twilio, exactly once.

``ready → sending`` is a conditional update, so of two deliveries of the same dramatiq message
only one reaches Twilio. A crash after Twilio accepted the message and before its SID is
written leaves the message in ``sending``; the scheduler marks it ``uncertain`` for
reconciliation instead of sending it again.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.cadence import advance_after_send, stop_contact, stop_followup, stop_reason_for_error
from shared.errors import PermanentError, SendDeferred, SendRejected, TransientError
from shared.models import FollowUpState, MessageState
from shared.phones import mask_phone
from shared.policy import is_allowed, next_allowed
from shared.ports import OutboundRequest
from shared.queue import ACTOR_SEND, QUEUE_SENDING
from workers.deps import Deps

log = logging.getLogger(__name__)


def status_callback_for(deps: Deps, message_id: str) -> str:
    """The StatusCallback URL, carrying our message id as a marker Twilio echoes back."""
    return f"{deps.settings.status_callback_url}?{urlencode({'mid': message_id})}"


def send_message(deps: Deps, message_id: str) -> str | None:
    """Send a ready message; returns the Twilio SID, or None when nothing was sent."""
    store, now = deps.store, deps.clock.now()
    message = store.get_message(message_id)
    if message is None or message.state != MessageState.READY:
        return None
    followup = store.get_followup(message.followup_id)
    contact = store.get_contact(message.contact_id)
    campaign = store.get_campaign(message.campaign_id)
    if followup is None or contact is None or campaign is None:
        store.move_message(message_id, expected=MessageState.READY, new=MessageState.CANCELLED, now=now,
                           extra={"cancel_reason": "missing_data"})
        return None
    if contact.opted_out:
        stop_contact(store, contact.id, reason="opt_out", now=now)
        log.info("message=%s cancelled: contact opted out", message_id)
        return None
    if followup.state != FollowUpState.AWAITING_SEND or followup.step != message.step:
        store.move_message(message_id, expected=MessageState.READY, new=MessageState.CANCELLED, now=now,
                           extra={"cancel_reason": f"followup_{followup.state.value}"})
        return None
    if campaign.status == "paused":
        store.move_followup(followup.id, expected=FollowUpState.AWAITING_SEND, new=FollowUpState.PAUSED,
                            now=now, step=message.step, extra={"pause_reason": "campaign_paused"})
        return None
    if not is_allowed(now, campaign.send_window, contact.timezone):
        at = next_allowed(now, campaign.send_window, contact.timezone)
        store.messages.update_one({"_id": message_id, "state": MessageState.READY.value},
                                  {"$set": {"not_before": at, "updated_at": now}})
        deps.queue.send_message(message_id, delay_seconds=(at - now).total_seconds())
        log.info("message=%s held until %s (send window)", message_id, at.isoformat())
        return None
    if not store.move_message(message_id, expected=MessageState.READY, new=MessageState.SENDING, now=now):
        return None  # another delivery of this message got there first

    request = OutboundRequest(
        to=contact.phone, status_callback=status_callback_for(deps, message_id),
        body=message.body if message.kind == "freeform" else None,
        content_sid=message.content_sid, content_variables=message.content_variables,
    )
    try:
        result = deps.sender.send(request)
    except SendRejected as exc:
        store.move_message(message_id, expected=MessageState.SENDING, new=MessageState.FAILED,
                           now=deps.clock.now(), extra={"error_code": exc.code})
        reason, human = stop_reason_for_error(exc.code)
        if reason == "opt_out":
            store.set_opt_out(contact.id, True, now)
            stop_contact(store, contact.id, reason="opt_out", now=now)
        else:
            stop_followup(store, followup.id, reason=reason, now=now, needs_human=human,
                          detail=f"Twilio error {exc.code}")
        log.warning("message=%s to=%s rejected by Twilio code=%s", message_id, mask_phone(contact.phone), exc.code)
        return None
    except SendDeferred as exc:
        if exc.status is None:
            # The request may have reached Twilio: never resend blindly, reconcile instead.
            store.move_message(message_id, expected=MessageState.SENDING, new=MessageState.UNCERTAIN,
                               now=deps.clock.now(), extra={"uncertain_reason": str(exc)})
            log.warning("message=%s uncertain after a network error", message_id)
            return None
        store.move_message(message_id, expected=MessageState.SENDING, new=MessageState.READY,
                           now=deps.clock.now(), extra={"last_error_code": exc.code})
        raise TransientError(f"Twilio asked to retry later (code {exc.code})") from None

    sent_at = deps.clock.now()
    store.record_sid(message_id, result.sid, sent_at)
    advance_after_send(store, followup=followup, campaign=campaign, contact=contact, step=message.step,
                       sent_at=sent_at, now=sent_at)
    log.info("message=%s sent sid=%s to=%s", message_id, result.sid, mask_phone(contact.phone))
    return result.sid


def register(broker: RedisBroker, deps: Deps) -> dramatiq.Actor[[str], str | None]:
    """Declare the sending actor on ``broker``, bound to ``deps``."""

    def run(message_id: str) -> str | None:
        return send_message(deps, message_id)

    run.__name__ = ACTOR_SEND
    return dramatiq.actor(
        broker=broker, actor_name=ACTOR_SEND, queue_name=QUEUE_SENDING,
        max_retries=10, min_backoff=2000, max_backoff=300_000, time_limit=60_000, throws=(PermanentError,),
    )(run)
