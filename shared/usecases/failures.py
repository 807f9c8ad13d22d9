"""A stored webhook event that keeps failing is taken out of the way and given to a person."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from shared.errors import PermanentError, TransientError
from shared.usecases.context import App

R = TypeVar("R")
EVENT_ATTEMPTS = 5  # failures of one stored event (outages not counted) before a person takes it over

log = logging.getLogger(__name__)


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
