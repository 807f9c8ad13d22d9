"""The inbound backfill: messages Twilio has that the webhook never stored are stored late.

Real MongoDB-compatible server. The proof runs with the real dramatiq workers on the real Redis,
Twilio being the simulator reached through the real SDK, and a webhook whose MongoDB is
unreachable (it answers 503, which Twilio does not retry): the STOP sent then stops the
follow-ups within one backfill period. The other tests drive :class:`InboundBackfill` over the
in-memory Twilio fake, whose list filters behave as Twilio's (tests/integration/test_sender_contract.py).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime

import dramatiq
import httpx
import pytest

from services.backfill import JOB, OVERLAP, InboundBackfill
from services.bootstrap import build_inbound_backfill, register_actors
from services.webhook import WebhookDeps
from services.webhook import create_app as create_webhook
from services.webhook_events import inbound_event
from shared.adapters.mongo import MongoRepositories, open_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.errors import ConfigError, SendDeferred, SendRejected
from shared.fakes import FakeSender, RecordingQueue
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi, simulator_serving

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "backfill-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"
OTHER = "+33798765432"
PERIOD = timedelta(seconds=60)
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0),
                    end=dtime(23, 59, 59))


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# ------------------------------------------------------------------ the proof, end to end


@pytest.fixture
def sim_url() -> Iterator[str]:
    with simulator_serving(ACCOUNT_SID, AUTH_TOKEN) as url:
        yield url


@pytest.fixture
def webhook_without_mongodb() -> Iterator[str]:
    """The real webhook app whose MongoDB cannot be reached: it answers 503 to every message."""
    client, dead_store = open_repositories(f"mongodb://127.0.0.1:{_dead_port()}/relance", "relance", timeout_ms=300)
    deps = WebhookDeps(store=dead_store, queue=RecordingQueue(), clock=FakeClock(), auth_token=AUTH_TOKEN,
                       public_base_url="", redis_ping=lambda: True)
    with serve_asgi(create_webhook(deps)) as url:
        deps.public_base_url = url  # what Twilio signs
        yield url
    client.close()


def test_a_stop_sent_while_the_webhook_answers_503_stops_the_followups_within_one_period(
    store: MongoRepositories, clock: FakeClock, redis_url: str, sim_url: str, webhook_without_mongodb: str
) -> None:
    clock.set(datetime.now(UTC).replace(microsecond=0))
    settings = load_settings({
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{_dead_port()}", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_WHATSAPP_NUMBER": SENDER, "TWILIO_API_BASE_URL": sim_url,
        "INBOUND_BACKFILL_SECONDS": "60", "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0",
        "HOLIDAYS_COUNTRY": ""})
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url)
    deps = App.build(settings.rules(), store=store, clock=clock, queue=queue, drafter=EchoDrafter(), sender=sender)
    register_actors(broker, deps)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    backfill = build_inbound_backfill(settings)  # what `relance scheduler` builds
    assert backfill is not None and backfill.period == PERIOD
    try:
        now = clock.now()
        store.contacts.upsert(Contact(id="ct1", phone=CLIENT, name="Marie", language=Language.FR,
                                     fields={"invoice_number": "FA-2026-001"}), now)
        store.contacts.touch_inbound("ct1", now - timedelta(hours=1))
        store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS,
                                       steps=[Step(), Step(delay="5m", anchor="previous")]), now)
        store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
        tick(store, queue, clock, backfill=backfill)  # the first run: nothing to backfill
        _wait(lambda: (store.followups.collection.find_one({"_id": "c1:ct1"}) or {}).get("state") == "scheduled")
        with httpx.Client(base_url=sim_url, timeout=10) as sim:
            assert len(sim.get("/_sim/messages", params={"to": CLIENT}).json()) == 1  # the first reminder

            # The client answers STOP while the webhook cannot reach MongoDB: 503, never posted again.
            answer = sim.post("/_sim/inbound", json={
                "from": CLIENT, "body": "STOP", "webhook_url": f"{webhook_without_mongodb}/whatsapp/webhook"}).json()
            assert answer["status_code"] == 503
            sid = answer["sid"]
            assert store.events.get(f"inbound:{sid}") is None

            clock.advance(timedelta(seconds=30))
            assert tick(store, queue, clock, backfill=backfill).backfilled == []  # this period's run is done
            clock.advance(timedelta(seconds=30))  # one period after the previous run
            assert tick(store, queue, clock, backfill=backfill).backfilled == [f"inbound:{sid}"]
            _wait(lambda: getattr(store.events.get(f"inbound:{sid}"), "state", None) == "processed")
            followup = store.followups.collection.find_one({"_id": "c1:ct1"})
            assert followup is not None and followup["state"] == "stopped" and followup["stop_reason"] == "opt_out"
            contact = store.contacts.collection.find_one({"_id": "ct1"})
            assert contact is not None and contact["opted_out"] is True
            inbound = store.messages.collection.find_one({"_id": f"in:{sid}"})
            assert inbound is not None and inbound["body"] == "STOP" and inbound["outcome"].startswith("opt_out")

            clock.advance(timedelta(minutes=10))  # the second reminder was due 5 minutes after the first
            assert tick(store, queue, clock, backfill=backfill).claimed == []
            time.sleep(0.5)
            assert len(sim.get("/_sim/messages", params={"to": CLIENT}).json()) == 1  # nothing after the STOP
    finally:
        worker.stop()
        broker.close()


# ------------------------------------------------------------------ the run itself, over the fake


@pytest.fixture
def fake(clock: FakeClock) -> FakeSender:
    return FakeSender(clock=clock, from_number=SENDER)


@pytest.fixture
def backfill(fake: FakeSender) -> InboundBackfill:
    return InboundBackfill(sender=fake, our_number=SENDER, period=PERIOD)


def test_only_missing_messages_are_stored_as_the_webhook_would_have(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill
) -> None:
    queue = RecordingQueue()
    seen = fake.add_inbound(CLIENT, "Bonjour", at=clock.now() - timedelta(minutes=3))
    store.events.record(*inbound_event(_form(seen, CLIENT, "Bonjour")), clock.now())  # the webhook had it
    missed = fake.add_inbound(CLIENT, "STOP", at=clock.now() - timedelta(minutes=2))
    report = backfill.run(store, queue, clock)
    assert report is not None and report.listed == 2 and report.stored == [f"inbound:{missed}"]
    assert queue.inbound == [f"inbound:{missed}"]
    event = store.events.collection.find_one({"_id": f"inbound:{missed}"})
    assert event is not None
    webhook_id, webhook_doc = inbound_event(_form(missed, CLIENT, "STOP"))
    assert webhook_id == f"inbound:{missed}"
    for key in ("kind", "sid", "state", "from", "to", "body", "num_media", "media_urls"):
        assert event[key] == webhook_doc[key], key
    assert event["source"] == "backfill"
    assert event["received_at"] == clock.now()  # when we got it; Twilio's date is kept beside it
    assert event["date_sent"] == clock.now() - timedelta(minutes=2)
    # Its pending note is written: a reminder to this client is held until it is processed.
    assert f"inbound:{missed}" in [e.id for e in store.events.unprocessed_inbound(CLIENT)]
    clock.advance(PERIOD)
    again = backfill.run(store, queue, clock)
    assert again is not None and again.stored == [] and queue.inbound == [f"inbound:{missed}"]


def test_one_scheduler_of_several_runs_it_each_period(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill
) -> None:
    other = InboundBackfill(sender=fake, our_number=SENDER, period=PERIOD)
    fake.add_inbound(CLIENT, "Bonjour")
    runs = [b.run(store, RecordingQueue(), clock) for b in (backfill, other, backfill)]
    assert [r is not None for r in runs] == [True, False, False]
    assert len(fake.list_calls) == 1
    clock.advance(PERIOD - timedelta(seconds=1))
    assert other.run(store, RecordingQueue(), clock) is None
    clock.advance(timedelta(seconds=1))
    assert other.run(store, RecordingQueue(), clock) is not None
    assert backfill.run(store, RecordingQueue(), clock) is None
    assert len(fake.list_calls) == 2


def test_after_its_own_run_a_scheduler_asks_mongodb_again_only_when_the_next_period_starts(
    store: MongoRepositories, clock: FakeClock, backfill: InboundBackfill, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims: list[object] = []
    real = store.jobs.claim

    def claim(*args: object, **kwargs: object) -> object:
        claims.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.jobs, "claim", claim)
    assert backfill.run(store, RecordingQueue(), clock) is not None
    for _ in range(5):  # the ticks of this period: no read of the job
        clock.advance(PERIOD / 10)
        assert backfill.run(store, RecordingQueue(), clock) is None
    assert len(claims) == 1
    clock.advance(PERIOD / 2)
    assert backfill.run(store, RecordingQueue(), clock) is not None
    assert len(claims) == 2


def test_it_lists_our_number_since_the_last_message_seen_with_an_overlap(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill
) -> None:
    first = backfill.run(store, RecordingQueue(), clock)
    assert first is not None
    (call,) = fake.list_calls
    assert call["to"] == SENDER and call["date_sent_after"] == clock.now() - timedelta(hours=24) - OVERLAP
    written = clock.now() + timedelta(seconds=20)
    fake.add_inbound(CLIENT, "Bonjour", at=written)
    fake.add_inbound(OTHER, "Hello", at=written - timedelta(seconds=5))
    clock.advance(PERIOD)
    backfill.run(store, RecordingQueue(), clock)
    clock.advance(PERIOD)
    backfill.run(store, RecordingQueue(), clock)
    assert fake.list_calls[-1]["date_sent_after"] == written - OVERLAP
    job = store.jobs.collection.find_one({"_id": JOB})
    assert job is not None and job["cursor"] == written and job["last_run"]["stored"] == 0


@pytest.mark.parametrize("error", [SendDeferred(None, "network error talking to Twilio (ConnectionError)"),
                                   SendDeferred(20503, "Service Unavailable", 503),
                                   SendRejected(20003, "Authenticate", 401)])
def test_twilio_unreachable_is_a_warning_and_the_next_period_tries_again(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill, error: Exception,
    caplog: pytest.LogCaptureFixture
) -> None:
    queue = RecordingQueue()
    missed = fake.add_inbound(CLIENT, "STOP")
    fake.list_fail_with = error
    caplog.set_level(logging.INFO)
    report = tick(store, queue, clock, backfill=backfill)  # the tick goes on
    assert report.backfilled == [] and store.events.get(f"inbound:{missed}") is None
    assert any(r.levelno == logging.WARNING and "inbound backfill" in r.getMessage() for r in caplog.records)
    clock.advance(PERIOD)
    assert tick(store, queue, clock, backfill=backfill).backfilled == [f"inbound:{missed}"]


def test_an_unexpected_failure_never_ends_the_tick(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill
) -> None:
    fake.list_fail_with = RuntimeError("a bug")
    now = clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[Step()]), now)
    store.contacts.upsert(Contact(id="ct1", phone=CLIENT, name="Marie"), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    report = tick(store, RecordingQueue(), clock, backfill=backfill)
    assert report.claimed == ["c1:ct1"] and report.backfilled == []


def test_only_well_formed_inbound_messages_to_our_number_are_stored(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill
) -> None:
    good = fake.add_inbound(CLIENT, "Oui")
    fake._inbound.append({"sid": "SMnot-a-sid", "to": SENDER, "from": f"whatsapp:{CLIENT}", "body": "x",
                          "direction": "inbound", "date_created": clock.now(), "date_sent": clock.now()})
    fake._inbound.append({"sid": "SM" + "e" * 32, "to": SENDER, "from": CLIENT, "body": "SMS, not WhatsApp",
                          "direction": "inbound", "date_created": clock.now(), "date_sent": clock.now()})
    report = backfill.run(store, RecordingQueue(), clock)
    assert report is not None and report.stored == [f"inbound:{good}"] and report.skipped == 2


def test_logs_hold_counts_and_sids_never_numbers_or_bodies(
    store: MongoRepositories, clock: FakeClock, fake: FakeSender, backfill: InboundBackfill,
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_inbound(CLIENT, "Je ne paierai pas cette facture")
    backfill.run(store, RecordingQueue(), clock)
    clock.advance(PERIOD)
    fake.list_fail_with = SendDeferred(None, "network error")
    backfill.run(store, RecordingQueue(), clock)
    # Everything at INFO and above, and our own debug lines (pymongo's DEBUG command log, kept at
    # WARNING by the logging set-up, shows documents).
    text = "\n".join(r.getMessage() for r in caplog.records
                     if r.levelno >= logging.INFO or r.name.startswith(("services", "shared")))
    assert "inbound backfill: 1 listed, 1 stored late" in text
    assert CLIENT not in text and CLIENT[1:] not in text and "paierai" not in text


def test_the_scheduler_builds_it_from_the_settings() -> None:
    base = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    built = build_inbound_backfill(load_settings(base))
    assert built is not None and built.period == timedelta(seconds=60) and built.our_number == SENDER
    assert build_inbound_backfill(load_settings({**base, "INBOUND_BACKFILL_SECONDS": "0"})) is None
    assert build_inbound_backfill(load_settings({})) is None  # no credentials: off, with a warning
    with pytest.raises(ConfigError, match="INBOUND_BACKFILL_SECONDS"):
        load_settings({"INBOUND_BACKFILL_SECONDS": "-5"})
    with pytest.raises(ConfigError, match="RECONCILE_GRACE_SECONDS"):
        load_settings({"RECONCILE_GRACE_SECONDS": "0"})


def _form(sid: str, phone: str, body: str) -> dict[str, str]:
    """The form the webhook would have received for this message."""
    return {"MessageSid": sid, "SmsSid": sid, "From": f"whatsapp:{phone}", "To": SENDER, "Body": body,
            "NumMedia": "0"}
