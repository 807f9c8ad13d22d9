"""The sender rate limiter on the real Redis: threads and processes share one GCRA limiter.

With the default burst of 1, "10/1s" spaces acquisitions at least 100 ms apart in Redis server
time, whoever asks; so no window of one second holds more than 10.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from bisect import bisect_left
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devtools.embedded import free_port
from shared.errors import InputError, TransientError
from shared.ratelimit import SendRateLimiter, parse_rate

pytestmark = pytest.mark.integration

SENDER = "whatsapp:+14155238886"
READY_KEY = "test:ratelimit:ready"
GO_KEY = "test:ratelimit:go"


def _hammer(url: str, rate: str, seconds: float) -> tuple[list[float], int]:
    """Take slots as fast as allowed for ``seconds`` once the test says go; (server times, attempts).

    Runs in a thread or in a child process: start-up times differ, so every worker reports ready
    through Redis and waits for the go key, and all of them hammer the same period.
    """
    client = redis.Redis.from_url(url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate=rate)
    got: list[float] = []
    attempts = 0
    try:
        client.incr(READY_KEY)
        give_up = time.monotonic() + 30
        while not client.exists(GO_KEY) and time.monotonic() < give_up:
            time.sleep(0.005)
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            result = limiter.attempt()
            attempts += 1
            if result.acquired:
                got.append(result.at)
            else:
                time.sleep(min(result.wait, max(0.0, stop_at - time.monotonic())))
    finally:
        client.close()
    return got, attempts


def _max_in_window(stamps: list[float], width: float) -> int:
    ordered = sorted(stamps)
    return max((bisect_left(ordered, t + width) - i for i, t in enumerate(ordered)), default=0)


def test_threads_and_processes_share_one_limit(redis_url: str) -> None:
    rate, seconds = "10/1s", 3.0
    control = redis.Redis.from_url(redis_url)
    # Forked before any thread starts (the process pool launches its workers on the first submit);
    # each worker process opens its own Redis client.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as processes, \
            ThreadPoolExecutor(max_workers=20) as threads:
        jobs = [processes.submit(_hammer, redis_url, rate, seconds) for _ in range(4)]
        jobs += [threads.submit(_hammer, redis_url, rate, seconds) for _ in range(20)]
        deadline = time.monotonic() + 30
        while int(control.get(READY_KEY) or 0) < 24 and time.monotonic() < deadline:
            time.sleep(0.01)
        control.set(GO_KEY, 1)
        results = [job.result(timeout=60) for job in jobs]
    control.close()

    stamps = sorted(t for got, _ in results for t in got)
    assert all(attempts > 0 for _, attempts in results)
    # About 10 per second (fewer if the machine is busy: a missed slot is not banked), never more:
    # GCRA with burst 1 spaces them by the emission interval.
    assert 20 <= len(stamps) <= 32, len(stamps)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.1 - 1e-6, min(gaps)
    assert _max_in_window(stamps, 1.0) <= 10


def test_a_sandbox_rate_spaces_two_sends(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate="1/1s")
    started = time.monotonic()
    assert limiter.acquire(timeout=0)
    wait = limiter.try_acquire()
    assert 0 < wait <= 1.0
    assert not limiter.acquire(timeout=0.3)  # the next slot is ~1 s away: gives up at once
    assert time.monotonic() - started < 0.25
    assert limiter.acquire(timeout=2.0)  # sleeps until the next slot
    assert time.monotonic() - started >= 0.95
    client.close()


def test_the_key_is_per_sender_namespaced_and_expires(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first = SendRateLimiter(client=client, sender=SENDER, rate="1/1m")
    same = SendRateLimiter(client=client, sender="+14155238886", rate="1/1m")
    other = SendRateLimiter(client=client, sender="whatsapp:+33612345678", rate="1/1m")
    assert first.try_acquire() == 0
    assert same.try_acquire() > 50  # the same number, with or without the whatsapp: prefix
    assert other.try_acquire() == 0
    assert first.key == "relance:rate:+14155238886"
    ttl = client.pttl(first.key)
    assert isinstance(ttl, int) and 0 < ttl <= 61_000
    assert sorted(client.keys("relance:rate:*")) == [b"relance:rate:+14155238886", b"relance:rate:+33612345678"]
    client.close()


def test_burst_lets_a_few_go_back_to_back(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate="1/10s", burst=3)
    assert [limiter.try_acquire() for _ in range(3)] == [0, 0, 0]
    assert 9 < limiter.try_acquire() <= 10
    client.close()


def test_acquire_with_many_threads_never_oversells(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate="5/1s")
    lock = threading.Lock()
    granted: list[bool] = []
    start = threading.Barrier(10)

    def one() -> None:
        start.wait()
        ok = limiter.acquire(timeout=0.5)
        with lock:
            granted.append(ok)

    with ThreadPoolExecutor(max_workers=10) as pool:
        for _ in range(10):
            pool.submit(one)
    # Slot k is free at k·200 ms: within 0.5 s only slots 0, 1 and 2 can be had (3 in all; 4 if
    # a slow machine starts the last thread a good while after the first).
    assert granted.count(True) in (3, 4)
    assert len(granted) == 10
    client.close()


@pytest.mark.parametrize(("text", "expected"), [("80/1s", (80, 1.0)), ("1/3s", (1, 3.0)), ("10/1m", (10, 60.0)),
                                                ("30/s", (30, 1.0)), (" 5 / 2h ", (5, 7200.0))])
def test_parse_rate(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "80", "80/", "/1s", "0/1s", "10/0s", "x/1s", "10/1x", "-1/1s", "1.5/1s",
                                  "10/1s/2", "ten/s"])
def test_bad_rates_are_clear_errors(text: str) -> None:
    with pytest.raises(InputError, match="invalid rate"):
        parse_rate(text)
    with pytest.raises(InputError, match="invalid rate"):
        SendRateLimiter(client=redis.Redis(), sender=SENDER, rate=text)


def test_redis_down_is_a_transient_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5,
                         retry=Retry(NoBackoff(), 0))
    limiter = SendRateLimiter(client=client, sender=SENDER, rate="1/1s")
    with pytest.raises(TransientError, match="rate limiter"):
        limiter.try_acquire()
