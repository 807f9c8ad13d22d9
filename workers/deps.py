"""What every actor function receives: the process's dependencies, built once by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from shared.clock import Clock
from shared.ports import Classifier, Drafter, Sender, TaskQueue
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
