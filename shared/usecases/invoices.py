"""Invoices: importing a file (``relance invoices import [--sync]``), the commands of a person
(list, paid, cancel), and the migration of the invoice fields earlier versions kept on contacts.

Reading and checking a file's rows is :mod:`shared.invoice_rows`. Every status change goes
through the repository's named transitions, recorded with its source.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.contact_rows import build_contact, is_http_url, normalise_amount, normalise_currency, normalise_date
from shared.domain.invoices import CORRECTABLE, Invoice, InvoiceSource, cents_text, to_cents
from shared.domain.models import new_id
from shared.domain.repositories import Repositories
from shared.domain.states import UNPAID, InvoiceStatus
from shared.errors import Coded, Conflict, InputError, NotFound
from shared.importing import item_values, open_rows
from shared.invoice_rows import INVOICES_FILE, InvoiceRow, build_invoice_row
from shared.phones import mask_phone, normalise_phone
from shared.ports import TaskQueue
from shared.usecases import audit, outbound
from shared.usecases.campaigns import enrol_invoice_campaigns
from shared.usecases.invoice_reminders import settle_client

log = logging.getLogger(__name__)
_ST = InvoiceStatus
# A payment that lost a race with another (its amount due changed meanwhile) is tried again this often.
PAYMENT_ATTEMPTS = 3


@dataclass
class InvoiceImportReport:
    """What an import did: invoices created, changed or unchanged, clients created, rows skipped."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    clients_created: int = 0
    closed_by_sync: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # rows applied in part (what was kept, and why)
    sync_refused: str | None = None
    applied: bool = True  # False: an all-or-nothing import found bad rows and wrote nothing
    # Clients whose invoices this import created, changed or closed (their reminders are settled after),
    # with the references it closed.
    touched: dict[str, set[str]] = field(default_factory=dict)

    def touch(self, contact_id: str, closed: str | None = None) -> None:
        """Note a client whose invoices changed (``closed``: a reference now paid or cancelled)."""
        refs = self.touched.setdefault(contact_id, set())
        if closed:
            refs.add(closed)


def import_invoices(store: Repositories, path: Path, *, now: datetime, default_region: str = "FR",
                    sync: bool = False, queue: TaskQueue | None = None, all_or_nothing: bool = False
                    ) -> InvoiceImportReport:
    """Import an invoices file: each valid row creates or updates its invoice (and a new client), bad rows
    are skipped and reported with their line.

    Idempotent: the same file twice changes nothing the second time. A file never reopens an
    invoice nor raises what is due (a person does); it may lower the amount due or close one.
    ``sync``: the file is the complete list of unpaid invoices, so every unpaid invoice missing
    from it is closed as paid (source ``sync``); not done when a row was rejected (its invoice
    could be one of them) nor for a file that lists no invoice. Then the reminders of each client
    whose invoices changed are settled (:func:`shared.usecases.invoice_reminders.settle_client`).
    ``all_or_nothing`` (the console's upload): every row is checked first, against what is stored
    too; a file with a bad row is reported and nothing is written (``applied`` False).
    """
    source = open_rows(Path(path), INVOICES_FILE)
    report = InvoiceImportReport()
    if all_or_nothing:
        report.errors = check_invoice_rows(store, Path(path), default_region=default_region)
        if report.errors:
            report.applied = False
            return report
    seen: dict[str, int] = {}
    for line, values, problem in source.rows():
        where = f"{source.unit} {line}"
        if values is None:
            report.errors.append(_line_error(source.unit, line, [str(problem)]))
            continue
        row, problems = build_invoice_row(line, values, default_region)
        if row is not None and row.reference in seen:
            problems, row = [f"invoice {row.reference!r} is a duplicate of {source.unit} {seen[row.reference]}"], None
        if row is None:
            report.errors.append(_line_error(source.unit, line, problems))
            continue
        seen[row.reference] = line
        problem = _apply_row(store, row, report, now=now, default_region=default_region, where=where)
        if problem:
            report.errors.append(_line_error(source.unit, line, [str(problem)]))
    if sync:
        _sync(store, set(seen), report, now=now, rows=source.total)
    for contact_id, closed in report.touched.items():
        settle_client(store, contact_id, now=now, queue=queue, closed=closed)
    log.info("invoices import %s: %d created, %d updated, %d unchanged, %d closed by sync, %d rejected",
             Path(path).name, report.created, report.updated, report.unchanged, len(report.closed_by_sync),
             len(report.errors))
    return report


def _line_error(unit: str, line: int, problems: list[str]) -> str:
    """``line 3: a; b``, carrying its line and problems (each may carry its own code) for the console's pages."""
    return Coded(f"{unit} {line}: " + "; ".join(problems), "row", unit=unit, line=line, problems=problems)


def check_invoice_rows(store: Repositories, path: Path, *, default_region: str = "FR") -> list[str]:
    """Every reason an invoices file's row would be skipped, with its line; nothing is written."""
    source = open_rows(Path(path), INVOICES_FILE)
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, values, problem in source.rows():
        if values is None:
            errors.append(_line_error(source.unit, line, [str(problem)]))
            continue
        row, problems = build_invoice_row(line, values, default_region)
        if row is not None and row.reference in seen:
            problems, row = [f"invoice {row.reference!r} is a duplicate of {source.unit} {seen[row.reference]}"], None
        if row is None:
            errors.append(_line_error(source.unit, line, problems))
            continue
        seen[row.reference] = line
        problem = _row_problem(store, row, default_region)
        if problem:
            errors.append(_line_error(source.unit, line, [problem]))
    return errors


def _row_problem(store: Repositories, row: InvoiceRow, default_region: str) -> str | None:
    """Why :func:`_apply_row` would skip a valid row, read without writing (None: it would apply)."""
    existing = store.invoices.get(row.reference)
    known = store.contacts.record_by_phone(row.phone)
    if existing is None:
        if known is not None:
            return None
        contact, problems = build_contact(row.client, default_region)
        if contact is None:
            return _no_client(row, problems)
        return None
    if known is None or known.id != existing.contact_id:
        return _other_client(row)
    if (row.amount_cents, row.currency) != (existing.amount_cents, existing.currency):
        return _amount_changed(row, existing)
    return None


def _no_client(row: InvoiceRow, problems: list[str]) -> str:
    phone = mask_phone(row.phone)
    return Coded(f"no client has phone {phone!r} and the row cannot create one ({'; '.join(problems)})",
                 "row.no_client", phone=repr(phone), problems=problems)


def _other_client(row: InvoiceRow) -> str:
    phone = mask_phone(row.phone)
    return Coded(f"invoice {row.reference!r} belongs to another client than {phone!r}", "row.other_client",
                 reference=row.reference, phone=repr(phone))


def _amount_changed(row: InvoiceRow, existing: Invoice) -> str:
    return Coded(f"invoice {row.reference!r} is stored with {cents_text(existing.amount_cents)} {existing.currency}: "
                 "a changed amount needs a new reference (or a person)", "row.amount_changed",
                 reference=row.reference, amount=cents_text(existing.amount_cents), currency=existing.currency)


@dataclass
class InvoiceFileImport:
    """An invoices file imported, then the invoice campaigns' enrolment it triggers (campaign → enrolled)."""

    report: InvoiceImportReport
    enrolled: dict[str, int] = field(default_factory=dict)


def import_invoice_file(store: Repositories, path: Path, *, now: datetime, by: str, default_region: str = "FR",
                        sync: bool = False, queue: TaskQueue | None = None, all_or_nothing: bool = False
                        ) -> InvoiceFileImport:
    """``relance invoices import`` and the console's upload: :func:`import_invoices`, then (when it wrote)
    every active invoice campaign enrols the clients it now selects."""
    report = import_invoices(store, path, now=now, default_region=default_region, sync=sync, queue=queue,
                             all_or_nothing=all_or_nothing)
    result = InvoiceFileImport(report)
    if report.applied:
        result.enrolled = {campaign_id: enrolment.enrolled
                           for campaign_id, enrolment in enrol_invoice_campaigns(store, now=now).items()}
    if report.applied:
        audit.record(store, by=by, action="invoices.import", target=Path(path).name,
                     detail=f"{report.created} new, {report.updated} updated, {len(report.errors)} skipped", now=now)
    return result


def _client_id(store: Repositories, row: InvoiceRow, report: InvoiceImportReport, *, now: datetime,
               default_region: str) -> tuple[str | None, str | None]:
    """``(contact id, problem)``: the client with the row's phone, created from the row when new."""
    known = store.contacts.record_by_phone(row.phone)
    if known is not None:
        return known.id, None
    contact, problems = build_contact(row.client, default_region)
    if contact is None:
        return None, _no_client(row, problems)
    store.contacts.upsert(contact, now)
    created = store.contacts.record_by_phone(row.phone)
    if created is None:  # pragma: no cover - the upsert just stored it
        return None, "the new client could not be stored"
    report.clients_created += 1
    return created.id, None


def _apply_row(store: Repositories, row: InvoiceRow, report: InvoiceImportReport, *, now: datetime,
               default_region: str, where: str) -> str | None:
    """Create or update the row's invoice; the reason the row is skipped, if it is."""
    existing = store.invoices.get(row.reference)
    contact_id: str | None
    if existing is not None:
        known = store.contacts.record_by_phone(row.phone)
        if known is None or known.id != existing.contact_id:
            return _other_client(row)
        contact_id = known.id
    else:
        contact_id, problem = _client_id(store, row, report, now=now, default_region=default_region)
        if contact_id is None:
            return problem
        invoice = Invoice(id=new_id("in"), reference=row.reference, contact_id=contact_id,
                          amount_cents=row.amount_cents, amount_due_cents=row.amount_due_cents, currency=row.currency,
                          issued_on=row.issued_on, due_date=row.due_date, payment_link=row.payment_link,
                          status=row.status)
        if store.invoices.add(invoice, source=InvoiceSource.IMPORT, now=now):
            report.created += 1
            report.touch(contact_id)
            return None
        existing = store.invoices.get(row.reference)  # another import stored it meanwhile
        if existing is None:  # pragma: no cover
            return f"invoice {row.reference!r} could not be stored"
    if (row.amount_cents, row.currency) != (existing.amount_cents, existing.currency):
        return _amount_changed(row, existing)
    given = {"issued_on": row.issued_on, "due_date": row.due_date, "payment_link": row.payment_link}
    details = {key: value for key, value in given.items() if value is not None}  # an empty cell keeps what is stored
    changed = bool(details) and store.invoices.update_details(row.reference, details, source=InvoiceSource.IMPORT,
                                                              now=now)
    moved, note = _apply_status(store, existing, row, now=now)
    if note:
        report.notes.append(f"{where}: {note}")
    if changed or moved:
        report.updated += 1
        if moved:
            current = store.invoices.get(row.reference)
            report.touch(contact_id, row.reference if current is not None and not current.unpaid else None)
    else:
        report.unchanged += 1
    return None


def _apply_status(store: Repositories, invoice: Invoice, row: InvoiceRow, *, now: datetime
                  ) -> tuple[bool, str | None]:
    """Apply what the file says of a stored invoice's status: ``(moved, note)``."""
    src, ref = InvoiceSource.IMPORT, invoice.reference
    if row.status == invoice.status and row.amount_due_cents == invoice.amount_due_cents:
        return False, None
    if not invoice.unpaid:
        return False, (f"invoice {ref!r} is {invoice.status.value} in Relance: the file's "
                       f"{row.status.value} is not applied (a file never reopens an invoice)")
    if row.status == _ST.CANCELLED:
        return store.invoices.cancel(ref, source=src, now=now), None
    if row.status in (_ST.DISPUTED, _ST.CLAIMED_PAID):
        move = store.invoices.dispute if row.status == _ST.DISPUTED else store.invoices.claim_paid
        if move(ref, source=src, now=now):
            return True, None
    if row.amount_due_cents < invoice.amount_due_cents:
        paid = invoice.amount_due_cents - row.amount_due_cents
        return _pay(store, ref, paid if row.amount_due_cents else None, src, now), None
    if row.amount_due_cents > invoice.amount_due_cents:
        return False, (f"invoice {ref!r} has {cents_text(invoice.amount_due_cents)} {invoice.currency} due in "
                       f"Relance: the file's {cents_text(row.amount_due_cents)} is not applied (a file never "
                       "raises what is due)")
    return False, None


def _sync(store: Repositories, listed: set[str], report: InvoiceImportReport, *, now: datetime, rows: int) -> None:
    """Close as paid (source ``sync``) every unpaid invoice the file does not list."""
    if report.errors:
        report.sync_refused = (f"{len(report.errors)} row(s) rejected: no invoice was closed by the sync "
                               "(a rejected row may be one of them); fix the file and import it again")
        return
    if rows == 0 or not listed:
        report.sync_refused = ("the file lists no invoice: the sync would close every unpaid invoice as paid; "
                               "nothing was closed")
        return
    for invoice in store.invoices.find(statuses=UNPAID):
        if invoice.reference not in listed and _pay(store, invoice.reference, None, InvoiceSource.SYNC, now):
            report.closed_by_sync.append(invoice.reference)
            report.touch(invoice.contact_id, invoice.reference)


def _pay(store: Repositories, reference: str, amount_cents: int | None, source: InvoiceSource, now: datetime,
         queue: TaskQueue | None = None, ref: str | None = None) -> bool:
    """A payment, tried again when another one changed the amount due meanwhile; True when recorded."""
    for _ in range(PAYMENT_ATTEMPTS):
        if store.invoices.mark_paid(reference, source=source, now=now, amount_cents=amount_cents, ref=ref):
            outbound.invoice_paid(store, queue, reference, now=now)
            return True
        current = store.invoices.get(reference)
        if current is None or not current.unpaid:
            return False
    return False


# ------------------------------------------------------------------ a person's commands
def _invoice(store: Repositories, reference: str) -> Invoice:
    found = store.invoices.get(reference.strip())
    if found is None:
        raise NotFound(f"no invoice {reference.strip()!r} (relance invoices list shows them)", code="invoice.unknown",
                       reference=reference.strip())
    return found


def record_payment(store: Repositories, reference: str, *, now: datetime, amount: str | None = None,
                   queue: TaskQueue | None = None, by: str | None = None, due_was: int | None = None,
                   ref: str | None = None) -> Invoice:
    """A person says the invoice is paid (``amount``: a part of it); the invoice as it is now (``by``: who,
    written to the audit log).

    ``due_was``: the amount due (cents) the person saw (a page's form): recorded only while it still is
    (a conditional update), so a form sent twice records one payment. ``ref``: the request's own id (an API
    Idempotency-Key), kept in the invoice's history: the same request run again (its first run's process
    died before it answered) records nothing more. InputError for an unknown
    reference, an invoice that is not unpaid or an amount that is none; Conflict (an InputError) for an
    amount due changed since.
    """
    invoice = _invoice(store, reference)
    if ref is not None and any(change.ref == ref for change in invoice.history):
        return invoice  # recorded by this request's first run already
    cents: int | None = None
    if amount is not None:
        text, implied = normalise_amount(amount)
        if implied and implied != invoice.currency:
            raise InputError(f"invoice {invoice.reference!r} is in {invoice.currency}, not {implied}",
                             code="invoice.currency", reference=invoice.reference, currency=invoice.currency,
                             given=implied)
        cents = to_cents(text)
        if cents <= 0:
            raise InputError("a payment is more than 0", code="payment.positive")
    if not invoice.unpaid:
        raise InputError(f"invoice {invoice.reference!r} is {invoice.status.value}: nothing is due on it",
                         code="invoice.nothing_due", reference=invoice.reference, status=invoice.status.value)
    changed = Conflict(f"invoice {invoice.reference!r} changed since it was shown (this payment may be recorded "
                       "already): nothing was recorded; look at it again", code="invoice.changed_since_shown",
                       reference=invoice.reference)
    if due_was is not None and invoice.amount_due_cents != due_was:
        raise changed
    if due_was is not None and cents is not None and cents < due_was:
        if not store.invoices.pay_part(invoice.reference, due_before=due_was, amount_cents=cents,
                                       source=InvoiceSource.COMMAND, now=now, ref=ref):
            raise changed
        outbound.invoice_paid(store, queue, invoice.reference, now=now)
    elif not _pay(store, invoice.reference, cents, InvoiceSource.COMMAND, now, queue, ref=ref):
        raise InputError(f"invoice {invoice.reference!r} changed meanwhile: look at it again "
                         "(relance invoices list)", code="invoice.changed", reference=invoice.reference)
    if by:
        audit.record(store, by=by, action="invoice.paid", contact_id=invoice.contact_id, target=invoice.reference,
                     detail=f"amount {amount}" if amount is not None else "in full", now=now)
    return _settled(store, invoice.reference, now=now, queue=queue)


def _settled(store: Repositories, reference: str, *, now: datetime, queue: TaskQueue | None) -> Invoice:
    """The invoice as it is now, after its client's reminders were settled."""
    current = _invoice(store, reference)
    settle_client(store, current.contact_id, now=now, queue=queue, closed=() if current.unpaid else (reference,))
    return current


def cancel_invoice(store: Repositories, reference: str, *, now: datetime, queue: TaskQueue | None = None,
                   by: str | None = None) -> Invoice:
    """A person cancels an unpaid invoice; the invoice as it is now (InputError when it is not unpaid).
    ``by``: who, written to the audit log."""
    invoice = _invoice(store, reference)
    if not store.invoices.cancel(invoice.reference, source=InvoiceSource.COMMAND, now=now):
        current = _invoice(store, reference)
        raise InputError(f"invoice {invoice.reference!r} is {current.status.value}: it cannot be cancelled",
                         code="invoice.not_cancellable", reference=invoice.reference, status=current.status.value)
    if by:
        audit.record(store, by=by, action="invoice.cancel", contact_id=invoice.contact_id, target=invoice.reference,
                     now=now)
    return _settled(store, invoice.reference, now=now, queue=queue)


def create_invoice(store: Repositories, values: Mapping[str, Any], *, now: datetime, by: str,
                   default_region: str = "FR", queue: TaskQueue | None = None) -> Invoice:
    """A new invoice from one row's ``values`` (as an invoices file's columns: phone, invoice, amount…),
    checked and applied as an import applies a row (a new client is created from name, language…);
    the client's reminders are then settled. Conflict when the reference exists; InputError listing
    the problems otherwise (nothing stored). The scheduler's hourly enrolment enrols the client in
    the invoice campaigns that select it.
    """
    row_values, problem = item_values(dict(values), INVOICES_FILE)
    if row_values is None:
        raise InputError(f"the invoice {problem}")
    row, problems = build_invoice_row(1, row_values, default_region)
    if row is None:
        raise InputError("; ".join(problems))
    if store.invoices.get(row.reference) is not None:
        raise Conflict(f"invoice {row.reference!r} exists already: change it, or choose another reference")
    report = InvoiceImportReport()
    problem = _apply_row(store, row, report, now=now, default_region=default_region, where="invoice")
    if problem:
        raise InputError(problem)
    if not report.created:
        raise Conflict(f"invoice {row.reference!r} was stored meanwhile")
    for contact_id, closed in report.touched.items():
        settle_client(store, contact_id, now=now, queue=queue, closed=closed)
    log.info("invoice %s created by %s", row.reference, by)
    created = _invoice(store, row.reference)
    audit.record(store, by=by, action="invoice.create", contact_id=created.contact_id, target=created.reference,
                 detail=f"{cents_text(created.amount_cents)} {created.currency}", now=now)
    return created


def update_invoice(store: Repositories, reference: str, changes: Mapping[str, str | None], *, now: datetime,
                   by: str, queue: TaskQueue | None = None) -> Invoice:
    """A person changes an invoice: ``amount`` (open or partly paid: what is due moves by as much),
    ``due_date``, ``issued_on``, ``payment_link`` (null clears these three); then the client's
    reminders are settled as after an import (a ready draft naming old figures is drafted again).

    InputError (nothing changed) for a value an invoices file would refuse.
    """
    invoice = _invoice(store, reference)
    details: dict[str, Any] = {}
    for key in ("due_date", "issued_on"):
        if key in changes:
            raw = changes[key]
            details[key] = date.fromisoformat(_field(key, normalise_date, raw)) if raw and raw.strip() else None
    if "payment_link" in changes:
        link = (changes["payment_link"] or "").strip() or None
        if link is not None and not is_http_url(link):
            raise InputError(f"payment_link {link[:40]!r} is not an http(s) URL")
        details["payment_link"] = link
    cents: int | None = None
    if changes.get("amount") is not None:
        text, implied = normalise_amount(str(changes["amount"]))
        if implied and implied != invoice.currency:
            raise InputError(f"invoice {invoice.reference!r} is in {invoice.currency}, not {implied}",
                             code="invoice.currency", reference=invoice.reference, currency=invoice.currency,
                             given=implied)
        cents = to_cents(text)
        if cents != invoice.amount_cents:
            if invoice.status not in CORRECTABLE:
                raise InputError(f"invoice {invoice.reference!r} is {invoice.status.value}: its amount cannot change")
            paid = invoice.amount_cents - invoice.amount_due_cents
            if cents <= paid:
                raise InputError(f"invoice {invoice.reference!r}: {cents_text(paid)} {invoice.currency} is paid "
                                 "already; an amount must leave something due (else record the payment)")
    changed = bool(details) and store.invoices.update_details(invoice.reference, details,
                                                              source=InvoiceSource.COMMAND, now=now)
    if cents is not None and cents != invoice.amount_cents:
        if not store.invoices.change_amount(invoice.reference, amount_cents=cents, was_cents=invoice.amount_cents,
                                            due_was_cents=invoice.amount_due_cents, source=InvoiceSource.COMMAND,
                                            now=now):
            raise InputError(f"invoice {invoice.reference!r} changed meanwhile: look at it again")
        changed = True
    if changed:
        log.info("invoice %s changed by %s", invoice.reference, by)
        audit.record(store, by=by, action="invoice.update", contact_id=invoice.contact_id, target=invoice.reference,
                     detail=", ".join(sorted(k for k in changes if k in ("amount", *details))), now=now)
    return _settled(store, invoice.reference, now=now, queue=queue)


def _field(key: str, normalise: Any, raw: str) -> str:
    try:
        return str(normalise(raw))
    except InputError as exc:
        raise InputError(f"{key} {exc}") from None


def invoice_line(invoice: Invoice, client: str) -> str:
    """One line of ``relance invoices list``."""
    due = f"{cents_text(invoice.amount_due_cents)} {invoice.currency} due"
    if invoice.amount_due_cents != invoice.amount_cents:
        due += f" of {cents_text(invoice.amount_cents)}"
    when = f"due {invoice.due_date.isoformat()}" if invoice.due_date else "no due date"
    return f"{invoice.reference}  {invoice.status.value}  {due}  {when}  {client}"


def list_invoices(store: Repositories, *, status: str | None = None, phone: str | None = None,
                  default_region: str = "FR") -> list[str]:
    """One line per invoice (of the client with ``phone``, in ``status``), by reference."""
    clients: dict[str, str] = {}
    lines = []
    for invoice in find_invoices(store, status=status, phone=phone, default_region=default_region):
        if invoice.contact_id not in clients:
            record = store.contacts.record(invoice.contact_id)
            clients[invoice.contact_id] = f"{record.phone or '?'}  {record.name or '?'}" if record else "(no client)"
        lines.append(invoice_line(invoice, clients[invoice.contact_id]))
    return lines


def find_invoices(store: Repositories, *, status: str | None = None, phone: str | None = None,
                  default_region: str = "FR", after: str | None = None, limit: int = 0) -> list[Invoice]:
    """The invoices (of the client with ``phone``, in ``status``), by reference (after ``after``, at most
    ``limit``; 0: all); InputError for a bad filter."""
    statuses: list[InvoiceStatus] | None = None
    if status is not None:
        try:
            statuses = [InvoiceStatus(status.strip().lower())]
        except ValueError:
            raise InputError(f"status {status!r} is not one of {', '.join(s.value for s in InvoiceStatus)}",
                             code="filter.status", status=status) from None
    contact_id: str | None = None
    if phone is not None:
        e164 = normalise_phone(phone, default_region)
        record = store.contacts.record_by_phone(e164)
        if record is None:
            raise InputError(f"no client has phone {mask_phone(e164)!r}", code="filter.phone")
        contact_id = record.id
    return store.invoices.find(contact_id=contact_id, statuses=statuses, after=after, limit=limit)


def get_invoice(store: Repositories, reference: str) -> Invoice:
    """The invoice with ``reference`` (NotFound when there is none)."""
    return _invoice(store, reference)


# ------------------------------------------------------------------ migration
@dataclass
class MigrationReport:
    """What the migration of contacts' invoice fields did."""

    created: int = 0
    existing: int = 0
    skipped: list[str] = field(default_factory=list)


def migrate_contact_invoices(store: Repositories, *, now: datetime) -> MigrationReport:
    """One invoice per contact whose fields name one (``invoice_number``, ``amount``…), as earlier versions kept.

    Idempotent (the reference is unique: run twice, it creates nothing twice); run at start-up
    (``relance db init``, the scheduler). The contact keeps its fields: the drafts still read them.
    """
    report = MigrationReport()
    try:
        contacts = store.contacts.find()
    except ValidationError:
        report.skipped.append("a contact record is unreadable: nothing migrated (relance conversation PHONE shows it)")
        log.warning("invoice migration skipped: a contact record is unreadable")
        return report
    known: set[str] | None = None  # every stored reference, read once (not one read per contact)
    for contact in contacts:
        fields = contact.fields
        reference = " ".join(fields.get("invoice_number", "").split())
        if not reference:
            continue
        if known is None:
            known = {invoice.reference for invoice in store.invoices.find()}
        if reference in known:
            report.existing += 1
            continue
        invoice, problem = _migrated(contact.id, reference, fields)
        if invoice is None:
            report.skipped.append(f"contact {contact.id}: {problem}")
        elif store.invoices.add(invoice, source=InvoiceSource.MIGRATION, now=now):
            report.created += 1
        else:
            report.existing += 1
    if report.created or report.skipped:
        log.info("invoice migration: %d created, %d existing, %d skipped", report.created, report.existing,
                 len(report.skipped))
    return report


def _migrated(contact_id: str, reference: str, fields: dict[str, str]) -> tuple[Invoice | None, str | None]:
    try:
        amount, implied = normalise_amount(fields.get("amount", ""))
        currency, problem = normalise_currency(fields.get("currency", ""), implied)
        if problem:
            return None, problem
        due = fields.get("due_date", "").strip()
        link = fields.get("payment_link", "").strip()
        values: dict[str, Any] = {
            "id": new_id("in"), "reference": reference, "contact_id": contact_id, "amount_cents": to_cents(amount),
            "amount_due_cents": to_cents(amount), "currency": currency,
            "due_date": date.fromisoformat(normalise_date(due)) if due else None,
            "payment_link": link if is_http_url(link) else None}
        return Invoice.model_validate(values), None
    except (InputError, ValueError) as exc:
        return None, f"invoice {reference!r}: {exc}"
