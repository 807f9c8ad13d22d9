"""Campaigns in memory."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.adapters.documents import campaign_doc, campaign_from_doc
from shared.adapters.memory.base import MemoryRepository
from shared.domain.models import Campaign


class MemoryCampaigns(MemoryRepository):
    """See :class:`shared.domain.repositories.CampaignRepository`."""

    def create(self, campaign: Campaign, now: datetime) -> bool:
        """Store a new campaign; False when one with this id exists."""
        return self._insert(campaign_doc(campaign, now))

    def get(self, campaign_id: str) -> Campaign | None:
        """A campaign by id."""
        doc = self._get(campaign_id)
        return campaign_from_doc(doc) if doc else None

    def definition(self, campaign_id: str) -> Campaign | None:
        """A campaign's definition (no cache needed in memory)."""
        return self.get(campaign_id)

    def all(self) -> list[Campaign]:
        """Every campaign, by id."""
        return [campaign_from_doc(doc) for doc in sorted(self._where(lambda doc: True), key=lambda doc: doc["_id"])]

    def set_status(self, campaign_id: str, status: Literal["active", "paused"], now: datetime) -> bool:
        """Pause or resume a campaign; True if it changed."""
        doc = self.docs.get(campaign_id)
        if doc is None or doc.get("status") == status:
            return False
        doc.update({"status": status, "updated_at": now})
        return True

    def active_ids(self) -> list[str]:
        """Ids of campaigns that are not paused."""
        return [key for key, doc in self.docs.items() if doc.get("status") == "active"]
