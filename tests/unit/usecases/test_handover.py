"""Closing a hand-over (``relance handled PHONE [--resume|--stop|--paid]``) on the in-memory repositories."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.reasons import HandledAction, HandOver, HandOverReason, ReplyOutcome, ReplyResult, StopReason
from shared.domain.states import FollowUpState
from shared.errors import InputError
from shared.ports import Intent
from shared.usecases.context import App
from shared.usecases.conversations import handled_lines
from shared.usecases.handover import HandOverClosed, close_hand_over
from tests.unit.usecases.replies_world import PHONE, followup, queued, reads, reply, sid, world

STRANGER = "+33699999999"


def _needs_a_person(app: App, n: int = 1) -> None:
    """Marie asks what her data cannot answer: paused and flagged, the owner alerted."""
    reads(app, Intent.QUESTION, question_topic="iban")
    result = reply(app, "votre IBAN ?", n)
    assert result is not None and result.outcome == ReplyOutcome.NEEDS_HUMAN
    assert (followup(app).state, followup(app).needs_human) == (FollowUpState.PAUSED, True)


def _summary(app: App) -> tuple[object, ...]:
    (only,) = app.store.followups.summaries_of_contact("ct1")
    return (only.state, only.needs_human, only.handled_action, only.stop_reason, only.pause_reason)


def test_resume_closes_the_hand_over_and_sends_the_follow_up_on_at_once(clock: FakeClock) -> None:
    app = world(clock)
    _needs_a_person(app)
    clock.advance(timedelta(minutes=30))
    closed = close_hand_over(app.store, PHONE, action="resume", now=clock.now())
    assert (closed.contact_id, closed.name, closed.action, closed.closed, closed.moved) == (
        "ct1", "Marie", HandledAction.RESUME, 1, 1)
    f = followup(app)
    assert (f.state, f.needs_human, f.pause_reason, f.next_run_at) == (FollowUpState.SCHEDULED, False, None,
                                                                      clock.now())
    assert f.needs_human_reason == str(HandOver(HandOverReason.UNANSWERABLE_QUESTION))  # kept for the timeline
    assert _summary(app)[:3] == ("scheduled", False, "resume")
    assert [(s.state, s.step) for s in closed.followups] == [("scheduled", 0)]
    # Done twice: nothing more to close, nothing moves.
    again = close_hand_over(app.store, PHONE, action=HandledAction.RESUME, now=clock.now())
    assert (again.closed, again.moved) == (0, 0)


def test_keep_only_clears_the_flag(clock: FakeClock) -> None:
    app = world(clock)
    _needs_a_person(app)
    closed = close_hand_over(app.store, PHONE, action="keep", now=clock.now())
    assert (closed.closed, closed.moved) == (1, 0)
    assert _summary(app) == ("paused", False, "keep", None, "needs_human")


@pytest.mark.parametrize(("action", "reason"), [("stop", StopReason.STOPPED_BY_OWNER), ("paid", StopReason.PAID)])
def test_stop_and_paid_end_the_open_follow_ups(clock: FakeClock, action: str, reason: StopReason) -> None:
    app = world(clock)
    _needs_a_person(app)
    closed = close_hand_over(app.store, PHONE, action=action, now=clock.now())
    assert (closed.closed, closed.moved) == (1, 1)
    assert _summary(app)[:4] == ("stopped", False, action, reason.value)
    # A stopped follow-up stays stopped: resume has nothing to resume.
    assert close_hand_over(app.store, PHONE, action="resume", now=clock.now()).moved == 0
    assert followup(app).state == FollowUpState.STOPPED


def test_resume_is_refused_for_a_client_who_opted_out_and_changes_nothing(clock: FakeClock) -> None:
    app = world(clock)
    _needs_a_person(app)
    app.store.contacts.set_opt_out("ct1", True, clock.now())
    before = _summary(app)
    with pytest.raises(InputError, match=r"Marie \+33612345678 opted out: .* nothing was changed"):
        close_hand_over(app.store, PHONE, action="resume", now=clock.now())
    assert _summary(app) == before
    assert close_hand_over(app.store, PHONE, action="paid", now=clock.now()).moved == 1  # that one is allowed


def test_an_unknown_action_is_refused(clock: FakeClock) -> None:
    app = world(clock)
    _needs_a_person(app)
    with pytest.raises(InputError, match="unknown action 'later': one of keep, resume, stop, paid"):
        close_hand_over(app.store, PHONE, action="later", now=clock.now())
    assert followup(app).needs_human


def test_an_unknown_number_is_taken_off_the_list_and_cannot_be_resumed(clock: FakeClock) -> None:
    app = world(clock)
    reply(app, "Vous pouvez me rappeler ?", 1, phone=STRANGER)
    reply(app, "Allô ?", 2, phone=STRANGER)
    with pytest.raises(InputError, match="is no contact: there is no follow-up to mark paid"):
        close_hand_over(app.store, STRANGER, action="paid", now=clock.now())
    assert len(app.store.messages.open_unknown_ids(STRANGER)) == 2
    closed = close_hand_over(app.store, STRANGER, action="keep", now=clock.now())
    assert closed == HandOverClosed(phone=STRANGER, action=HandledAction.KEEP, closed=2)
    assert app.store.messages.open_unknown_ids(STRANGER) == []
    with pytest.raises(InputError, match=r"no contact with phone .*, and no message from it"):
        close_hand_over(app.store, "+33611111111", action="keep", now=clock.now())


def test_after_the_hand_over_is_closed_a_new_one_alerts_the_owner_again(clock: FakeClock) -> None:
    app = world(clock)
    _needs_a_person(app, 1)
    reads(app, Intent.DISPUTE)
    assert reply(app, "je conteste", 2) == ReplyResult(ReplyOutcome.HELD)  # the same hand-over: no alert
    close_hand_over(app.store, PHONE, action="resume", now=clock.now())
    assert reply(app, "je conteste", 3) == ReplyResult(ReplyOutcome.NEEDS_HUMAN,
                                                       hand_over=HandOver(HandOverReason.DISPUTE))
    assert queued(app) == [f"alert:{sid(1)}", f"alert:{sid(3)}"]


def test_what_relance_handled_prints(clock: FakeClock) -> None:
    app = world(clock)
    _needs_a_person(app)
    assert handled_lines(close_hand_over(app.store, PHONE, action="paid", now=clock.now())) == [
        f"Marie {PHONE}: 1 hand-over(s) closed; 1 follow-up(s) stopped as paid",
        "  follow-up c1: stopped (next step 1) paid"]
    assert handled_lines(HandOverClosed(phone=STRANGER, action=HandledAction.KEEP, closed=2)) == [
        f"{STRANGER}: unknown number handled (2 message(s)); it is listed again if it writes again"]
