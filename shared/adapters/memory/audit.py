"""The audit log, in memory."""

from __future__ import annotations

from collections.abc import Callable

from shared.adapters.memory.base import Doc, MemoryRepository, limited
from shared.domain.audit import AuditEntry


class MemoryAudit(MemoryRepository):
    """See :class:`shared.domain.audit.AuditRepository`."""

    def add(self, entry: AuditEntry) -> bool:
        """Store the entry (a taken id is refused)."""
        return self._insert({"_id": entry.id, **entry.model_dump(exclude={"id"})})

    def for_contact(self, contact_id: str, limit: int) -> list[AuditEntry]:
        """The client's latest entries, newest first."""
        return self._newest(lambda doc: doc.get("contact_id") == contact_id, limit)

    def recent(self, limit: int, before: str | None = None) -> list[AuditEntry]:
        """The latest entries older than ``before``, newest first."""
        return self._newest(lambda doc: before is None or doc["_id"] < before, limit)

    def _newest(self, match: Callable[[Doc], bool], limit: int) -> list[AuditEntry]:
        docs = sorted(self._where(match), key=lambda doc: doc["_id"], reverse=True)
        return [AuditEntry.model_validate({**doc, "id": doc["_id"]}) for doc in limited(docs, limit)]
