"""GET /metrics of a real webhook application over the real stores: latency, gauges, the token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from services.webhook import WebhookDeps, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.reasons import PauseReason
from shared.domain.states import MessageState
from shared.metrics import redis_queue_depths
from shared.queue import QUEUES, DramatiqQueue, make_broker
from tests.integration.test_webhook import BASE, TOKEN, post
from tests.support.webhook_forms import inbound_form, sid

pytestmark = pytest.mark.integration

LATENCY = "relance_webhook_request_duration_seconds"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics answer, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def webhook(store: MongoRepositories, clock: FakeClock, redis_url: str) -> Iterator[TestClient]:
    broker = make_broker(redis_url)
    client = redis.Redis.from_url(redis_url)
    deps = WebhookDeps(store=store, queue=DramatiqQueue(broker), clock=clock, auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: True,
                       queue_depths=lambda: redis_queue_depths(client, broker.namespace, QUEUES))
    with TestClient(create_app(deps), base_url="http://testserver") as test_client:
        yield test_client
    broker.close()
    client.close()


def test_a_signed_inbound_moves_the_latency_histogram_and_the_queue_gauge(
        webhook: TestClient, store: MongoRepositories, clock: FakeClock) -> None:
    store.messages.insert(OutboundMessage(id="c1:ct:0", followup_id="c1:ct", contact_id="ct", campaign_id="c1",
                                          step=0, state=MessageState.READY, kind="freeform", body="Bonjour",
                                          language=Language.FR), clock.now())
    now = clock.now()
    for contact in ("ct1", "ct2"):
        assert store.followups.enrol(contact_id=contact, campaign_id="c1", next_run_at=now, now=now)
    store.followups.pause("c1:ct2", reason=PauseReason.NEEDS_HUMAN, now=now, needs_human="unclear reply")
    before = samples(webhook.get("/metrics").text)
    assert post(webhook, "/whatsapp/webhook", inbound_form(sid(1), body="Je paie demain"))[0] == 200
    answer = webhook.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    after = samples(answer.text)
    route = {"route": "/whatsapp/webhook", "method": "POST", "status": "200"}
    assert value(after, f"{LATENCY}_count", **route) == value(before, f"{LATENCY}_count", **route) + 1
    assert value(after, f"{LATENCY}_sum", **route) > value(before, f"{LATENCY}_sum", **route)
    # The gauges are read from the stores at the scrape: the stored message, the inbound on its queue.
    assert value(after, "relance_messages", state="ready") == 1
    assert value(after, "relance_step_messages", state="ready", step="0") == 1
    assert value(after, "relance_queue_depth", queue="replies", kind="ready") == 1
    assert value(after, "relance_queue_depth", queue="sending", kind="dead") == 0
    assert value(after, "relance_handovers_waiting") == 1
    assert (value(after, "relance_followups", state="scheduled"), value(after, "relance_followups", state="paused")) \
        == (1, 1)
    assert value(after, "relance_store_up") == 1
    # No phone number, no body, in any label.
    assert "612345678" not in answer.text and "demain" not in answer.text


def test_unknown_paths_share_one_label(webhook: TestClient) -> None:
    before = samples(webhook.get("/metrics").text)
    for n in range(3):
        assert webhook.get(f"/no/such/path/{n}").status_code == 404
    after = samples(webhook.get("/metrics").text)
    labels = {"route": "other", "method": "other", "status": "404"}
    assert value(after, f"{LATENCY}_count", **labels) == value(before, f"{LATENCY}_count", **labels) + 3
    assert "/no/such/path" not in webhook.get("/metrics").text


def test_metrics_token_is_required_when_set(store: MongoRepositories, clock: FakeClock) -> None:
    deps = WebhookDeps(store=store, queue=DramatiqQueue(make_broker("redis://127.0.0.1:1/0")), clock=clock,
                       auth_token=TOKEN, public_base_url=BASE, redis_ping=lambda: True,
                       metrics_token="scrape-token-123456")
    with TestClient(create_app(deps)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123456"})
        assert answer.status_code == 200 and "relance_store_up 1.0" in answer.text


def test_a_store_that_does_not_answer_still_gets_a_scrape(store: MongoRepositories, clock: FakeClock) -> None:
    def broken() -> dict[tuple[str, str], int]:
        raise redis.ConnectionError("down")

    deps = WebhookDeps(store=store, queue=DramatiqQueue(make_broker("redis://127.0.0.1:1/0")), clock=clock,
                       auth_token=TOKEN, public_base_url=BASE, redis_ping=lambda: True, queue_depths=broken)
    with TestClient(create_app(deps)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert value(samples(answer.text), "relance_store_up") == 0
