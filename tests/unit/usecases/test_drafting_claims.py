"""Drafting with the scheduler's claim: no read of the follow-up, and still no draft reaches a client
whose follow-up moved on; an old, missing or unreadable claim falls back to reading the follow-up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.clock import FakeClock
from shared.domain.models import Campaign, FollowUp, Step
from shared.domain.reasons import CancelReason, StopReason
from shared.domain.records import DraftClaim
from shared.domain.states import FollowUpState, MessageState
from shared.fakes import RecordingQueue
from shared.usecases.context import App
from shared.usecases.drafting import CLAIM_FRESH_FOR, draft_followup
from shared.usecases.scheduling import tick
from tests.unit.usecases.sending_world import ALWAYS, FOLLOWUP_ID, followup, message, recording, world

MESSAGE_ID = f"{FOLLOWUP_ID}:0"


def _claim(app: App, *, age: timedelta = timedelta(seconds=1), drafted_step: int | None = None) -> DraftClaim:
    return DraftClaim(contact_id="ct1", campaign_id="c1", drafted_step=drafted_step,
                      claimed_at=app.clock.now() - age)


def _no_followup_reads(app: App, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every read of a follow-up by id."""
    reads: list[str] = []
    real = app.store.followups.get

    def get(followup_id: str) -> FollowUp | None:
        reads.append(followup_id)
        return real(followup_id)

    monkeypatch.setattr(app.store.followups, "get", get)
    return reads


def test_the_scheduler_hands_its_claim_to_drafting(clock: FakeClock) -> None:
    app = world(clock)
    assert app.store.followups.stop(FOLLOWUP_ID, reason=StopReason.PAID, now=clock.now())
    queue = RecordingQueue()
    app.store.followups.enrol(contact_id="ct1", campaign_id="c2", next_run_at=clock.now(), now=clock.now())
    app.store.campaigns.create(Campaign(id="c2", name="Autre", send_window=ALWAYS, steps=[Step(delay="0s")]),
                               clock.now())
    report = tick(app.store, queue, clock)
    assert report.claimed == ["c2:ct1"] and queue.drafts == [("c2:ct1", 0)]
    assert queue.claims["c2:ct1"] == DraftClaim(contact_id="ct1", campaign_id="c2", drafted_step=None,
                                                claimed_at=clock.now())


def test_a_fresh_claim_drafts_without_reading_the_followup(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = world(clock)
    reads = _no_followup_reads(app, monkeypatch)
    assert draft_followup(app, FOLLOWUP_ID, 0, _claim(app)) == MESSAGE_ID
    assert reads == []
    assert message(app, MESSAGE_ID).state == MessageState.READY
    assert followup(app).state == FollowUpState.AWAITING_SEND
    assert recording(app).sends == [(MESSAGE_ID, 0)]


def test_the_claim_as_a_dramatiq_message_carries_it(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = world(clock)
    reads = _no_followup_reads(app, monkeypatch)
    assert draft_followup(app, FOLLOWUP_ID, 0, _claim(app).to_json()) == MESSAGE_ID
    assert reads == []


@pytest.mark.parametrize("claim", [None, {}, {"contact_id": "ct1"}, {"contact_id": "ct1", "campaign_id": "c1",
                                                                     "claimed_at": "not a date"}])
def test_without_a_readable_claim_the_followup_is_read(clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
                                                       claim: dict[str, Any] | None) -> None:
    app = world(clock)
    reads = _no_followup_reads(app, monkeypatch)
    assert draft_followup(app, FOLLOWUP_ID, 0, claim) == MESSAGE_ID
    assert reads == [FOLLOWUP_ID]


def test_an_old_claim_is_checked_against_the_followup_first(clock: FakeClock) -> None:
    """A claim from a backlog or a redelivery: a follow-up stopped since gets no draft at all (no Gemini call)."""
    app = world(clock)
    assert app.store.followups.stop(FOLLOWUP_ID, reason=StopReason.PAID, now=clock.now())
    old = _claim(app, age=CLAIM_FRESH_FOR + timedelta(seconds=1))
    assert draft_followup(app, FOLLOWUP_ID, 0, old) is None
    assert app.store.messages.get(MESSAGE_ID) is None
    assert recording(app).sends == []


def test_a_followup_stopped_after_a_fresh_claim_gets_its_draft_withdrawn(clock: FakeClock) -> None:
    """The rare wasted draft never reaches the client: the conditional await_send fails, the draft is cancelled."""
    app = world(clock)
    assert app.store.followups.stop(FOLLOWUP_ID, reason=StopReason.PAID, now=clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0, _claim(app)) is None
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert recording(app).sends == []
    assert followup(app).state == FollowUpState.STOPPED


def test_an_opted_out_contact_still_costs_no_draft_with_a_claim(clock: FakeClock) -> None:
    app = world(clock)
    app.store.contacts.set_opt_out("ct1", True, clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0, _claim(app)) is None
    assert app.store.messages.get(MESSAGE_ID) is None
    assert (followup(app).state, followup(app).stop_reason) == (FollowUpState.STOPPED, StopReason.OPT_OUT)


def test_a_redelivered_claim_after_the_send_changes_nothing(clock: FakeClock) -> None:
    app = world(clock)
    claim = _claim(app)
    assert draft_followup(app, FOLLOWUP_ID, 0, claim) == MESSAGE_ID
    sent_body = message(app, MESSAGE_ID).body
    # The follow-up awaits its send: the stored message is kept, and not handed to sending again.
    assert draft_followup(app, FOLLOWUP_ID, 0, claim) == MESSAGE_ID
    assert message(app, MESSAGE_ID).state == MessageState.READY and message(app, MESSAGE_ID).body == sent_body
    assert recording(app).sends == [(MESSAGE_ID, 0)]
    assert app.store.messages.count(purpose="step") == 1


def test_a_claim_of_a_step_drafted_before_reads_and_keeps_its_draft(clock: FakeClock) -> None:
    app = world(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    assert app.store.messages.cancel(MESSAGE_ID, reason=CancelReason.OPT_OUT, now=clock.now())
    assert app.store.followups.draft_again(FOLLOWUP_ID, step=0, now=clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0, _claim(app, drafted_step=0)) == MESSAGE_ID
    assert message(app, MESSAGE_ID).state == MessageState.READY
