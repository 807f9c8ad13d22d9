"""Payments reported by a payment provider's webhook (Stripe): an invoice paid, part-paid or refunded.

The webhook verifies the provider's signature and reads its event into a :class:`PaymentEvent`;
:func:`apply_payment_event` does the rest. Each provider event is stored once in the webhook's
event store (``stripe:<event id>``, kind ``payment``, already processed: no actor waits for it),
after its effect on the invoice: a replay (the provider sends an event again until it got a 2xx)
finds it stored and changes nothing. A payment is also stored under its own id (Stripe's
PaymentIntent, ``stripe:pi_…``): one payment reported by two events (``checkout.session.completed``
and ``payment_intent.succeeded``, both selected) is counted once. Should the process stop
between the invoice's change and the event's record, the provider's retry finds the payment's id
in the invoice's history and does not count it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.repositories import EventDoc, Repositories
from shared.domain.states import EventState, InvoiceStatus
from shared.errors import TransientError
from shared.ports import TaskQueue
from shared.usecases import outbound
from shared.usecases.invoice_reminders import settle_client

log = logging.getLogger(__name__)

# A payment that lost a race with another (its amount due changed meanwhile) is tried again this often.
PAYMENT_ATTEMPTS = 3
EVENT_KIND = "payment"
# Told of an invoice a payment made paid, with the payment's id in its history (``stripe:pi_…``).
OnPaid = Callable[[Invoice, str], None]


class PaymentKind(StrEnum):
    """What a provider's event means for an invoice."""

    PAID = "paid"  # money received for it
    REFUNDED = "refunded"  # money given back: it is owed again
    IGNORED = "ignored"  # an event type Relance does not act on (or a checkout not paid yet)


class PaymentOutcome(StrEnum):
    """What :func:`apply_payment_event` did."""

    PAID = "paid"  # the invoice is paid
    PART_PAID = "part_paid"  # its amount due lowered: partially_paid
    REOPENED = "reopened"  # refunded: open again
    UNCHANGED = "unchanged"  # nothing to do: already closed (a payment) or already open (a refund)
    UNKNOWN_INVOICE = "unknown_invoice"  # no invoice with that reference (or none named)
    WRONG_CURRENCY = "wrong_currency"  # paid in another currency than the invoice's: left to a person
    IGNORED = "ignored"  # an event type Relance does not act on
    DUPLICATE = "duplicate"  # this event was handled before: nothing done


@dataclass(frozen=True)
class PaymentEvent:
    """A provider's event, as the webhook read it."""

    provider: str  # "stripe": the stored event's id prefix
    event_id: str  # the provider's own id (Stripe's evt_…)
    type: str  # the provider's event type, e.g. checkout.session.completed
    kind: PaymentKind
    reference: str | None = None  # the invoice it names (metadata.invoice, client_reference_id)
    amount_cents: int | None = None  # received, in cents of ``currency``; None: what is due
    currency: str | None = None  # upper-case ISO code
    payment_id: str | None = None  # the payment's own id (a PaymentIntent): a payment is counted once

    @property
    def stored_payment_id(self) -> str | None:
        """The id a payment is stored under, when the event names it."""
        return f"{self.provider}:{self.payment_id}" if self.payment_id and self.kind == PaymentKind.PAID else None

    @property
    def stored_id(self) -> str:
        """The id the event is stored under (its dedupe key)."""
        return f"{self.provider}:{self.event_id}"


def apply_payment_event(store: Repositories, event: PaymentEvent, *, now: datetime,
                        queue: TaskQueue | None = None, on_paid: OnPaid | None = None) -> PaymentOutcome:
    """Apply a provider's event to its invoice, once per event id (source ``payment``).

    A payment marks the invoice paid, or part-paid when it is less than what is due; a refund
    reopens it. Then the client's reminders follow (:func:`shared.usecases.invoice_reminders.settle_client`):
    stopped when nothing is left to pay, drafted again (through ``queue`` when given) when they
    name what changed. An unknown invoice is logged (its reference only) and the event stored all the
    same: the provider's retries would not make it known. Raises TransientError when the store
    cannot be reached (the webhook answers 503 and the provider retries).

    ``on_paid(invoice, payment_ref)`` (the thank-you, :mod:`shared.usecases.payment_thanks`) is
    called when this payment is the one that made the invoice paid, before the event is stored:
    also on the retry of an event whose run stopped in between (the payment found in the
    invoice's history), so it must be idempotent; never for a part payment nor a replay.
    """
    if store.events.get(event.stored_id) is not None:
        log.info("%s event %s already handled", event.provider, event.event_id)
        return PaymentOutcome.DUPLICATE
    payment_id = event.stored_payment_id
    if payment_id is not None and store.events.get(payment_id) is not None:
        outcome = PaymentOutcome.UNCHANGED
        log.info("%s event %s: payment %s already counted", event.provider, event.event_id, event.payment_id)
    else:
        outcome = _apply(store, event, now=now)
        if outcome in _SETTLE and event.reference:
            # Also when unchanged: a retry of an event whose run died before the reminders were settled.
            _settle(store, event.reference, now=now, queue=queue)
            outbound.invoice_paid(store, queue, event.reference, now=now)  # once: its id counts the paid changes
        if on_paid is not None and outcome in (PaymentOutcome.PAID, PaymentOutcome.UNCHANGED):
            _settled(store, event, on_paid)
    done = {"kind": EVENT_KIND, "state": EventState.PROCESSED.value, "processed_at": now, "invoice": event.reference}
    records: list[tuple[str, EventDoc]] = [(event.stored_id, {**done, "type": event.type, "outcome": outcome.value})]
    if payment_id is not None and outcome in (PaymentOutcome.PAID, PaymentOutcome.PART_PAID):
        records.append((payment_id, {**done, "type": "payment", "event": event.event_id}))
    if not store.events.record_many(records, now)[0]:
        log.info("%s event %s was handled by another request meanwhile", event.provider, event.event_id)
    log.info("%s event %s (%s): invoice %s %s", event.provider, event.event_id, event.type,
             event.reference or "-", outcome.value)
    return outcome


def _settle(store: Repositories, reference: str, *, now: datetime, queue: TaskQueue | None) -> None:
    invoice = store.invoices.get(reference)
    if invoice is not None:
        closed = () if invoice.unpaid else (reference,)
        settle_client(store, invoice.contact_id, now=now, queue=queue, closed=closed)


_SETTLE = frozenset({PaymentOutcome.PAID, PaymentOutcome.PART_PAID, PaymentOutcome.REOPENED, PaymentOutcome.UNCHANGED})


def _settled(store: Repositories, event: PaymentEvent, on_paid: OnPaid) -> None:
    """Call ``on_paid`` when this event's payment is the one that made its invoice paid."""
    ref = event.stored_payment_id or event.stored_id
    invoice = store.invoices.get(event.reference) if event.kind == PaymentKind.PAID and event.reference else None
    if invoice is not None and invoice.status == InvoiceStatus.PAID and any(
            change.ref == ref and change.status == InvoiceStatus.PAID for change in invoice.history):
        on_paid(invoice, ref)


def _apply(store: Repositories, event: PaymentEvent, *, now: datetime) -> PaymentOutcome:
    if event.kind == PaymentKind.IGNORED:
        return PaymentOutcome.IGNORED
    invoice = store.invoices.get(event.reference) if event.reference else None
    if invoice is None:
        log.warning("%s event %s (%s) names no known invoice (reference %r): nothing changed", event.provider,
                    event.event_id, event.type, event.reference or "")
        return PaymentOutcome.UNKNOWN_INVOICE
    if event.kind == PaymentKind.REFUNDED:
        moved = store.invoices.reopen(invoice.reference, source=InvoiceSource.PAYMENT, now=now)
        return PaymentOutcome.REOPENED if moved else PaymentOutcome.UNCHANGED
    if event.currency is not None and event.currency != invoice.currency:
        log.warning("%s event %s paid invoice %s in %s, not its %s: left to a person", event.provider,
                    event.event_id, invoice.reference, event.currency, invoice.currency)
        return PaymentOutcome.WRONG_CURRENCY
    return _pay(store, invoice, event.amount_cents, ref=event.stored_payment_id or event.stored_id, now=now)


def _pay(store: Repositories, invoice: Invoice, amount_cents: int | None, *, ref: str,
         now: datetime) -> PaymentOutcome:
    """A payment, tried again when another one changed the amount due meanwhile; counted once per ``ref``
    (its id in the invoice's history), even when the event that carried it was not stored."""
    if amount_cents is not None and amount_cents <= 0:
        return PaymentOutcome.UNCHANGED
    current: Invoice | None = invoice
    for _ in range(PAYMENT_ATTEMPTS):
        if current is None or not current.unpaid:
            return PaymentOutcome.UNCHANGED
        if any(change.ref == ref for change in current.history):
            return PaymentOutcome.UNCHANGED  # counted by a run that died before storing the event
        part = amount_cents is not None and amount_cents < current.amount_due_cents
        if store.invoices.mark_paid(current.reference, source=InvoiceSource.PAYMENT, now=now,
                                    amount_cents=amount_cents if part else None, ref=ref):
            return PaymentOutcome.PART_PAID if part else PaymentOutcome.PAID
        current = store.invoices.get(invoice.reference)
    raise TransientError(f"invoice {invoice.reference}: payment not recorded, its amount due kept changing")
