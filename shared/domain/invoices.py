"""Invoices: what a client owes, one document per invoice, with the history of each change.

Amounts are integer cents with their currency (exact: no float ever holds money). A contact
(the client) may owe several invoices; an invoice's ``reference`` is unique in the business.
Its status moves only through the named transitions of :mod:`shared.domain.states`
(``INVOICE_TRANSITIONS``), each recorded in ``history`` with its source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.domain.models import InvoiceSelector
from shared.domain.states import UNPAID, InvoiceStatus

_REFERENCE = re.compile(r"^\S(?:.{0,62}\S)?$")


class InvoiceSource(StrEnum):
    """What made a change to an invoice."""

    IMPORT = "import"  # relance invoices import
    SYNC = "sync"  # relance invoices import --sync: missing from the complete list
    PAYMENT = "payment"  # a payment provider's webhook
    COMMAND = "command"  # a person, through the CLI (later the console)
    REPLY = "reply"  # the client's reply
    MIGRATION = "migration"  # made from a contact's invoice fields (earlier versions)


class InvoiceChange(BaseModel):
    """One change in an invoice's history."""

    model_config = ConfigDict(extra="ignore")

    at: datetime
    source: InvoiceSource
    what: str  # the transition's name, "created" or "updated"
    status: InvoiceStatus  # after the change
    amount_due_cents: int | None = None  # after the change, when it changed it
    ref: str | None = None  # what made it, when it must count once (a payment's id)


class Invoice(BaseModel):
    """An invoice a client (``contact_id``) owes."""

    model_config = ConfigDict(extra="forbid")

    id: str
    reference: str
    contact_id: str
    amount_cents: int = Field(ge=0)
    amount_due_cents: int = Field(ge=0)
    currency: str = "EUR"
    issued_on: date | None = None
    due_date: date | None = None
    payment_link: str | None = None
    status: InvoiceStatus = InvoiceStatus.OPEN
    history: list[InvoiceChange] = Field(default_factory=list)

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not _REFERENCE.match(value):
            raise ValueError("a reference is 1 to 64 characters, without spaces at either end")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("currency must be a 3-letter code such as EUR")
        return value

    @model_validator(mode="after")
    def _due(self) -> Invoice:
        if self.amount_due_cents > self.amount_cents:
            raise ValueError("the amount due cannot exceed the invoice's amount")
        return self

    @property
    def unpaid(self) -> bool:
        """True while the client still owes something on it (what reminders are about)."""
        return self.status in UNPAID


# The data of an invoice a file or a person may change, besides its status and amount due.
DETAILS = ("contact_id", "amount_cents", "currency", "issued_on", "due_date", "payment_link")
# The statuses in which a person may correct an invoice's amount (what is due moves with it).
CORRECTABLE = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID})


def to_cents(amount: str) -> int:
    """Integer cents of a canonical amount (``"1250.50"`` → ``125050``); ValueError when it is none."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not an amount") from None
    cents = value * 100
    if cents != cents.to_integral_value() or cents < 0:
        raise ValueError(f"{amount!r} is not an amount in cents")
    return int(cents)


def cents_text(cents: int) -> str:
    """``125050`` → ``"1250.50"``."""
    return f"{cents // 100}.{cents % 100:02d}"


class InvoiceRepository(Protocol):
    """Invoices, unique by reference; the status moves only by the named transitions, each recorded with its source."""

    def add(self, invoice: Invoice, *, source: InvoiceSource, now: datetime) -> bool:
        """Store a new invoice (its history starts with ``created``); False when its reference exists."""

    def get(self, reference: str) -> Invoice | None:
        """An invoice by reference."""

    def find(self, *, contact_id: str | None = None, statuses: Iterable[InvoiceStatus] | None = None,
             after: str | None = None, limit: int = 0, contact_ids: Iterable[str] | None = None) -> list[Invoice]:
        """Invoices of one contact and/or in these statuses (all when neither is given), by reference (after
        ``after``, at most ``limit`` of them; 0: all); ``contact_ids``: of any of these contacts (one read)."""

    def update_details(self, reference: str, changes: Mapping[str, Any], *, source: InvoiceSource,
                       now: datetime) -> bool:
        """Change an invoice's :data:`DETAILS` (never its status nor amount due); True when something changed."""

    def change_amount(self, reference: str, *, amount_cents: int, was_cents: int, due_was_cents: int,
                      source: InvoiceSource, now: datetime) -> bool:
        """A person corrects the amount of an open or partly paid invoice: ``amount_cents``, and what is due
        moved by as much (what was paid stays paid, so the status stays). False when the invoice is no
        longer open or partly paid, or its amount or amount due is not ``was_cents``/``due_was_cents``
        any more (the caller reads it again)."""

    # ------------------------------------------------------------ named transitions
    def mark_paid(self, reference: str, *, source: InvoiceSource, now: datetime, amount_cents: int | None = None,
                  ref: str | None = None) -> bool:
        """A payment of ``amount_cents`` (None: all that is due): ``→ paid`` when nothing is left to pay, else
        ``→ partially_paid`` with the amount due lowered. False when the invoice is not unpaid, or its amount
        due changed meanwhile (the caller reads it again). ``ref`` (the payment's id) is kept in the
        history entry, so that a caller can tell a payment already counted."""

    def pay_part(self, reference: str, *, due_before: int, amount_cents: int, source: InvoiceSource,
                 now: datetime, ref: str | None = None) -> bool:
        """A payment below what is due: ``→ partially_paid``, the amount due lowered by ``amount_cents``, only
        while it is still ``due_before`` (False otherwise: a form sent twice records one payment)."""

    def cancel(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """An unpaid invoice ``→ cancelled``: nothing is owed on it any more."""

    def reopen(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``paid|cancelled|disputed|claimed_paid → open``; a paid one owes its whole amount again."""

    def dispute(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``open|partially_paid|claimed_paid → disputed``: the client contests it."""

    def claim_paid(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``open|partially_paid|disputed → claimed_paid``: the client says it is paid, not confirmed yet."""


# ------------------------------------------------------------------ what an invoice campaign covers
# The statuses a reminder names: a disputed or claimed-paid invoice waits for a person instead.
REMINDED = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID})


def _order(invoice: Invoice) -> tuple[date, str]:
    return invoice.due_date or invoice.issued_on or date.max, invoice.reference


def covered_invoices(selector: InvoiceSelector, invoices: Iterable[Invoice]) -> list[Invoice]:
    """The invoices an invoice campaign's follow-up names: open or part-paid with at least the
    selector's ``min_amount`` due, oldest due date first."""
    floor = max(selector.min_amount_cents, 1)
    return sorted((i for i in invoices if i.status in REMINDED and i.amount_due_cents >= floor), key=_order)


def overdue_invoices(selector: InvoiceSelector, invoices: Iterable[Invoice], today: date) -> list[Invoice]:
    """The covered invoices at least ``overdue_days`` past their due date (no due date: due): what
    enrols a client."""
    return [i for i in covered_invoices(selector, invoices)
            if i.due_date is None or (today - i.due_date).days >= selector.overdue_days]


def oldest_due_date(invoices: Iterable[Invoice]) -> date | None:
    """The earliest due date among ``invoices`` (None when none has one)."""
    return min((i.due_date for i in invoices if i.due_date is not None), default=None)


def dues_key(invoices: Iterable[Invoice]) -> str:
    """What a reminder states about ``invoices``: each reference with its amount due and currency.
    A draft whose key no longer matches the client's invoices is out of date."""
    return ";".join(sorted(f"{i.reference}={i.amount_due_cents}{i.currency}" for i in invoices))
