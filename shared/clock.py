"""An injectable clock, so tests can move time instead of waiting for it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


class FakeClock:
    """A clock tests set and advance by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 11:00 Paris
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time the test set."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        """Move time forward."""
        with self._lock:
            self._now += delta

    def set(self, moment: datetime) -> None:
        """Jump to a moment."""
        with self._lock:
            self._now = moment


def utc(moment: datetime) -> datetime:
    """Make a datetime read back from MongoDB (naive UTC) timezone-aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
