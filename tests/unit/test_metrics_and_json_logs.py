"""The counters where work happens (sends, Twilio errors by code, reply intents) and LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date

import pytest
from prometheus_client import REGISTRY

from services.bootstrap import configure_logging
from shared.clock import FakeClock
from shared.domain.models import Language
from shared.domain.states import MessageState
from shared.errors import SendRejected
from shared.language.classifier import OfflineClassifier
from shared.metrics import MeteredClassifier, MeteredSender
from shared.ports import ClassifyRequest
from shared.settings import load_settings
from shared.usecases.drafting import draft_followup
from shared.usecases.sending import send_message
from tests.unit.usecases.sending_world import FOLLOWUP_ID, PHONE, fake_twilio, message, world

MESSAGE_ID = f"{FOLLOWUP_ID}:0"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_send_through_the_use_case_counts_once(clock: FakeClock) -> None:
    app = world(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    app.sender = MeteredSender(fake_twilio(app))
    before = sample("relance_sends_total")
    assert send_message(app, MESSAGE_ID) is not None
    assert send_message(app, MESSAGE_ID) is None  # a second delivery: nothing reaches Twilio, nothing counted
    assert sample("relance_sends_total") == before + 1


def test_a_twilio_refusal_counts_its_code(clock: FakeClock) -> None:
    app = world(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    twilio = fake_twilio(app)
    twilio.fail_with = SendRejected(63024, "invalid recipient", 400)
    app.sender = MeteredSender(twilio)
    sends = sample("relance_sends_total")
    errors = sample("relance_twilio_errors_total", code="63024", kind="rejected")
    send_message(app, MESSAGE_ID)
    assert message(app, MESSAGE_ID).state == MessageState.FAILED
    assert sample("relance_twilio_errors_total", code="63024", kind="rejected") == errors + 1
    assert sample("relance_sends_total") == sends


def test_reply_intents_are_counted_by_intent() -> None:
    classifier = MeteredClassifier(OfflineClassifier())
    request = ClassifyRequest(text="STOP", language=Language.FR, facts={}, today=date(2026, 3, 2),
                              business_name="Atelier")
    reading = OfflineClassifier().classify(request)
    before = sample("relance_reply_intents_total", intent=reading.intent.value, source=reading.source)
    assert classifier.classify(request) == reading
    assert sample("relance_reply_intents_total", intent=reading.intent.value, source=reading.source) == before + 1


# ------------------------------------------------------------------ LOG_FORMAT=json
@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, raising = root.handlers[:], root.level, logging.raiseExceptions
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.raiseExceptions = raising


def test_json_lines_are_parseable_and_masked(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    token = "tok_0123456789abcdef0123456789ab"
    configure_logging(load_settings({"LOG_FORMAT": "json", "TWILIO_AUTH_TOKEN": token}))
    log = logging.getLogger("shared.usecases.sending")
    log.warning("message=%s to=%s rejected", "c1:ct1:0", PHONE,
                extra={"phone": PHONE, "code": 63024, "color_message": f"\x1b[1m{PHONE}"})
    try:
        raise ValueError(f"no such number {PHONE} ({token})")
    except ValueError:
        logging.getLogger("relance").error("failed for %s", f"whatsapp:{PHONE}", exc_info=True)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert {"time", "level", "logger", "message"} <= set(first)
    assert (first["level"], first["logger"]) == ("WARNING", "shared.usecases.sending")
    assert first["message"] == "message=c1:ct1:0 to=+33*******78 rejected"
    assert (first["phone"], first["code"]) == ("+33*******78", 63024) and "color_message" not in first
    assert second["message"] == "failed for whatsapp:+33*******78"
    assert "ValueError: no such number +33*******78 (***)" in second["exception"]
    assert PHONE not in err and PHONE[1:] not in err and token not in err


def test_text_stays_the_default(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(load_settings({}))
    logging.getLogger("relance").warning("to=%s", PHONE)
    err = capsys.readouterr().err
    assert err.rstrip().endswith("WARNING relance: to=+33*******78")
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)


def test_a_wrong_log_format_is_refused() -> None:
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings({"LOG_FORMAT": "xml"})


# ------------------------------------------------------------------ workers
def test_worker_actor_messages_are_counted_and_served_on_metrics_port() -> None:
    import socket

    import dramatiq
    import httpx
    from dramatiq.brokers.stub import StubBroker

    from services.bootstrap import serve_metrics
    from shared.metrics import ActorMetrics

    broker = StubBroker()
    broker.add_middleware(ActorMetrics())

    @dramatiq.actor(broker=broker, queue_name="drafting", actor_name="metrics_probe", max_retries=0)
    def probe(fail: bool) -> None:
        if fail:
            raise ValueError("no")

    labels = {"queue": "drafting", "actor": "metrics_probe"}
    ok, failed = sample("relance_actor_messages_total", outcome="ok", **labels), \
        sample("relance_actor_messages_total", outcome="failed", **labels)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        probe.send(False)
        probe.send(False)
        probe.send(True)
        broker.join("drafting", fail_fast=False)
        worker.join()
    finally:
        worker.stop()
    assert sample("relance_actor_messages_total", outcome="ok", **labels) == ok + 2
    assert sample("relance_actor_messages_total", outcome="failed", **labels) == failed + 1
    assert sample("relance_actor_duration_seconds_count", **labels) >= 3

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    serve_metrics(load_settings({"METRICS_PORT": str(port)}))
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'relance_actor_messages_total{actor="metrics_probe",outcome="ok",queue="drafting"}' in text
    # A port already taken: the process goes on without metrics.
    serve_metrics(load_settings({"METRICS_PORT": str(port)}))
