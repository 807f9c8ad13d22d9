"""Run the actors' functions in-process over a RecordingQueue, as the workers would; or the actors in a
real dramatiq worker (:func:`workers_running`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dramatiq

from services.bootstrap import register_actors
from shared.fakes import RecordingQueue
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.reconciling import reconcile_message
from shared.usecases.sending import send_message


def drain(deps: App) -> None:
    """Draft, send and reconcile whatever is queued to run now, until nothing is left.

    A send asked for later (a delay: send window, pacing, a hold) is not run, and not dropped
    either: it is left in ``queue.sends`` with its delay, for the test to look at or run.
    Reconciliations asked for (``queue.reconciles``) are run, so a lost answer is looked up
    the way the sending workers would.
    """
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    later: list[tuple[str, float]] = []
    while queue.drafts or queue.sends or queue.reconciles:
        while queue.drafts:
            draft_followup(deps, *queue.drafts.pop(0))
        while queue.sends:
            message_id, delay = queue.sends.pop(0)
            if delay > 0:
                later.append((message_id, delay))
            else:
                send_message(deps, message_id)
        while queue.reconciles:
            reconcile_message(deps, queue.reconciles.pop(0))
    queue.sends.extend(later)


@contextlib.contextmanager
def workers_running(broker: dramatiq.Broker, deps: App, threads: int = 4) -> Iterator[None]:
    """The actors registered on ``broker`` over ``deps`` and a dramatiq worker running them; then the worker
    stopped and the broker closed."""
    register_actors(broker, deps)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield
    finally:
        worker.stop()
        broker.close()
