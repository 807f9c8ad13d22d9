"""What every actor function receives: the process's dependencies, built once by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.clock import Clock
from shared.ports import Classifier, Drafter, Sender, TaskQueue
from shared.ratelimit import SendRateLimiter
from shared.settings import Settings
from shared.store import Store


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
