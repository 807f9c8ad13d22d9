"""The drafting use case on the in-memory repositories: one message per step, none for a follow-up gone."""

from __future__ import annotations

from shared.clock import FakeClock
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.states import FollowUpState, MessageState
from shared.usecases.drafting import compose_message, draft_followup
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


def test_a_run_after_one_that_died_before_moving_the_followup_keeps_the_stored_message(clock: FakeClock) -> None:
    """The conditional insert makes the step's message once: a second run sends the first one's draft."""
    app = world(clock)
    contact, campaign = app.store.contacts.get("ct1"), app.store.campaigns.get("c1")
    assert contact is not None and campaign is not None
    stored = compose_message(app, followup(app), campaign, contact)
    assert stored is not None and app.store.messages.insert(stored.model_copy(update={"body": "first run"}),
                                                            clock.now())
    assert followup(app).state == FollowUpState.QUEUED  # the first run died here
    assert draft_followup(app, FOLLOWUP_ID, 0) == f"{FOLLOWUP_ID}:0"
    assert message(app, f"{FOLLOWUP_ID}:0").body == "first run"
    assert app.store.messages.count(purpose="step") == 1
    assert followup(app).state == FollowUpState.AWAITING_SEND


def test_a_step_queued_again_after_its_draft_was_cancelled_is_drafted_afresh(clock: FakeClock) -> None:
    app = world(clock)
    message_id = draft_followup(app, FOLLOWUP_ID, 0)
    assert message_id is not None and followup(app).drafted_step == 0
    assert app.store.messages.cancel(message_id, reason=CancelReason.OPT_OUT, now=clock.now())
    assert app.store.followups.draft_again(FOLLOWUP_ID, step=0, now=clock.now())  # the scheduler's healing
    assert draft_followup(app, FOLLOWUP_ID, 0) == message_id
    assert message(app, message_id).state == MessageState.READY
