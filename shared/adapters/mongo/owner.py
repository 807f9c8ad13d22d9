"""The business owner's 24-hour window in MongoDB (``owner``: one small document per owner number)."""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.connection import MongoRepository


class MongoOwner(MongoRepository):
    """See :class:`shared.domain.repositories.OwnerRepository`."""

    collection_name = "owner"

    def touch_inbound(self, phone: str, at: datetime) -> None:
        """Open the owner's 24-hour window: remember their latest message time (only moves forward)."""
        try:
            self.collection.update_one(
                {"_id": phone, "$or": [{"last_inbound_at": None}, {"last_inbound_at": {"$lt": at}}]},
                {"$set": {"last_inbound_at": at, "updated_at": at}, "$setOnInsert": {"created_at": at}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # the document exists with a later time: nothing to move

    def last_inbound(self, phone: str) -> datetime | None:
        """When the owner (``phone``, E.164) last wrote to the sender, if ever."""
        doc = self.collection.find_one({"_id": phone}, {"last_inbound_at": 1})
        return doc.get("last_inbound_at") if doc else None
