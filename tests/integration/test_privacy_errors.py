"""Adapter errors carry no phone number: not in their text, not in a chained cause.

A translated Twilio error used to be raised ``from`` the vendor exception, so every traceback
(logs, and dramatiq's retry record stored in Redis) carried the request URL, whose query string
holds the recipient (``To=whatsapp%3A%2B336…`` in a list call). Real ``twilio`` SDK, a closed
port or the simulator, a real dramatiq worker over the real Redis test server.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback
from collections.abc import Callable, Iterator

import dramatiq
import httpx
import pytest
import redis

from devtools.simulator import create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.errors import SendDeferred, SendRejected
from shared.fakes import RecordingQueue
from shared.ports import OutboundRequest
from shared.queue import QUEUE_SENDING, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi
from workers.deps import declare_actor

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "privacy-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"


def phone_forms(e164: str) -> list[str]:
    """The ways a French mobile number may be written: +33612345678, 33612345678, 0612345678."""
    return [e164, e164[1:], "0" + e164[3:]]


def leaks(text: str) -> list[str]:
    """The forms of CLIENT found in ``text``."""
    return [form for form in phone_forms(CLIENT) if form in text]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sender(base_url: str) -> TwilioSender:
    return TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=base_url)


def _request() -> OutboundRequest:
    return OutboundRequest(to=CLIENT, body="Bonjour", status_callback="https://relance.example.com/whatsapp/status")


OPERATIONS: dict[str, Callable[[TwilioSender], object]] = {
    "create": lambda sender: sender.send(_request()),
    "list": lambda sender: sender.list_messages(to=CLIENT, limit=10),
    "fetch": lambda sender: sender.fetch_status("SM" + "0" * 32),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_network_errors_are_raised_without_their_cause(operation: str) -> None:
    sender = _sender(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(SendDeferred) as caught:
        OPERATIONS[operation](sender)
    error = caught.value
    assert error.__cause__ is None and error.__suppress_context__
    printed = "".join(traceback.format_exception(error))
    assert "requests.exceptions" not in printed and "urllib3" not in printed
    assert leaks(printed) == []
    assert "network error talking to Twilio (ConnectionError)" in str(error)  # still says what happened


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve_asgi(create_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01)) as url:
        yield url


def test_a_twilio_error_quoting_the_number_keeps_its_code_not_the_number(sim_url: str) -> None:
    """Twilio's texts may quote the recipient; the translated error keeps the code and status only."""
    quoted = f"The 'To' number whatsapp:{CLIENT} is not a valid phone number."
    for status in (400, 503):
        httpx.post(f"{sim_url}/_sim/fail", json={"code": 21211, "status": status, "message": quoted},
                   timeout=5).raise_for_status()
        with pytest.raises((SendRejected, SendDeferred)) as caught:
            _sender(sim_url).send(_request())
        error = caught.value
        assert isinstance(error, SendRejected if status == 400 else SendDeferred)
        assert (error.code, error.status) == (21211, status)
        assert str(error).startswith("Twilio error 21211: ") and "whatsapp:+33*******78 is not a valid" in str(error)
        assert error.__cause__ is None
        assert leaks("".join(traceback.format_exception(error))) == []


def _redis_dump(client: redis.Redis) -> str:
    """Every key and value of the Redis database, as text."""
    parts: list[str] = []
    for key in client.scan_iter():
        kind = client.type(key).decode()
        parts.append(key.decode(errors="replace"))
        if kind == "string":
            parts.append(repr(client.get(key)))
        elif kind == "hash":
            parts.extend(repr(item) for pair in client.hgetall(key).items() for item in pair)
        elif kind == "list":
            parts.extend(repr(item) for item in client.lrange(key, 0, -1))
        elif kind == "set":
            parts.extend(repr(item) for item in client.smembers(key))
        elif kind == "zset":
            parts.extend(repr(item) for item, _ in client.zrange(key, 0, -1, withscores=True))
    return "\n".join(parts)


def test_a_failing_actor_leaves_no_number_in_redis_or_the_logs(store: MongoRepositories, clock: FakeClock,
                                                               redis_url: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """An actor whose Twilio list call fails is retried by dramatiq, which stores the traceback in
    Redis with the message (``options.traceback``) and logs it: neither may show the number."""
    broker = make_broker(redis_url)
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com"})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=_sender(f"http://127.0.0.1:{_closed_port()}"))

    def look_up(deps: App, contact_id: str) -> None:  # as reconciling a send does: list by recipient
        deps.sender.list_messages(to=CLIENT, limit=10)

    actor = declare_actor(broker, deps, look_up, name="privacy_look_up", queue=QUEUE_SENDING, max_retries=3,
                          min_backoff=60_000, max_backoff=60_000)
    client = redis.Redis.from_url(redis_url)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    caplog.set_level(logging.INFO)
    worker.start()
    try:
        actor.send("ct_0123456789abcdef")
        deadline = time.monotonic() + 20
        retried: list[dict[str, object]] = []
        while not retried and time.monotonic() < deadline:  # the retry waits in the delay queue
            retried = [json.loads(raw) for raw in client.hvals(f"relance:{QUEUE_SENDING}.DQ.msgs")]
            time.sleep(0.05)
    finally:
        worker.stop()
        broker.close()
    assert retried, "the failed message was not put back for a retry"
    stored = str(retried[0]["options"].get("traceback", ""))  # type: ignore[union-attr]
    assert "SendDeferred: Twilio error None: network error talking to Twilio" in stored
    assert leaks(_redis_dump(client)) == []
    logged = "\n".join(logging.Formatter().format(r) for r in caplog.records)  # with any traceback
    assert "SendDeferred" in logged and leaks(logged) == []
    client.close()
