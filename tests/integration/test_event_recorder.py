"""Group commit of webhook events (services.recorder) on the real MongoDB-compatible server and Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import pytest
import redis

from services.recorder import EventRecorder
from services.webhook_events import inbound_event
from shared.adapters.mongo import MongoRepositories, open_repositories
from shared.clock import FakeClock
from shared.domain.rules import Rules
from shared.errors import TransientError
from shared.fakes import RecordingQueue
from shared.queue import ACTOR_DISPATCH_INBOUND, ACTOR_INBOUND, QUEUE_REPLIES, DramatiqQueue, make_broker
from shared.usecases.context import App
from shared.usecases.replies import dispatch_inbound
from shared.usecases.scheduling import TickReport, reconcile
from workers.deps import declare_actor

pytestmark = pytest.mark.integration


def _event(n: int) -> tuple[str, dict[str, Any]]:
    return inbound_event({"MessageSid": f"SM{n:032d}", "From": "whatsapp:+33612345678", "Body": f"message {n}"})


class GatedStore:
    """The real store, whose first ``events.record_many`` waits at a gate (so others pile up)."""

    def __init__(self, store: MongoRepositories) -> None:
        self.store = store
        self.events = self  # the recorder writes through store.events
        self.batches: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def record_many(self, events: list[tuple[str, dict[str, Any]]], now: datetime) -> list[bool]:
        self.batches.append(len(events))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        return self.store.events.record_many(events, now)


async def _record_while_first_batch_is_written(recorder: EventRecorder, gated: GatedStore,
                                               events: list[tuple[str, dict[str, Any]]]) -> list[bool]:
    first = asyncio.create_task(recorder.record(*events[0], enqueue_inbound=True))
    while not gated.entered.is_set():
        await asyncio.sleep(0.005)
    rest = [asyncio.create_task(recorder.record(*e, enqueue_inbound=True)) for e in events[1:]]
    await asyncio.sleep(0.05)  # every request has handed its event over
    gated.gate.set()
    return list(await asyncio.gather(first, *rest))


def test_requests_arriving_during_a_write_share_the_next_insert(store: MongoRepositories, clock: FakeClock) -> None:
    gated, queue = GatedStore(store), RecordingQueue()
    recorder = EventRecorder(gated, queue, clock, writers=1)  # type: ignore[arg-type]
    events = [_event(n) for n in range(21)]
    events.append(events[5])  # a Twilio retry arriving while the original waits in the same batch

    async def scenario() -> list[bool]:
        try:
            return await _record_while_first_batch_is_written(recorder, gated, events)
        finally:
            await recorder.close()

    fresh = asyncio.run(scenario())
    assert gated.batches == [1, 21]  # one insert for everything that arrived meanwhile
    assert fresh == [True] * 21 + [False]
    assert store.events.collection.count_documents({"kind": "inbound"}) == 21
    assert sorted(queue.inbound) == sorted(event_id for event_id, _ in events[:21])  # each once


def test_a_stored_event_is_a_duplicate_in_a_later_batch(store: MongoRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    event_id, doc = _event(1)

    async def scenario() -> tuple[bool, bool]:
        recorder = EventRecorder(store, queue, clock)
        try:
            return await recorder.record(event_id, doc, enqueue_inbound=True), await recorder.record(
                event_id, {**doc, "body": "changed"}, enqueue_inbound=True)
        finally:
            await recorder.close()

    assert asyncio.run(scenario()) == (True, False)
    assert queue.inbound == [event_id]
    assert store.events.collection.find_one({"_id": event_id})["body"] == "message 1"  # type: ignore[index]


def test_mongo_unreachable_fails_every_waiter_and_enqueues_nothing(clock: FakeClock) -> None:
    client, dead = open_repositories("mongodb://127.0.0.1:1/relance", "relance", timeout_ms=300)
    queue = RecordingQueue()

    async def scenario() -> list[object]:
        recorder = EventRecorder(dead, queue, clock)
        try:
            return list(await asyncio.gather(*(recorder.record(*_event(n), enqueue_inbound=True) for n in range(5)),
                                             return_exceptions=True))
        finally:
            await recorder.close()

    outcomes = asyncio.run(scenario())
    client.close()
    assert all(isinstance(outcome, TransientError) for outcome in outcomes)
    assert queue.inbound == []


class DeadQueue(RecordingQueue):
    """A queue whose Redis is down."""

    def process_inbound_many(self, event_ids: Any) -> None:
        raise redis.ConnectionError("Connection refused")


def test_redis_down_keeps_the_event_for_the_scheduler(store: MongoRepositories, clock: FakeClock) -> None:
    event_id, doc = _event(7)

    async def scenario() -> bool:
        recorder = EventRecorder(store, DeadQueue(), clock)
        try:
            return await recorder.record(event_id, doc, enqueue_inbound=True)
        finally:
            await recorder.close()

    assert asyncio.run(scenario()) is True  # stored: Twilio gets its 200
    clock.advance(timedelta(minutes=6))
    queue, report = RecordingQueue(), TickReport()
    reconcile(store, queue, clock, timedelta(minutes=5), 100, report)
    assert queue.inbound == [event_id]


def _consume(broker: Any, seen: list[str], expected: int) -> None:
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(seen) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.join()
    finally:
        worker.stop()
        broker.close()


def _recording_actor(broker: Any) -> list[str]:
    seen: list[str] = []
    lock = threading.Lock()

    def process_inbound(event_id: str) -> None:
        with lock:
            seen.append(event_id)

    dramatiq.actor(process_inbound, broker=broker, actor_name=ACTOR_INBOUND, queue_name=QUEUE_REPLIES)
    return seen


def test_enqueue_each_is_consumed_by_a_real_worker(redis_url: str) -> None:
    """One pipeline of dramatiq's own enqueue script: each id reaches a worker once."""
    broker = make_broker(redis_url)
    seen = _recording_actor(broker)
    ids = [f"inbound:SM{n:032d}" for n in range(40)]
    DramatiqQueue(broker).process_inbound_each(ids)
    payloads = redis.Redis.from_url(redis_url).hgetall(f"relance:{QUEUE_REPLIES}.msgs")
    assert sorted(json.loads(raw)["args"][0] for raw in payloads.values()) == sorted(ids)
    _consume(broker, seen, len(ids))
    assert sorted(seen) == sorted(ids)


def test_a_batch_is_one_message_that_a_real_worker_fans_out(redis_url: str, store: MongoRepositories,
                                                            clock: FakeClock) -> None:
    """The webhook's batch: one dispatch_inbound message (ids only), fanned out by the replies worker."""
    broker = make_broker(redis_url)
    seen = _recording_actor(broker)
    queue = DramatiqQueue(broker)
    deps = App.build(Rules(), store=store, clock=clock, queue=queue, drafter=None, sender=None)  # type: ignore[arg-type]
    declare_actor(broker, deps, dispatch_inbound, name=ACTOR_DISPATCH_INBOUND, queue=QUEUE_REPLIES)
    ids = [f"inbound:SM{n:032d}" for n in range(25)]
    queue.process_inbound_many(ids)
    payloads = list(redis.Redis.from_url(redis_url).hgetall(f"relance:{QUEUE_REPLIES}.msgs").values())
    assert [(json.loads(raw)["actor_name"], json.loads(raw)["args"]) for raw in payloads] == [
        (ACTOR_DISPATCH_INBOUND, [ids])]
    _consume(broker, seen, len(ids))
    assert sorted(seen) == sorted(ids)


def test_a_single_event_is_sent_straight_to_process_inbound(redis_url: str) -> None:
    broker = make_broker(redis_url)
    try:
        DramatiqQueue(broker).process_inbound_many(["inbound:SM1"])
        payloads = list(redis.Redis.from_url(redis_url).hgetall(f"relance:{QUEUE_REPLIES}.msgs").values())
    finally:
        broker.close()
    assert [(json.loads(raw)["actor_name"], json.loads(raw)["args"]) for raw in payloads] == [
        (ACTOR_INBOUND, ["inbound:SM1"])]


def test_clients_posting_again_at_once_are_never_left_waiting(store: MongoRepositories, clock: FakeClock) -> None:
    """A request answered by a batch and followed at once by the next: a flusher always takes it.

    (A flusher that had just found nothing more to write, but was not yet done, used to be
    counted as still running: the next event then waited forever.)
    """
    queue = RecordingQueue()

    async def scenario() -> int:
        recorder = EventRecorder(store, queue, clock, writers=1)

        async def client(first: int) -> int:
            return sum([await recorder.record(*_event(n), enqueue_inbound=True) for n in range(first, first + 10)])

        try:
            return sum(await asyncio.wait_for(asyncio.gather(*(client(c * 10) for c in range(8))), timeout=30))
        finally:
            await recorder.close()

    assert asyncio.run(scenario()) == 80
    assert len(queue.inbound) == 80 and store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 80
