"""The outbound queue's actor: one attempt at one webhook delivery (:func:`shared.usecases.outbound.deliver`).

A failed attempt with attempts left is enqueued again after its backoff; the scheduler's sweep
enqueues what Redis lost (a pending delivery whose attempt is due).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.queue import ACTOR_DELIVER_HOOK, QUEUE_OUTBOUND
from shared.usecases.context import App
from shared.usecases.outbound import DeliveryOutcome, HookPoster, deliver
from workers.deps import declare_actor


def deliver_hook(app: App, poster: HookPoster, delivery_id: str) -> str:
    """POST one delivery now; on a failed attempt, ask for the next one after its backoff."""
    run = deliver(app.store, poster, delivery_id, now=app.clock.now())
    if run.outcome == DeliveryOutcome.RETRY and run.retry_in is not None:
        app.queue.deliver_hook(delivery_id, run.retry_in.total_seconds())
    return run.outcome.value


def register(broker: RedisBroker, app: App, poster: HookPoster | None = None) -> dramatiq.Actor[..., str]:
    """Declare the outbound actor on ``broker`` (``poster``: the real HTTP client unless given)."""
    from shared.hook_poster import HttpxPoster

    used: HookPoster = poster if poster is not None else HttpxPoster()

    def run(deps: App, delivery_id: str) -> str:
        return deliver_hook(deps, used, delivery_id)

    # Each attempt's retry is this module's (the backoff of docs/webhooks-out.md); dramatiq's own
    # retries cover only a store that did not answer.
    return declare_actor(broker, app, run, name=ACTOR_DELIVER_HOOK, queue=QUEUE_OUTBOUND, max_retries=3,
                         time_limit=30_000)
