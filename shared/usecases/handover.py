"""Handing a conversation to a person, alerting the owner, and closing the hand-over.

A hand-over pauses (or stops) the contact's follow-ups and flags them ``needs_human`` with the
:class:`~shared.domain.reasons.HandOver` as reason; the owner is alerted once per hand-over,
tied to the inbound message that opened it. While it is open, the client's further messages
are only recorded (:mod:`shared.usecases.replies`). A person closes it with
``relance handled PHONE [--resume|--stop|--paid]`` (:func:`close_hand_over`); the next
message that needs a person opens a new one, and alerts the owner again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.domain.models import Contact, Language, OutboundMessage
from shared.domain.reasons import HandledAction, HandOver, PauseReason, StopReason
from shared.domain.records import FollowUpSummary
from shared.domain.repositories import Repositories
from shared.domain.states import FollowUpState, MessageState
from shared.errors import InputError
from shared.language.texts import owner_alert_text, owner_alert_variables
from shared.policy import window_open
from shared.usecases import invoice_replies, outbound
from shared.usecases.cadence import pause_contact, stop_contact
from shared.usecases.context import App


def hand_over(app: App, contact: Contact, inbound_sid: str, why: HandOver, *, stop: StopReason | None = None,
              pause: PauseReason = PauseReason.NEEDS_HUMAN) -> int:
    """Give the contact's conversation to a person because of ``inbound_sid``; how many follow-ups moved.

    Their open follow-ups are stopped (``stop`` as reason) or paused (``pause``, until a person
    resumes them) and flagged with ``why``; without an open one, the completed ones are flagged
    (a reply to the last reminder). The owner is alerted once per hand-over. Idempotent: every
    move is conditional, and the alert's id is the inbound message's.
    """
    store, now = app.store, app.clock.now()
    reason = str(why)
    if stop:
        moved = stop_contact(store, contact.id, reason=stop, now=now, needs_human=True, detail=reason)
    else:
        moved = pause_contact(store, contact.id, until=None, reason=pause, now=now, needs_human=True, detail=reason)
    if not store.followups.flag_contact(contact.id, reason=reason, now=now):
        # A reply to the last reminder, once the cadence is over: that follow-up is the one to look at.
        store.followups.flag_contact(contact.id, reason=reason, now=now, finished=True)
    if store.followups.claim_hand_over(contact.id, inbound_sid=inbound_sid, now=now):
        alert_owner(app, contact, inbound_sid, why)
    outbound.handover_needed(store, app.queue, contact.id, inbound_sid, reason, now=now)  # once per inbound_sid
    return moved


def alert_id(inbound_sid: str) -> str:
    """The id of the one owner alert an inbound message may cause."""
    return f"alert:{inbound_sid}"


def alert_owner(app: App, contact: Contact, inbound_sid: str, why: HandOver) -> None:
    """Tell the business owner on WhatsApp that a conversation needs them (when configured).

    Inside the owner's 24-hour window (they wrote to the sender less than 24 h ago) the alert is
    freeform text; outside it, OWNER_ALERT_TEMPLATE_SID when set. Without a template freeform is
    still tried (the window may be open without our knowing), and a 63016 refusal is handled in
    :mod:`shared.usecases.delivery` (template re-send, or a warning saying what to set up).
    Stored once (its id is the inbound message's): enqueued only by the call that stored it.
    """
    rules = app.rules
    owner = rules.owner_number
    if not owner:
        return
    template_sid = rules.owner_alert_template_sid
    use_template = bool(template_sid) and not window_open(app.store.owner.last_inbound(owner), app.clock.now())
    message = OutboundMessage(
        id=alert_id(inbound_sid), followup_id=None, contact_id=None, campaign_id=None, step=-1,
        purpose="alert", to=owner, state=MessageState.READY, kind="template" if use_template else "freeform",
        body=owner_alert_text(contact, why), language=Language.FR,
        content_sid=template_sid if use_template else None,
        content_variables=owner_alert_variables(contact, why), draft_source="template" if use_template else "system",
        fallback_reason="owner_outside_window" if use_template else None,
    )
    if app.store.messages.insert(message, app.clock.now()):
        app.queue.send_message(message.id)


# ------------------------------------------------------------------ closing a hand-over
@dataclass(frozen=True)
class HandOverClosed:
    """What closing a hand-over did.

    For a contact: ``closed`` hand-over flags cleared, ``moved`` follow-ups resumed or stopped,
    its follow-ups after that, and the references of the ``invoices`` marked paid (``paid``) or
    reopened (``resume``). For a number that is no contact (``contact_id`` None):
    ``closed`` messages marked handled.
    """

    phone: str
    action: HandledAction
    contact_id: str | None = None
    name: str = "?"
    closed: int = 0
    moved: int = 0
    followups: tuple[FollowUpSummary, ...] = ()
    invoices: tuple[str, ...] = ()


def close_hand_over(store: Repositories, phone: str, *, action: HandledAction | str, now: datetime
                    ) -> HandOverClosed:
    """A person dealt with this number: clear its hand-over flags and apply their decision.

    ``action``: ``keep`` leaves the follow-ups as they are, ``resume`` sends the paused ones on
    from their current step, ``stop`` ends the open ones (their unsent drafts are cancelled),
    ``paid`` too, with ``paid`` as the reason: the payment a client claimed has arrived.
    Their invoices (source ``command``): ``paid`` marks the ``claimed_paid`` ones paid;
    ``resume`` reopens the ``claimed_paid`` and ``disputed`` ones (not paid after all, or the
    dispute settled), so resumed reminders name them again (a dispute's stopped follow-ups stay
    stopped); ``stop`` and ``keep`` leave them as they are.
    Stopped and completed follow-ups stay so. For an unknown number, its messages are marked as
    handled and it leaves the list (until it writes again). A refusal (InputError) changes
    nothing. Idempotent: done twice, the second finds nothing to close or move.
    """
    try:
        decided = HandledAction(action)
    except ValueError:
        raise InputError(f"unknown action {action!r}: one of {', '.join(HandledAction)}") from None
    contact = store.contacts.record_by_phone(phone)  # read leniently: a record the model refuses is one to close
    if contact is None:
        return _close_unknown(store, phone, action=decided, now=now)
    name = contact.name or "?"
    if decided == HandledAction.RESUME and contact.opted_out:
        raise InputError(f"{name} {phone} opted out: nothing is sent to them until they write START; "
                         "nothing was changed")
    moved, invoices = 0, []
    if decided == HandledAction.RESUME:
        # Not paid after all (or the dispute is settled): resumed reminders name those invoices again.
        invoices = invoice_replies.reopen_claims(store, contact.id, now=now)
        moved = len(resume_contact(store, contact.id, now=now))
    elif decided == HandledAction.STOP:
        moved = stop_contact(store, contact.id, reason=StopReason.STOPPED_BY_OWNER, now=now)
    elif decided == HandledAction.PAID:
        invoices = invoice_replies.confirm_claimed(store, contact.id, now=now)
        for reference in invoices:  # no queue here: the scheduler's sweep delivers them
            outbound.invoice_paid(store, None, reference, now=now)
        moved = stop_contact(store, contact.id, reason=StopReason.PAID, now=now)
    closed = store.followups.clear_hand_over(contact.id, action=decided, now=now)
    return HandOverClosed(phone=phone, action=decided, contact_id=contact.id, name=name, closed=closed, moved=moved,
                          followups=tuple(store.followups.summaries_of_contact(contact.id)),
                          invoices=tuple(invoices))


def resume_contact(store: Repositories, contact_id: str, *, now: datetime) -> list[str]:
    """A person resumes a contact's paused follow-ups; returns their ids.

    Each goes back to ``scheduled``, due now: its current step is drafted again from today's data
    (the draft made before the pause was cancelled) and sent in the send window.
    """
    return [followup.id for followup in store.followups.of_contact(contact_id, (FollowUpState.PAUSED,))
            if store.followups.resume(followup.id, now=now)]


_VERB = {HandledAction.RESUME: "resume", HandledAction.STOP: "stop", HandledAction.PAID: "mark paid"}


def _close_unknown(store: Repositories, phone: str, *, action: HandledAction, now: datetime) -> HandOverClosed:
    if not store.messages.has_unknown(phone):
        raise InputError(f"no contact with phone {phone}, and no message from it as an unknown number: "
                         "see `relance conversations`", code="handover.unknown_number")
    if action != HandledAction.KEEP:
        raise InputError(f"{phone} is no contact: there is no follow-up to {_VERB[action]}; "
                         "run `relance handled PHONE` alone to take it off the list", code="handover.not_contact")
    handled = store.messages.mark_handled(store.messages.open_unknown_ids(phone), now)
    return HandOverClosed(phone=phone, action=action, closed=handled)
