"""The drafting use case on the in-memory repositories: one message per step, none for a follow-up gone."""

from __future__ import annotations

from shared.clock import FakeClock
from shared.domain.reasons import PauseReason, StopReason
from shared.domain.states import FollowUpState, MessageState
from shared.usecases.drafting import draft_followup
from tests.unit.usecases.sending_world import FOLLOWUP_ID, followup, message, recording, world


def test_a_step_is_drafted_once_and_handed_to_sending(clock: FakeClock) -> None:
    app = world(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == f"{FOLLOWUP_ID}:0"
    drafted = message(app, f"{FOLLOWUP_ID}:0")
    assert (drafted.state, drafted.kind, drafted.step) == (MessageState.READY, "freeform", 0)
    assert followup(app).state == FollowUpState.AWAITING_SEND
    assert recording(app).sends == [(f"{FOLLOWUP_ID}:0", 0)]
    # A redelivery of the same draft request finds the follow-up moved on: nothing drafted again.
    assert draft_followup(app, FOLLOWUP_ID, 0) is None
    assert recording(app).sends == [(f"{FOLLOWUP_ID}:0", 0)]
    assert app.store.messages.count(purpose="step") == 1


def test_no_draft_is_written_for_a_stopped_followup(clock: FakeClock) -> None:
    app = world(clock)
    assert app.store.followups.stop(FOLLOWUP_ID, reason=StopReason.OPT_OUT, now=clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0) is None
    assert app.store.messages.get(f"{FOLLOWUP_ID}:0") is None
    assert recording(app).sends == []
    assert followup(app).state == FollowUpState.STOPPED


def test_no_draft_is_written_for_a_paused_followup(clock: FakeClock) -> None:
    app = world(clock)
    assert app.store.followups.pause(FOLLOWUP_ID, reason=PauseReason.CAMPAIGN_PAUSED, now=clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0) is None
    assert app.store.messages.get(f"{FOLLOWUP_ID}:0") is None
    assert recording(app).sends == []
    assert followup(app).state == FollowUpState.PAUSED


def test_a_request_for_another_step_drafts_nothing(clock: FakeClock) -> None:
    app = world(clock)
    assert draft_followup(app, FOLLOWUP_ID, 1) is None
    assert app.store.messages.count(purpose="step") == 0
    assert followup(app).state == FollowUpState.QUEUED


def test_an_opted_out_contact_gets_no_draft_and_its_followup_stops(clock: FakeClock) -> None:
    app = world(clock)
    app.store.contacts.set_opt_out("ct1", True, clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0) is None
    assert app.store.messages.get(f"{FOLLOWUP_ID}:0") is None
    assert (followup(app).state, followup(app).stop_reason) == (FollowUpState.STOPPED, StopReason.OPT_OUT)
