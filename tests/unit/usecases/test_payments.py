"""Payment events on the in-memory repositories: paid, part-paid, refunded, unknown, replayed, counted once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from shared.adapters.memory import MemoryRepositories, memory_repositories
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.states import EventState, InvoiceStatus
from shared.usecases.payments import PaymentEvent, PaymentKind, PaymentOutcome, apply_payment_event

ST, OUT = InvoiceStatus, PaymentOutcome


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryRepositories:
    repos = memory_repositories()
    for reference, due, status in (("FA-1", 125050, ST.OPEN), ("FA-2", 0, ST.PAID), ("FA-3", 30000, ST.OPEN)):
        invoice = Invoice(id=f"in_{reference}", reference=reference, contact_id="ct1", amount_cents=max(due, 5000),
                          amount_due_cents=due, currency="EUR", status=status)
        assert repos.invoices.add(invoice, source=InvoiceSource.IMPORT, now=clock.now())
    return repos


def paid(reference: str | None = "FA-1", *, event_id: str = "evt_1", amount: int | None = None,
         currency: str | None = "EUR", payment_id: str | None = None, **extra: Any) -> PaymentEvent:
    return PaymentEvent("stripe", event_id, "payment_intent.succeeded", PaymentKind.PAID, reference, amount, currency,
                        payment_id, **extra)


def state(store: MemoryRepositories, reference: str) -> tuple[ST, int, list[tuple[str, str]]]:
    invoice = store.invoices.get(reference)
    assert invoice is not None
    return invoice.status, invoice.amount_due_cents, [(c.what, c.source.value) for c in invoice.history]


def test_a_payment_marks_the_invoice_paid_with_source_payment_and_stores_the_event(
        store: MemoryRepositories, clock: FakeClock) -> None:
    assert apply_payment_event(store, paid(amount=125050), now=clock.now()) == OUT.PAID
    assert state(store, "FA-1") == (ST.PAID, 0, [("created", "import"), ("mark_paid", "payment")])
    stored = store.events.get("stripe:evt_1")
    assert stored is not None and stored.kind == "payment" and stored.state == EventState.PROCESSED
    assert store.events.count_waiting(["payment", "inbound", "status"]) == 0  # no actor waits for it


def test_a_replayed_event_is_applied_once(store: MemoryRepositories, clock: FakeClock) -> None:
    assert apply_payment_event(store, paid(amount=10000), now=clock.now()) == OUT.PART_PAID
    assert apply_payment_event(store, paid(amount=10000), now=clock.now()) == OUT.DUPLICATE
    assert state(store, "FA-1")[:2] == (ST.PARTIALLY_PAID, 115050)


def test_a_part_payment_is_counted_once_when_its_event_was_not_stored(store: MemoryRepositories,
                                                                       clock: FakeClock) -> None:
    """A crash after the invoice's change and before the event's record: Stripe's retry counts nothing."""
    first = paid(amount=10000, payment_id="pi_1")
    assert apply_payment_event(store, first, now=clock.now()) == OUT.PART_PAID
    for key in (first.stored_id, first.stored_payment_id):
        assert key is not None
        store.events.docs.pop(key)  # the records the crash lost
    assert store.events.get(first.stored_id) is None
    assert apply_payment_event(store, first, now=clock.now()) == OUT.UNCHANGED
    assert state(store, "FA-1")[:2] == (ST.PARTIALLY_PAID, 115050)
    assert apply_payment_event(store, first, now=clock.now()) == OUT.DUPLICATE  # stored this time


def test_a_smaller_amount_is_a_part_payment_and_the_rest_pays_it(store: MemoryRepositories, clock: FakeClock) -> None:
    assert apply_payment_event(store, paid(amount=25050), now=clock.now()) == OUT.PART_PAID
    assert state(store, "FA-1")[:2] == (ST.PARTIALLY_PAID, 100000)
    assert apply_payment_event(store, paid(event_id="evt_2", amount=100000), now=clock.now()) == OUT.PAID
    assert state(store, "FA-1")[:2] == (ST.PAID, 0)


def test_an_event_without_amount_pays_what_is_due(store: MemoryRepositories, clock: FakeClock) -> None:
    assert apply_payment_event(store, paid("FA-3", currency=None), now=clock.now()) == OUT.PAID
    assert state(store, "FA-3")[:2] == (ST.PAID, 0)


def test_one_payment_reported_by_two_events_is_counted_once(store: MemoryRepositories, clock: FakeClock) -> None:
    checkout = PaymentEvent("stripe", "evt_a", "checkout.session.completed", PaymentKind.PAID, "FA-1", 20000, "EUR",
                            "pi_1")
    assert apply_payment_event(store, checkout, now=clock.now()) == OUT.PART_PAID
    assert apply_payment_event(store, paid(event_id="evt_b", amount=20000, payment_id="pi_1"),
                               now=clock.now()) == OUT.UNCHANGED
    assert state(store, "FA-1")[:2] == (ST.PARTIALLY_PAID, 105050)
    assert store.events.get("stripe:evt_b") is not None


def test_a_refund_reopens_the_invoice_for_its_whole_amount(store: MemoryRepositories, clock: FakeClock) -> None:
    refund = PaymentEvent("stripe", "evt_r", "charge.refunded", PaymentKind.REFUNDED, "FA-2")
    assert apply_payment_event(store, refund, now=clock.now()) == OUT.REOPENED
    assert state(store, "FA-2") == (ST.OPEN, 5000, [("created", "import"), ("reopen", "payment")])
    again = PaymentEvent("stripe", "evt_r2", "charge.refunded", PaymentKind.REFUNDED, "FA-2")
    assert apply_payment_event(store, again, now=clock.now()) == OUT.UNCHANGED


def test_an_unknown_invoice_is_logged_by_reference_and_stored_once(
        store: MemoryRepositories, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.usecases.payments"):
        assert apply_payment_event(store, paid("FA-404", amount=100), now=clock.now()) == OUT.UNKNOWN_INVOICE
    assert "FA-404" in caplog.text
    assert store.events.get("stripe:evt_1") is not None
    assert apply_payment_event(store, paid("FA-404", amount=100), now=clock.now()) == OUT.DUPLICATE
    assert apply_payment_event(store, paid(None, event_id="evt_n"), now=clock.now()) == OUT.UNKNOWN_INVOICE
    assert [state(store, ref)[0] for ref in ("FA-1", "FA-2", "FA-3")] == [ST.OPEN, ST.PAID, ST.OPEN]


def test_another_currency_or_a_closed_invoice_changes_nothing(store: MemoryRepositories, clock: FakeClock) -> None:
    assert apply_payment_event(store, paid(amount=125050, currency="USD"), now=clock.now()) == OUT.WRONG_CURRENCY
    assert apply_payment_event(store, paid("FA-2", event_id="evt_2"), now=clock.now()) == OUT.UNCHANGED
    assert state(store, "FA-1")[:2] == (ST.OPEN, 125050) and state(store, "FA-2")[:2] == (ST.PAID, 0)


def test_other_event_types_are_ignored_and_stored(store: MemoryRepositories, clock: FakeClock) -> None:
    other = PaymentEvent("stripe", "evt_o", "customer.created", PaymentKind.IGNORED, "FA-1")
    assert apply_payment_event(store, other, now=clock.now()) == OUT.IGNORED
    assert state(store, "FA-1")[:2] == (ST.OPEN, 125050)
    assert store.events.get("stripe:evt_o") is not None
