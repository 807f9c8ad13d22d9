"""The audit log in MongoDB (``audit``: one document per entry, its ``_id`` sortable by time)."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.audit import AuditEntry


def _entry(doc: Doc) -> AuditEntry:
    return AuditEntry.model_validate({**doc, "id": doc["_id"]})


class MongoAudit(MongoRepository):
    """See :class:`shared.domain.audit.AuditRepository`."""

    collection_name = "audit"

    def add(self, entry: AuditEntry) -> bool:
        """Insert the entry (its id is the ``_id``)."""
        try:
            self.collection.insert_one({"_id": entry.id, **entry.model_dump(exclude={"id"})})
        except DuplicateKeyError:
            return False
        return True

    def for_contact(self, contact_id: str, limit: int) -> list[AuditEntry]:
        """The client's latest entries (index ``contact_time``)."""
        found = self.collection.find({"contact_id": contact_id}).sort("_id", DESCENDING).limit(limit)
        return [_entry(doc) for doc in found]

    def recent(self, limit: int, before: str | None = None) -> list[AuditEntry]:
        """The latest entries, by ``_id`` (sortable by time)."""
        query: dict[str, Any] = {} if before is None else {"_id": {"$lt": before}}
        return [_entry(doc) for doc in self.collection.find(query).sort("_id", DESCENDING).limit(limit)]
