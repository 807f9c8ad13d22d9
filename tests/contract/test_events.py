"""Webhook events: stored once, found waiting through the pending notes, processed once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.events import status_event_doc
from shared.domain.repositories import EventDoc, Repositories
from shared.domain.states import ActionState, EventState
from tests.contract.conftest import stored

PHONE, OTHER = "+33612345678", "+33700000000"
STALE, FINISHED = timedelta(minutes=5), timedelta(seconds=30)


def _inbound(n: int, phone: str = PHONE) -> tuple[str, EventDoc]:
    return f"inbound:SM{n}", {"kind": "inbound", "sid": f"SM{n}", "state": "received", "from": f"whatsapp:{phone}",
                              "body": f"message {n}", "num_media": 1, "media_urls": ["https://m/1"]}


def _notes(repos: Repositories) -> int:
    """How many pending notes are stored (an implementation's own bookkeeping, read raw)."""
    from shared.adapters.memory import MemoryRepositories
    from shared.adapters.mongo import MongoRepositories

    if isinstance(repos, MongoRepositories):
        return repos.events.collection.count_documents({"kind": "pending"})
    assert isinstance(repos, MemoryRepositories)
    return sum(1 for doc in repos.events.docs.values() if doc.get("kind") == "pending")


def _sweep(repos: Repositories, now: datetime, limit: int = 100) -> list[str]:
    return [e.id for e in repos.events.sweep_notes(requeue_before=now - STALE, drop_before=now - FINISHED,
                                                   limit=limit)]


def test_an_event_is_stored_once_and_read_back(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.events.record(*_inbound(1), now)
    assert not repos.events.record("inbound:SM1", {**_inbound(1)[1], "body": "changed"}, now)
    event = repos.events.get("inbound:SM1")
    assert event is not None and (event.kind, event.state, event.sid, event.received_at) == (
        "inbound", EventState.RECEIVED, "SM1", now)
    assert (event.sender, event.body, event.num_media, event.media_urls) == (
        f"whatsapp:{PHONE}", "message 1", 1, ["https://m/1"])
    assert (event.failures, event.action_state, event.button_payload) == (0, None, "")
    assert repos.events.get("inbound:SMnone") is None
    assert repos.events.known_ids(["inbound:SM1", "inbound:SM2"]) == {"inbound:SM1"}
    assert repos.events.known_ids([]) == set()


def test_a_batch_reports_each_duplicate_whether_stored_before_or_in_the_same_batch(repos: Repositories,
                                                                                  clock: FakeClock) -> None:
    now = clock.now()
    assert repos.events.record_many([_inbound(1)], now) == [True]
    assert repos.events.record_many([_inbound(2), _inbound(1), _inbound(3), _inbound(2)], now) == [
        True, False, True, False]
    assert repos.events.record_many([], now) == []
    assert repos.events.count_waiting(["inbound"]) == 3


def test_a_status_event_waits_only_when_it_is_a_failure(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    delivered, failed = status_event_doc("SM9", "delivered", None), status_event_doc("SM9", "failed", 63024)
    assert repos.events.record_many([delivered, failed], now) == [True, True]
    assert _notes(repos) == 1  # one note for the batch: the failure
    assert repos.events.count_waiting(["status"]) == 1 and repos.events.count_waiting(["inbound"]) == 0
    stored_failure = repos.events.get(failed[0])
    assert stored_failure is not None and (stored_failure.sid, stored_failure.status, stored_failure.error_code) == (
        "SM9", "failed", 63024)
    assert repos.events.get(delivered[0]).state == EventState.PROCESSED  # type: ignore[union-attr]
    repos.events.record(*status_event_doc("SM9", "read", None), now + timedelta(seconds=1))
    assert repos.events.get(failed[0]).action_state == ActionState.PENDING  # type: ignore[union-attr]
    assert _notes(repos) == 1  # a batch with nothing waiting writes no note


def test_a_contacts_unprocessed_messages_are_found_through_the_notes(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.events.record_many([_inbound(1), _inbound(2, OTHER)], now)
    repos.events.record_many([_inbound(3)], now + timedelta(seconds=1))
    waiting = repos.events.unprocessed_inbound(PHONE)
    assert [(e.id, e.kind, e.received_at) for e in waiting] == [
        ("inbound:SM1", "inbound", now), ("inbound:SM3", "inbound", now + timedelta(seconds=1))]
    assert [e.id for e in repos.events.unprocessed_inbound(PHONE, limit=1)] == ["inbound:SM1"]
    assert repos.events.mark_processed("inbound:SM1", now)
    assert [e.id for e in repos.events.unprocessed_inbound(PHONE)] == ["inbound:SM3"]
    assert [e.id for e in repos.events.unprocessed_inbound(OTHER)] == ["inbound:SM2"]
    assert repos.events.unprocessed_inbound("+33699999999") == []


def test_the_sweep_requeues_what_waits_too_long_and_drops_finished_notes(repos: Repositories,
                                                                         clock: FakeClock) -> None:
    now = clock.now()
    repos.events.record_many([_inbound(1), _inbound(2, OTHER)], now)
    assert _sweep(repos, now) == [] and _notes(repos) == 1  # too recent for either
    later = now + STALE + timedelta(seconds=1)
    assert sorted(_sweep(repos, later)) == ["inbound:SM1", "inbound:SM2"]
    assert len(_sweep(repos, later, limit=1)) == 1  # at most `limit` events
    repos.events.mark_processed("inbound:SM1", now)
    assert _sweep(repos, later) == ["inbound:SM2"] and _notes(repos) == 1
    repos.events.mark_failed("inbound:SM2", now)
    assert _sweep(repos, now + timedelta(seconds=10)) == [] and _notes(repos) == 1  # finished, not old enough
    assert _sweep(repos, later) == [] and _notes(repos) == 0  # nothing waits: the note is gone


def test_a_waiting_event_is_requeued_once_per_period_and_its_failures_counted(repos: Repositories,
                                                                              clock: FakeClock) -> None:
    now = clock.now()
    repos.events.record(*_inbound(1), now)
    assert repos.events.claim_requeue("inbound:SM1", now, STALE)
    assert not repos.events.claim_requeue("inbound:SM1", now + STALE, STALE)
    assert repos.events.claim_requeue("inbound:SM1", now + STALE + timedelta(seconds=1), STALE)
    assert repos.events.count_failure("inbound:SM1", "ValidationError", now) == 1
    assert repos.events.count_failure("inbound:SM1", "ValidationError", now) == 2
    assert repos.events.get("inbound:SM1").failures == 2  # type: ignore[union-attr]
    doc = stored(repos, "events", "inbound:SM1")
    assert doc is not None and doc["last_error"] == "ValidationError"
    repos.events.mark_processed("inbound:SM1", now)
    assert repos.events.count_failure("inbound:SM1", "ValidationError", now) == 0  # no longer waits
    assert not repos.events.claim_requeue("inbound:SM1", now + 2 * STALE, STALE)
    assert repos.events.count_failure("inbound:SMnone", "x", now) == 0


@pytest.mark.parametrize("first", ["mark_processed", "mark_failed"])
def test_an_inbound_event_is_processed_once(repos: Repositories, clock: FakeClock, first: str) -> None:
    now = clock.now()
    repos.events.record(*_inbound(1), now)
    assert getattr(repos.events, first)("inbound:SM1", now)
    assert not repos.events.mark_processed("inbound:SM1", now)
    assert not repos.events.mark_failed("inbound:SM1", now)
    expected = EventState.PROCESSED if first == "mark_processed" else EventState.FAILED
    assert repos.events.get("inbound:SM1").state == expected  # type: ignore[union-attr]
    assert repos.events.count_waiting(["inbound"]) == 0
    assert not repos.events.mark_processed("inbound:SMnone", now)


@pytest.mark.parametrize(("first", "action_state", "state"), [
    ("finish_action", ActionState.DONE, EventState.PROCESSED), ("fail_action", ActionState.FAILED, EventState.FAILED)])
def test_a_failed_status_is_acted_on_once(repos: Repositories, clock: FakeClock, first: str,
                                          action_state: ActionState, state: EventState) -> None:
    now = clock.now()
    failed = status_event_doc("SM9", "undelivered", 63024)
    repos.events.record(*failed, now)
    assert getattr(repos.events, first)(failed[0], action="invalid_number", now=now)
    assert not repos.events.finish_action(failed[0], action="again", now=now)
    assert not repos.events.fail_action(failed[0], action="again", now=now)
    event = repos.events.get(failed[0])
    assert event is not None and (event.action_state, event.state) == (action_state, state)
    assert stored(repos, "events", failed[0])["action"] == "invalid_number"  # type: ignore[index]
    delivered = status_event_doc("SM9", "delivered", None)
    repos.events.record(*delivered, now)
    assert not repos.events.finish_action(delivered[0], action="x", now=now)  # nothing pending


def test_counting_what_waits_stops_at_the_limit(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.events.record_many([_inbound(1), _inbound(2), status_event_doc("SM9", "failed", 1)], now)
    assert repos.events.count_waiting(["inbound", "status"]) == 3
    assert repos.events.count_waiting(["inbound", "status"], limit=1) == 1
    assert repos.events.count_waiting(["inbound"]) == 2 and repos.events.count_waiting([]) == 0
