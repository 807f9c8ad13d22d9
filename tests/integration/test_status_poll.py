"""Status polling: messages whose status callbacks were lost are asked about at Twilio.

Real MongoDB-compatible server and Redis; Twilio is the simulator reached through the real
twilio SDK. Callbacks are lost by pointing PUBLIC_BASE_URL (the StatusCallback) at a dead port.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import time as dtime
from datetime import timedelta
from urllib.parse import urlencode

import dramatiq
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from devtools.simulator import twilio_error
from services.bootstrap import register_actors
from services.webhook import WebhookDeps
from services.webhook import create_app as create_webhook
from services.webhook_events import status_event
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.events import status_event_doc
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, SendWindow, Step
from shared.domain.states import MessageState
from shared.fakes import FakeSender, RecordingQueue
from shared.ports import DeliveryStatus
from shared.queue import DramatiqQueue, make_broker
from shared.settings import Settings, load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from shared.usecases.delivery import poll_status, process_status, record_sid
from shared.usecases.scheduling import STATUS_POLL_EVERY, TickReport, poll_statuses, tick
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi, simulator_serving, wait_for

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "status-poll-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"
BASE = "https://relance.example.com"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0), end=dtime(23, 59))


def _dead_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A running simulator (one callback attempt: a lost callback is not retried, as at Twilio)."""
    with simulator_serving(ACCOUNT_SID, AUTH_TOKEN) as url:
        yield url


@pytest.fixture
def control(sim_url: str) -> Iterator[httpx.Client]:
    """The simulator's control API, reset before each test; no read receipts (ends at delivered)."""
    with httpx.Client(base_url=sim_url, timeout=5) as client:
        client.post("/_sim/reset").raise_for_status()
        client.post("/_sim/config", json={"send_read": False}).raise_for_status()
        yield client


@pytest.fixture
def settings() -> Settings:
    """Settings whose StatusCallback URL points at a dead port: every callback is lost."""
    return load_settings({"PUBLIC_BASE_URL": f"http://127.0.0.1:{_dead_port()}", "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0"})


def _sender(base_url: str) -> TwilioSender:
    return TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=base_url,
                        timeout=5)


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock, settings: Settings, sim_url: str, control: httpx.Client) -> App:
    """Actor dependencies: real store, the real SDK against the simulator, a recording queue."""
    return App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=_sender(sim_url))


def _setup(deps: App, steps: int = 1) -> str:
    """One contact (inside its 24 h window) in a campaign; returns the first step's message id."""
    now = deps.clock.now()
    contact = Contact(id="ct1", phone=CLIENT, name="Marie", language=Language.FR,
                      fields={"invoice_number": "FA-2026-001"}, tags=["t"])
    deps.store.contacts.upsert(contact, now)
    deps.store.contacts.touch_inbound(contact.id, now - timedelta(hours=1))
    plan = [Step(), Step(delay="1h", anchor="previous")][:steps]
    deps.store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=plan), now)
    deps.store.followups.enrol(contact_id=contact.id, campaign_id="c1", next_run_at=now, now=now)
    return "c1:ct1:0"


def _sim_view(control: httpx.Client) -> dict[str, object]:
    (view,) = control.get("/_sim/messages", params={"to": CLIENT}).json()
    return dict(view)


def _wait_sim_status(control: httpx.Client, status: str) -> dict[str, object]:
    """Wait until the simulator has moved the message to ``status`` (its callbacks all lost)."""
    wait_for(lambda: _sim_view(control)["status"] == status)
    view = _sim_view(control)
    callbacks = view["callbacks"]
    assert isinstance(callbacks, list) and callbacks
    assert all(c["http_status"] is None and c["error"] for c in callbacks)  # none reached us
    return view


def _doc(store: MongoRepositories, message_id: str) -> dict[str, object]:
    doc = store.messages.collection.find_one({"_id": message_id})
    assert doc is not None
    return doc


def _stored_sent(store: MongoRepositories, clock: FakeClock, n: int, sid_prefix: str = "SM") -> list[str]:
    """``n`` outbound messages stored as sent now, with made-up SIDs; returns their ids."""
    ids = []
    for i in range(n):
        message = OutboundMessage(id=f"c1:ct{i}:0", followup_id=f"c1:ct{i}", contact_id=f"ct{i}", campaign_id="c1",
                                  step=0, state=MessageState.READY, kind="freeform", body="Bonjour",
                                  language=Language.FR)
        store.messages.insert(message, clock.now())
        store.messages.start_sending(message.id, now=clock.now())
        record_sid(store, message.id, f"{sid_prefix}{i:032x}", clock.now())
        ids.append(message.id)
    return ids


# ------------------------------------------------------------------ (a) delivered, found by polling


@pytest.fixture
def running(store: MongoRepositories, clock: FakeClock, settings: Settings, sim_url: str, control: httpx.Client,
            redis_url: str) -> Iterator[tuple[App, DramatiqQueue]]:
    """Real dramatiq workers on the real Redis, sending to the simulator."""
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    deps = App.build(settings.rules(), store=store, clock=clock, queue=queue, drafter=EchoDrafter(),
                sender=_sender(sim_url))
    register_actors(broker, deps)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield deps, queue
    worker.stop()
    broker.close()


def test_lost_delivered_callback_is_found_by_a_poll_through_real_workers(
    running: tuple[App, DramatiqQueue], control: httpx.Client, clock: FakeClock
) -> None:
    deps, queue = running
    message_id = _setup(deps)
    tick(deps.store, queue, clock)
    wait_for(lambda: (deps.store.messages.collection.find_one({"_id": message_id}) or {}).get("state") == "sent")
    _wait_sim_status(control, "delivered")
    assert _doc(deps.store, message_id)["state"] == "sent"  # the callbacks never came

    clock.advance(timedelta(minutes=5))
    assert tick(deps.store, queue, clock).status_polls == []  # too early to ask
    clock.advance(timedelta(minutes=6))
    assert tick(deps.store, queue, clock).status_polls == [message_id]
    wait_for(lambda: _doc(deps.store, message_id)["state"] == "delivered")
    doc = _doc(deps.store, message_id)
    assert doc["delivered_at"] == clock.now() and doc["status_polls"] == 1
    assert doc["history"][-1]["source"] == "poll"  # type: ignore[index]
    # A delivery needs no action: no event.
    assert deps.store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0
    assert tick(deps.store, queue, clock).status_polls == []  # delivered: never asked again


# ------------------------------------------------------------------ (b) failed 63024, acted on once


def test_failed_63024_found_by_polling_stops_and_flags_once_even_when_the_callback_comes_later(
    deps: App, control: httpx.Client, clock: FakeClock
) -> None:
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    control.post("/_sim/fail_delivery", json={"to": CLIENT, "code": 63024, "status": "failed"}).raise_for_status()
    message_id = _setup(deps, steps=2)  # the follow-up is still running when the failure is found
    tick(deps.store, queue, clock)
    drain(deps)
    sid = str(_doc(deps.store, message_id)["twilio_sid"])
    _wait_sim_status(control, "failed")
    assert _doc(deps.store, message_id)["state"] == "sent"

    clock.advance(timedelta(minutes=11))
    assert tick(deps.store, queue, clock).status_polls == [message_id]
    assert poll_status(deps, queue.status_polls.pop()) == "failed"
    event_id = f"status:{sid}:failed"
    assert queue.statuses == [event_id]
    doc = _doc(deps.store, message_id)
    assert doc["state"] == "failed" and doc["error_code"] == 63024
    event = deps.store.events.collection.find_one({"_id": event_id})
    assert event is not None and event["state"] == "received" and event["action_state"] == "pending"
    assert event["error_code"] == 63024 and event["source"] == "poll"

    assert process_status(deps, queue.statuses.pop()) == "invalid_number"
    followup = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert followup is not None and followup["state"] == "stopped" and followup["stop_reason"] == "invalid_number"
    assert followup["needs_human"] is True

    # The real callbacks arrive late after all: duplicates, nothing is enqueued or done again.
    webhook_deps = WebhookDeps(store=deps.store, queue=queue, clock=clock, auth_token=AUTH_TOKEN,
                               public_base_url=BASE, redis_ping=lambda: True)
    with TestClient(create_webhook(webhook_deps), base_url="http://testserver") as client:
        for status, extra in (("sent", {}), ("failed", {"ErrorCode": "63024"})):
            form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                    "AccountSid": ACCOUNT_SID, "From": SENDER, "To": f"whatsapp:{CLIENT}", **extra}
            query = urlencode({"mid": message_id})
            signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{BASE}/whatsapp/status?{query}", form)
            answer = client.post(f"/whatsapp/status?{query}", content=urlencode(form),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": signature})
            assert answer.status_code == 200
    assert queue.statuses == []
    assert process_status(deps, event_id) is None
    assert deps.store.events.collection.find_one({"_id": event_id})["action"] == "invalid_number"  # type: ignore[index]
    assert _doc(deps.store, message_id)["state"] == "failed"
    clock.advance(timedelta(minutes=20))
    report = tick(deps.store, queue, clock)
    assert report.status_polls == [] and report.requeued_inbound == []
    assert queue.statuses == [] and queue.sends == []


def test_the_poll_stores_the_event_the_webhook_would_store() -> None:
    sid = "SM" + "a" * 32
    for status, code in (("failed", 63024), ("undelivered", 63016), ("delivered", None)):
        form = {"MessageSid": sid, "MessageStatus": status, **({"ErrorCode": str(code)} if code else {})}
        assert status_event_doc(sid, status, code) == status_event(form)


def test_undelivered_63016_found_by_polling_resends_with_the_template(
    deps: App, store: MongoRepositories, clock: FakeClock
) -> None:
    from shared.domain.models import TemplateRef

    fake = FakeSender()
    deps.sender = fake
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    now = clock.now()
    template = TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"},
                           preview={Language.FR: "Bonjour {{1}}.", Language.EN: "Hello {{1}}."})
    contact = Contact(id="ct1", phone=CLIENT, name="Marie", language=Language.FR, tags=["t"])
    store.contacts.upsert(contact, now)
    store.contacts.touch_inbound(contact.id, now - timedelta(hours=1))
    store.campaigns.create(Campaign(id="c1", name="R", send_window=ALWAYS, steps=[Step(template=template)]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    tick(store, queue, clock)
    drain(deps)
    fake.statuses[fake.sids[0]] = DeliveryStatus("undelivered", 63016)
    clock.advance(timedelta(minutes=11))
    tick(store, queue, clock)
    assert poll_status(deps, queue.status_polls.pop()) == "undelivered"
    assert process_status(deps, queue.statuses.pop()) == "template_resend"
    assert queue.sends == [("c1:ct1:0:t", 0)]


# ------------------------------------------------------------------ (c) when and how much to poll


def test_polled_only_after_the_threshold_not_again_within_the_interval_in_bounded_batches(
    store: MongoRepositories, clock: FakeClock
) -> None:
    queue = RecordingQueue()
    ids = _stored_sent(store, clock, 5)
    store.messages.apply_status("SM" + f"{4:032x}", "delivered", None, clock.now())  # its callback came: not polled

    def run(batch: int = 2) -> list[str]:
        report = TickReport()
        poll_statuses(store, queue, clock, batch, report)
        return report.status_polls

    clock.advance(timedelta(minutes=9))
    assert run() == []
    clock.advance(timedelta(minutes=2))
    polled = run() + run() + run()
    assert sorted(polled) == ids[:4] and len(polled) == 4  # 2 + 2, each once
    assert run() == []
    clock.advance(STATUS_POLL_EVERY - timedelta(seconds=1))
    assert run() == []  # not again within the interval
    clock.advance(timedelta(seconds=2))
    assert sorted(run(batch=10)) == ids[:4]
    assert _doc(store, ids[0])["status_polls"] == 2
    clock.advance(timedelta(hours=48))
    assert run(batch=10) == []  # given up: Twilio's status is final by now


def test_two_schedulers_enqueue_each_poll_once(store: MongoRepositories, clock: FakeClock) -> None:
    queue = RecordingQueue()
    ids = _stored_sent(store, clock, 20)
    clock.advance(timedelta(minutes=11))
    reports = [TickReport(), TickReport()]
    threads = [threading.Thread(target=poll_statuses, args=(store, queue, clock, 50, r)) for r in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(queue.status_polls) == sorted(ids)
    assert sorted(reports[0].status_polls + reports[1].status_polls) == sorted(ids)


# ------------------------------------------------------------------ (d) Twilio cannot say


def test_unknown_sid_at_twilio_changes_nothing(deps: App, store: MongoRepositories, clock: FakeClock) -> None:
    (message_id,) = _stored_sent(store, clock, 1)  # a SID the simulator never issued: 404
    assert poll_status(deps, message_id) == "unknown"
    assert _doc(store, message_id)["state"] == "sent"
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0 and deps.queue.statuses == []  # type: ignore[attr-defined]


def test_twilio_unreachable_or_failing_changes_nothing(deps: App, store: MongoRepositories, clock: FakeClock) -> None:
    async def unavailable(request: Request) -> Response:
        return twilio_error(20503, 503)

    failing = Starlette(routes=[Route("/2010-04-01/Accounts/{a}/Messages/{sid}.json", unavailable)])
    (message_id,) = _stored_sent(store, clock, 1)
    with serve_asgi(failing) as failing_url:
        for base in (f"http://127.0.0.1:{_dead_port()}", failing_url):
            deps.sender = _sender(base)
            assert poll_status(deps, message_id) == "error"
    assert _doc(store, message_id)["state"] == "sent"
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0 and deps.queue.statuses == []  # type: ignore[attr-defined]


def test_still_queued_at_twilio_is_left_for_a_later_poll(
    deps: App, control: httpx.Client, clock: FakeClock
) -> None:
    control.post("/_sim/config", json={"callback_delay": 30}).raise_for_status()  # stays queued
    message_id = _setup(deps)
    tick(deps.store, deps.queue, clock)
    drain(deps)
    assert poll_status(deps, message_id) == "pending"
    assert _doc(deps.store, message_id)["state"] == "sent"
    assert poll_status(deps, "no-such-message") is None
