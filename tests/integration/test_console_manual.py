"""Hand-overs and replies by hand through the console's API, on the real servers: MongoDB, Redis, a
dramatiq worker running the real actors, and the Twilio simulator reached through the real SDK.

What a person would check: the reply reaches the simulator once (retried with the same
Idempotency-Key, or raced by identical requests), never after STOP, and outside the 24-hour
window only as the approved template (or a clear refusal naming the setting); closing a
hand-over takes the client off the list and is in the audit log with the key's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, Step
from shared.domain.rules import Rules
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases import audit
from shared.usecases.api_keys import create_key
from shared.usecases.context import App
from shared.usecases.replies import process_inbound
from tests.support.actors import workers_running
from tests.support.cli import Relance, relance_runner
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi, simulator_control, simulator_serving

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "manual-reply-test-token"
SENDER = "whatsapp:+14155238886"
MARIE = "+33612345678"
PAUL = "+33612345679"
TEMPLATE = "HX" + "e" * 32
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with simulator_serving(ACCOUNT_SID, AUTH_TOKEN) as url:
        yield url


@pytest.fixture
def sim(sim_url: str) -> Iterator[httpx.Client]:
    with simulator_control(sim_url) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def rules() -> Rules:
    settings = load_settings({"PUBLIC_BASE_URL": "http://127.0.0.1:9", "TWILIO_WHATSAPP_NUMBER": SENDER,
                              "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0",
                              "HOLIDAYS_COUNTRY": ""})
    return replace(settings.rules(), business_name="Atelier Dupont")


@pytest.fixture
def world(store: MongoRepositories, clock: FakeClock, rules: Rules, redis_url: str, sim_url: str,
          sim: httpx.Client) -> Iterator[tuple[App, DramatiqQueue]]:
    """Marie (she wrote an hour ago) and Paul (silent for days), enrolled; the sending workers running."""
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=MARIE, name="Marie", language=Language.FR,
                                  fields={"invoice_number": "FA-1"}), now)
    store.contacts.touch_inbound("ct1", now - timedelta(hours=1))
    store.contacts.upsert(Contact(id="ct2", phone=PAUL, name="Paul", language=Language.FR), now)
    store.contacts.touch_inbound("ct2", now - timedelta(days=3))
    store.campaigns.create(Campaign(id="c1", name="Relance", steps=[Step(delay="2d")]), now)
    for contact_id in ("ct1", "ct2"):
        store.followups.enrol(contact_id=contact_id, campaign_id="c1", next_run_at=now + timedelta(days=2), now=now)
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url,
                          timeout=5)
    deps = App.build(rules, store=store, clock=clock, queue=queue, drafter=EchoDrafter(), sender=sender)
    with workers_running(broker, deps):
        yield deps, queue


Console_ = Callable[..., httpx.Client]


@pytest.fixture
def console(world: tuple[App, DramatiqQueue], clock: FakeClock) -> Iterator[Console_]:
    """An HTTP client on a running console (``template``: MANUAL_REPLY_TEMPLATE_SID set) with a key 'crm'."""
    deps, queue = world
    key = create_key(deps.store, "crm", now=clock.now())
    opened: list[Any] = []

    def open_console(template: str = "") -> httpx.Client:
        app = create_app(Console(deps.store, clock, queue=queue,
                                 rules=replace(deps.rules, manual_reply_template_sid=template)))
        served = serve_asgi(app)
        url = served.__enter__()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        opened.append((served, client))
        return client

    yield open_console
    for served, client in opened:
        client.close()
        served.__exit__(None, None, None)


def _at_simulator(sim: httpx.Client, to: str) -> list[dict[str, Any]]:
    return list(sim.get("/_sim/messages", params={"to": to}).json())


def _wait_for(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(sim: httpx.Client, to: str, count: int) -> list[dict[str, Any]]:
    """The simulator's messages to ``to`` once ``count`` arrived, after a pause that would let a second one in."""
    _wait_for(f"{count} message(s) at the simulator", lambda: len(_at_simulator(sim, to)) >= count)
    time.sleep(1.0)
    return _at_simulator(sim, to)


def _problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM and "Traceback" not in response.text
    return str(response.json()["detail"])


def test_a_reply_posted_twice_with_one_idempotency_key_reaches_the_client_once(
        console: Console_, sim: httpx.Client, world: tuple[App, DramatiqQueue]) -> None:
    api = console()
    text = "Bonjour Marie, je regarde votre facture FA-1 et je reviens vers vous."
    first = api.post(f"/api/v1/conversations/{MARIE}/reply", json={"body": text}, headers={"Idempotency-Key": "r-1"})
    again = api.post(f"/api/v1/conversations/{MARIE}/reply", json={"body": text}, headers={"Idempotency-Key": "r-1"})
    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json() and first.json()["kind"] == "freeform"
    (sent,) = _settled(sim, MARIE, 1)
    assert sent["body"] == text and sent["from"] == SENDER
    deps, _ = world
    stored = deps.store.messages.get(first.json()["message_id"])
    assert stored is not None and stored.twilio_sid == sent["sid"] and stored.written_by == "key:crm"
    (entry,) = audit.for_contact(deps.store, "ct1")
    assert (entry.by, entry.action, entry.target) == ("key:crm", "reply.manual", stored.id)


def test_racing_identical_requests_reach_the_client_once(console: Console_, sim: httpx.Client) -> None:
    api = console()
    text = "Bien reçu Marie, merci."

    def post(key: str | None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return api.post(f"/api/v1/conversations/{MARIE}/reply", json={"body": text}, headers=headers)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(post, [None, None, None, "race", "race", "race"]))
    assert all(answer.status_code in (200, 409) for answer in answers), [a.text for a in answers]
    ids = {answer.json()["message_id"] for answer in answers if answer.status_code == 200}
    assert len(ids) == 2  # the text without a key, and the key "race": one message each
    sent = _settled(sim, MARIE, 2)
    assert [message["body"] for message in sent] == [text, text]
    keyless = [answer.json() for answer in answers[:3]]
    assert sorted(answer["duplicate"] for answer in keyless) == [False, True, True]


def test_after_stop_a_reply_is_refused_and_nothing_is_sent(console: Console_, sim: httpx.Client,
                                                         world: tuple[App, DramatiqQueue], clock: FakeClock) -> None:
    deps, _ = world
    event = {"kind": "inbound", "sid": "SM" + "5" * 32, "state": "received", "from": f"whatsapp:{MARIE}",
             "body": "STOP", "num_media": 0}
    deps.store.events.record("inbound:stop", event, clock.now())
    process_inbound(deps, "inbound:stop")
    detail = _problem(console().post(f"/api/v1/conversations/{MARIE}/reply", json={"body": "Bonjour Marie"}), 409)
    assert "STOP" in detail and "Marie" in detail
    time.sleep(0.5)
    assert _at_simulator(sim, MARIE) == []
    assert audit.for_contact(deps.store, "ct1") == []


def test_outside_the_window_only_the_approved_template_goes(console: Console_, sim: httpx.Client) -> None:
    detail = _problem(console().post(f"/api/v1/conversations/{PAUL}/reply", json={"body": "Bonjour Paul"}), 409)
    assert "MANUAL_REPLY_TEMPLATE_SID" in detail and "24 hours" in detail
    answer = console(TEMPLATE).post(f"/api/v1/conversations/{PAUL}/reply", json={"body": "Pouvez-vous me rappeler ?"})
    assert answer.status_code == 200 and answer.json()["kind"] == "template", answer.text
    (sent,) = _settled(sim, PAUL, 1)
    assert sent["content_sid"] == TEMPLATE and "Pouvez-vous me rappeler ?" in str(sent["content_variables"])


def test_refusals_are_clear_problems_and_store_nothing(console: Console_, world: tuple[App, DramatiqQueue]) -> None:
    api = console()
    facts = _problem(api.post(f"/api/v1/conversations/{MARIE}/reply", json={"body": "Vous devez 990 € au total."}),
                     422)
    assert "facts check" in facts and "990" in facts
    _problem(api.post("/api/v1/conversations/+33699999999/reply", json={"body": "Bonjour"}), 404)
    _problem(api.post("/api/v1/conversations/not-a-phone/reply", json={"body": "Bonjour"}), 400)
    _problem(api.post(f"/api/v1/conversations/{MARIE}/reply", json={}), 422)
    deps, _ = world
    assert deps.store.messages.count() == 0


def test_hand_overs_are_listed_closed_and_audited(console: Console_, world: tuple[App, DramatiqQueue],
                                                  clock: FakeClock) -> None:
    deps, _ = world
    deps.store.followups.flag_contact("ct1", reason="dispute: the client disputes the invoice", now=clock.now())
    api = console()
    listed = api.get("/api/v1/handovers").json()
    (item,) = listed["items"]
    assert (item["phone"], item["name"], item["reasons"]) == (MARIE, "Marie",
                                                              ["dispute: the client disputes the invoice"])
    assert item["since"] is not None and listed["next_cursor"] is None
    closed = api.post(f"/api/v1/handovers/{MARIE}/stop", headers={"Idempotency-Key": "h-1"})
    assert closed.status_code == 200, closed.text
    done = closed.json()
    assert (done["closed"], done["moved"], done["followups"][0]["state"]) == (1, 1, "stopped")
    assert api.get("/api/v1/handovers").json()["items"] == []
    (entry,) = audit.for_contact(deps.store, "ct1")
    assert (entry.by, entry.action) == ("key:crm", "handover.stop")
    _problem(api.post("/api/v1/handovers/+33699999999/close"), 400)


def test_relance_reply_stores_the_message_for_the_workers_and_refuses_after_stop(
        world: tuple[App, DramatiqQueue], sim: httpx.Client, mongo_uri: str, db_name: str, redis_url: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    relance = relance_runner(mongo_uri, db_name, capsys, monkeypatch, env={"REDIS_URL": redis_url})
    deps, _ = world
    deps.store.contacts.touch_inbound("ct1", datetime.now(UTC))  # the CLI runs on the real clock
    code, out, _ = relance("reply", MARIE, "Bonjour Marie, c'est noté.")
    assert code == 0 and "stored as text" in out
    (sent,) = _settled(sim, MARIE, 1)
    assert sent["body"] == "Bonjour Marie, c'est noté."
    code, out, _ = relance("reply", MARIE, "Bonjour Marie, c'est noté.")
    assert code == 0 and "stored already" in out
    deps.store.contacts.set_opt_out("ct1", True, datetime.now(UTC))
    code, _, err = relance("reply", MARIE, "Encore moi")
    assert code == 1 and "STOP" in err
    assert len(_settled(sim, MARIE, 1)) == 1
    (entry,) = audit.for_contact(deps.store, "ct1")
    assert entry.by.startswith("cli:") and entry.action == "reply.manual"


def test_invoice_and_campaign_writes_are_audited_once_with_the_keys_name(store: MongoRepositories, clock: FakeClock,
                                                                        tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from shared.fakes import RecordingQueue
    from shared.usecases.invoices import import_invoices

    path = tmp_path / "invoices.csv"
    path.write_text("phone,name,language,tags,invoice,amount,currency,due_date\n"
                    f"{MARIE},Marie,fr,clients,FA-1,250.00,EUR,2026-02-15\n"
                    f"{MARIE},Marie,fr,clients,FA-2,100.00,EUR,2026-02-16\n", encoding="utf-8")
    assert not import_invoices(store, path, now=clock.now()).errors
    store.campaigns.create(Campaign(id="c1", name="Relance", steps=[Step()]), clock.now())
    key = {"Authorization": f"Bearer {create_key(store, 'erp', now=clock.now())}", "Idempotency-Key": "once"}
    with TestClient(create_app(Console(store, clock, queue=RecordingQueue()))) as api:
        for _ in range(2):  # the retry replays the answer and records nothing more
            assert api.post("/api/v1/invoices/FA-1/paid", json={"amount": "50"}, headers=key).status_code == 200
        for path, again in (("invoices/FA-2/cancel", "c"), ("campaigns/c1/pause", "p"), ("campaigns/c1/resume", "r")):
            clock.advance(timedelta(seconds=1))
            assert api.post(f"/api/v1/{path}", headers={**key, "Idempotency-Key": again}).status_code == 200
        assert api.post("/api/v1/invoices/FA-9/cancel", headers={**key, "Idempotency-Key": "x"}).status_code == 404
    entries = list(reversed(audit.recent(store)))
    contact = store.contacts.by_phone(MARIE)
    assert contact is not None
    assert [(e.by, e.action, e.target, e.contact_id) for e in entries] == [
        ("key:erp", "invoice.paid", "FA-1", contact.id), ("key:erp", "invoice.cancel", "FA-2", contact.id),
        ("key:erp", "campaign.pause", "c1", None), ("key:erp", "campaign.resume", "c1", None)]
    assert entries[0].detail == "amount 50"


def test_a_reply_whose_answer_is_lost_is_reconciled_not_sent_twice(store: MongoRepositories, clock: FakeClock,
                                                                  rules: Rules, sim: httpx.Client,
                                                                  sim_url: str) -> None:
    from shared.fakes import RecordingQueue
    from shared.usecases.manual_reply import reply_by_hand
    from shared.usecases.scheduling import tick
    from shared.usecases.sending import send_message
    from tests.support.actors import drain

    queue = RecordingQueue()
    sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url,
                          timeout=5)
    deps = App.build(rules, store=store, clock=clock, queue=queue, drafter=EchoDrafter(), sender=sender)
    store.contacts.upsert(Contact(id="ct1", phone=MARIE, name="Marie", language=Language.FR), clock.now())
    store.contacts.touch_inbound("ct1", clock.now() - timedelta(hours=1))
    done = reply_by_hand(store, queue, rules, MARIE, body="Bien reçu, merci Marie.", by="key:crm", now=clock.now())
    queue.sends.clear()
    sim.post("/_sim/fail", json={"status": 502, "gateway": True, "created": True, "to": MARIE}).raise_for_status()
    send_message(deps, done.message_id)  # Twilio took it; the answer was a gateway's 502
    doc = store.messages.collection.find_one({"_id": done.message_id})
    assert doc is not None and doc["state"] == "uncertain" and queue.sends == []
    for _ in range(15):  # the scheduler and the workers, minute after minute, past the reconcile grace
        clock.advance(timedelta(minutes=1))
        tick(store, queue, clock)
        drain(deps)
    (at_twilio,) = _at_simulator(sim, MARIE)
    doc = store.messages.collection.find_one({"_id": done.message_id})
    assert doc is not None and doc["state"] == "sent" and doc["twilio_sid"] == at_twilio["sid"]


def test_the_audit_log_is_paged_newest_first(store: MongoRepositories, clock: FakeClock) -> None:
    from fastapi.testclient import TestClient

    for n in range(3):
        audit.record(store, by="user:ana@example.com", action=f"a{n}", target="+33612345678", now=clock.now())
        clock.advance(timedelta(seconds=1))
    key = {"Authorization": f"Bearer {create_key(store, 'viewer', read_only=True, now=clock.now())}"}
    with TestClient(create_app(Console(store, clock))) as api:
        first = api.get("/api/v1/audit", params={"limit": 2}, headers=key).json()
        assert [e["action"] for e in first["items"]] == ["a2", "a1"] and first["next_cursor"]
        second = api.get("/api/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]}, headers=key).json()
        assert [e["action"] for e in second["items"]] == ["a0"] and second["next_cursor"] is None
        assert first["items"][0]["target"] != "+33612345678"  # masked
        assert api.get("/api/v1/audit").status_code == 401


def test_relance_handled_is_audited_as_the_login(store: MongoRepositories, clock: FakeClock,
                                                 relance: Relance) -> None:
    store.contacts.upsert(Contact(id="ct1", phone=MARIE, name="Marie", language=Language.FR), clock.now())
    store.campaigns.create(Campaign(id="c1", name="Relance", steps=[Step()]), clock.now())
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    store.followups.flag_contact("ct1", reason="dispute: the client disputes the invoice", now=clock.now())
    code, out, _ = relance("handled", MARIE, "--stop")
    assert code == 0 and "1 hand-over(s) closed" in out
    (entry,) = audit.for_contact(store, "ct1")
    assert entry.by.startswith("cli:") and entry.action == "handover.stop"
