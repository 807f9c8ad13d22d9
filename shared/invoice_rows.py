"""An invoices file's row made an invoice: each value checked and normalised, or the reasons it cannot be.

The file is read as a contacts file is (:mod:`shared.importing`: CSV with its header, or JSON, a
list of objects or ``{"invoices": [...]}``); amounts, currencies, dates, links and phones are
read by the same functions as a contact's (:mod:`shared.contact_rows`). Columns: ``phone``,
``invoice`` (the reference) and ``amount`` are required; ``name``, ``language``, ``timezone``
and ``tags`` describe a new client; ``amount_due`` (default: ``amount``), ``currency``,
``issued_on``, ``due_date``, ``payment_link`` and ``status`` (default ``open``) are optional;
other columns are ignored (an accounting export has many).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.contact_rows import (
    STANDARD_COLUMNS,
    field_key,
    is_http_url,
    normalise_amount,
    normalise_currency,
    normalise_date,
    shown,
)
from shared.domain.invoices import to_cents
from shared.domain.states import InvoiceStatus
from shared.errors import Coded, InputError, coded
from shared.importing import FileKind
from shared.phones import normalise_phone

INVOICES_FILE = FileKind(required=("phone", "invoice", "amount"), wrapper="invoices")
_ST = InvoiceStatus


@dataclass(frozen=True)
class InvoiceRow:
    """One valid row: the client's phone (and what describes a new one), and the invoice's values."""

    line: int
    phone: str  # E.164
    client: dict[str, str]  # name, phone, language, timezone, tags: for a client not known yet
    reference: str
    amount_cents: int
    amount_due_cents: int
    currency: str
    issued_on: date | None
    due_date: date | None
    payment_link: str | None
    status: InvoiceStatus


def _status(raw: str) -> InvoiceStatus | None:
    key = field_key(raw) if raw.strip() else "open"
    try:
        return InvoiceStatus(key)
    except ValueError:
        return None


def _date(values: dict[str, str], key: str, problems: list[str]) -> date | None:
    raw = values.get(key, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(normalise_date(raw))
    except InputError as exc:
        problems.append(coded(exc, f"{key} ", field=key))
        return None


def _cents(values: dict[str, str], key: str, problems: list[str]) -> tuple[int | None, str | None]:
    try:
        amount, implied = normalise_amount(values.get(key, ""))
    except InputError as exc:
        problems.append(coded(exc, f"{key} ", field=key) if key != "amount" else coded(exc))
        return None, None
    return to_cents(amount), implied


def build_invoice_row(line: int, values: dict[str, str], default_region: str) -> tuple[InvoiceRow | None, list[str]]:
    """Validate one row's values (keys already normalised); the row or the problems."""
    problems: list[str] = []
    phone: str | None = None
    try:
        phone = normalise_phone(values.get("phone", ""), default_region)
    except InputError as exc:
        problems.append(coded(exc))
    reference = " ".join(values.get("invoice", "").split())
    if not reference:
        problems.append(Coded("invoice (the reference) is empty", "row.reference_empty"))
    elif len(reference) > 64:
        problems.append(f"invoice {shown(reference)} is longer than 64 characters")
    amount, implied = _cents(values, "amount", problems)
    due, due_implied = (amount, None) if not values.get("amount_due", "").strip() else _cents(values, "amount_due",
                                                                                              problems)
    currency, problem = normalise_currency(values.get("currency", ""), implied or due_implied)
    if problem:
        problems.append(problem)
    elif implied and due_implied and implied != due_implied:
        problems.append(f"amount_due's currency {due_implied} is not the amount's {implied}")
    if amount is not None and due is not None and due > amount:
        problems.append("amount_due is more than the amount")
    issued_on, due_date = _date(values, "issued_on", problems), _date(values, "due_date", problems)
    link = values.get("payment_link", "").strip() or None
    if link and not is_http_url(link):
        problems.append(Coded(f"payment_link {shown(link)} is not an http(s) URL", "row.link", value=shown(link)))
    status = _status(values.get("status", ""))
    if status is None:
        problems.append(f"status {shown(values.get('status', ''))} is not one of "
                        f"{', '.join(s.value for s in InvoiceStatus)}")
    if problems or phone is None or amount is None or due is None or status is None:
        return None, problems
    if status == _ST.PAID:
        due = 0
    elif status in (_ST.OPEN, _ST.PARTIALLY_PAID):  # said by the amounts
        status = _ST.PAID if due == 0 else _ST.OPEN if due == amount else _ST.PARTIALLY_PAID
    client = {key: value for key, value in values.items() if key in STANDARD_COLUMNS}
    return InvoiceRow(line=line, phone=phone, client=client, reference=reference, amount_cents=amount,
                      amount_due_cents=due, currency=currency, issued_on=issued_on, due_date=due_date,
                      payment_link=link, status=status), []
