"""The demo's Stripe payments: events signed by devtools/demo_payments.py pass the webhook's real check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from devtools.demo_payments import new_webhook_secret, signed_event, stripe_signature
from services.webhook import WebhookDeps, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.states import InvoiceStatus
from shared.fakes import RecordingQueue

pytestmark = pytest.mark.integration

SECRET = new_webhook_secret()


@pytest.fixture
def client(store: MongoRepositories, clock: FakeClock) -> Iterator[TestClient]:
    deps = WebhookDeps(store=store, queue=RecordingQueue(), clock=clock, auth_token="0" * 32,
                       public_base_url="https://relance.example.com", redis_ping=lambda: True,
                       stripe_webhook_secret=SECRET)
    with TestClient(create_app(deps), base_url="http://testserver") as test_client:
        yield test_client


def _invoice(store: MongoRepositories, clock: FakeClock, reference: str, cents: int) -> Invoice:
    invoice = Invoice(id=f"in_{reference}", reference=reference, contact_id="ct1", amount_cents=cents,
                      amount_due_cents=cents, currency="EUR")
    assert store.invoices.add(invoice, source=InvoiceSource.IMPORT, now=clock.now())
    return invoice


def test_the_demo_s_signed_events_pay_each_invoice_once(client: TestClient, store: MongoRepositories,
                                                        clock: FakeClock) -> None:
    assert SECRET.startswith("whsec_") and SECRET != new_webhook_secret()
    for reference, cents in (("FA-2026-012", 76000), ("FA-2026-013", 114000)):
        payload = signed_event(_invoice(store, clock, reference, cents), clock.now())
        for _ in range(2):  # a replay changes nothing
            answer = client.post("/payments/stripe", content=payload,
                                 headers={"Stripe-Signature": stripe_signature(payload, SECRET)})
            assert answer.status_code == 200, answer.text
        invoice = store.invoices.get(reference)
        assert invoice is not None and invoice.status == InvoiceStatus.PAID and invoice.amount_due_cents == 0
        assert [(c.what, c.source.value) for c in invoice.history] == [("created", "import"), ("mark_paid", "payment")]


def test_a_signature_with_another_secret_is_refused(client: TestClient, store: MongoRepositories,
                                                    clock: FakeClock) -> None:
    payload = signed_event(_invoice(store, clock, "FA-2026-012", 76000), clock.now())
    answer = client.post("/payments/stripe", content=payload,
                         headers={"Stripe-Signature": stripe_signature(payload, new_webhook_secret())})
    assert answer.status_code == 400
    invoice = store.invoices.get("FA-2026-012")
    assert invoice is not None and invoice.status == InvoiceStatus.OPEN
