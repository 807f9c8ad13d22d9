"""Invoices in MongoDB (``invoices``: unique by reference, found by contact and status)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from shared.adapters.documents import invoice_change, invoice_details, invoice_doc, invoice_from_doc
from shared.adapters.mongo.connection import HISTORY_CAP, Doc, MongoRepository
from shared.adapters.transitions import InvoiceTransitions, invoice_move
from shared.domain.invoices import CORRECTABLE, Invoice, InvoiceSource
from shared.domain.states import InvoiceStatus, Transition


class MongoInvoices(MongoRepository, InvoiceTransitions):
    """See :class:`shared.domain.invoices.InvoiceRepository`."""

    collection_name = "invoices"

    def add(self, invoice: Invoice, *, source: InvoiceSource, now: datetime) -> bool:
        """Store a new invoice; False when its reference exists (unique index)."""
        try:
            self.collection.insert_one(invoice_doc(invoice, source=source, now=now))
            return True
        except DuplicateKeyError:
            return False

    def get(self, reference: str) -> Invoice | None:
        """An invoice by reference."""
        doc = self.collection.find_one({"reference": reference})
        return invoice_from_doc(doc) if doc else None

    def find(self, *, contact_id: str | None = None, statuses: Iterable[InvoiceStatus] | None = None,
             after: str | None = None, limit: int = 0, contact_ids: Iterable[str] | None = None) -> list[Invoice]:
        """Invoices of one contact and/or in these statuses, by reference."""
        query: Doc = {}
        if contact_id is not None:
            query["contact_id"] = contact_id
        elif contact_ids is not None:
            query["contact_id"] = {"$in": list(contact_ids)}
        if statuses is not None:
            query["status"] = {"$in": [InvoiceStatus(s).value for s in statuses]}
        if after is not None:
            query["reference"] = {"$gt": after}
        found = self.collection.find(query).sort("reference", ASCENDING).limit(limit)
        return [invoice_from_doc(doc) for doc in found]

    def update_details(self, reference: str, changes: Mapping[str, Any], *, source: InvoiceSource,
                       now: datetime) -> bool:
        """Change an invoice's details; True when something changed."""
        values = invoice_details(changes)
        doc = self.collection.find_one({"reference": reference})
        if doc is None:
            return False
        changed = {key: value for key, value in values.items() if doc.get(key) != value}
        if not changed:
            return False
        entry = invoice_change("updated", InvoiceStatus(doc["status"]), source, now)
        entry["changed"] = sorted(changed)
        result = self.collection.update_one(
            {"_id": doc["_id"], **{key: doc.get(key) for key in changed}},  # unchanged since read
            {"$set": {**changed, "updated_at": now}, "$push": {"history": {"$each": [entry], "$slice": -HISTORY_CAP}}},
        )
        return result.modified_count == 1

    def change_amount(self, reference: str, *, amount_cents: int, was_cents: int, due_was_cents: int,
                      source: InvoiceSource, now: datetime) -> bool:
        """Correct an open or partly paid invoice's amount (conditional on what was read)."""
        due = due_was_cents + amount_cents - was_cents
        if amount_cents < 0 or due <= 0:
            return False
        doc = {"reference": reference, "status": {"$in": [s.value for s in CORRECTABLE]},
               "amount_cents": was_cents, "amount_due_cents": due_was_cents}
        found = self.collection.find_one(doc, {"status": 1})
        if found is None:
            return False
        entry = invoice_change("amount_changed", InvoiceStatus(found["status"]), source, now, amount_due_cents=due)
        result = self.collection.update_one(
            doc, {"$set": {"amount_cents": amount_cents, "amount_due_cents": due, "updated_at": now},
                  "$push": {"history": {"$each": [entry], "$slice": -HISTORY_CAP}}})
        return result.modified_count == 1

    def _move(self, reference: str, move: Transition[InvoiceStatus], *, source: InvoiceSource, now: datetime,
              fields: Doc | None = None, condition: Doc | None = None, ref: str | None = None) -> bool:
        values, entry = invoice_move(move, source=source, now=now, fields=fields, ref=ref)
        query = {"reference": reference, **(condition or {})}
        statuses = [s.value for s in move.source]
        if "status" in query:
            if query["status"] not in statuses:
                return False
        else:
            query["status"] = {"$in": statuses}
        result = self.collection.update_one(
            query, {"$set": values, "$push": {"history": {"$each": [entry], "$slice": -HISTORY_CAP}}})
        return result.modified_count == 1
