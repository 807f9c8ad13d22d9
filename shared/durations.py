"""Durations written the way campaigns are: ``3d``, ``4h``, ``90s``, ``1d12h``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from shared.errors import InputError

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# The longest duration accepted anywhere: a campaign delay or a setting longer than a year is a
# typo, and a huge one would overflow datetime arithmetic (and stop the scheduler) much later.
MAX_DURATION = timedelta(days=365)


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``3d`` or ``1h30m`` (at most 365 days); raise InputError when it is not one."""
    cleaned = str(text).strip().lower().replace(" ", "")
    if not cleaned:
        raise InputError("empty duration: write it like 3d, 4h, 90s or 1h30m")
    position = 0
    seconds = 0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        digits = match.group(1).lstrip("0") or "0"
        # Past 12 digits it is too long whatever the unit (and int() refuses thousands of digits).
        seconds += int(digits[:13]) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise InputError(f"invalid duration {text!r}: write it like 3d, 4h, 90s or 1h30m")
    # Compared as an int before building the timedelta, which would overflow for huge numbers.
    if seconds > MAX_DURATION.total_seconds():
        shown = cleaned if len(cleaned) <= 20 else cleaned[:17] + "..."
        raise InputError(f"duration {shown!r} is too long: at most 365 days (365d)")
    return timedelta(seconds=seconds)
