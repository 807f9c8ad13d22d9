"""The webhook service against the real MongoDB-compatible server: signatures, dedupe, bad input."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from services.webhook import EMPTY_TWIML, WebhookDeps, create_app
from services.webhook_request import MAX_BODY_BYTES, BadRequest, _read_body
from shared.adapters.mongo import MongoRepositories, connect, open_repositories
from shared.clock import FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.states import MessageState
from shared.fakes import RecordingQueue
from shared.usecases.delivery import record_sid
from tests.support.webhook_forms import inbound_form, sid

pytestmark = pytest.mark.integration

TOKEN = "0123456789abcdef0123456789abcdef"
BASE = "https://relance.example.com"
FORGED = "A" * 27 + "="  # shaped like a signature (past the front door), signs nothing


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def client(store: MongoRepositories, queue: RecordingQueue, clock: FakeClock) -> Iterator[TestClient]:
    deps = WebhookDeps(store=store, queue=queue, clock=clock, auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: True)
    with TestClient(create_app(deps), base_url="http://testserver") as test_client:
        yield test_client


def post(client: TestClient, path: str, form: dict[str, str], *, token: str = TOKEN, query: str = "",
         signature: str | None = None) -> tuple[int, str]:
    url = BASE + path + (f"?{query}" if query else "")
    sig = RequestValidator(token).compute_signature(url, form) if signature is None else signature
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sig:
        headers["X-Twilio-Signature"] = sig
    response = client.post(path + (f"?{query}" if query else ""), content=urlencode(form), headers=headers)
    return response.status_code, response.text


def _sent_message(store: MongoRepositories, clock: FakeClock, sid: str = "SM" + "1" * 32) -> str:
    message = OutboundMessage(id="c1:ct:0", followup_id="c1:ct", contact_id="ct", campaign_id="c1", step=0,
                              state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR)
    store.messages.insert(message, clock.now())
    store.messages.start_sending(message.id, now=clock.now())
    record_sid(store, message.id, sid, clock.now())
    return sid


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": "AC" + "0" * 32, "From": "whatsapp:+14155238886", "To": "whatsapp:+33612345678",
            "ApiVersion": "2010-04-01", "ChannelPrefix": "whatsapp", **extra}


def test_signed_status_callbacks_move_the_message_forward_once(client: TestClient, store: MongoRepositories,
                                                              clock: FakeClock) -> None:
    sid = _sent_message(store, clock)
    first = post(client, "/whatsapp/status", status_form(sid, "delivered"), query="mid=c1%3Act%3A0")
    assert first == (200, EMPTY_TWIML)
    assert post(client, "/whatsapp/status", status_form(sid, "delivered"), query="mid=c1%3Act%3A0")[0] == 200
    assert post(client, "/whatsapp/status", status_form(sid, "read"))[0] == 200
    assert post(client, "/whatsapp/status", status_form(sid, "sent"))[0] == 200  # late, out of order
    doc = store.messages.collection.find_one({"_id": "c1:ct:0"})
    assert doc is not None and doc["state"] == "read"
    # Each status recorded once, in the message's history; nothing for a worker to do, so no event.
    assert [(h["state"], h.get("source")) for h in doc["history"]] == [
        ("ready", None), ("sending", None), ("sent", None), ("delivered", "callback"), ("read", "callback")]
    assert store.events.collection.count_documents({}) == 0


def test_failed_status_records_the_error_code(client: TestClient, store: MongoRepositories, queue: RecordingQueue,
                                              clock: FakeClock) -> None:
    sid = _sent_message(store, clock)
    form = status_form(sid, "undelivered", ErrorCode="63024")
    assert post(client, "/whatsapp/status", form)[0] == 200
    assert post(client, "/whatsapp/status", form)[0] == 200  # a retry: stored and acted on once
    doc = store.messages.collection.find_one({"_id": "c1:ct:0"})
    assert doc is not None and doc["state"] == "undelivered" and doc["error_code"] == 63024
    assert store.events.collection.count_documents({"kind": "status"}) == 1
    assert queue.statuses == [f"status:{sid}:undelivered"]


def _sending_message(store: MongoRepositories, clock: FakeClock, message_id: str = "c1:ct:0") -> str:
    message = OutboundMessage(id=message_id, followup_id="c1:ct", contact_id="ct", campaign_id="c1", step=0,
                              state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR)
    store.messages.insert(message, clock.now())
    store.messages.start_sending(message.id, now=clock.now())
    return message_id


def test_callbacks_out_of_order_end_in_the_latest_status(client: TestClient, store: MongoRepositories,
                                                         clock: FakeClock) -> None:
    """read before delivered, and sent last: the message ends read, each status applied once."""
    sid = _sent_message(store, clock)
    for status in ("read", "delivered", "sent", "read"):
        assert post(client, "/whatsapp/status", status_form(sid, status), query="mid=c1%3Act%3A0")[0] == 200
    doc = store.messages.collection.find_one({"_id": "c1:ct:0"})
    assert doc is not None and doc["state"] == "read" and "delivered_at" not in doc
    assert [h["state"] for h in doc["history"]].count("read") == 1


def test_a_sent_callback_writes_nothing_the_worker_writes_the_sid(client: TestClient, store: MongoRepositories,
                                                                   clock: FakeClock) -> None:
    """queued/sent say what the sending worker stores itself: no write, whichever comes first."""
    message_id, sid = _sending_message(store, clock), "SM" + "5" * 32
    for status in ("queued", "sent"):
        assert post(client, "/whatsapp/status", status_form(sid, status), query="mid=c1%3Act%3A0")[0] == 200
    assert store.messages.get(message_id).state == MessageState.SENDING  # type: ignore[union-attr]
    assert record_sid(store, message_id, sid, clock.now())
    assert post(client, "/whatsapp/status", status_form(sid, "sent"), query="mid=c1%3Act%3A0")[0] == 200
    doc = store.messages.collection.find_one({"_id": message_id})
    assert doc is not None and [h["state"] for h in doc["history"]] == ["ready", "sending", "sent"]
    assert store.events.collection.count_documents({}) == 0


@pytest.mark.parametrize("first", ["delivered", "read"])
def test_a_callback_before_the_worker_stored_the_sid_adopts_it(client: TestClient, store: MongoRepositories,
                                                               clock: FakeClock, first: str) -> None:
    """Twilio's callback beats the sending worker's write: the message still ends in the right state."""
    message_id, sid = _sending_message(store, clock), "SM" + "5" * 32
    assert post(client, "/whatsapp/status", status_form(sid, "sent"), query="mid=c1%3Act%3A0")[0] == 200
    assert post(client, "/whatsapp/status", status_form(sid, first), query="mid=c1%3Act%3A0")[0] == 200
    adopted = store.messages.get(message_id)
    assert adopted is not None and (adopted.state.value, adopted.twilio_sid) == (first, sid)
    clock.advance(timedelta(seconds=1))
    assert not record_sid(store, message_id, sid, clock.now())  # the worker's write: already done
    if first != "read":
        assert post(client, "/whatsapp/status", status_form(sid, "read"), query="mid=c1%3Act%3A0")[0] == 200
    final = store.messages.get(message_id)
    assert final is not None and (final.state, final.twilio_sid, final.sent_at) == (
        MessageState.READ, sid, adopted.sent_at)
    assert store.events.collection.count_documents({}) == 0


def test_an_uncertain_send_is_adopted_by_its_delivered_callback(client: TestClient, store: MongoRepositories,
                                                                 clock: FakeClock) -> None:
    """The worker lost Twilio's answer: the sent callback writes nothing, delivered adopts the SID."""
    message_id, sid = _sending_message(store, clock), "SM" + "8" * 32
    assert store.messages.mark_uncertain(message_id, reason="no answer from Twilio", now=clock.now())
    assert post(client, "/whatsapp/status", status_form(sid, "sent"), query="mid=c1%3Act%3A0")[0] == 200
    assert store.messages.get(message_id).state == MessageState.UNCERTAIN  # type: ignore[union-attr]
    assert post(client, "/whatsapp/status", status_form(sid, "delivered"), query="mid=c1%3Act%3A0")[0] == 200
    adopted = store.messages.get(message_id)
    assert adopted is not None and (adopted.state, adopted.twilio_sid) == (MessageState.DELIVERED, sid)


def test_a_failure_before_the_worker_stored_the_sid_is_adopted_and_acted_on(
        client: TestClient, store: MongoRepositories, queue: RecordingQueue, clock: FakeClock) -> None:
    message_id, sid = _sending_message(store, clock), "SM" + "6" * 32
    form = status_form(sid, "undelivered", ErrorCode="63016")
    assert post(client, "/whatsapp/status", form, query="mid=c1%3Act%3A0")[0] == 200
    assert not record_sid(store, message_id, sid, clock.now())
    failed = store.messages.get(message_id)
    assert failed is not None and (failed.state, failed.twilio_sid, failed.error_code) == (
        MessageState.UNDELIVERED, sid, 63016)
    event = store.events.get(f"status:{sid}:undelivered")
    assert event is not None and event.action_state == "pending" and queue.statuses == [event.id]


def test_a_callback_never_moves_a_message_under_another_sid(client: TestClient, store: MongoRepositories,
                                                            clock: FakeClock) -> None:
    """A stray callback naming one of our ids with another SID (an earlier attempt) changes nothing."""
    _sent_message(store, clock)
    other = "SM" + "7" * 32
    assert post(client, "/whatsapp/status", status_form(other, "delivered"), query="mid=c1%3Act%3A0")[0] == 200
    doc = store.messages.collection.find_one({"_id": "c1:ct:0"})
    assert doc is not None and (doc["state"], doc["twilio_sid"]) == ("sent", "SM" + "1" * 32)


@pytest.mark.parametrize("case", ["missing", "wrong_token", "tampered"])
def test_bad_signature_is_403_and_stores_nothing(client: TestClient, store: MongoRepositories, clock: FakeClock,
                                                 case: str) -> None:
    sid = _sent_message(store, clock)
    form = status_form(sid, "delivered")
    if case == "missing":
        result = post(client, "/whatsapp/status", form, signature="")
    elif case == "wrong_token":
        result = post(client, "/whatsapp/status", form, token="f" * 32)
    else:
        signature = RequestValidator(TOKEN).compute_signature(BASE + "/whatsapp/status", form)
        result = post(client, "/whatsapp/status", {**form, "MessageStatus": "read"}, signature=signature)
    assert result[0] == 403
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0
    assert store.messages.collection.find_one({"_id": "c1:ct:0"})["state"] == "sent"  # type: ignore[index]


def test_signature_covers_the_query_string(client: TestClient, store: MongoRepositories, clock: FakeClock) -> None:
    sid = _sent_message(store, clock)
    form = status_form(sid, "delivered")
    signature = RequestValidator(TOKEN).compute_signature(BASE + "/whatsapp/status?mid=a", form)
    assert post(client, "/whatsapp/status", form, query="mid=b", signature=signature)[0] == 403


def test_malformed_bodies_are_400_and_store_nothing(client: TestClient, store: MongoRepositories) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": FORGED}
    assert client.post("/whatsapp/webhook", content=b"\xff\xfe=\x00", headers=headers).status_code == 400
    assert client.post("/whatsapp/webhook", content=b'{"Body": "hi"}',
                       headers={**headers, "Content-Type": "application/json"}).status_code == 400
    assert post(client, "/whatsapp/webhook", {"Body": "no sid"})[0] == 400
    assert post(client, "/whatsapp/status", {"MessageSid": "SM" + "1" * 32})[0] == 400
    assert post(client, "/whatsapp/status", status_form("SM" + "1" * 32, "failed", ErrorCode="abc")) == \
        (400, "ErrorCode must be a number")
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0


def test_health_and_readiness_when_the_stores_answer(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")  # a real MongoDB behind the store; Redis answers (the fixture's ping)
    assert (ready.status_code, ready.json()) == (200, {"mongo": True, "redis": True})


def test_oversized_body_is_413(client: TestClient, store: MongoRepositories) -> None:
    big = inbound_form(sid("big"), body="x" * 70_000)
    assert post(client, "/whatsapp/webhook", big)[0] == 413
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0


def test_an_oversized_body_without_content_length_is_413_as_it_streams(client: TestClient,
                                                                       store: MongoRepositories) -> None:
    """Chunked, no Content-Length: refused once past the limit, without reading the rest."""
    def chunks() -> Iterator[bytes]:
        yield urlencode(inbound_form(sid("chunked"))).encode() + b"&Body="
        for _ in range(8):
            yield b"x" * 16_384

    response = client.post("/whatsapp/webhook", content=chunks(),
                           headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": FORGED})
    assert (response.status_code, response.text) == (413, "body too large")
    assert store.events.collection.count_documents({}) == 0
    # The TestClient reads its whole body up front; the webhook's own reader stops at the limit.
    received: list[int] = []

    async def receive() -> dict[str, object]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 16_384, "more_body": True}

    with pytest.raises(BadRequest) as refused:
        asyncio.run(_read_body(receive))
    assert refused.value.status == 413 and len(received) == MAX_BODY_BYTES // 16_384 + 1


def test_inbound_is_stored_once_and_enqueued_once(client: TestClient, store: MongoRepositories,
                                                  queue: RecordingQueue) -> None:
    form = {"MessageSid": "SM" + "2" * 32, "AccountSid": "AC" + "0" * 32, "From": "whatsapp:+33612345678",
            "To": "whatsapp:+14155238886", "Body": "J'ai payé hier", "NumMedia": "0", "ProfileName": "Marie",
            "WaId": "33612345678", "SomethingNew": "kept"}
    assert post(client, "/whatsapp/webhook", form) == (200, EMPTY_TWIML)
    assert post(client, "/whatsapp/webhook", form) == (200, EMPTY_TWIML)  # Twilio retry
    assert queue.inbound == ["inbound:SM" + "2" * 32]
    event = store.events.collection.find_one({"_id": "inbound:SM" + "2" * 32})
    assert event is not None and event["body"] == "J'ai payé hier" and event["state"] == "received"


def test_store_unreachable_answers_503_and_health_endpoints(clock: FakeClock, queue: RecordingQueue) -> None:
    mongo_client, dead_store = open_repositories("mongodb://127.0.0.1:1/relance", "relance", timeout_ms=300)
    deps = WebhookDeps(store=dead_store, queue=queue, clock=clock, auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: False)
    with TestClient(create_app(deps)) as test_client:
        form = inbound_form("SM" + "3" * 32, body="hi")
        assert post(test_client, "/whatsapp/webhook", form)[0] == 503
        assert test_client.get("/healthz").status_code == 200
        ready = test_client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"mongo": False, "redis": False}
    assert queue.inbound == []
    mongo_client.close()


def test_a_hung_mongodb_link_answers_503_in_bounded_time_then_recovers(mongo_uri: str, db_name: str,
                                                                      clock: FakeClock) -> None:
    """A partition that drops nothing (no RST): the webhook's socket timeout turns it into a 503."""
    from urllib.parse import urlsplit

    from shared.usecases.scheduling import TickReport, reconcile
    from tests.support.servers import FreezableProxy

    target = urlsplit(mongo_uri)
    if "," in target.netloc or target.scheme != "mongodb":
        pytest.skip("needs a single-host mongodb:// URI to put a proxy in front of")
    proxy = FreezableProxy(target.port or 27017)
    proxied = mongo_uri.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
    # Only through the proxy: a replica-set member would otherwise be reached at its own address.
    proxied += ("&" if "?" in proxied else "?") + "directConnection=true"
    client, store = open_repositories(proxied, db_name, timeout_ms=2000, socket_timeout_ms=1000)
    queue = RecordingQueue()
    deps = WebhookDeps(store=store, queue=queue, clock=clock, auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: True)
    form = inbound_form("SM" + "6" * 32, body="STOP")
    try:
        store.ensure_indexes()
        with TestClient(create_app(deps)) as test_client:
            proxy.freeze()
            started = time.monotonic()
            assert post(test_client, "/whatsapp/webhook", form)[0] == 503
            assert time.monotonic() - started < 8
            proxy.thaw()
            assert post(test_client, "/whatsapp/webhook", form)[0] == 200  # Twilio's retry
            other = inbound_form("SM" + "7" * 32, body="STOP")
            assert post(test_client, "/whatsapp/webhook", other)[0] == 200  # the writer goes on
        assert store.events.collection.count_documents({"_id": "inbound:SM" + "6" * 32}) == 1
        clock.advance(timedelta(minutes=6))
        reconcile(store, queue, clock, timedelta(minutes=5), 100, TickReport())
        assert "inbound:SM" + "6" * 32 in queue.inbound  # stored once, and processed whichever way
    finally:
        proxy.close()
        client.close()


def test_the_webhook_process_freezes_what_it_built_before_serving(mongo_uri: str, redis_url: str,
                                                                  db_name: str) -> None:
    """`relance webhook` (build_webhook) takes its start-up objects out of the cyclic GC's scans."""
    from services.bootstrap import build_webhook
    from shared.settings import load_settings

    settings = load_settings({"TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": "https://relance.example",
                              "MONGODB_URI": urlsplit(mongo_uri)._replace(path=f"/{db_name}").geturl(),
                              "REDIS_URL": redis_url},
                             env_file=None)
    gc.unfreeze()
    try:
        app = build_webhook(settings)
        assert gc.get_freeze_count() == 0  # building the app alone does not freeze
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 0
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()
        mongo = connect(mongo_uri)
        mongo.drop_database(db_name)
        mongo.close()


def test_an_app_built_for_tests_leaves_the_gc_alone(store: MongoRepositories, queue: RecordingQueue,
                                                    clock: FakeClock) -> None:
    gc.unfreeze()
    deps = WebhookDeps(store=store, queue=queue, clock=clock, auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: True)
    with TestClient(create_app(deps)):
        assert gc.get_freeze_count() == 0
