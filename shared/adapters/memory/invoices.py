"""Invoices in memory (unique by reference, as the MongoDB index makes them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.adapters.documents import invoice_change, invoice_details, invoice_doc, invoice_from_doc
from shared.adapters.memory.base import HISTORY_CAP, Doc, MemoryRepository
from shared.adapters.transitions import InvoiceTransitions, invoice_move
from shared.domain.invoices import CORRECTABLE, Invoice, InvoiceSource
from shared.domain.states import InvoiceStatus, Transition


def _push(doc: Doc, entry: Doc) -> None:
    doc["history"] = [*doc.get("history", []), entry][-HISTORY_CAP:]


class MemoryInvoices(MemoryRepository, InvoiceTransitions):
    """See :class:`shared.domain.invoices.InvoiceRepository`."""

    def _by_reference(self, reference: str) -> Doc | None:
        return next((doc for doc in self.docs.values() if doc.get("reference") == reference), None)

    def add(self, invoice: Invoice, *, source: InvoiceSource, now: datetime) -> bool:
        """Store a new invoice; False when its reference exists."""
        if self._by_reference(invoice.reference) is not None:
            return False
        return self._insert(invoice_doc(invoice, source=source, now=now))

    def get(self, reference: str) -> Invoice | None:
        """An invoice by reference."""
        doc = self._by_reference(reference)
        return invoice_from_doc(doc) if doc else None

    def find(self, *, contact_id: str | None = None, statuses: Iterable[InvoiceStatus] | None = None,
             after: str | None = None, limit: int = 0, contact_ids: Iterable[str] | None = None) -> list[Invoice]:
        """Invoices of one contact and/or in these statuses, by reference."""
        wanted = None if statuses is None else {InvoiceStatus(s).value for s in statuses}
        of = None if contact_ids is None or contact_id is not None else set(contact_ids)

        def match(doc: Doc) -> bool:
            return ((contact_id is None or doc.get("contact_id") == contact_id)
                    and (of is None or doc.get("contact_id") in of)
                    and (wanted is None or doc.get("status") in wanted) and (after is None or doc["reference"] > after))
        found = sorted(self._where(match), key=lambda doc: doc["reference"])
        return [invoice_from_doc(doc) for doc in (found[:limit] if limit else found)]

    def update_details(self, reference: str, changes: Mapping[str, Any], *, source: InvoiceSource,
                       now: datetime) -> bool:
        """Change an invoice's details; True when something changed."""
        values = invoice_details(changes)
        doc = self._by_reference(reference)
        if doc is None:
            return False
        changed = {key: value for key, value in values.items() if doc.get(key) != value}
        if not changed:
            return False
        entry = invoice_change("updated", InvoiceStatus(doc["status"]), source, now)
        entry["changed"] = sorted(changed)
        doc.update({**changed, "updated_at": now})
        _push(doc, entry)
        return True

    def change_amount(self, reference: str, *, amount_cents: int, was_cents: int, due_was_cents: int,
                      source: InvoiceSource, now: datetime) -> bool:
        """Correct an open or partly paid invoice's amount (conditional on what was read)."""
        due = due_was_cents + amount_cents - was_cents
        doc = self._by_reference(reference)
        if (doc is None or amount_cents < 0 or due <= 0 or doc.get("status") not in {s.value for s in CORRECTABLE}
                or (doc.get("amount_cents"), doc.get("amount_due_cents")) != (was_cents, due_was_cents)):
            return False
        doc.update({"amount_cents": amount_cents, "amount_due_cents": due, "updated_at": now})
        _push(doc, invoice_change("amount_changed", InvoiceStatus(doc["status"]), source, now, amount_due_cents=due))
        return True

    def _move(self, reference: str, move: Transition[InvoiceStatus], *, source: InvoiceSource, now: datetime,
              fields: Doc | None = None, condition: Doc | None = None, ref: str | None = None) -> bool:
        doc = self._by_reference(reference)
        if (doc is None or doc.get("status") not in {s.value for s in move.source}
                or any(doc.get(key) != value for key, value in (condition or {}).items())):
            return False
        values, entry = invoice_move(move, source=source, now=now, fields=fields, ref=ref)
        doc.update(values)
        _push(doc, entry)
        return True
