"""Sender throughput: at most N messages per period from one WhatsApp sender, across every worker.

Twilio queues (and eventually refuses with 429/63018) what a sender pushes faster than its
throughput: about 80 messages per second for a registered WhatsApp sender, far less on the
sandbox. Every sending worker, in every process and on every machine, shares one limiter per
sender number through Redis.

The algorithm is GCRA (generic cell rate algorithm), run as one atomic Lua script on one key
per sender (``relance:rate:<number>``, expiring once idle): the key holds the "theoretical
arrival time" (TAT) of the next message, in microseconds of the **Redis server's** clock, so
clock skew between workers does not matter. With a rate of ``count/period`` the emission
interval is ``T = period / count``:

- a message is allowed when ``now >= TAT - (burst - 1)·T``; it then moves TAT to
  ``max(TAT, now) + T``;
- with the default ``burst=1`` messages are spaced at least ``T`` apart (smooth: "10/1s" means
  one every 100 ms), so no window of ``period`` ever holds more than ``count`` of them;
- a larger ``burst`` lets up to ``burst`` messages go back to back after an idle spell, still
  averaging ``count`` per ``period`` (any window of ``period`` then holds at most
  ``count + burst - 1``).

When Twilio answers 63018 ("Rate limit exceeded for Channel") the sender goes faster than its
channel allows, whatever ``SEND_RATE`` says: :meth:`SendRateLimiter.slow_down` then stores a
slow-down factor on a second key (``relance:slowdown:<number>``, ``SLOWDOWN_SECONDS`` to live),
which the same Lua script reads on every decision, so every worker at once sends at
``rate / SLOWDOWN_FACTOR``, one by one (no burst). Each 63018 re-arms the key for
``SLOWDOWN_SECONDS`` from then, without stacking: however many arrive, the rate never falls
below ``rate / SLOWDOWN_FACTOR`` and sending never stops. The key expires on its own and the
rate is back to normal, with no one having to lift the slow-down.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import redis

from shared.durations import parse_duration
from shared.errors import InputError, TransientError

log = logging.getLogger(__name__)

KEY_PREFIX = "relance:rate:"
SLOWDOWN_PREFIX = "relance:slowdown:"

# Twilio error codes saying the sender goes too fast for its channel: the shared rate is lowered.
SLOW_DOWN_CODES = frozenset({63018})
# During a slow-down every worker together sends at SEND_RATE divided by this (the floor: the
# script never divides by more, whatever the key holds)…
SLOWDOWN_FACTOR = 4
# …until this long after the last 63018.
SLOWDOWN_SECONDS = 20.0

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(.+?)\s*$")

# KEYS[1]: the sender's key. KEYS[2]: its slow-down key. ARGV[1]: emission interval (µs).
# ARGV[2]: burst tolerance (µs). ARGV[3]: the largest slow-down factor obeyed.
# Returns {allowed (1/0), wait before retrying (µs), server time of the decision (µs), factor applied}.
# While a slow-down factor is stored the interval is multiplied by it and there is no burst.
# TIME before a write needs effects replication: the default from Redis 5 on, and forced here
# for servers configured otherwise (a no-op on Redis 7).
_GCRA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local factor = tonumber(redis.call('GET', KEYS[2]) or '1') or 1
factor = math.floor(factor)
if factor > tonumber(ARGV[3]) then factor = tonumber(ARGV[3]) end
if factor > 1 then
  interval = interval * factor
  tolerance = 0
else
  factor = 1
end
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = tonumber(stored)
  if tat < now then tat = now end
end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now, now, factor}
end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, 0, now, factor}
"""

# KEYS[1]: the slow-down key. ARGV[1]: factor. ARGV[2]: time to live (ms).
# Sets (or re-arms) the slow-down; returns 1 when none was running, 0 when one was re-armed.
_SLOW_DOWN = """
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if fresh then return 1 end
return 0
"""


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``count/period`` ("80/1s", "1/3s", "10/1m", "30/s") into (count, period in seconds).

    Raises InputError (one line saying how to write it) for anything else.
    """
    hint = "write it like 80/1s, 1/3s or 10/1m (messages / period)"
    match = _RATE.match(str(text))
    if not match:
        raise InputError(f"invalid rate {text!r}: {hint}")
    count = int(match.group(1))
    period_text = match.group(2)
    if not period_text[:1].isdigit():
        period_text = "1" + period_text  # "30/s" reads as "30/1s"
    try:
        period = parse_duration(period_text).total_seconds()
    except InputError:
        raise InputError(f"invalid rate {text!r}: {hint}") from None
    if count < 1 or period <= 0:
        raise InputError(f"invalid rate {text!r}: the count and the period must be positive; {hint}")
    return count, period


@dataclass(frozen=True)
class Attempt:
    """One decision of the limiter: ``acquired``, else ``wait`` seconds; ``at`` is Redis server time (epoch s)."""

    acquired: bool
    wait: float
    at: float
    # The slow-down factor in force when it was decided (1: the normal rate).
    factor: int = 1


class SendRateLimiter:
    """A GCRA limiter for one sender number, shared by every worker through Redis (see module doc)."""

    def __init__(self, *, client: redis.Redis, sender: str, rate: str, burst: int = 1) -> None:
        count, period = parse_rate(rate)
        if burst < 1:
            raise InputError(f"invalid burst {burst}: it must be at least 1")
        number = sender.strip().removeprefix("whatsapp:")
        if not number:
            raise InputError("the rate limiter needs a sender number")
        self.client = client
        self.sender = number
        self.rate = rate
        self.count, self.period = count, period
        self.burst = burst
        self.key = f"{KEY_PREFIX}{number}"
        self.slowdown_key = f"{SLOWDOWN_PREFIX}{number}"
        self._interval_us = max(1, round(period * 1_000_000 / count))
        self._tolerance_us = (burst - 1) * self._interval_us
        self._script: Any = client.register_script(_GCRA)
        self._slow_down_script: Any = client.register_script(_SLOW_DOWN)

    @property
    def interval(self) -> float:
        """Seconds between two messages at the steady rate."""
        return self._interval_us / 1_000_000

    def attempt(self) -> Attempt:
        """Try to take a slot once (atomic, one round trip); Redis errors become TransientError."""
        try:
            allowed, wait_us, now_us, factor = self._script(
                keys=[self.key, self.slowdown_key], args=[self._interval_us, self._tolerance_us, SLOWDOWN_FACTOR]
            )
        except redis.RedisError as exc:
            raise TransientError(f"Redis unreachable for the send rate limiter: {type(exc).__name__}") from None
        return Attempt(acquired=bool(int(allowed)), wait=int(wait_us) / 1_000_000, at=int(now_us) / 1_000_000,
                       factor=int(factor))

    def slow_down(self, *, seconds: float = SLOWDOWN_SECONDS) -> bool:
        """Lower this sender's rate for every worker to ``rate / SLOWDOWN_FACTOR`` until ``seconds`` from now.

        Called on each 63018: a slow-down already running is re-armed for ``seconds``, never
        deepened, so a burst of them keeps the rate at its floor instead of stopping sends.
        True when this call started the slow-down (it is then logged once, as a warning).
        """
        ttl_ms = max(1, round(seconds * 1000))
        try:
            fresh = self._slow_down_script(keys=[self.slowdown_key], args=[SLOWDOWN_FACTOR, ttl_ms])
        except redis.RedisError as exc:
            raise TransientError(f"Redis unreachable for the send rate limiter: {type(exc).__name__}") from None
        if int(fresh):
            log.warning("Twilio says the sender goes too fast for its channel: every worker now sends at 1/%d "
                        "of SEND_RATE (%s) until %.0fs after the last such answer", SLOWDOWN_FACTOR, self.rate, seconds)
            return True
        log.debug("sender slow-down re-armed for %.0fs", seconds)
        return False

    def try_acquire(self) -> float:
        """0 when a slot was taken, else the seconds to wait before one may be free."""
        result = self.attempt()
        return 0.0 if result.acquired else max(result.wait, 1e-6)

    def acquire(self, timeout: float) -> bool:
        """Take a slot, sleeping until one is free; False when none can be had within ``timeout`` seconds.

        Returns False early, without sleeping, once the wait announced by Redis already exceeds
        the time left: slots are handed out in time order, so it could only grow.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            wait = self.try_acquire()
            if wait == 0:
                return True
            left = deadline - time.monotonic()
            if wait > left:
                log.debug("sender %s rate-limited: next slot in %.3fs, %.3fs left", self.sender, wait, left)
                return False
            time.sleep(wait)
