"""Declaring the actors: each takes ids only and calls a function with the process's :class:`App`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.errors import PermanentError, TransientError
from shared.usecases.context import App

R = TypeVar("R")
EVENT_ATTEMPTS = 5  # failures of one stored event (outages not counted) before a person takes it over

log = logging.getLogger(__name__)


def declare_actor(broker: RedisBroker, deps: App, fn: Callable[..., R], *, name: str, queue: str,
                  max_retries: int = 8, min_backoff: int = 1000, max_backoff: int = 60_000,
                  time_limit: int = 120_000) -> dramatiq.Actor[..., R]:
    """Declare ``fn(deps, *ids)`` as a dramatiq actor taking the ids only.

    Permanent errors are never retried (``throws``); anything else is retried with exponential
    backoff, and the actor functions' conditional state moves make a retry harmless.
    """

    def run(*args: Any) -> R:
        return fn(deps, *args)

    run.__name__ = name
    actor: dramatiq.Actor[..., R] = dramatiq.actor(
        broker=broker, actor_name=name, queue_name=queue, max_retries=max_retries, min_backoff=min_backoff,
        max_backoff=max_backoff, time_limit=time_limit, throws=(PermanentError,),
    )(run)
    return actor


def give_up_after_failures(deps: App, event_id: str, run: Callable[[], R], give_up: Callable[[str], R]) -> R:
    """``run()`` for a stored webhook event, and ``give_up(error name)`` once it keeps failing.

    A MongoDB or Redis outage (TransientError) is retried for as long as it lasts and counts for
    nothing. Any other failure is one this code cannot handle (a record it cannot read, a bug):
    it is counted on the event (``failures``, ``last_error``) and raised again for dramatiq to
    retry; at the ``EVENT_ATTEMPTS``-th, or at once for a PermanentError, ``give_up`` takes the
    event out of the way. Without this the event would wait forever, retried by the scheduler.
    """
    try:
        return run()
    except TransientError:
        raise
    except Exception as exc:
        error = type(exc).__name__
        failures = deps.store.events.count_failure(event_id, error, deps.clock.now())
        if failures == 0 or (failures < EVENT_ATTEMPTS and not isinstance(exc, PermanentError)):
            raise  # done meanwhile (0), or retried by dramatiq
        log.error("event=%s failed %d time(s) (%s): handed over to a person", event_id, failures, error)
        return give_up(error)
