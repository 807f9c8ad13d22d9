"""What every use case receives: the rules and the ports, built once per process.

The composition roots (:mod:`services.bootstrap`) build one :class:`App` from the settings
(``Settings.rules()``) with the real adapters; tests build one with in-memory repositories and
fakes (:meth:`App.build`).
A capability that is off is a null object (:class:`~shared.ports.NoRateLimit`,
:class:`~shared.ports.NoContactLocks`), never None.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.clock import Clock
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.ports import Classifier, ContactLocks, Drafter, NoContactLocks, NoRateLimit, RateLimiter, Sender, TaskQueue


@dataclass
class App:
    """The rules and ports of one process (real in processes, in-memory and fakes in tests)."""

    rules: Rules
    store: Repositories
    clock: Clock
    queue: TaskQueue
    drafter: Drafter
    sender: Sender
    classifier: Classifier
    # The sender's throughput, shared by every sending worker.
    limiter: RateLimiter
    # One worker at a time checks a contact's pacing and moves its message to sending.
    locks: ContactLocks

    @classmethod
    def build(cls, rules: Rules, *, store: Repositories, clock: Clock, queue: TaskQueue,
              drafter: Drafter, sender: Sender, classifier: Classifier | None = None,
              limiter: RateLimiter | None = None, locks: ContactLocks | None = None) -> App:
        """An App with these rules; the capabilities not given are off (and the offline classifier reads replies)."""
        from shared.language.classifier import OfflineClassifier

        return cls(rules=rules, store=store, clock=clock, queue=queue, drafter=drafter, sender=sender,
                   classifier=classifier or OfflineClassifier(), limiter=limiter or NoRateLimit(),
                   locks=locks or NoContactLocks())
