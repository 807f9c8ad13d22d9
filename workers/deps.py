"""What every actor function receives: the process's dependencies, built once by bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from shared.clock import Clock
from shared.errors import PermanentError
from shared.ports import Classifier, Drafter, Sender, TaskQueue
from shared.ratelimit import SendRateLimiter
from shared.settings import Settings
from shared.store import Store

R = TypeVar("R")


@dataclass
class Deps:
    """Dependencies of the actor functions (real in processes, fakes in unit tests)."""

    settings: Settings
    store: Store
    clock: Clock
    queue: TaskQueue
    drafter: Drafter
    sender: Sender
    # Reads clients' replies; None means the offline rule-based classifier.
    classifier: Classifier | None = None
    # Sender throughput shared by every sending worker; None: unlimited (unit tests).
    rate_limiter: SendRateLimiter | None = None
    # Redis for the per-contact pacing lock; None: no lock (single-worker tests).
    redis: redis.Redis | None = None


def declare_actor(broker: RedisBroker, deps: Deps, fn: Callable[..., R], *, name: str, queue: str,
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
