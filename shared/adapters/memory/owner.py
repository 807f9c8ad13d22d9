"""The business owner's 24-hour window in memory."""

from __future__ import annotations

from datetime import datetime

from shared.adapters.memory.base import MemoryRepository, before


class MemoryOwner(MemoryRepository):
    """See :class:`shared.domain.repositories.OwnerRepository`."""

    def touch_inbound(self, phone: str, at: datetime) -> None:
        """The owner wrote at ``at`` (only moves forward)."""
        doc = self.docs.setdefault(phone, {"_id": phone, "last_inbound_at": None, "created_at": at})
        if doc.get("last_inbound_at") is None or before(doc["last_inbound_at"], at):
            doc.update({"last_inbound_at": at, "updated_at": at})

    def last_inbound(self, phone: str) -> datetime | None:
        """When the owner last wrote, if ever."""
        doc = self.docs.get(phone)
        return doc.get("last_inbound_at") if doc else None
