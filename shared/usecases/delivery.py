"""What Twilio tells us about a message we sent: its SID, its delivery statuses, and its refusals.

Twilio's refusals are acted on whether they come at send time or later in a failed status callback:

- 63016 (outside the 24-hour window): the step is sent again with its approved template;
  without one the follow-up waits for the client's window and is flagged. An owner alert is
  sent again with OWNER_ALERT_TEMPLATE_SID; without it a warning says what to set up.
- 63024, 63003, 21211, 21614 (not a reachable WhatsApp number): every follow-up of the contact
  stops and is flagged for a person.
- 21610 (the recipient unsubscribed): treated as an opt-out.
- 63018 (too fast for the sender's channel): the shared send rate is lowered for a while
  (``SendRateLimiter.slow_down``). At send time the message is retried; reported in a failed
  callback (Twilio took it, then dropped it), it is sent again once, a little later, as
  ``<message id>:r``; a second 63018 on that re-send is handled as below.
- anything else permanent: that follow-up stops with ``send_failed`` and is flagged.

Status callbacks can be lost (the webhook answered 503, a network fault: Twilio does not retry
them). :func:`poll_status`, enqueued by the scheduler for messages still ``sent`` long after
they went out, fetches the status from Twilio and takes the callback's path: a failure is
stored as the same event the webhook would store, and acted on once by :func:`process_status`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.clock import utc
from shared.domain.events import status_event_doc
from shared.domain.models import Contact, OutboundMessage
from shared.domain.reasons import PauseReason, StatusAction, StopReason
from shared.domain.repositories import Repositories
from shared.domain.states import FAILED_STATUSES, STATUS_RANK, ActionState, FollowUpState, MessageState
from shared.domain.templates import render_preview, template_variables
from shared.errors import SendDeferred, SendRejected, TransientError
from shared.language.invoice_text import invoice_facts
from shared.phones import mask_phone
from shared.ratelimit import SLOW_DOWN_CODES
from shared.usecases import outbound
from shared.usecases.cadence import (
    INVALID_RECIPIENT_CODES,
    OPT_OUT_CODES,
    advance_after_send,
    flag_finished_followup,
    pause_contact,
    pause_for_a_person,
    stop_contact,
    stop_followup,
)
from shared.usecases.context import App
from shared.usecases.failures import give_up_after_failures
from shared.usecases.invoice_reminders import reminder_invoices


def record_sid(store: Repositories, message_id: str, sid: str, now: datetime) -> bool:
    """``sending|uncertain → sent`` with Twilio's SID; True when this call recorded it.

    One conditional update, nothing to replay: a status callback that comes first carries our
    message id and adopts the SID itself with its status (``MessageRepository.apply_status``),
    and then this finds the message moved on and changes nothing.
    """
    return store.messages.mark_sent(message_id, sid=sid, now=now)


log = logging.getLogger(__name__)
OUTSIDE_WINDOW_CODE = 63016
RATE_LIMITED_RESEND_SECONDS = 30  # past the sender's slow-down's first stretch


def _resend(deps: App, message: OutboundMessage, suffix: str, reason: str, *, delay_seconds: float = 0,
            **changes: object) -> str:
    """Store a copy of ``message`` as ``<id><suffix>`` (ready, ``resend_of`` it) and ask for it to be sent.

    The fixed id makes it once only: a second call finds it stored and enqueues nothing.
    """
    variant = message.model_copy(update={
        "id": f"{message.id}{suffix}", "state": MessageState.READY, "resend_of": message.id, "twilio_sid": None,
        "error_code": None, "fallback_reason": reason, **changes,
    })
    if deps.store.messages.insert(variant, deps.clock.now()):
        deps.queue.send_message(variant.id, delay_seconds=delay_seconds)
        log.info("message=%s sent again as %s (%s)", message.id, variant.id, reason)
    return variant.id


def resend_with_template(deps: App, message: OutboundMessage, contact: Contact) -> str | None:
    """Send the step again as its approved template; returns the new message id, if any."""
    store, now = deps.store, deps.clock.now()
    campaign = store.campaigns.get(message.campaign_id or "")
    followup = store.followups.get(message.followup_id or "")
    if campaign is None or followup is None or message.step >= len(campaign.steps) or message.resend_of:
        return None
    template = campaign.steps[message.step].template
    if template is None:
        pause_contact(store, contact.id, until=None, reason=PauseReason.AWAITING_CUSTOMER_WINDOW, now=now,
                      needs_human=True,
                      detail=f"step {message.step + 1} was refused outside the 24 h window and has no template")
        return None
    facts, refs, key = None, message.invoices, message.invoices_key
    if campaign.about_invoices:
        about = reminder_invoices(store, campaign, contact.id)
        if not about.invoices:
            return None  # nothing left to remind of (a payment since): settled by settle_client
        facts = invoice_facts(about.invoices, contact.language)
        refs, key = about.references, about.key
    variables = template_variables(template, contact, facts)
    variant_id = _resend(deps, message, ":t", "twilio_63016_outside_window", kind="template",
                         body=render_preview(template, contact, variables), content_sid=template.content_sid,
                         content_variables=variables, draft_source="template", invoices=refs,
                         invoices_key=key)
    if followup.state == FollowUpState.AWAITING_SEND and followup.step == message.step:
        # Refused at send time: this step is handled by the re-send, the cadence goes on.
        advance_after_send(store, followup_id=followup.id, enrolled_at=followup.enrolled_at, campaign=campaign,
                           contact=contact, step=message.step, sent_at=now, now=now)
    return variant_id


def resend_alert_with_template(deps: App, message: OutboundMessage) -> str | None:
    """Send an owner alert refused as freeform (63016) again as OWNER_ALERT_TEMPLATE_SID.

    Returns the re-send's id (``<alert id>:t``, stored once: never sent twice), or None when
    there is no template to use, after one warning telling the operator what to do.
    """
    template_sid = deps.rules.owner_alert_template_sid
    if message.kind != "freeform" or message.resend_of:
        return None
    if template_sid and not message.content_variables:
        log.warning("owner alert=%s refused by Twilio (63016) holds no template variables (stored before "
                    "OWNER_ALERT_TEMPLATE_SID was supported): not sent again", message.id)
        return None
    if not template_sid:
        log.warning(
            "owner alert=%s to=%s refused by Twilio (63016): the owner has not written to the WhatsApp sender in "
            "the last 24 h, so freeform alerts cannot reach them. Set OWNER_ALERT_TEMPLATE_SID to an approved "
            "Content template (variables 1=contact name, 2=reason, 3=contact phone), or have the owner write to "
            "the sender number (TWILIO_WHATSAPP_NUMBER) from their phone once a day",
            message.id, mask_phone(message.to or ""))
        return None
    return _resend(deps, message, ":t", "twilio_63016_outside_window", kind="template", content_sid=template_sid,
                   draft_source="template")


def resend_after_rate_limit(deps: App, message: OutboundMessage) -> str | None:
    """Send again, once and later, a message Twilio dropped for the channel's rate (63018).

    The copy (``<id>:r``) goes through the sending actor like any message (pacing, opt-out, a
    stopped or paused follow-up cancels it); None when ``message`` is itself a re-send.
    """
    if message.resend_of:
        return None
    return _resend(deps, message, ":r", "twilio_63018_rate_limited", delay_seconds=RATE_LIMITED_RESEND_SECONDS)


def handle_alert_error(deps: App, message: OutboundMessage, code: int | None) -> StatusAction:
    """Apply the rule for a permanent Twilio error on an owner alert; returns what was done."""
    if code in SLOW_DOWN_CODES and resend_after_rate_limit(deps, message):
        return StatusAction.RATE_LIMITED_RESEND
    if code == OUTSIDE_WINDOW_CODE:
        if resend_alert_with_template(deps, message):
            return StatusAction.TEMPLATE_RESEND
        return StatusAction.OWNER_WINDOW_CLOSED
    return StatusAction.RECORDED


def handle_permanent_error(deps: App, message: OutboundMessage, contact: Contact, code: int | None
                           ) -> StatusAction:
    """Apply the rule for a permanent Twilio error code; returns what was done."""
    store, now = deps.store, deps.clock.now()
    if code in OPT_OUT_CODES:
        store.contacts.set_opt_out(contact.id, True, now)
        stop_contact(store, contact.id, reason=StopReason.OPT_OUT, now=now)
        return StatusAction.OPT_OUT
    if code in INVALID_RECIPIENT_CODES:
        detail = f"Twilio error {code}: not a reachable WhatsApp number"
        stop_contact(store, contact.id, reason=StopReason.INVALID_NUMBER, now=now, needs_human=True, detail=detail)
        flag_finished_followup(store, message.followup_id, detail=detail, now=now)
        return StatusAction.INVALID_NUMBER
    if code == OUTSIDE_WINDOW_CODE and message.purpose == "step":
        if resend_with_template(deps, message, contact):
            return StatusAction.TEMPLATE_RESEND
        return StatusAction.AWAITING_WINDOW
    if code in SLOW_DOWN_CODES and resend_after_rate_limit(deps, message):
        return StatusAction.RATE_LIMITED_RESEND
    if message.purpose == "step" and message.followup_id:
        if not stop_followup(store, message.followup_id, reason=StopReason.SEND_FAILED, now=now, needs_human=True,
                             detail=f"Twilio error {code}"):
            flag_finished_followup(store, message.followup_id, detail=f"Twilio error {code}", now=now)
        return StatusAction.SEND_FAILED
    return StatusAction.RECORDED


def process_status(deps: App, event_id: str) -> str | None:
    """Act once on a stored failed/undelivered status callback."""
    store, now = deps.store, deps.clock.now()
    event = store.events.get(event_id)
    if event is None or event.action_state != ActionState.PENDING:
        return None
    message = store.messages.by_sid(event.sid)
    if message is None:
        if event.received_at and (now - utc(event.received_at)).total_seconds() < 600:
            # The callback beat the sending actor's write of the SID (and carried no message id
            # to adopt it with): try again shortly.
            raise TransientError("no message with this SID yet")
    elif event.status is not None and STATUS_RANK.get(message.state.value, 0) < STATUS_RANK.get(event.status, 0):
        # Its callback found no message to move (it came before the SID was stored).
        store.messages.apply_status(event.sid, event.status, event.error_code, now)
    if event.error_code in SLOW_DOWN_CODES:
        deps.limiter.slow_down()
    outcome = StatusAction.UNKNOWN_MESSAGE
    if message is not None and message.purpose == "alert":
        outcome = handle_alert_error(deps, message, event.error_code)
    elif message is not None and message.contact_id:
        contact = store.contacts.get(message.contact_id)
        if contact is not None:
            outcome = handle_permanent_error(deps, message, contact, event.error_code)
    store.events.finish_action(event_id, action=outcome, now=now)
    outbound.message_failed(store, deps.queue, event_id, message_id=message.id if message else None,
                            contact_id=message.contact_id if message else None, status=event.status,
                            error_code=event.error_code, action=outcome, now=now)
    log.info("status event=%s code=%s action=%s", event_id, event.error_code, outcome)
    return outcome


def process_status_or_hand_over(deps: App, event_id: str) -> str | None:
    """The status actor: :func:`process_status`; a failure it keeps failing on goes to a person.

    See :func:`workers.deps.give_up_after_failures`: without this, the scheduler would retry the
    event for ever.
    """
    return give_up_after_failures(deps, event_id, lambda: process_status(deps, event_id),
                                  lambda error: hand_over_status(deps, event_id, error))


def hand_over_status(deps: App, event_id: str, error: str) -> str | None:
    """A delivery failure that could not be acted on: its follow-up paused and flagged for a person.

    Reads the message raw (the contact's record may be what fails); the event ends ``failed``.
    """
    store, now = deps.store, deps.clock.now()
    event = store.events.get(event_id)
    if event is None or event.action_state != ActionState.PENDING:
        return None
    reason = f"delivery failure {event.error_code} not handled automatically ({error})"
    followup_id = store.messages.followup_id_by_sid(event.sid)
    outcome = f"not handled: {reason}"
    if followup_id:
        pause_for_a_person(store, followup_id, reason=reason, now=now)
        outcome = f"needs_human: {reason}"
    store.events.fail_action(event_id, action=outcome, now=now)
    return outcome


DELIVERED_STATUSES = ("delivered", "read")


def poll_status(deps: App, message_id: str) -> str | None:
    """Fetch the Twilio status of a message still ``sent`` and act on it as its callback would have.

    ``delivered``/``read`` move the message forward (monotonic, conditional). ``failed``/
    ``undelivered`` are stored as the webhook's status event (idempotent) and, when new,
    :func:`process_status` is enqueued: the failure is acted on once, whichever comes first.
    Still queued/sent at Twilio, unknown to it (404) or Twilio unavailable: nothing changes,
    the scheduler asks again later. Returns what was found, or None when there is nothing to ask.
    """
    store, now = deps.store, deps.clock.now()
    message = store.messages.get(message_id)
    if message is None or message.state != MessageState.SENT or not message.twilio_sid:
        return None
    sid = message.twilio_sid
    try:
        found = deps.sender.fetch_status(sid)
    except (SendDeferred, SendRejected) as exc:
        log.warning("message=%s status poll failed (Twilio code %s): asked again later", message_id, exc.code)
        return "error"
    if found is None:
        log.warning("message=%s sid=%s unknown to Twilio: left as it is", message_id, sid)
        return "unknown"
    status = found.status.lower()
    if status in DELIVERED_STATUSES:
        store.messages.apply_status(sid, status, found.error_code, now, source="poll")
        log.info("message=%s sid=%s %s (found by polling)", message_id, sid, status)
        return status
    if status in FAILED_STATUSES:
        event_id, event = status_event_doc(sid, status, found.error_code)
        fresh = store.events.record(event_id, {**event, "source": "poll"}, now)
        store.messages.apply_status(sid, status, found.error_code, now, source="poll")
        if fresh:
            deps.queue.process_status(event_id)
        log.info("message=%s sid=%s %s code=%s (found by polling, new=%s)", message_id, sid, status,
                 found.error_code, fresh)
        return status
    return "pending"
