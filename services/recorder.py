"""Group commit for webhook events: concurrent requests share one insert and one enqueue.

A webhook request whose event an actor must act on (an inbound message, a failed delivery
status) must have it stored (once) in MongoDB before it is answered 200, and an inbound message
must then be put on Redis for the replies actors. Done one request at a
time, that is a MongoDB round trip, a Redis round trip and two thread hand-offs per request.

Here a request hands its event to :class:`EventRecorder` and waits. A writer takes everything
waiting, stores it with one unordered ``insert_many`` (with the batch's pending note, see
``EventRepository.record_many``), enqueues the new inbound events as one ``dispatch_inbound`` message
(ids only, fanned out by a replies worker), and answers every waiter. Nothing waits for a timer:
with one request in flight a batch is that one event; under load, batches grow by themselves
while the previous one is being written. One writer measured best (bench/webhook_bench.py: 2 or
4 writers make smaller batches and fight over the GIL). Each waiter learns whether its own event
was new (False for a Twilio retry, or a second copy of the same event in one batch).

Failures keep the webhook's contract: MongoDB unreachable → every waiter of that batch gets
TransientError (the webhook answers 503 and Twilio retries; what was stored is then found as a
duplicate). Redis unreachable → the events are stored and answered 200; the scheduler's
reconciler enqueues inbound events still ``received`` later.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.clock import Clock
from shared.domain.repositories import Repositories
from shared.errors import TransientError
from shared.ports import TaskQueue

log = logging.getLogger(__name__)

WRITERS = 1  # batches in flight at once
MAX_BATCH = 256  # events per insert_many; bounds one batch's latency and BSON size (64 KiB each at most)
LOGGED_IDS = 5  # event ids named in a batch's log line


@dataclass
class _Waiting:
    event_id: str
    doc: dict[str, Any]
    enqueue_inbound: bool
    future: asyncio.Future[bool]


class EventRecorder:
    """Stores webhook events once, many per round trip; see the module docstring.

    Use from one event loop (the webhook's). :meth:`close` writes what is still waiting.
    """

    def __init__(self, store: Repositories, queue: TaskQueue, clock: Clock, *, max_batch: int = MAX_BATCH,
                 writers: int = WRITERS) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock
        self.max_batch = max_batch
        self.writers = writers
        self._waiting: list[_Waiting] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._draining = 0  # flushers started and not finished
        # The writes run in these threads, so the event loop never blocks on I/O.
        self._executor = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="relance-recorder")

    async def record(self, event_id: str, doc: dict[str, Any], *, enqueue_inbound: bool = False) -> bool:
        """Store ``doc`` under ``event_id`` unless already stored; True when this call stored it.

        ``enqueue_inbound``: once stored, ask a replies actor to process it. Raises
        TransientError when the event could not be stored.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(_Waiting(event_id, doc, enqueue_inbound, future))
        if self._draining < self.writers:
            # Counted here and uncounted by the flusher in the same loop step as its last look at
            # the waiting list (no await in between): an event is never left without a flusher.
            self._draining += 1
            flusher = loop.create_task(self._drain())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def close(self) -> None:
        """Write what is waiting, then stop the writer thread."""
        if self._flushers:
            await asyncio.gather(*self._flushers)
        self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        try:
            await self._drain_waiting()
        finally:
            self._draining -= 1

    async def _drain_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch:]
            try:
                fresh = await loop.run_in_executor(self._executor, self._write, batch)
            except Exception as exc:
                if not isinstance(exc, TransientError):
                    log.error("could not store %d webhook event(s): %s", len(batch), type(exc).__name__)
                for waiting in batch:
                    if not waiting.future.done():  # a client that went away cancelled its own
                        waiting.future.set_exception(TransientError(f"event not stored: {type(exc).__name__}"))
                continue
            for waiting, new in zip(batch, fresh, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(new)

    def _write(self, batch: list[_Waiting]) -> list[bool]:
        """In the writer thread: one insert_many, then one enqueue for the new inbound events."""
        fresh = self.store.events.record_many([(w.event_id, w.doc) for w in batch], self.clock.now())
        to_process = [w.event_id for w, new in zip(batch, fresh, strict=True) if new and w.enqueue_inbound]
        if to_process:
            try:
                self.queue.process_inbound_many(to_process)
            except Exception:
                log.warning("%d inbound event(s) stored but not enqueued (Redis unavailable); "
                            "the scheduler will enqueue them", len(to_process))
        duplicates = len(batch) - sum(fresh)
        shown = " ".join(w.event_id for w in batch[:LOGGED_IDS]) + (" …" if len(batch) > LOGGED_IDS else "")
        log.info("stored %d webhook event(s)%s: %s", sum(fresh),
                 f", {duplicates} duplicate(s) left unchanged" if duplicates else "", shown)
        return fresh
