"""The webhook's front door: what it refuses before working, on the real store and real Redis.

Unsigned requests are refused before their body is read, forms are capped before they are
parsed, slow bodies time out, and past a bound on requests in flight the answer is an
immediate 503. Every refusal stores nothing (no event, no pending note, no message touched)
and enqueues nothing (the Redis database stays empty).
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from services import webhook_request
from services.webhook import BUSY, WebhookDeps, create_app
from services.webhook_request import MAX_BODY_BYTES, MAX_FIELDS, MAX_NAME_CHARS, MAX_VALUE_CHARS
from shared.adapters.mongo import MongoRepositories, connect
from shared.clock import FakeClock
from shared.errors import ConfigError
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from tests.support.servers import serve_asgi, wait_until
from tests.support.webhook_forms import FORM_TYPE, SENDER, inbound_form, sid, sign

pytestmark = pytest.mark.integration

TOKEN = "0123456789abcdef0123456789abcdef"
BASE = "https://relance.example.com"
PATH = "/whatsapp/webhook"
FORGED = "A" * 27 + "="  # shaped like an HMAC-SHA1 signature, signs nothing


@dataclass
class Front:
    """The webhook's dependencies on the real store and Redis, and what a refusal must leave."""

    deps: WebhookDeps
    store: MongoRepositories
    redis: redis.Redis

    def app(self, **changes: Any) -> Starlette:
        return create_app(replace(self.deps, **changes))

    def assert_untouched(self) -> None:
        assert self.store.events.collection.count_documents({}) == 0  # no event, no pending note
        assert self.store.messages.collection.count_documents({}) == 0
        assert self.redis.dbsize() == 0  # nothing enqueued


@pytest.fixture
def front(store: MongoRepositories, redis_url: str, clock: FakeClock) -> Iterator[Front]:
    broker = make_broker(redis_url)
    client = redis.Redis.from_url(redis_url)
    deps = WebhookDeps(store=store, queue=DramatiqQueue(broker), clock=clock, auth_token=TOKEN,
                       public_base_url=BASE, redis_ping=lambda: True)
    try:
        yield Front(deps, store, client)
    finally:
        broker.close()
        client.close()


def many_fields(count: int) -> bytes:
    """A form of ``count`` distinct empty fields: the flood's body."""
    return b"&".join(b"%x=" % i for i in range(count))


def call_asgi(app: Starlette, headers: dict[str, str], body: bytes,
              messages: list[dict[str, Any]] | None = None) -> tuple[int, str, int]:
    """One POST straight into the ASGI app: (status, text, times the app asked for the body).

    ``messages``: what the server hands the app, in turn (default: ``body`` in one message).
    """
    asked = 0
    sent: list[dict[str, Any]] = []
    pending = list(messages or [{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "https", "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    return status, text, asked


def signed_headers(form: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": FORM_TYPE, "X-Twilio-Signature": sign(BASE + PATH, form, TOKEN)}


def request_head(port: int, body_length: int, signature: str) -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {FORM_TYPE}\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {body_length}\r\n\r\n").encode()


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response


# --------------------------------------------------------------------------- no body read unsigned
BAD_SIGNATURES = {
    "absent": None, "empty": "", "garbage": "x", "unpadded": "A" * 28, "one too long": "A" * 28 + "=",
    "not base64": "!" * 27 + "=", "sha256 one short": "A" * 42 + "=",
}


@pytest.mark.parametrize("case", list(BAD_SIGNATURES))
def test_a_request_without_a_well_formed_signature_is_403_before_its_body_is_read(front: Front, case: str) -> None:
    headers = {"Content-Type": FORM_TYPE}
    if BAD_SIGNATURES[case] is not None:
        headers["X-Twilio-Signature"] = str(BAD_SIGNATURES[case])
    status, text, asked = call_asgi(front.app(), headers, many_fields(5000))
    assert (status, text, asked) == (403, "missing or malformed X-Twilio-Signature", 0)
    front.assert_untouched()


@pytest.mark.parametrize("signature", [FORGED, "A" * 43 + "="], ids=["sha1-shaped", "sha256-shaped"])
def test_a_well_formed_signature_is_read_and_checked_for_real(front: Front, signature: str) -> None:
    form = inbound_form(sid("forged"))
    status, text, asked = call_asgi(front.app(), {"Content-Type": FORM_TYPE, "X-Twilio-Signature": signature},
                                    urlencode(form).encode())
    assert (status, text, asked) == (403, "invalid X-Twilio-Signature", 1)
    front.assert_untouched()


# --------------------------------------------------------------------------- caps on fields
def test_too_many_fields_are_refused_before_any_field_is_built(front: Front, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real_parse = webhook_request.parse_qsl

    def spy(text: str, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        parsed.append(text)
        return real_parse(text, *args, **kwargs)

    monkeypatch.setattr(webhook_request, "parse_qsl", spy)
    body = many_fields(10_000)
    assert len(body) <= MAX_BODY_BYTES
    status, text, asked = call_asgi(front.app(), {"Content-Type": FORM_TYPE, "X-Twilio-Signature": FORGED}, body)
    assert (status, text, asked) == (413, f"too many fields (at most {MAX_FIELDS})", 1)
    assert parsed == []  # refused on the raw bytes: no list of 10,000 pairs was built
    front.assert_untouched()


def _past_a_cap(case: str) -> dict[str, str]:
    form = inbound_form(sid(case))
    if case == "one field too many":
        form.update({f"Extra{i}": "x" for i in range(MAX_FIELDS + 1 - len(form))})
        assert len(form) == MAX_FIELDS + 1
    elif case == "name too long":
        form["N" * (MAX_NAME_CHARS + 1)] = "x"
    else:
        form["Body"] = "é" * (MAX_VALUE_CHARS + 1)
    return form


@pytest.mark.parametrize("case", ["one field too many", "name too long", "value too long"])
def test_a_signed_form_past_a_field_cap_is_413_and_stores_nothing(front: Front, case: str) -> None:
    form = _past_a_cap(case)
    body = urlencode(form)
    assert len(body) <= MAX_BODY_BYTES  # within the body's cap: the field caps refuse it
    with TestClient(front.app()) as client:
        response = client.post(PATH, content=body, headers=signed_headers(form))
    assert response.status_code == 413, response.text
    front.assert_untouched()


def _largest_whatsapp_message() -> dict[str, str]:
    """Everything Twilio can put in one WhatsApp inbound, each at its longest."""
    message_sid = sid("largest", "MM")
    form = inbound_form(message_sid, body=("Ça fait 😀 " * 400)[:4096], NumMedia="10", MessageType="image",
                        MessagingServiceSid="MG" + "1" * 32, ProfileName="M" * 256,
                        ButtonText="J'ai payé", ButtonPayload="p" * 256, Latitude="48.8566", Longitude="2.3522",
                        Address="1 rue de Rivoli, 75001 Paris", Label="Bureau", Forwarded="true",
                        FrequentlyForwarded="false", OriginalRepliedMessageSid=sid("replied"),
                        OriginalRepliedMessageSender=SENDER, ReferralBody="r" * 1024, ReferralHeadline="h" * 256,
                        ReferralSourceId="120201", ReferralSourceType="ad", ReferralSourceUrl="https://fb.me/x",
                        ReferralMediaId="1" * 20, ReferralMediaContentType="image/jpeg",
                        ReferralMediaUrl="https://scontent.example/" + "m" * 200, ReferralNumMedia="1",
                        ReferralCtwaClid="c" * 160, FromCity="PARIS", FromState="", FromZip="", FromCountry="FR",
                        ChannelMetadata='{"type":"whatsapp","data":{"context":{"ProfileName":"Marie"}}}')
    for n in range(10):
        form[f"MediaUrl{n}"] = (f"https://api.twilio.com/2010-04-01/Accounts/{form['AccountSid']}/Messages/"
                                f"{message_sid}/Media/ME{n:032x}")
        form[f"MediaContentType{n}"] = "image/jpeg"
    return form


def test_the_largest_whatsapp_message_twilio_sends_passes_every_cap(front: Front) -> None:
    form = _largest_whatsapp_message()
    assert len(form) < MAX_FIELDS and len(urlencode(form)) < MAX_BODY_BYTES
    with TestClient(front.app()) as client:
        response = client.post(PATH, content=urlencode(form), headers=signed_headers(form))
        assert response.status_code == 200, response.text
        exactly = {**inbound_form(sid("at the cap"))}
        exactly.update({f"Extra{i}": "x" * MAX_VALUE_CHARS if i == 0 else "x"
                        for i in range(MAX_FIELDS - len(exactly))})
        exactly["N" * MAX_NAME_CHARS] = exactly.pop("Extra1")
        assert len(exactly) == MAX_FIELDS
        assert client.post(PATH, content=urlencode(exactly), headers=signed_headers(exactly)).status_code == 200
    event = front.store.events.collection.find_one({"_id": f"inbound:{form['MessageSid']}"})
    assert event is not None and event["num_media"] == 10 and len(event["media_urls"]) == 10
    assert event["body"] == form["Body"]


# --------------------------------------------------------------------------- slow bodies
def test_a_body_that_trickles_in_is_answered_408_and_the_connection_closed(front: Front) -> None:
    form = inbound_form(sid("slow"))
    body = urlencode(form).encode()
    with serve_asgi(front.app(body_timeout=0.3)) as url:
        port = urlsplit(url).port or 80
        # The timeout only guards the test against a webhook that never answers.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(request_head(port, len(body), sign(BASE + PATH, form, TOKEN)) + body[:20])
            response = read_response(sock)
            assert (response.status, response.getheader("connection")) == (408, "close")
            assert sock.recv(1) == b""  # closed by the webhook, not left to the client
    front.assert_untouched()


def test_a_client_gone_before_its_body_arrived_is_answered_not_raised(front: Front) -> None:
    """No stack trace for a client that hangs up: a plain answer, nothing stored, its place freed."""
    app = front.app()
    gone = [{"type": "http.request", "body": b"MessageSid=SM", "more_body": True}, {"type": "http.disconnect"}]
    status, text, asked = call_asgi(app, {"Content-Type": FORM_TYPE, "X-Twilio-Signature": FORGED}, b"", gone)
    assert (status, text, asked) == (400, "client disconnected", 2)
    assert app.state.in_flight() == 0
    front.assert_untouched()


# --------------------------------------------------------------------------- requests in flight
def test_past_the_bound_on_requests_in_flight_the_answer_is_503_at_once(front: Front) -> None:
    app = front.app(max_in_flight=2, body_timeout=30)
    held = [inbound_form(sid(f"held {n}")) for n in range(2)]
    sockets: list[tuple[socket.socket, bytes]] = []
    with serve_asgi(app) as url:
        port = urlsplit(url).port or 80
        try:
            for form in held:  # two requests whose bodies are still on their way hold the two places
                body = urlencode(form).encode()
                sock = socket.create_connection(("127.0.0.1", port), timeout=20)
                sock.sendall(request_head(port, len(body), sign(BASE + PATH, form, TOKEN)) + body[:-10])
                sockets.append((sock, body[-10:]))
            wait_until(lambda: app.state.in_flight() == 2, 10, "two requests in flight")

            third = inbound_form(sid("third"))
            refused = httpx.post(url + PATH, content=urlencode(third), headers=signed_headers(third), timeout=20)
            assert (refused.status_code, refused.text, refused.headers["retry-after"]) == (503, BUSY, "1")
            front.assert_untouched()

            for sock, rest in sockets:  # the held requests end well
                sock.sendall(rest)
                assert read_response(sock).status == 200
            wait_until(lambda: app.state.in_flight() == 0, 10, "no request in flight")
            fourth = inbound_form(sid("fourth"))
            accepted = httpx.post(url + PATH, content=urlencode(fourth), headers=signed_headers(fourth), timeout=20)
            assert accepted.status_code == 200
        finally:
            for sock, _ in sockets:
                sock.close()
    stored = {e["_id"] for e in front.store.events.collection.find({"kind": "inbound"}, {"_id": 1})}
    assert stored == {f"inbound:{f['MessageSid']}" for f in [*held, fourth]}


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize(("name", "value"), [("WEBHOOK_MAX_IN_FLIGHT", "0"), ("WEBHOOK_MAX_IN_FLIGHT", "many"),
                                             ("WEBHOOK_BODY_TIMEOUT_SECONDS", "0"),
                                             ("WEBHOOK_BODY_TIMEOUT_SECONDS", "61")])
def test_front_door_settings_refuse_bad_values_in_one_line(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({name: value}, env_file=None)
    assert str(refused.value).startswith(f"{name}: ") and "\n" not in str(refused.value)


def test_relance_webhook_applies_the_front_door_settings(mongo_uri: str, redis_url: str, db_name: str) -> None:
    """build_webhook: the bound, the body deadline, our account and our sender, from the settings."""
    from services.bootstrap import build_webhook

    settings = load_settings({
        "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": BASE, "REDIS_URL": redis_url,
        "MONGODB_URI": urlsplit(mongo_uri)._replace(path=f"/{db_name}").geturl(),
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_WHATSAPP_NUMBER": "whatsapp:+33700000001",
        "WEBHOOK_MAX_IN_FLIGHT": "1", "WEBHOOK_BODY_TIMEOUT_SECONDS": "0.2"}, env_file=None)
    app = build_webhook(settings)
    form = inbound_form(sid("settings"), AccountSid="AC" + "1" * 32, To="whatsapp:+33700000001")
    headers = [(b"content-type", FORM_TYPE.encode()),
               (b"x-twilio-signature", sign(BASE + PATH, form, TOKEN).encode())]

    async def post(receive: Any) -> int:
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "https", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443)}
        await app(scope, receive, send)
        return statuses[0]

    async def scenario() -> tuple[int, int]:
        never = asyncio.Event()

        async def trickle() -> dict[str, Any]:
            await never.wait()  # the body never comes
            return {"type": "http.disconnect"}

        async def whole() -> dict[str, Any]:
            return {"type": "http.request", "body": urlencode(form).encode(), "more_body": False}

        held = asyncio.create_task(post(trickle))
        while app.state.in_flight() < 1:
            await asyncio.sleep(0)
        second = await post(whole)  # WEBHOOK_MAX_IN_FLIGHT=1: no place left
        return await held, second  # WEBHOOK_BODY_TIMEOUT_SECONDS=0.2: the held one times out

    mongo = connect(mongo_uri)
    try:
        assert asyncio.run(scenario()) == (408, 503)
        with TestClient(app) as client:
            for other in ({"To": SENDER}, {"AccountSid": "AC" + "2" * 32}):
                wrong = {**form, **other}
                response = client.post(PATH, content=urlencode(wrong), headers=signed_headers(wrong))
                assert response.status_code == 400, response.text  # not our sender, not our account
            response = client.post(PATH, content=urlencode(form), headers=signed_headers(form))
            assert response.status_code == 200
        assert mongo[db_name].events.count_documents({"kind": "inbound"}) == 1
    finally:
        gc.unfreeze()  # the app froze what the test process had built (as `relance webhook` does)
        mongo.drop_database(db_name)
        mongo.close()
