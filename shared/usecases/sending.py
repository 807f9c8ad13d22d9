"""Sending a message: the rules checked once more, then one message handed to Twilio, exactly once.

``ready → sending`` is a conditional update, so of two deliveries of the same dramatiq message
only one reaches Twilio. A crash after Twilio accepted the message and before its SID is
written leaves the message in ``sending``; the scheduler marks it ``uncertain`` for
reconciliation instead of sending it again. So does an answer that does not say "not created"
(no answer, or a 5xx: a gateway may answer 502 for a message Twilio took): only a 4xx is
acted on directly (refused) or retried (429, 63018).

A step message's own state says whether its follow-up still wants it: every path that stops
or pauses a follow-up (a STOP, a payment, a promise, a hand-over, a campaign's pause…) moves
the follow-up, then cancels its ready messages, so the conditional ``ready → sending`` is the
check and the follow-up is not read here (only a template re-send's, and the enrolment date
when the next step's due date needs it). A step is also checked against the client's
unprocessed messages, the send window and the contact's pacing. Replies (answers in a
conversation the client has just opened) go out at once; owner alerts go to
OWNER_WHATSAPP_NUMBER (a 63016 refusal: see :mod:`shared.usecases.delivery`).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import datetime, timedelta
from urllib.parse import urlencode

from shared.clock import utc
from shared.domain.models import OLDEST_DUE_DATE, Campaign, Contact, OutboundMessage
from shared.domain.reasons import CancelReason, HandOverReason, PauseReason, StopReason
from shared.domain.states import FollowUpState, MessageState
from shared.errors import SendDeferred, SendRejected, TransientError
from shared.pacing import PACED_STATES, contact_pacing_delay, paced_created_since, pacing_on
from shared.phones import mask_phone
from shared.policy import is_allowed, next_allowed, window_open
from shared.ports import OutboundRequest
from shared.ratelimit import SLOW_DOWN_CODES
from shared.usecases.approvals import redraft_if_window_closed
from shared.usecases.cadence import advance_after_send, needs_enrolment, stop_contact
from shared.usecases.context import App
from shared.usecases.delivery import handle_alert_error, handle_permanent_error, record_sid
from shared.usecases.invoice_reminders import reminder_invoices, still_true, with_oldest_due_date

log = logging.getLogger(__name__)
# How long a worker waits for a slot of the sender's throughput before putting the message back.
RATE_WAIT_SECONDS = 5.0
# When to try again after the rate limiter or another worker's hold on the contact said "not now".
RETRY_SOON_SECONDS = 2.0
# An inbound message still unprocessed after this long was probably never enqueued (Redis away).
UNREAD_REQUEUE_SECONDS = 5.0
# Past this, a step held over an unprocessed reply is looked at every this many seconds.
UNREAD_STUCK_SECONDS = 60.0


def status_callback_for(deps: App, message_id: str) -> str:
    """The StatusCallback URL, carrying our message id as a marker Twilio echoes back."""
    return f"{deps.rules.status_callback_url}?{urlencode({'mid': message_id})}"


def _cancel(deps: App, message_id: str, reason: CancelReason) -> None:
    deps.store.messages.cancel(message_id, reason=reason, now=deps.clock.now())


def _hold(deps: App, message: OutboundMessage, at: datetime, now: datetime, reason: str) -> None:
    """Keep a ready message for later: record ``not_before`` and enqueue it again for ``at``."""
    deps.store.messages.hold(message.id, until=at, now=now)
    deps.queue.send_message(message.id, delay_seconds=(at - now).total_seconds(), contact_id=message.contact_id)
    log.info("message=%s held until %s (%s)", message.id, at.isoformat(), reason)


def _step_preflight(deps: App, message: OutboundMessage, contact: Contact, sent_times: list[datetime] | None
                    ) -> Campaign | None:
    """The campaign if this step may go out now; otherwise handle it and return None.

    The follow-up is not read: a stop or a pause cancels its ready messages after moving it
    (:mod:`shared.usecases.cadence`, :func:`shared.usecases.campaigns.pause_campaign`), so the
    conditional ``ready → sending`` refuses them. ``sent_times``: the contact's recent sends,
    read with the message under the contact's lock (None: read here, for pacing).
    """
    store, now = deps.store, deps.clock.now()
    campaign = store.campaigns.get(message.campaign_id or "")
    if campaign is None or not message.followup_id:
        _cancel(deps, message.id, CancelReason.MISSING_DATA)
        return None
    if message.resend_of and not _resend_wanted(deps, message, message.followup_id):
        return None
    if _reply_unread(deps, message, contact, now):
        return None
    rules = deps.rules
    country, subdiv = rules.holidays_country, rules.holidays_subdiv
    window, tz = campaign.send_window, contact.timezone
    if not is_allowed(now, window, tz, holidays_country=country, holidays_subdiv=subdiv):
        at = next_allowed(now, window, tz, holidays_country=country, holidays_subdiv=subdiv)
        if not _back_to_approval(deps, message, campaign, at, now):
            _hold(deps, message, at, now, "send window")
        return None
    paced = contact_pacing_delay(store, contact_id=contact.id, timezone=tz, now=now, min_gap=rules.min_gap,
                                 daily_cap=rules.daily_cap_per_contact, sent_times=sent_times)
    if paced is not None:
        at = next_allowed(paced, window, tz, holidays_country=country, holidays_subdiv=subdiv)
        if not _back_to_approval(deps, message, campaign, at, now):
            _hold(deps, message, at, now, "contact pacing")
        return None
    if _back_to_approval(deps, message, campaign, now, now):
        return None
    # Last: the invoices it names, read fresh (a payment between drafting and now cancels or redrafts it).
    if not still_true(store, message, campaign, now=now, queue=deps.queue):
        return None
    return campaign


def _back_to_approval(deps: App, message: OutboundMessage, campaign: Campaign, at: datetime, now: datetime) -> bool:
    """True (handled) when an approved freeform step of a campaign a person approves would go out at ``at``
    past the client's 24-hour window: Twilio would refuse the text and the step's template would go out
    unapproved, so the draft goes back to ``awaiting_approval`` as the template (same id, conditional;
    :func:`shared.usecases.approvals.redraft_if_window_closed`). The contact is read only when the
    draft's recorded window end (which only moves later) is not past ``at``."""
    if message.kind != "freeform" or not campaign.needs_approval:
        return False
    if message.window_closes_at is not None and utc(message.window_closes_at) > at:
        return False
    contact = deps.store.contacts.get(message.contact_id or "")
    if contact is not None and window_open(contact.last_inbound_at, at):
        return False
    outcome = redraft_if_window_closed(deps.store, message, now=now, contact=contact, at=at)
    log.info("message=%s not sent: approved as text, it would go out past the client's 24-hour window (%s)",
             message.id, outcome)
    return True


def _resend_wanted(deps: App, message: OutboundMessage, followup_id: str) -> bool:
    """Whether a re-send (63016 template, 63018) may go out: its follow-up, which has moved on
    past the step, is read (a rare message). Stopped or paused for the contact: cancelled;
    paused with its campaign (whose pause keeps re-sends): looked at again in a minute."""
    followup = deps.store.followups.get(followup_id)
    if followup is None:
        _cancel(deps, message.id, CancelReason.MISSING_DATA)
        return False
    if followup.state == FollowUpState.PAUSED and followup.pause_reason == PauseReason.CAMPAIGN_PAUSED:
        deps.queue.send_message(message.id, delay_seconds=60, contact_id=message.contact_id)
        return False
    if followup.state in (FollowUpState.STOPPED, FollowUpState.PAUSED):
        _cancel(deps, message.id, CancelReason.followup_is(followup.state))
        return False
    return True


def _reply_unread(deps: App, message: OutboundMessage, contact: Contact, now: datetime) -> bool:
    """Hold the step while the contact's last message waits to be processed; True if held.

    What the client wrote may be a STOP, "I paid" or a promise: a reminder never goes out over
    it. The webhook may have stored it while Redis was away (not enqueued): ask for it again,
    so the hold lasts seconds rather than until the scheduler's reconciler finds it.
    """
    waiting = deps.store.events.unprocessed_inbound(contact.phone)
    if not waiting:
        return False
    for event in waiting:
        if ((now - utc(event.received_at or now)).total_seconds() >= UNREAD_REQUEUE_SECONDS
                and deps.store.events.claim_requeue(event.id, now, timedelta(seconds=UNREAD_REQUEUE_SECONDS))):
            deps.queue.process_inbound(event.id)
    waited = (now - utc(waiting[0].received_at or now)).total_seconds()
    if waited < UNREAD_STUCK_SECONDS:
        deps.queue.send_message(message.id, delay_seconds=RETRY_SOON_SECONDS, contact_id=message.contact_id)
        log.info("message=%s held: %d message(s) from the contact not processed yet", message.id, len(waiting))
    else:  # the replies workers are down or failing on it: look again less often, and say so
        deps.queue.send_message(message.id, delay_seconds=UNREAD_STUCK_SECONDS, contact_id=message.contact_id)
        log.warning("message=%s held: the contact's message %s has waited %.0f s to be processed "
                    "(are the replies workers running?)", message.id, waiting[0].id, waited)
    return True


def _recipient(deps: App, message: OutboundMessage) -> Contact | None:
    """Whom the message goes to, read once; a step message drafted with its contact's phone and
    timezone (``to``, ``timezone``) needs no read of the contact.

    Such a step's STOP check is not the contact's ``opted_out`` but what a STOP also writes, read
    fresh: the unprocessed inbound message (the sending hold) and the message itself (cancelled
    after its follow-up was stopped, so ``ready → sending`` fails).
    """
    if message.purpose == "step" and message.contact_id and message.to and message.timezone:
        return Contact(id=message.contact_id, phone=message.to, name="", language=message.language,
                       timezone=message.timezone)
    return deps.store.contacts.get(message.contact_id) if message.contact_id else None


def _cadence_contact(deps: App, message: OutboundMessage, campaign: Campaign, recipient: Contact) -> Contact:
    """The contact the next step's due date is computed from: its fields only when that step is anchored on one."""
    following = message.step + 1
    if following < len(campaign.steps) and campaign.steps[following].anchor not in ("enrolment", "previous"):
        contact = deps.store.contacts.get(recipient.id) or recipient
        if campaign.steps[following].anchor == OLDEST_DUE_DATE and campaign.about_invoices:
            contact = with_oldest_due_date(contact, reminder_invoices(deps.store, campaign, contact.id).invoices)
        return contact
    return recipient


Started = tuple[OutboundMessage, Contact | None, str, Campaign | None]


def _start_sending(deps: App, hold: ExitStack, message_id: str, hint: str | None) -> Started | None:
    """Check the message once more and move it ``ready → sending``: (message, contact, to, step's
    campaign), or None when it is not sent now (handled). A step message's contact lock is entered
    on ``hold`` (released by the caller before Twilio is called)."""
    store, now, rules = deps.store, deps.clock.now(), deps.rules
    locked, sent_times = None, None
    if hint and pacing_on(rules.min_gap, rules.daily_cap_per_contact):
        if not hold.enter_context(deps.locks.hold(hint)):
            deps.queue.send_message(message_id, delay_seconds=RETRY_SOON_SECONDS, contact_id=hint)
            return None
        locked = hint
        message, sent_times = store.messages.get_with_send_times(
            message_id, hint, states=PACED_STATES, created_since=paced_created_since(now, rules.min_gap))
    else:
        message = store.messages.get(message_id)
    if message is None or message.state != MessageState.READY:
        return None
    contact = _recipient(deps, message)
    if message.purpose == "alert":
        to = message.to or ""
    elif contact is None:
        _cancel(deps, message_id, CancelReason.MISSING_DATA)
        return None
    else:
        to = contact.phone
        if contact.opted_out:
            stop_contact(store, contact.id, reason=StopReason.OPT_OUT, now=now)
            _cancel(deps, message_id, CancelReason.OPT_OUT)
            log.info("message=%s cancelled: contact opted out", message_id)
            return None
        if (message.purpose in ("reply", "manual") and message.kind == "freeform"
                and not window_open(contact.last_inbound_at, now)):
            # A freeform answer WhatsApp refuses 24 h after the client's last message (the workers
            # were down that long): a person answers instead. A template reply (a thank-you for a
            # payment outside the window) may go.
            _cancel(deps, message_id, CancelReason.OUTSIDE_24H_WINDOW)
            store.followups.flag_contact(contact.id, reason=HandOverReason.REPLY_TOO_LATE, now=now)
            log.warning("message=%s cancelled: the reply is too late for the 24-hour window", message_id)
            return None
    step_context = None
    step_contact = message.contact_id if message.purpose == "step" else None
    if message.purpose == "step":
        assert contact is not None
        # One worker at a time checks a contact's pacing and moves its message to sending,
        # so two campaigns due at the same instant cannot both see "nothing sent yet".
        if contact.id != locked:
            sent_times = None  # read under this contact's lock, not another's
            if not hold.enter_context(deps.locks.hold(contact.id)):
                deps.queue.send_message(message_id, delay_seconds=RETRY_SOON_SECONDS, contact_id=contact.id)
                return None
        step_context = _step_preflight(deps, message, contact, sent_times)
        if step_context is None:
            return None
    # The sender's throughput, shared by every worker: wait a little, else put it back for later.
    if not deps.limiter.acquire(timeout=RATE_WAIT_SECONDS):
        deps.queue.send_message(message_id, delay_seconds=RETRY_SOON_SECONDS, contact_id=step_contact)
        log.info("message=%s waits for the sender's rate limit", message_id)
        return None
    if not store.messages.start_sending(message_id, now=deps.clock.now()):
        return None  # another delivery of this message got there first
    return message, contact, to, step_context


def send_message(deps: App, message_id: str, contact: str | None = None) -> str | None:
    """Send a ready message; returns the Twilio SID, or None when nothing was sent.

    A step message costs reads of the message, the contact's unprocessed messages and recent
    sends (pacing; its campaign comes from the process's cache), then ``ready → sending``, the
    SID, and the follow-up's next move (conditional: only a follow-up still awaiting this step
    moves; read first only when the next step's due date needs its enrolment date). With ``contact`` (the step
    message's contact, as drafting and this actor's own holds enqueue it) the contact's lock is
    taken first and the message and the contact's recent sends are one query.
    """
    store = deps.store
    with ExitStack() as hold:
        started = _start_sending(deps, hold, message_id, contact)
    if started is None:
        return None
    message, recipient, to, step_context = started

    template = message.kind == "template"
    request = OutboundRequest(
        to=to, status_callback=status_callback_for(deps, message_id),
        body=None if template else message.body,
        content_sid=message.content_sid if template else None,
        content_variables=message.content_variables if template else None,
    )
    try:
        result = deps.sender.send(request)
    except SendRejected as exc:
        store.messages.mark_failed(message_id, error_code=exc.code, now=deps.clock.now())
        log.warning("message=%s to=%s rejected by Twilio code=%s", message_id, mask_phone(to), exc.code)
        if message.purpose == "alert":
            handle_alert_error(deps, message, exc.code)
        elif recipient is not None:
            # The rules for a refusal may fill a template from the contact's fields: read it whole.
            handle_permanent_error(deps, message, store.contacts.get(recipient.id) or recipient, exc.code)
        return None
    except SendDeferred as exc:
        if exc.maybe_created:
            # No answer, or a 5xx (which a gateway may answer for a message Twilio took): never
            # resend blindly; the scheduler has it reconciled through Twilio's list first.
            reason = "no answer from Twilio" if exc.status is None else f"HTTP {exc.status} from Twilio"
            store.messages.mark_uncertain(message_id, reason=reason, error_code=exc.code, now=deps.clock.now())
            log.warning("message=%s uncertain: %s", message_id, reason)
            return None
        store.messages.retry_later(message_id, error_code=exc.code, now=deps.clock.now())
        if exc.code in SLOW_DOWN_CODES:
            # Too fast for the channel: every worker slows this sender down, and this message retries.
            deps.limiter.slow_down()
        raise TransientError(f"Twilio asked to retry later (code {exc.code})") from None

    sent_at = deps.clock.now()
    record_sid(store, message_id, result.sid, sent_at)
    if step_context is not None and recipient is not None and message.followup_id and not message.resend_of:
        campaign = step_context
        enrolled_at = None
        if needs_enrolment(campaign, message.step):
            followup = store.followups.get(message.followup_id)
            enrolled_at = followup.enrolled_at if followup is not None else None
        advance_after_send(store, followup_id=message.followup_id, enrolled_at=enrolled_at, campaign=campaign,
                           contact=_cadence_contact(deps, message, campaign, recipient), step=message.step,
                           sent_at=sent_at, now=sent_at)
    log.info("message=%s purpose=%s sent sid=%s to=%s", message_id, message.purpose, result.sid, mask_phone(to))
    return result.sid
