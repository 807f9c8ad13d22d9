"""Follow-up transitions shared by the actors and the scheduler's reconciler.

Each function is one named, conditional state move (or a small sequence of them); calling it
twice does the work once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.domain.models import Campaign, Contact
from shared.domain.reasons import CancelReason, HandOverReason, PauseReason, StopReason
from shared.domain.records import DraftKeeper
from shared.domain.repositories import Repositories
from shared.domain.states import OPEN, RUNNING, FollowUpState
from shared.policy import step_due_at

log = logging.getLogger(__name__)

# Twilio error codes that say the recipient cannot be reached on WhatsApp.
INVALID_RECIPIENT_CODES = {21211, 21614, 63003, 63024}
OPT_OUT_CODES = {21610}


def advance_after_send(
    store: Repositories, *, followup_id: str, enrolled_at: datetime | None, campaign: Campaign, contact: Contact,
    step: int, sent_at: datetime, now: datetime,
) -> FollowUpState | None:
    """After step ``step`` went out: schedule the next step, or complete the follow-up.

    Conditional: only a follow-up still ``awaiting_send`` at ``step`` moves. ``enrolled_at`` (the
    follow-up's) is needed only when the next step is not anchored on the previous send
    (:func:`needs_enrolment`); None otherwise.
    """
    nxt = step + 1
    if nxt < len(campaign.steps):
        due = step_due_at(campaign=campaign, step_index=nxt, contact=contact,
                          enrolled_at=enrolled_at or sent_at, previous_sent_at=sent_at, now=now)
        moved = store.followups.schedule_next(followup_id, step=step, due=due, sent_at=sent_at, now=now)
        return FollowUpState.SCHEDULED if moved else None
    moved = store.followups.complete(followup_id, step=step, sent_at=sent_at, now=now)
    return FollowUpState.COMPLETED if moved else None


def needs_enrolment(campaign: Campaign, step: int) -> bool:
    """Whether the due date of the step after ``step`` may depend on the follow-up's ``enrolled_at``.

    A step anchored on the previous send does not; one anchored on the enrolment does, and so
    does one anchored on a contact's date field (enrolment is its fallback).
    """
    nxt = step + 1
    return nxt < len(campaign.steps) and campaign.steps[nxt].anchor != "previous"


def stop_followup(
    store: Repositories, followup_id: str, *, reason: StopReason, now: datetime, needs_human: bool = False,
    detail: str | None = None,
) -> bool:
    """Stop a follow-up that is still running, whatever step it is at, then cancel its ready messages.

    The sending actor does not read the follow-up: a ready message withdrawn here is what keeps
    it from going out (its ``ready → sending`` fails).
    """
    if not _stop(store, followup_id, reason=reason, now=now, needs_human=needs_human, detail=detail):
        return False
    store.messages.cancel_ready_of_followup(followup_id, reason=CancelReason.after_stop(reason), now=now)
    return True


def _stop(store: Repositories, followup_id: str, *, reason: StopReason, now: datetime, needs_human: bool,
          detail: str | None) -> bool:
    flag = str(detail or reason.value) if needs_human else None
    return store.followups.stop(followup_id, reason=reason, now=now, needs_human=flag, expected=OPEN)


def stop_contact(store: Repositories, contact_id: str, *, reason: StopReason, now: datetime,
                 needs_human: bool = False, detail: str | None = None) -> int:
    """Stop every running follow-up of a contact, then cancel their unsent messages."""
    stopped = 0
    for followup in store.followups.of_contact(contact_id, OPEN):
        if _stop(store, followup.id, reason=reason, now=now, needs_human=needs_human, detail=detail):
            stopped += 1
    store.messages.cancel_ready_steps(contact_id, reason=CancelReason.after_stop(reason), now=now)
    return stopped


def pause_contact(store: Repositories, contact_id: str, *, until: datetime | None, reason: PauseReason,
                  now: datetime, needs_human: bool = False, detail: str | None = None) -> int:
    """Pause every running follow-up of a contact (until a date, or until a person resumes it), then
    cancel their unsent messages: the step is drafted afresh when the pause ends."""
    flag = str(detail or reason.value) if needs_human else None
    paused = 0
    for followup in store.followups.of_contact(contact_id, OPEN):
        if store.followups.pause(followup.id, reason=reason, until=until, now=now, needs_human=flag, expected=OPEN):
            paused += 1
    store.messages.cancel_ready_steps(contact_id, reason=CancelReason.after_pause(reason), now=now)
    return paused


def pause_for_a_person(store: Repositories, followup_id: str, *, reason: str, now: datetime) -> bool:
    """Pause one running follow-up (until a person resumes it) and flag it; True when it moved.

    Reads nothing but the follow-up's state: for a hand-over made because a record could not
    be read. Its ready messages are cancelled once it is paused. A follow-up that is not running
    is flagged all the same.
    """
    if store.followups.pause(followup_id, reason=PauseReason.NEEDS_HUMAN, until=None, now=now, needs_human=reason,
                             expected=OPEN):
        store.messages.cancel_ready_of_followup(followup_id, reason=CancelReason.after_pause(PauseReason.NEEDS_HUMAN),
                                                now=now)
        return True
    store.followups.flag(followup_id, reason=reason, now=now)
    return False


def keeps_draft(followup: DraftKeeper | None, *, step: int, resend: bool = False) -> bool:
    """Whether a follow-up may still send a ``ready`` message drafted for ``step``.

    A step's draft is kept while its follow-up is at that step and running. It is dead once the
    follow-up is stopped, completed, past that step, or paused (for the contact or with its
    campaign): the step is drafted afresh when that pause ends. A template re-send (``resend``,
    63016) outlives its step and dies only when the follow-up is stopped or paused for the
    contact, as the sending actor decides (paused with its campaign, it waits for the resume).
    """
    if followup is None:
        return False
    if resend:
        with_campaign = (followup.state == FollowUpState.PAUSED.value
                         and followup.pause_reason == PauseReason.CAMPAIGN_PAUSED)
        return with_campaign or followup.state not in (FollowUpState.STOPPED.value, FollowUpState.PAUSED.value)
    return followup.step == step and followup.state in _HOLDS_DRAFT


def cancel_dead_draft(store: Repositories, message_id: str, followup: DraftKeeper | None, *, step: int,
                      now: datetime, resend: bool = False) -> bool | None:
    """Cancel a ``ready`` message (conditional ``ready → cancelled``) unless ``followup`` still wants it.

    None when the follow-up keeps it; else whether this call cancelled it.
    """
    if keeps_draft(followup, step=step, resend=resend):
        return None
    state = followup.state if followup else None
    if store.messages.cancel(message_id, reason=CancelReason.followup_is(state), now=now):
        log.info("message=%s cancelled: its follow-up is %s", message_id, state or "missing")
        return True
    return False


def withdraw_dead_draft(store: Repositories, message_id: str, followup_id: str, *, step: int, now: datetime) -> bool:
    """Cancel a ``ready`` step message if its follow-up will never send it; True when cancelled.

    For a draft stored after its follow-up moved on: a STOP or a pause processed while the step
    was being drafted cancelled the contact's ready messages before this one existed.
    """
    return bool(cancel_dead_draft(store, message_id, store.followups.keeper(followup_id), step=step, now=now))


def flag_finished_followup(store: Repositories, followup_id: str | None, *, detail: str, now: datetime) -> bool:
    """Flag a completed follow-up for a person: its last message failed after the cadence ended.

    A failure reported once the last step was handed to Twilio (a status callback, a poll) stops
    nothing, but the client never got that reminder: someone should know.
    """
    if not followup_id:
        return False
    return store.followups.flag_completed(followup_id, reason=f"{HandOverReason.LAST_MESSAGE_FAILED}: {detail}",
                                          now=now)


def stop_reason_for_error(code: int | None) -> tuple[StopReason, bool]:
    """(stop reason, needs a human) for a permanent Twilio error code."""
    if code in OPT_OUT_CODES:
        return StopReason.OPT_OUT, False
    if code in INVALID_RECIPIENT_CODES:
        return StopReason.INVALID_NUMBER, True
    return StopReason.SEND_FAILED, True


# Follow-up states (values) in which a draft for the current step is still wanted.
_HOLDS_DRAFT = frozenset(state.value for state in RUNNING)
