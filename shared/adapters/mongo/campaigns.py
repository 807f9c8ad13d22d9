"""Campaigns in MongoDB (``campaigns``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.adapters.documents import campaign_doc, campaign_from_doc
from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.models import Campaign


class MongoCampaigns(MongoRepository):
    """See :class:`shared.domain.repositories.CampaignRepository`."""

    collection_name = "campaigns"

    def __init__(self, db: Database[Doc]) -> None:
        super().__init__(db)
        # Campaigns by id as first read: their definitions never change once created (no update,
        # no delete), so one read per process is enough. Only :meth:`definition` uses it.
        self._definitions: dict[str, Campaign] = {}

    def create(self, campaign: Campaign, now: datetime) -> bool:
        """Store a new campaign; False when one with this id exists."""
        try:
            self.collection.insert_one(campaign_doc(campaign, now))
        except DuplicateKeyError:
            return False
        return True

    def get(self, campaign_id: str) -> Campaign | None:
        """A campaign by id."""
        doc = self.collection.find_one({"_id": campaign_id})
        return campaign_from_doc(doc) if doc else None

    def definition(self, campaign_id: str) -> Campaign | None:
        """A campaign's definition, read once per process (its status may be stale)."""
        found = self._definitions.get(campaign_id)
        if found is None:
            found = self.get(campaign_id)
            if found is not None:
                self._definitions[campaign_id] = found
        return found

    def all(self) -> list[Campaign]:
        """Every campaign."""
        return [campaign_from_doc(d) for d in self.collection.find().sort("_id", ASCENDING)]

    def set_status(self, campaign_id: str, status: Literal["active", "paused"], now: datetime) -> bool:
        """Pause or resume a campaign; True if it changed."""
        result = self.collection.update_one({"_id": campaign_id, "status": {"$ne": status}},
                                            {"$set": {"status": status, "updated_at": now}})
        return result.modified_count == 1

    def active_ids(self) -> list[str]:
        """Ids of campaigns that are not paused."""
        return [d["_id"] for d in self.collection.find({"status": "active"}, {"_id": 1})]
