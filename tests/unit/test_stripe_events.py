"""Stripe's events read into payment events: types, references, amounts in cents, what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from services.stripe_webhook import NotAnEvent, read_event, to_cents
from shared.usecases.payments import PaymentKind


def event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_1", "object": "event", "type": event_type, "data": {"object": obj}}


def test_a_paid_checkout_names_its_invoice_amount_and_payment() -> None:
    found = read_event(event("checkout.session.completed", {
        "payment_status": "paid", "amount_total": 25050, "currency": "eur", "payment_intent": "pi_1",
        "metadata": {"invoice": " FA-1 "}, "client_reference_id": "FA-9"}))
    assert (found.kind, found.reference, found.amount_cents, found.currency, found.payment_id) == (
        PaymentKind.PAID, "FA-1", 25050, "EUR", "pi_1")
    assert found.stored_id == "stripe:evt_1" and found.stored_payment_id == "stripe:pi_1"


def test_client_reference_id_when_no_metadata_and_unpaid_checkouts_are_ignored() -> None:
    obj = {"payment_status": "paid", "amount_total": 100, "currency": "eur", "client_reference_id": "FA-2",
           "metadata": {}}
    assert read_event(event("checkout.session.completed", obj)).reference == "FA-2"
    unpaid = read_event(event("checkout.session.completed", {**obj, "payment_status": "unpaid"}))
    assert unpaid.kind == PaymentKind.IGNORED
    later = read_event(event("checkout.session.async_payment_succeeded", obj))
    assert later.kind == PaymentKind.PAID


def test_payment_intents_refunds_and_other_types() -> None:
    intent = read_event(event("payment_intent.succeeded", {"id": "pi_2", "amount": 900, "amount_received": 500,
                                                           "currency": "usd", "metadata": {"invoice": "FA-3"}}))
    assert (intent.kind, intent.amount_cents, intent.payment_id, intent.reference) == (PaymentKind.PAID, 500, "pi_2",
                                                                                       "FA-3")
    refund = read_event(event("charge.refunded", {"id": "ch_1", "metadata": {"invoice": "FA-3"}}))
    assert (refund.kind, refund.reference, refund.stored_payment_id) == (PaymentKind.REFUNDED, "FA-3", None)
    assert read_event(event("invoice.paid", {"id": "in_1"})).kind == PaymentKind.IGNORED


def test_amounts_in_the_smallest_unit_become_cents() -> None:
    assert to_cents(1250, "EUR") == 1250
    assert to_cents(1250, "JPY") == 125000  # zero-decimal: yen
    assert to_cents(12340, "KWD") == 1234  # three-decimal: fils
    assert to_cents(None, "EUR") is None and to_cents(-1, "EUR") is None and to_cents(True, "EUR") is None


@pytest.mark.parametrize("data", [
    [], {"type": "charge.refunded", "data": {"object": {}}}, {"id": "evt_1", "data": {"object": {}}},
    {"id": "evt_1", "type": "charge.refunded"}, {"id": "evt_1", "type": "charge.refunded", "data": {"object": 3}},
    {"id": "x" * 300, "type": "charge.refunded", "data": {"object": {}}},
])
def test_what_is_no_stripe_event_is_refused(data: Any) -> None:
    with pytest.raises(NotAnEvent):
        read_event(data)
