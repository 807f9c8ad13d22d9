"""The scheduler's tick as a use case, on the in-memory repositories: each step's moves, its guards."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.adapters.memory import MemoryRepositories, memory_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, Step
from shared.domain.reasons import PauseReason
from shared.domain.records import DraftClaim
from shared.domain.states import FollowUpState, MessageState
from shared.errors import TransientError
from shared.fakes import RecordingQueue
from shared.usecases.scheduling import STEPS, TickReport, poll_statuses, reconcile, tick
from tests.unit.usecases.replies_world import ALWAYS, FACTS, PHONE

STALE = timedelta(minutes=5)
FID = "c1:ct1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryRepositories:
    """Marie enrolled in a two-step campaign, due now."""
    store = memory_repositories()
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR, fields=FACTS), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS,
                                    steps=[Step(delay="0s"), Step(delay="2d", anchor="previous")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    return store


def _state(store: MemoryRepositories, followup_id: str = FID) -> str:
    followup = store.followups.get(followup_id)
    assert followup is not None
    return followup.state.value


def _message(store: MemoryRepositories, clock: FakeClock, *, step: int = 0, state: MessageState = MessageState.READY,
             resend_of: str | None = None, followup_id: str | None = FID) -> OutboundMessage:
    message = OutboundMessage(id=f"{FID}:{step}" + (":t" if resend_of else ""), followup_id=followup_id,
                              contact_id="ct1", campaign_id="c1", step=step, state=state, kind="freeform",
                              body="Bonjour", language=Language.FR, resend_of=resend_of)
    assert store.messages.insert(message, clock.now())
    return message


def _to_awaiting_send(store: MemoryRepositories, clock: FakeClock, queue: RecordingQueue) -> None:
    tick(store, queue, clock)
    assert store.followups.start_drafting(FID, step=0, now=clock.now())
    assert store.followups.await_send(FID, step=0, now=clock.now())


def test_claim_enqueues_each_due_followup_once(store: MemoryRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    report = tick(store, queue, clock)
    assert report.claimed == [FID] and queue.drafts == [(FID, 0)]
    assert _state(store) == "queued"
    assert tick(store, queue, clock).claimed == []  # the conditional move is the lock
    assert queue.drafts == [(FID, 0)]


def test_a_paused_campaign_is_not_claimed(store: MemoryRepositories, clock: FakeClock) -> None:
    store.campaigns.set_status("c1", "paused", clock.now())
    assert tick(store, RecordingQueue(), clock).claimed == []
    assert _state(store) == "scheduled"


def test_a_pause_that_ended_is_resumed(store: MemoryRepositories, clock: FakeClock) -> None:
    assert store.followups.pause(FID, reason=PauseReason.PROMISE_TO_PAY, until=clock.now() + timedelta(days=1),
                                 now=clock.now())
    assert tick(store, RecordingQueue(), clock).resumed == []
    clock.advance(timedelta(days=1, seconds=1))
    assert tick(store, RecordingQueue(), clock).resumed == [FID]
    assert _state(store) == "scheduled"


def test_a_lost_draft_request_is_enqueued_again_once_per_stale_period(store: MemoryRepositories,
                                                                      clock: FakeClock) -> None:
    queue = RecordingQueue()
    tick(store, queue, clock)
    clock.advance(STALE + timedelta(seconds=1))
    report = TickReport()
    reconcile(store, queue, clock, STALE, 100, report)
    assert report.requeued_drafts == [FID] and queue.drafts == [(FID, 0), (FID, 0)]
    reconcile(store, queue, clock, STALE, 100, TickReport())
    assert len(queue.drafts) == 2


def test_awaiting_send_without_its_draft_is_drafted_again(store: MemoryRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    clock.advance(STALE + timedelta(seconds=1))
    report = tick(store, queue, clock)
    assert report.requeued_drafts == [FID]
    assert _state(store) == "queued"


def test_awaiting_send_whose_step_went_out_moves_on(store: MemoryRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    message = _message(store, clock)
    assert store.messages.start_sending(message.id, now=clock.now())
    assert store.messages.mark_sent(message.id, sid="SM1", now=clock.now())
    clock.advance(STALE + timedelta(seconds=1))
    report = tick(store, queue, clock)
    assert report.advanced == [FID]
    followup = store.followups.get(FID)
    assert followup is not None and followup.state == FollowUpState.SCHEDULED and followup.step == 1


def test_a_ready_message_left_behind_is_sent_again(store: MemoryRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    message = _message(store, clock)
    clock.advance(STALE + timedelta(seconds=1))
    report = tick(store, queue, clock)
    assert report.requeued_sends == [message.id]
    assert queue.sends == [(message.id, 0)]
    assert tick(store, queue, clock).requeued_sends == []  # once per stale period


def test_a_dead_draft_is_cancelled(store: MemoryRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    message = _message(store, clock)
    assert store.followups.pause(FID, reason=PauseReason.PROMISE_TO_PAY, until=clock.now() + timedelta(days=3),
                                 now=clock.now())
    clock.advance(STALE + timedelta(seconds=1))
    report = tick(store, queue, clock)
    assert report.cancelled_drafts == [message.id]
    stored = store.messages.get(message.id)
    assert stored is not None and stored.state == MessageState.CANCELLED
    assert queue.sends == []


def test_a_draft_left_ready_over_a_campaign_pause_is_cancelled(store: MemoryRepositories, clock: FakeClock) -> None:
    """A pause that died before withdrawing the campaign's drafts: the sweep withdraws them (resume drafts again)."""
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    message = _message(store, clock)
    assert store.followups.pause(FID, reason=PauseReason.CAMPAIGN_PAUSED, now=clock.now(), step=0)
    clock.advance(STALE + timedelta(seconds=1))
    report = tick(store, queue, clock)
    assert report.cancelled_drafts == [message.id] and report.requeued_sends == []
    stored = store.messages.get(message.id)
    assert stored is not None and stored.state == MessageState.CANCELLED


def test_a_send_stuck_in_sending_becomes_uncertain_and_is_reconciled(store: MemoryRepositories,
                                                                     clock: FakeClock) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    message = _message(store, clock)
    assert store.messages.start_sending(message.id, now=clock.now())
    clock.advance(STALE + timedelta(seconds=1))
    report = tick(store, queue, clock)
    assert report.uncertain == [message.id] and report.reconciling == [message.id]
    assert queue.reconciles == [message.id]
    assert tick(store, queue, clock).reconciling == []  # asked again only after RECONCILE_RECHECK


def test_a_message_still_sent_has_its_status_polled(store: MemoryRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    message = _message(store, clock)
    assert store.messages.start_sending(message.id, now=clock.now())
    assert store.messages.mark_sent(message.id, sid="SM1", now=clock.now())
    clock.advance(timedelta(minutes=11))
    report = TickReport()
    poll_statuses(store, queue, clock, 100, report)
    assert report.status_polls == [message.id] and queue.status_polls == [message.id]
    poll_statuses(store, queue, clock, 100, report)
    assert queue.status_polls == [message.id]


class _BrokenQueue(RecordingQueue):
    def draft_followup(self, followup_id: str, step: int, claim: DraftClaim | None = None) -> None:
        raise ConnectionError("redis away")


def test_an_outage_fails_its_step_only(store: MemoryRepositories, clock: FakeClock) -> None:
    report = tick(store, _BrokenQueue(), clock)
    assert report.failed_steps == ["claim"]
    assert report.quarantined == []
    assert _state(store) == "queued"  # claimed; drafted again once stale


def test_a_record_the_code_cannot_handle_is_quarantined(store: MemoryRepositories, clock: FakeClock,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    queue = RecordingQueue()
    _to_awaiting_send(store, clock, queue)
    clock.advance(STALE + timedelta(seconds=1))

    def broken(message_id: str) -> OutboundMessage:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(store.messages, "get", broken)
    report = tick(store, queue, clock)
    assert report.quarantined == [FID] and "awaiting_send" not in report.failed_steps
    followup = store.followups.get(FID)
    assert followup is not None and followup.state == FollowUpState.PAUSED and followup.needs_human


def test_a_failing_step_leaves_the_others_running(store: MemoryRepositories, clock: FakeClock) -> None:
    def boom(ctx: object) -> None:
        raise TransientError("mongo away")

    steps = (("boom", boom), *STEPS)
    report = tick(store, RecordingQueue(), clock, steps=steps)
    assert report.failed_steps == ["boom"] and report.claimed == [FID]


def test_the_backfill_runs_in_its_step(store: MemoryRepositories, clock: FakeClock) -> None:
    class Backfill:
        def run_in_tick(self, store: object, queue: object, clock: object) -> list[str]:
            return ["inbound:SM1"]

    assert tick(store, RecordingQueue(), clock, backfill=Backfill()).backfilled == ["inbound:SM1"]
    assert tick(store, RecordingQueue(), clock).backfilled == []
