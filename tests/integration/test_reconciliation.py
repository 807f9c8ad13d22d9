"""Sends whose answer was lost are reconciled through Twilio's list, never sent twice.

Real MongoDB-compatible server; Twilio is the simulator reached through the real twilio SDK,
whose controls play the faults: a create Twilio performs and a gateway answers 5xx for
(``/_sim/fail`` with ``created``), and a message Twilio keeps ``queued`` for minutes
(``/_sim/hold``). The actors' functions run in-process over a recording queue; the clock is
injected, so "minutes" pass without waiting. Each test ends with what a client would see: how
many messages the simulator accepted, and which SID MongoDB holds for ours.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime

import httpx
import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step, TemplateRef
from shared.errors import TransientError
from shared.fakes import RecordingQueue
from shared.ports import OutboundRequest
from shared.settings import Settings, load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.reconciling import reconcile_message
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter
from tests.support.servers import simulator_control, simulator_serving

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "reconciliation-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0),
                    end=dtime(23, 59, 59))
TEMPLATE = TemplateRef(content_sid="HX" + "cd" * 16, variables={"1": "name", "2": "invoice_number"},
                       preview={Language.FR: "Bonjour {{1}}, la facture {{2}} reste à régler.",
                                Language.EN: "Hello {{1}}, invoice {{2}} is still due."})


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A running simulator (its status callbacks go nowhere: only the list can tell)."""
    with simulator_serving(ACCOUNT_SID, AUTH_TOKEN) as url:
        yield url


@pytest.fixture
def control(sim_url: str) -> Iterator[httpx.Client]:
    """The simulator's control API, reset before each test."""
    with simulator_control(sim_url) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    """Our clock starts at the real time: the simulator dates its messages with the real clock."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings() -> Settings:
    return load_settings({"PUBLIC_BASE_URL": f"http://127.0.0.1:{_dead_port()}", "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "TWILIO_WHATSAPP_NUMBER": SENDER, "MIN_GAP_BETWEEN_MESSAGES": "0s",
                          "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""})


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock, settings: Settings, sim_url: str, control: httpx.Client) -> App:
    sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url,
                          timeout=5)
    return App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=sender)


def _setup(deps: App, *, template: bool = False) -> str:
    """One contact in a one-step campaign; freeform (inside the 24 h window) or its template. Returns the message id."""
    now = deps.clock.now()
    contact = Contact(id="ct1", phone=CLIENT, name="Marie", language=Language.FR,
                      fields={"invoice_number": "FA-2026-001"}, tags=["t"])
    deps.store.contacts.upsert(contact, now)
    if not template:
        deps.store.contacts.touch_inbound(contact.id, now - timedelta(hours=1))
    step = Step(template=TEMPLATE) if template else Step()
    deps.store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[step]), now)
    deps.store.followups.enrol(contact_id=contact.id, campaign_id="c1", next_run_at=now, now=now)
    return "c1:ct1:0"


def _send_like_a_worker(deps: App, message_id: str, attempts: int = 5) -> None:
    """send_message as the sending actor runs it: a TransientError is retried (dramatiq's retries)."""
    for _ in range(attempts):
        try:
            send_message(deps, message_id)
            return
        except TransientError:
            continue


def _send_losing_the_answer(deps: App, control: httpx.Client, how: str, sim_url: str) -> None:
    """Send the first step while its answer is lost: Twilio creates it, we never learn its SID.

    ``timeout``: Twilio answers after our read timeout; ``500`` or ``502`` (a gateway's page):
    Twilio created it, then the answer says 5xx.
    """
    message_id = "c1:ct1:0"
    if how == "timeout":
        before = len(_at_simulator(control))
        control.post("/_sim/config", json={"response_delay_ms": 1500}).raise_for_status()
        patient = deps.sender
        deps.sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER,
                                   api_base_url=sim_url, timeout=0.3)
        _send_like_a_worker(deps, message_id)
        deps.sender = patient
        deadline = time.monotonic() + 10
        while len(_at_simulator(control)) == before:  # Twilio creates it after we gave up waiting
            assert time.monotonic() < deadline, "the simulator never created the message"
            time.sleep(0.05)
        control.post("/_sim/config", json={"response_delay_ms": 0}).raise_for_status()
    else:
        fault = {"status": int(how), "created": True, "to": CLIENT, "gateway": how == "502"}
        control.post("/_sim/fail", json=fault).raise_for_status()
        _send_like_a_worker(deps, message_id)


def _first_step(deps: App) -> str:
    """Claim and draft the first step; returns its message id (its send is left queued)."""
    tick(deps.store, deps.queue, deps.clock)
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    message_id = draft_followup(deps, *queue.drafts.pop())
    assert message_id
    assert queue.sends == [(message_id, 0)]
    queue.sends.clear()
    return message_id


def _at_simulator(control: httpx.Client) -> list[dict[str, object]]:
    return list(control.get("/_sim/messages", params={"to": CLIENT}).json())


def _doc(store: MongoRepositories, message_id: str) -> dict[str, object]:
    doc = store.messages.collection.find_one({"_id": message_id})
    assert doc is not None
    return doc


def _minutes_pass(deps: App, minutes: int) -> None:
    """The scheduler ticks and the workers run, minute after minute."""
    for _ in range(minutes):
        deps.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
        tick(deps.store, deps.queue, deps.clock)
        drain(deps)


@pytest.mark.parametrize("fault", [
    {"status": 502, "gateway": True},  # a load balancer's page after Twilio took the message
    {"status": 504, "gateway": True},
    {"status": 500},
    {"status": 503},
])
def test_a_5xx_after_creation_is_reconciled_not_sent_again(
    deps: App, control: httpx.Client, fault: dict[str, object]
) -> None:
    _setup(deps)
    message_id = _first_step(deps)
    control.post("/_sim/fail", json={**fault, "created": True, "to": CLIENT}).raise_for_status()
    _send_like_a_worker(deps, message_id)
    doc = _doc(deps.store, message_id)
    assert doc["state"] == "uncertain" and doc["uncertain_reason"] == f"HTTP {fault['status']} from Twilio"
    assert deps.queue.sends == []  # type: ignore[attr-defined]  # no blind re-send

    _minutes_pass(deps, 15)  # past RECONCILE_GRACE_SECONDS: nothing may be sent again
    (at_twilio,) = _at_simulator(control)
    doc = _doc(deps.store, message_id)
    assert doc["state"] == "sent" and doc["twilio_sid"] == at_twilio["sid"]
    followup = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert followup is not None and followup["state"] == "completed"


@pytest.mark.parametrize("lost", ["timeout", "500"])
def test_a_message_queued_at_twilio_for_minutes_is_adopted_not_sent_again(
    deps: App, control: httpx.Client, sim_url: str, lost: str
) -> None:
    _setup(deps)
    message_id = _first_step(deps)
    control.post("/_sim/hold", json={"to": CLIENT}).raise_for_status()  # Twilio's queue is backed up
    _send_losing_the_answer(deps, control, lost, sim_url)
    assert _doc(deps.store, message_id)["state"] == "uncertain"

    _minutes_pass(deps, 12)  # still queued at Twilio all along: no send date
    (at_twilio,) = _at_simulator(control)
    assert at_twilio["status"] == "queued" and at_twilio["held"] is True
    doc = _doc(deps.store, message_id)
    assert doc["state"] == "sent" and doc["twilio_sid"] == at_twilio["sid"]
    control.post("/_sim/release", json={"to": CLIENT}).raise_for_status()
    assert len(_at_simulator(control)) == 1


@pytest.mark.parametrize("lost", ["timeout", "502"])
def test_a_template_send_adopts_its_own_copy_not_another_message_to_the_client(
    deps: App, control: httpx.Client, sim_url: str, lost: str
) -> None:
    _setup(deps, template=True)
    message_id = _first_step(deps)
    assert _doc(deps.store, message_id)["kind"] == "template"
    # Someone else sends this client a message from our number (the console, another tool).
    other = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url)
    decoy = other.send(OutboundRequest(to=CLIENT, status_callback="", content_sid="HX" + "ef" * 16,
                                       content_variables={"1": "Bienvenue"})).sid
    control.post("/_sim/hold", json={"to": CLIENT}).raise_for_status()
    _send_losing_the_answer(deps, control, lost, sim_url)
    assert _doc(deps.store, message_id)["state"] == "uncertain"

    _minutes_pass(deps, 12)
    ours = [m for m in _at_simulator(control) if m["sid"] != decoy]
    assert len(ours) == 1 and ours[0]["content_variables"] == {"1": "Marie", "2": "FA-2026-001"}
    doc = _doc(deps.store, message_id)
    assert doc["state"] == "sent" and doc["twilio_sid"] == ours[0]["sid"]


def test_a_send_that_never_reached_twilio_goes_again_only_after_the_grace(
    deps: App, control: httpx.Client, clock: FakeClock
) -> None:
    _setup(deps)
    message_id = _first_step(deps)
    # A worker moved it to sending and died before calling Twilio.
    deps.store.messages.start_sending(message_id, now=clock.now())
    _minutes_pass(deps, 9)  # stale after 5 minutes: uncertain, looked up, not found, waiting
    assert _doc(deps.store, message_id)["state"] == "uncertain"
    assert _at_simulator(control) == []
    _minutes_pass(deps, 2)  # the grace (10 minutes) is over: Twilio never had it
    (at_twilio,) = _at_simulator(control)
    doc = _doc(deps.store, message_id)
    assert doc["state"] == "sent" and doc["twilio_sid"] == at_twilio["sid"]
    _minutes_pass(deps, 15)
    assert len(_at_simulator(control)) == 1


def test_a_429_means_not_created_and_is_retried_at_once(deps: App, control: httpx.Client) -> None:
    _setup(deps)
    message_id = _first_step(deps)
    control.post("/_sim/fail", json={"status": 429, "to": CLIENT}).raise_for_status()
    with pytest.raises(TransientError):
        send_message(deps, message_id)
    assert _doc(deps.store, message_id)["state"] == "ready"  # not uncertain: nothing to look up
    send_message(deps, message_id)  # dramatiq's retry
    (at_twilio,) = _at_simulator(control)
    assert _doc(deps.store, message_id)["twilio_sid"] == at_twilio["sid"]


def test_reconciling_a_message_that_is_not_uncertain_does_nothing(deps: App, control: httpx.Client) -> None:
    _setup(deps)
    message_id = _first_step(deps)
    assert reconcile_message(deps, message_id) is None  # ready
    assert reconcile_message(deps, "no-such-message") is None
    assert _at_simulator(control) == []
