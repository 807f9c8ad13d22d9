"""Outbound webhooks end to end on the real MongoDB-compatible server: a payment through the use case,
the outbound actor's function POSTing over real HTTP to a small threaded receiver, the signature
checked the way docs/webhooks-out.md tells a business to check it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import pytest

from services.bootstrap import register_actors
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.hooks import DeliveryState
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Contact, Language
from shared.domain.rules import Rules
from shared.errors import InputError
from shared.fakes import FakeSender, RecordingQueue
from shared.hook_poster import HttpxPoster
from shared.queue import DramatiqQueue, make_broker
from shared.usecases import outbound
from shared.usecases.context import App
from shared.usecases.invoices import record_payment
from shared.usecases.payments import PaymentEvent, PaymentKind, apply_payment_event
from tests.support.drafters import EchoDrafter
from workers.outbound import deliver_hook

pytestmark = pytest.mark.integration

PHONE = "+33612345678"


@dataclass
class Receiver:
    """A business's endpoint: answers the next code of ``answers`` (then 200) and keeps each request."""

    answers: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                got.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = got.answers.pop(0) if got.answers else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/relance-events"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


@dataclass
class Stack:
    store: MongoRepositories
    clock: FakeClock
    queue: RecordingQueue
    app: App
    poster: HttpxPoster

    def run_actor(self) -> list[str]:
        """Run the outbound actor on every delivery enqueued so far (whatever its delay), in order."""
        asked, self.queue.hooks[:] = list(self.queue.hooks), []
        return [deliver_hook(self.app, self.poster, delivery_id) for delivery_id, _ in asked]


@pytest.fixture
def stack(store: MongoRepositories, clock: FakeClock) -> Iterator[Stack]:
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR), now)
    assert store.invoices.add(Invoice(id="in_FA-1", reference="FA-1", contact_id="ct1", amount_cents=125050,
                                      amount_due_cents=125050), source=InvoiceSource.IMPORT, now=now)
    queue = RecordingQueue()
    app = App.build(Rules(business_name="Atelier Dupont"), store=store, clock=clock, queue=queue,
                    drafter=EchoDrafter(), sender=FakeSender(clock=clock))
    poster = HttpxPoster()
    yield Stack(store, clock, queue, app, poster)
    poster.close()


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (docs/webhooks-out.md): recompute the HMAC of ``<t>.<body>`` and compare."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_a_payment_posts_a_signed_invoice_paid_event(stack: Stack, receiver: Receiver) -> None:
    sub = outbound.add_subscription(stack.store, receiver.url, ["invoice.paid", "reply.received"],
                                    now=stack.clock.now())
    assert sub.secret.startswith("whsec_") and len(sub.secret) > 30
    record_payment(stack.store, "FA-1", now=stack.clock.now(), queue=stack.queue)
    assert stack.run_actor() == ["delivered"]
    ((headers, body),) = receiver.requests
    assert verify(sub.secret, headers["relance-signature"], body)
    assert not verify("whsec_other", headers["relance-signature"], body)
    assert not verify(sub.secret, headers["relance-signature"], body.replace(b"FA-1", b"FA-2"))
    assert headers["relance-signature"].startswith(f"t={int(stack.clock.now().timestamp())},v1=")
    assert headers["content-type"] == "application/json"
    event = json.loads(body)
    assert event["id"] == headers["relance-event-id"] == "invoice.paid:FA-1:1"
    assert event["type"] == "invoice.paid" and event["created_at"] == stack.clock.now().isoformat()
    assert event["data"]["invoice"] == {"reference": "FA-1", "amount_cents": 125050, "currency": "EUR",
                                        "due_date": None}
    assert event["data"]["source"] == "command"
    assert event["data"]["contact"] == {"id": "ct1", "name": "Marie", "phone": PHONE}
    (line,) = outbound.subscription_lines(stack.store)
    assert line.startswith(f"{sub.id}  {receiver.url}  invoice.paid,reply.received  last: delivered after 1 ")
    assert "HTTP 200" in line and sub.secret not in line


def test_a_receiver_answering_500_gets_the_retry_after_its_backoff(stack: Stack, receiver: Receiver) -> None:
    sub = outbound.add_subscription(stack.store, receiver.url, ["invoice.paid"], now=stack.clock.now())
    receiver.answers = [500]
    record_payment(stack.store, "FA-1", now=stack.clock.now(), queue=stack.queue)
    (delivery_id,) = [d for d, _ in stack.queue.hooks]
    assert stack.run_actor() == ["retry"]
    assert stack.queue.hooks == [(delivery_id, 10.0)]  # asked again in 10 s
    assert "pending after 1 attempt(s) (HTTP 500)" in outbound.subscription_lines(stack.store)[0]
    assert stack.run_actor() == ["skipped"] and len(receiver.requests) == 1  # early: not due yet
    stack.clock.advance(outbound.BACKOFF[0])
    stack.queue.deliver_hook(delivery_id)
    assert stack.run_actor() == ["delivered"]
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first[1] == second[1] and first[0]["relance-event-id"] == second[0]["relance-event-id"]
    assert all(verify(sub.secret, headers["relance-signature"], body) for headers, body in receiver.requests)
    assert "delivered after 2 attempt(s) (HTTP 200)" in outbound.subscription_lines(stack.store)[0]


def test_a_receiver_that_never_answers_2xx_is_given_up_after_six_attempts(stack: Stack, receiver: Receiver) -> None:
    outbound.add_subscription(stack.store, receiver.url, ["invoice.paid"], now=stack.clock.now())
    receiver.answers = [503] * 10
    record_payment(stack.store, "FA-1", now=stack.clock.now(), queue=stack.queue)
    (delivery_id,) = [d for d, _ in stack.queue.hooks]
    waits = []
    for _ in range(6):
        outcome = stack.run_actor()
        if outcome == ["retry"]:
            waits.append(stack.queue.hooks[0][1])
            stack.clock.advance(outbound.BACKOFF[len(waits) - 1])
    assert waits == [10.0, 60.0, 600.0, 3600.0, 21600.0]
    assert len(receiver.requests) == 6 and stack.queue.hooks == []
    delivery = stack.store.hooks.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts, delivery.last_status) == (
        DeliveryState.FAILED, 6, 503)
    assert "failed after 6 attempt(s) (HTTP 503)" in outbound.subscription_lines(stack.store)[0]


def test_an_event_nobody_subscribed_to_sends_nothing(stack: Stack, receiver: Receiver) -> None:
    outbound.add_subscription(stack.store, receiver.url, ["reply.received"], now=stack.clock.now())
    record_payment(stack.store, "FA-1", now=stack.clock.now(), queue=stack.queue)
    assert stack.queue.hooks == []
    assert stack.store.hooks.get_event("invoice.paid:FA-1:1") is None
    assert outbound.requeue_due(stack.store, stack.queue, stack.clock.now()) == []
    assert receiver.requests == []
    assert outbound.subscription_lines(stack.store)[0].endswith("last: none yet")


def test_a_redelivered_emission_sends_once(stack: Stack, receiver: Receiver) -> None:
    outbound.add_subscription(stack.store, receiver.url, ["invoice.paid"], now=stack.clock.now())
    paid = PaymentEvent(provider="stripe", event_id="evt_1", type="checkout.session.completed",
                        kind=PaymentKind.PAID, reference="FA-1", amount_cents=125050, currency="EUR",
                        payment_id="pi_1")
    apply_payment_event(stack.store, paid, now=stack.clock.now(), queue=stack.queue)
    # The same payment reported by another event, and a run that emits again: nothing more.
    apply_payment_event(stack.store, PaymentEvent(**{**paid.__dict__, "event_id": "evt_2"}),
                        now=stack.clock.now(), queue=stack.queue)
    outbound.invoice_paid(stack.store, stack.queue, "FA-1", now=stack.clock.now())
    assert len(stack.queue.hooks) == 1
    stack.queue.hooks.append(stack.queue.hooks[0])  # and Redis delivers the actor's message twice
    assert sorted(stack.run_actor()) == ["delivered", "skipped"]
    (only,) = receiver.requests
    assert json.loads(only[1])["data"]["source"] == "payment"


def test_deliveries_emitted_without_a_queue_are_sent_by_the_sweep(stack: Stack, receiver: Receiver) -> None:
    outbound.add_subscription(stack.store, receiver.url, ["invoice.paid"], now=stack.clock.now())
    record_payment(stack.store, "FA-1", now=stack.clock.now())  # no queue: a command line without Redis
    assert stack.queue.hooks == []
    assert outbound.requeue_due(stack.store, stack.queue, stack.clock.now()) == ["invoice.paid:FA-1:1>" +
                                                                                 stack.store.hooks.subscriptions()[0].id]
    assert stack.run_actor() == ["delivered"] and len(receiver.requests) == 1
    assert outbound.requeue_due(stack.store, stack.queue, stack.clock.now()) == []


@pytest.mark.parametrize(("url", "events", "message"), [
    ("http://example.com/hook", ["invoice.paid"], "plain http"),
    ("ftp://example.com/hook", ["invoice.paid"], "not a URL"),
    ("https://example.com/hook", ["invoice.pay"], "unknown event 'invoice.pay'"),
    ("https://example.com/hook", [], "at least one event"),
])
def test_a_bad_subscription_is_refused_and_nothing_stored(stack: Stack, url: str, events: list[str],
                                                          message: str) -> None:
    with pytest.raises(InputError, match=message):
        outbound.add_subscription(stack.store, url, events, now=stack.clock.now())
    assert stack.store.hooks.subscriptions() == []


def test_a_removed_subscription_receives_nothing_more(stack: Stack, receiver: Receiver) -> None:
    sub = outbound.add_subscription(stack.store, receiver.url, ["invoice.paid"], now=stack.clock.now())
    record_payment(stack.store, "FA-1", now=stack.clock.now(), queue=stack.queue)
    outbound.remove_subscription(stack.store, sub.id)
    with pytest.raises(InputError, match="no webhook subscription"):
        outbound.remove_subscription(stack.store, sub.id)
    assert stack.run_actor() == ["failed"] and receiver.requests == []
    assert outbound.subscription_lines(stack.store) == []


def test_the_outbound_worker_on_redis_posts_what_a_payment_emitted(stack: Stack, receiver: Receiver,
                                                                    redis_url: str) -> None:
    """The actor registered by the composition root, consuming the ``outbound`` queue of a real worker."""
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    app = replace(stack.app, queue=queue)
    register_actors(broker, app)
    worker = dramatiq.Worker(broker, queues={"outbound"}, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        sub = outbound.add_subscription(stack.store, receiver.url, ["invoice.paid"], now=stack.clock.now())
        record_payment(stack.store, "FA-1", now=stack.clock.now(), queue=queue)
        deadline = time.monotonic() + 20
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        ((headers, body),) = receiver.requests
        assert verify(sub.secret, headers["relance-signature"], body)
        broker.join("outbound", timeout=10_000)
        delivery = stack.store.hooks.last_delivery(sub.id)
        assert delivery is not None and delivery.state == DeliveryState.DELIVERED
    finally:
        worker.stop()
        broker.close()
