"""Durations written the way campaigns are: ``3d``, ``4h``, ``90s``, ``1d12h``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from shared.errors import InputError

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``3d`` or ``1h30m``; raise InputError when it is not one."""
    cleaned = str(text).strip().lower().replace(" ", "")
    if not cleaned:
        raise InputError("empty duration: write it like 3d, 4h, 90s or 1h30m")
    position = 0
    seconds = 0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise InputError(f"invalid duration {text!r}: write it like 3d, 4h, 90s or 1h30m")
    return timedelta(seconds=seconds)
