"""Outbound-webhook subscriptions (``hook_subscriptions``), events (``hook_events``) and deliveries
(``hook_deliveries``) in MongoDB.

An event's ``_id`` is derived from what happened: inserting it again is a duplicate, so a
redelivered actor emits nothing twice. A delivery's ``_id`` is ``<event id>><subscription id>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.adapters.hook_docs import (
    attempt_fields,
    delivery_docs,
    delivery_from_doc,
    event_doc,
    event_from_doc,
    subscription_doc,
    subscription_from_doc,
)
from shared.adapters.mongo.connection import DUPLICATE_KEY, Doc, MongoRepository
from shared.domain.hooks import DELIVERY_TRANSITIONS, Delivery, DeliveryState, HookEvent, Subscription
from shared.errors import TransientError

_PENDING = DeliveryState.PENDING.value


def ensure_hook_indexes(db: Database[Doc]) -> None:
    """The subscribers of an event type (each emission's one read), due deliveries, a subscription's last."""
    db["hook_subscriptions"].create_index([("events", ASCENDING), ("active", ASCENDING)], name="by_event")
    db["hook_deliveries"].create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)], name="due")
    db["hook_deliveries"].create_index([("subscription_id", ASCENDING), ("updated_at", DESCENDING)],
                                       name="by_subscription")


class MongoHooks(MongoRepository):
    """See :class:`shared.domain.hooks.HookRepository`."""

    collection_name = "hook_subscriptions"

    def __init__(self, db: Database[Doc]) -> None:
        super().__init__(db)
        self.events: Collection[Doc] = db["hook_events"]
        self.deliveries: Collection[Doc] = db["hook_deliveries"]

    def add_subscription(self, subscription: Subscription) -> bool:
        """Store a new subscription unless one has its id; True when stored."""
        try:
            self.collection.insert_one(subscription_doc(subscription))
        except DuplicateKeyError:
            return False
        return True

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        """A subscription, active or not."""
        doc = self.collection.find_one({"_id": subscription_id})
        return subscription_from_doc(doc) if doc else None

    def subscriptions(self) -> list[Subscription]:
        """Every active subscription, oldest first."""
        docs = self.collection.find({"active": True}).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [subscription_from_doc(doc) for doc in docs]

    def remove_subscription(self, subscription_id: str) -> bool:
        """Deactivate a subscription."""
        result = self.collection.update_one({"_id": subscription_id, "active": True}, {"$set": {"active": False}})
        return result.modified_count == 1

    def subscribers(self, event_type: str) -> list[Subscription]:
        """The active subscriptions to ``event_type`` (the ``by_event`` index)."""
        docs = self.collection.find({"events": event_type, "active": True}).sort("created_at", ASCENDING)
        return [subscription_from_doc(doc) for doc in docs]

    def record_event(self, event: HookEvent, subscription_ids: Sequence[str]) -> list[str]:
        """Store the event once, then its pending deliveries (each once)."""
        try:
            self.events.insert_one(event_doc(event))
        except DuplicateKeyError:
            return []
        docs = delivery_docs(event, list(dict.fromkeys(subscription_ids)))
        if not docs:
            return []
        try:
            self.deliveries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise TransientError(f"MongoDB refused {len(errors)} delivery write(s)") from None
            refused = {error["index"] for error in errors}
            return [str(doc["_id"]) for i, doc in enumerate(docs) if i not in refused]
        return [str(doc["_id"]) for doc in docs]

    def get_event(self, event_id: str) -> HookEvent | None:
        """A stored event."""
        doc = self.events.find_one({"_id": event_id})
        return event_from_doc(doc) if doc else None

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        """A delivery."""
        doc = self.deliveries.find_one({"_id": delivery_id})
        return delivery_from_doc(doc) if doc else None

    def _attempt(self, delivery_id: str, move: str, fields: Doc) -> bool:
        source, target = DELIVERY_TRANSITIONS[move]
        result = self.deliveries.update_one({"_id": delivery_id, "state": source.value},
                                            {"$set": {**fields, "state": target.value}, "$inc": {"attempts": 1}})
        return result.modified_count == 1

    def claim_attempt(self, delivery_id: str, *, now: datetime, until: datetime) -> Delivery | None:
        """Hold a pending, due delivery until ``until`` (one conditional update: one caller wins)."""
        held = self.deliveries.update_one({"_id": delivery_id, "state": _PENDING, "next_attempt_at": {"$lte": now}},
                                          {"$set": {"next_attempt_at": until}})
        if held.modified_count != 1:
            return None
        doc = self.deliveries.find_one({"_id": delivery_id})
        return delivery_from_doc(doc) if doc else None

    def deliver(self, delivery_id: str, *, status: int, now: datetime) -> bool:
        """``pending → delivered``."""
        return self._attempt(delivery_id, "deliver", {**attempt_fields(status, None, now), "next_attempt_at": None})

    def retry(self, delivery_id: str, *, status: int | None, error: str | None, at: datetime,
              now: datetime) -> bool:
        """A failed attempt, the next one due ``at``."""
        return self._attempt(delivery_id, "retry", {**attempt_fields(status, error, now), "next_attempt_at": at})

    def give_up(self, delivery_id: str, *, status: int | None, error: str | None, now: datetime) -> bool:
        """``pending → failed``."""
        return self._attempt(delivery_id, "give_up", {**attempt_fields(status, error, now), "next_attempt_at": None})

    def due_deliveries(self, now: datetime, limit: int = 100) -> list[str]:
        """Pending deliveries due by ``now``, oldest due first (the ``due`` index)."""
        docs = self.deliveries.find({"state": _PENDING, "next_attempt_at": {"$lte": now}}, {"_id": 1}).sort(
            [("next_attempt_at", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [str(doc["_id"]) for doc in docs]

    def last_delivery(self, subscription_id: str) -> Delivery | None:
        """The subscription's most recently updated delivery."""
        docs = list(self.deliveries.find({"subscription_id": subscription_id}).sort(
            [("updated_at", DESCENDING), ("_id", DESCENDING)]).limit(1))
        return delivery_from_doc(docs[0]) if docs else None
