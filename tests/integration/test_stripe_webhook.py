"""POST /payments/stripe on the real MongoDB-compatible server, signed by the stripe SDK's own code."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from starlette.testclient import TestClient

from services.stripe_webhook import MAX_BODY_BYTES
from services.webhook import WebhookDeps, create_app
from shared.adapters.mongo import MongoRepositories, open_repositories
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.states import InvoiceStatus
from shared.fakes import RecordingQueue

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "test0123456789abcdef" * 2
ST = InvoiceStatus


def _deps(store: MongoRepositories, clock: FakeClock, secret: str = SECRET) -> WebhookDeps:
    return WebhookDeps(store=store, queue=RecordingQueue(), clock=clock, auth_token="0" * 32,
                       public_base_url="https://relance.example.com", redis_ping=lambda: True,
                       stripe_webhook_secret=secret)


@pytest.fixture
def client(store: MongoRepositories, clock: FakeClock) -> Iterator[TestClient]:
    for reference, amount in (("FA-1", 125050), ("FA-2", 30000)):
        invoice = Invoice(id=f"in_{reference}", reference=reference, contact_id="ct1", amount_cents=amount,
                          amount_due_cents=amount, currency="EUR")
        assert store.invoices.add(invoice, source=InvoiceSource.IMPORT, now=clock.now())
    with TestClient(create_app(_deps(store, clock)), base_url="http://testserver") as test_client:
        yield test_client


def sign(payload: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, as Stripe makes it: ``t=<time>,v1=<HMAC-SHA256 of "<time>.<body>">``."""
    at = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{at}.{payload}", secret)
    return f"t={at},{stripe.WebhookSignature.EXPECTED_SCHEME}={signature}"


def event(event_type: str, obj: dict[str, Any], event_id: str = "evt_1") -> str:
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "api_version": "2026-09-30",
                       "created": int(time.time()), "livemode": False, "data": {"object": obj}})


def checkout(reference: str = "FA-1", amount: int = 125050, *, status: str = "paid", by: str = "metadata",
             **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": "cs_test_1", "object": "checkout.session", "payment_status": status,
                           "amount_total": amount, "currency": "eur", "payment_intent": "pi_1",
                           "customer_details": {"email": "marie@example.com", "name": "Marie Dupont"}, **extra}
    if by == "metadata":
        obj["metadata"] = {"invoice": reference}
    else:
        obj["client_reference_id"] = reference
    return obj


def post(client: TestClient, payload: str, signature: str | None = "sign") -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = sign(payload) if signature == "sign" else signature
    return client.post("/payments/stripe", content=payload, headers=headers).status_code


def status(store: MongoRepositories, reference: str) -> tuple[ST, int, list[tuple[str, str]]]:
    invoice = store.invoices.get(reference)
    assert invoice is not None
    return invoice.status, invoice.amount_due_cents, [(c.what, c.source.value) for c in invoice.history]


def test_a_paid_checkout_marks_the_invoice_paid_with_source_payment(client: TestClient,
                                                                    store: MongoRepositories) -> None:
    assert post(client, event("checkout.session.completed", checkout())) == 200
    assert status(store, "FA-1") == (ST.PAID, 0, [("created", "import"), ("mark_paid", "payment")])
    assert store.events.get("stripe:evt_1") is not None


def test_client_reference_id_names_the_invoice_too(client: TestClient, store: MongoRepositories) -> None:
    assert post(client, event("checkout.session.completed", checkout("FA-2", 30000, by="client_reference_id"))) == 200
    assert status(store, "FA-2")[:2] == (ST.PAID, 0)


def test_a_tampered_body_is_refused_and_changes_nothing(client: TestClient, store: MongoRepositories) -> None:
    payload = event("checkout.session.completed", checkout(amount=100))
    tampered = payload.replace('"amount_total": 100', '"amount_total": 125050')
    assert tampered != payload
    assert post(client, tampered, signature=sign(payload)) == 400
    assert post(client, payload, signature=sign(payload, secret="whsec_another")) == 400
    old = int(time.time()) - 3600  # outside the SDK's tolerance: a replay of a captured request
    assert post(client, payload, signature=sign(payload, timestamp=old)) == 400
    assert post(client, payload, signature="t=1,v1=nothing") == 400
    assert status(store, "FA-1")[:2] == (ST.OPEN, 125050)
    assert store.events.get("stripe:evt_1") is None


def test_a_missing_signature_is_refused_and_nothing_stored(client: TestClient, store: MongoRepositories) -> None:
    assert post(client, event("checkout.session.completed", checkout()), signature=None) == 400
    assert status(store, "FA-1")[:2] == (ST.OPEN, 125050)
    assert store.events.get("stripe:evt_1") is None


def test_a_signed_body_that_is_no_event_is_refused(client: TestClient, store: MongoRepositories) -> None:
    assert post(client, "not json") == 400
    assert post(client, json.dumps({"id": "evt_1", "type": "charge.refunded"})) == 400
    assert store.events.get("stripe:evt_1") is None


def test_a_replayed_event_is_processed_once(client: TestClient, store: MongoRepositories) -> None:
    payload = event("payment_intent.succeeded", {"id": "pi_9", "object": "payment_intent", "amount": 10000,
                                                 "amount_received": 10000, "currency": "eur",
                                                 "metadata": {"invoice": "FA-1"}})
    assert post(client, payload) == 200
    assert post(client, payload) == 200
    assert status(store, "FA-1")[:2] == (ST.PARTIALLY_PAID, 115050)
    assert [what for what, _ in status(store, "FA-1")[2]] == ["created", "pay_part"]


def test_an_unknown_invoice_is_answered_200_and_changes_nothing(client: TestClient, store: MongoRepositories,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert post(client, event("checkout.session.completed", checkout("FA-404"))) == 200
    assert "FA-404" in caplog.text  # the reference, and nothing of the client's
    assert "marie@example.com" not in caplog.text and "Dupont" not in caplog.text and SECRET not in caplog.text
    assert status(store, "FA-1")[:2] == (ST.OPEN, 125050) and status(store, "FA-2")[:2] == (ST.OPEN, 30000)
    assert store.events.get("stripe:evt_1") is not None


def test_a_partial_amount_leaves_the_invoice_partially_paid(client: TestClient, store: MongoRepositories) -> None:
    assert post(client, event("checkout.session.completed", checkout(amount=25050))) == 200
    assert status(store, "FA-1") == (ST.PARTIALLY_PAID, 100000, [("created", "import"), ("pay_part", "payment")])


def test_an_unpaid_checkout_and_other_event_types_change_nothing(client: TestClient,
                                                                 store: MongoRepositories) -> None:
    assert post(client, event("checkout.session.completed", checkout(status="unpaid"))) == 200
    assert post(client, event("customer.created", {"id": "cus_1", "object": "customer"}, "evt_2")) == 200
    assert status(store, "FA-1")[:2] == (ST.OPEN, 125050)


def test_a_refund_reopens_the_invoice(client: TestClient, store: MongoRepositories) -> None:
    assert post(client, event("checkout.session.completed", checkout())) == 200
    refund = {"id": "ch_1", "object": "charge", "amount": 125050, "amount_refunded": 125050, "refunded": True,
              "currency": "eur", "payment_intent": "pi_1", "metadata": {"invoice": "FA-1"}}
    assert post(client, event("charge.refunded", refund, "evt_2")) == 200
    assert status(store, "FA-1") == (ST.OPEN, 125050, [("created", "import"), ("mark_paid", "payment"),
                                                       ("reopen", "payment")])


def test_without_a_secret_the_route_does_not_exist(store: MongoRepositories, clock: FakeClock) -> None:
    with TestClient(create_app(_deps(store, clock, secret="")), base_url="http://testserver") as test_client:
        assert post(test_client, event("checkout.session.completed", checkout())) == 404


def test_a_body_too_large_is_refused(client: TestClient, store: MongoRepositories) -> None:
    payload = event("checkout.session.completed", checkout(padding="x" * MAX_BODY_BYTES))
    assert post(client, payload) == 413
    assert status(store, "FA-1")[:2] == (ST.OPEN, 125050) and store.events.get("stripe:evt_1") is None


def test_an_unreachable_store_answers_503_so_that_stripe_retries(clock: FakeClock) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    mongo, repos = open_repositories(f"mongodb://127.0.0.1:{dead}/relance", "relance", timeout_ms=100)
    try:
        with TestClient(create_app(_deps(repos, clock)), base_url="http://testserver") as test_client:
            assert post(test_client, event("checkout.session.completed", checkout())) == 503
    finally:
        mongo.close()
