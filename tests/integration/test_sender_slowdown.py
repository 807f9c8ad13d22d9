"""Twilio 63018 ("Rate limit exceeded for Channel") slows the sender down for every worker.

On the real Redis test server: the shared GCRA limiter then hands out slots at a quarter of the
send rate to every limiter instance (each one a worker), goes back to normal by itself once the
slow-down key expires, and a burst of 63018 answers keeps the rate at that floor, never lower.
Then the sending actor against the Twilio simulator: a 63018 answer triggers the slow-down,
20429/429 and 5xx keep their plain retry.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from datetime import time as dtime
from datetime import timedelta

import dramatiq
import httpx
import pytest
import redis

from devtools.simulator import create_app
from services.bootstrap import register_actors
from services.webhook_events import status_event
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.errors import TransientError
from shared.fakes import RecordingQueue
from shared.pacing import RedisContactLocks
from shared.queue import DramatiqQueue, make_broker
from shared.ratelimit import SLOWDOWN_FACTOR, SLOWDOWN_SECONDS, SendRateLimiter
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from shared.usecases.delivery import process_status
from shared.usecases.drafting import draft_followup
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.drafters import EchoDrafter
from tests.support.servers import WebhookRecorder, serve_asgi, serve_recorder

pytestmark = pytest.mark.integration

SENDER = "whatsapp:+14155238886"
SLOW_KEY = "relance:slowdown:+14155238886"
ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "slowdown-test-token"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0), end=dtime(23, 59))


def _hammer(url: str, rate: str, seconds: float, go: threading.Barrier, out: list[tuple[float, int]],
            lock: threading.Lock) -> None:
    """One worker: its own Redis client and limiter, taking slots as fast as allowed for ``seconds``."""
    client = redis.Redis.from_url(url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate=rate)
    got: list[tuple[float, int]] = []
    go.wait()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        result = limiter.attempt()
        if result.acquired:
            got.append((result.at, result.factor))
        else:
            time.sleep(min(result.wait, max(0.0, stop_at - time.monotonic())))
    client.close()
    with lock:
        out.extend(got)


def _workers(url: str, rate: str, seconds: float, n: int = 4) -> list[tuple[float, int]]:
    """Slots (Redis time, factor in force) taken by ``n`` limiter instances hammering together."""
    go, lock = threading.Barrier(n), threading.Lock()
    out: list[tuple[float, int]] = []
    threads = [threading.Thread(target=_hammer, args=(url, rate, seconds, go, out, lock)) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    return sorted(out)


def _gaps(slots: list[tuple[float, int]]) -> list[float]:
    return [b[0] - a[0] for a, b in itertools.pairwise(slots)]


def test_after_63018_every_worker_gets_slots_at_the_lowered_rate(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert SendRateLimiter(client=client, sender=SENDER, rate="20/1s").slow_down()
    slots = _workers(redis_url, "20/1s", 1.5)  # 50 ms apart normally, 200 ms during the slow-down
    assert {factor for _, factor in slots} == {SLOWDOWN_FACTOR}
    assert min(_gaps(slots)) >= 0.05 * SLOWDOWN_FACTOR - 1e-6
    assert 5 <= len(slots) <= 8, len(slots)  # at most 1.5 / 0.2 + 1; sends go on, slower
    client.close()


def test_a_slowdown_allows_no_burst(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate="1/1s", burst=3)
    limiter.slow_down()
    assert limiter.try_acquire() == 0
    assert 3.9 < limiter.try_acquire() <= 4.0  # one every 4 s, not three back to back
    client.close()


def test_the_rate_comes_back_by_itself_when_the_slowdown_expires(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SendRateLimiter(client=client, sender=SENDER, rate="20/1s")
    assert limiter.slow_down(seconds=0.6)
    assert limiter.attempt().factor == SLOWDOWN_FACTOR
    time.sleep(0.7)
    assert not client.exists(SLOW_KEY)  # nobody lifted it: it expired
    slots = _workers(redis_url, "20/1s", 1.0)
    assert {factor for _, factor in slots} == {1}
    assert min(_gaps(slots)) >= 0.05 - 1e-6
    assert len(slots) >= 12, len(slots)  # back to ~20/s (a slowed limiter would allow 6)
    client.close()


def test_a_burst_of_63018_keeps_the_rate_at_its_floor(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    client = redis.Redis.from_url(redis_url)
    workers = [SendRateLimiter(client=redis.Redis.from_url(redis_url), sender=SENDER, rate="20/1s")
               for _ in range(4)]
    with caplog.at_level(logging.DEBUG, logger="shared.ratelimit"):
        started = [workers[i % 4].slow_down() for i in range(20)]  # 20 answers in a row, from 4 workers
    assert started == [True] + [False] * 19
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # logged once per slow-down
    assert "+14155238886" not in caplog.text and "1/4" in warnings[0].getMessage()
    assert client.get(SLOW_KEY) == str(SLOWDOWN_FACTOR).encode()  # not 4**20
    ttl = client.pttl(SLOW_KEY)
    assert isinstance(ttl, int) and 0 < ttl <= SLOWDOWN_SECONDS * 1000  # re-armed, not extended 20 times
    slots = _workers(redis_url, "20/1s", 1.0)
    assert {factor for _, factor in slots} == {SLOWDOWN_FACTOR}
    assert 4 <= len(slots) <= 6, len(slots)  # still one every 200 ms: slower, never stalled
    # Even a key holding nonsense cannot push the rate below its floor.
    client.set(SLOW_KEY, "1000", px=5000)
    limiter = workers[0]
    assert limiter.try_acquire() <= 0.05 * SLOWDOWN_FACTOR + 1e-6
    for worker in workers:
        worker.client.close()
    client.close()


def test_a_slowdown_is_per_sender(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ours = SendRateLimiter(client=client, sender=SENDER, rate="1/1s")
    other = SendRateLimiter(client=client, sender="whatsapp:+33612345678", rate="1/1s")
    ours.slow_down()
    assert ours.attempt().factor == SLOWDOWN_FACTOR
    assert other.attempt().factor == 1
    assert ours.slowdown_key == SLOW_KEY
    client.close()


# ----------------------------------------------------------------- the sending actor, against the simulator


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    """Receives the simulator's status callbacks."""
    with serve_recorder(AUTH_TOKEN) as rec:
        yield rec


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A running Twilio simulator."""
    with serve_asgi(create_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01)) as url:
        yield url


@pytest.fixture
def control(sim_url: str) -> Iterator[httpx.Client]:
    """The simulator's control endpoints, reset before each test."""
    with httpx.Client(base_url=sim_url, timeout=5) as client:
        client.post("/_sim/reset").raise_for_status()
        yield client


def _deps(store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str, recorder: WebhookRecorder,
          queue: object | None = None) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": recorder.base_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                              "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_API_BASE_URL": sim_url,
                              "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0",
                              "HOLIDAYS_COUNTRY": "", "SEND_RATE": "20/1s"})
    client = redis.Redis.from_url(redis_url)
    sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url)
    limiter = SendRateLimiter(client=client, sender=settings.twilio_whatsapp_number, rate=settings.send_rate)
    return App.build(settings.rules(), store=store, clock=clock, queue=queue or RecordingQueue(),  # type: ignore[arg-type]
                drafter=EchoDrafter(), sender=sender, limiter=limiter, locks=RedisContactLocks(client))


def _enrol(deps: App, n: int) -> None:
    now = deps.clock.now()
    deps.store.campaigns.create(Campaign(id="c1", name="c1", send_window=ALWAYS, steps=[Step()]), now)
    for i in range(n):
        contact = Contact(id=f"ct{i}", phone=f"+336123457{i:02d}", name="Marie", language=Language.FR,
                          fields={"invoice_number": f"FA-{i}"})
        deps.store.contacts.upsert(contact, now)
        deps.store.contacts.touch_inbound(contact.id, now - timedelta(hours=1))
        deps.store.followups.enrol(contact_id=contact.id, campaign_id="c1", next_run_at=now, now=now)


def _drafted(deps: App) -> list[str]:
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    tick(deps.store, queue, deps.clock)
    ids = [draft_followup(deps, *job) for job in queue.drafts]
    queue.drafts.clear()
    queue.sends.clear()
    return sorted(i for i in ids if i)


def _fail_next(control: httpx.Client, code: int, status: int) -> None:
    control.post("/_sim/fail", json={"code": code, "status": status, "count": 1}).raise_for_status()


@pytest.mark.parametrize("status", [429, 400])
def test_63018_from_twilio_slows_every_worker_and_the_message_retries(
        store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str, recorder: WebhookRecorder,
        control: httpx.Client, status: int) -> None:
    deps = _deps(store, clock, redis_url, sim_url, recorder)
    _enrol(deps, 2)
    first, second = _drafted(deps)
    _fail_next(control, 63018, status)
    with pytest.raises(TransientError, match="63018"):
        send_message(deps, first)
    doc = store.messages.collection.find_one({"_id": first})
    assert doc is not None and doc["state"] == "ready" and doc["last_error_code"] == 63018
    ttl = deps.locks.client.pttl(SLOW_KEY)  # type: ignore[attr-defined]
    assert isinstance(ttl, int) and 0 < ttl <= SLOWDOWN_SECONDS * 1000
    # Another worker's limiter on the same Redis now works at the lowered rate…
    other = SendRateLimiter(client=redis.Redis.from_url(redis_url), sender=SENDER, rate="20/1s")
    assert other.attempt().factor == SLOWDOWN_FACTOR
    other.client.close()
    # …and sending goes on (slower), nothing is paused: both messages go out, once each.
    assert send_message(deps, second)
    assert send_message(deps, first)
    assert sorted(m["to"] for m in control.get("/_sim/messages").json()) == [
        "whatsapp:+33612345700", "whatsapp:+33612345701"]
    deps.locks.client.close()  # type: ignore[attr-defined]


def test_20429_only_retries_the_message(store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str,
                                       recorder: WebhookRecorder, control: httpx.Client) -> None:
    deps = _deps(store, clock, redis_url, sim_url, recorder)
    _enrol(deps, 1)
    (mid,) = _drafted(deps)
    _fail_next(control, 20429, 429)
    with pytest.raises(TransientError, match="20429"):
        send_message(deps, mid)
    assert store.messages.collection.find_one({"_id": mid})["state"] == "ready"  # type: ignore[index]
    assert not deps.locks.client.exists(SLOW_KEY)  # type: ignore[attr-defined]
    assert deps.limiter.attempt().factor == 1  # type: ignore[union-attr]
    assert send_message(deps, mid)
    deps.locks.client.close()  # type: ignore[attr-defined]


def test_a_5xx_neither_slows_the_sender_nor_sends_again_blindly(
        store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str, recorder: WebhookRecorder,
        control: httpx.Client) -> None:
    """Twilio may have created the message before the 503: it is reconciled, not retried (docs/twilio.md)."""
    deps = _deps(store, clock, redis_url, sim_url, recorder)
    _enrol(deps, 1)
    (mid,) = _drafted(deps)
    _fail_next(control, 20503, 503)
    assert send_message(deps, mid) is None
    assert store.messages.collection.find_one({"_id": mid})["state"] == "uncertain"  # type: ignore[index]
    assert not deps.locks.client.exists(SLOW_KEY)  # type: ignore[attr-defined]
    assert deps.limiter.attempt().factor == 1  # type: ignore[union-attr]
    assert send_message(deps, mid) is None  # a redelivery sends nothing
    assert control.get("/_sim/messages").json() == []
    deps.locks.client.close()  # type: ignore[attr-defined]


def test_63018_in_a_failed_status_callback_slows_the_sender_too(
        store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str, recorder: WebhookRecorder,
        control: httpx.Client) -> None:
    deps = _deps(store, clock, redis_url, sim_url, recorder)
    _enrol(deps, 1)
    (mid,) = _drafted(deps)
    sid = send_message(deps, mid)
    assert sid and not deps.locks.client.exists(SLOW_KEY)  # type: ignore[attr-defined]
    event_id, event = status_event({"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "63018"})
    store.events.record(event_id, event, clock.now())
    store.messages.apply_status(sid, "failed", 63018, clock.now())
    process_status(deps, event_id)
    assert deps.limiter.attempt().factor == SLOWDOWN_FACTOR  # type: ignore[union-attr]
    deps.locks.client.close()  # type: ignore[attr-defined]


def test_real_workers_slow_down_on_63018_and_send_everything_once(
        store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str, recorder: WebhookRecorder,
        control: httpx.Client) -> None:
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    deps = _deps(store, clock, redis_url, sim_url, recorder, queue=queue)
    register_actors(broker, deps)
    _enrol(deps, 6)
    control.post("/_sim/fail", json={"code": 63018, "status": 429, "count": 2}).raise_for_status()
    worker = dramatiq.Worker(broker, worker_threads=3, worker_timeout=100)
    worker.start()
    try:
        slowed = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tick(store, queue, clock)
            slowed = slowed or bool(deps.locks.client.exists(SLOW_KEY))  # type: ignore[attr-defined]
            if store.messages.collection.count_documents({"state": "sent"}) == 6:
                break
            time.sleep(0.1)
    finally:
        worker.stop()
        broker.close()
    assert slowed
    sent = control.get("/_sim/messages").json()
    assert len(sent) == 6 and len({m["to"] for m in sent}) == 6  # the two refused ones retried, once each
    assert store.messages.collection.count_documents({"last_error_code": 63018}) in (1, 2)  # one message may fail twice
    deps.locks.client.close()  # type: ignore[attr-defined]
