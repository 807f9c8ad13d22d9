"""Outbound-webhook subscriptions, events and deliveries in memory (as in MongoDB)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from datetime import datetime

from shared.adapters.hook_docs import (
    Doc,
    attempt_fields,
    delivery_docs,
    delivery_from_doc,
    event_doc,
    event_from_doc,
    subscription_doc,
    subscription_from_doc,
)
from shared.adapters.memory.base import MemoryRepository
from shared.domain.hooks import DELIVERY_TRANSITIONS, Delivery, DeliveryState, HookEvent, Subscription

_PENDING = DeliveryState.PENDING.value


class MemoryHooks(MemoryRepository):
    """See :class:`shared.domain.hooks.HookRepository`."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self.events: dict[str, Doc] = {}
        self.deliveries: dict[str, Doc] = {}

    def add_subscription(self, subscription: Subscription) -> bool:
        """Store a new subscription unless one has its id; True when stored."""
        return self._insert(subscription_doc(subscription))

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        """A subscription, active or not."""
        doc = self._get(subscription_id)
        return subscription_from_doc(doc) if doc else None

    def subscriptions(self) -> list[Subscription]:
        """Every active subscription, oldest first."""
        docs = sorted(self._where(lambda d: bool(d.get("active"))), key=lambda d: (d["created_at"], d["_id"]))
        return [subscription_from_doc(doc) for doc in docs]

    def remove_subscription(self, subscription_id: str) -> bool:
        """Deactivate a subscription."""
        doc = self.docs.get(subscription_id)
        if doc is None or not doc.get("active"):
            return False
        doc["active"] = False
        return True

    def subscribers(self, event_type: str) -> list[Subscription]:
        """The active subscriptions to ``event_type``."""
        return [sub for sub in self.subscriptions() if event_type in sub.events]

    def record_event(self, event: HookEvent, subscription_ids: Sequence[str]) -> list[str]:
        """Store the event once with its pending deliveries."""
        if event.id in self.events:
            return []
        self.events[event.id] = copy.deepcopy(event_doc(event))
        stored = []
        for doc in delivery_docs(event, list(dict.fromkeys(subscription_ids))):
            self.deliveries[doc["_id"]] = doc
            stored.append(str(doc["_id"]))
        return stored

    def get_event(self, event_id: str) -> HookEvent | None:
        """A stored event."""
        doc = self.events.get(event_id)
        return event_from_doc(copy.deepcopy(doc)) if doc else None

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        """A delivery."""
        doc = self.deliveries.get(delivery_id)
        return delivery_from_doc(doc) if doc else None

    def _attempt(self, delivery_id: str, move: str, fields: Doc) -> bool:
        source, target = DELIVERY_TRANSITIONS[move]
        doc = self.deliveries.get(delivery_id)
        if doc is None or doc["state"] != source.value:
            return False
        doc.update({**fields, "state": target.value})
        doc["attempts"] = int(doc.get("attempts") or 0) + 1
        return True

    def claim_attempt(self, delivery_id: str, *, now: datetime, until: datetime) -> Delivery | None:
        """Hold a pending, due delivery until ``until``."""
        doc = self.deliveries.get(delivery_id)
        due = doc.get("next_attempt_at") if doc is not None else None
        if doc is None or doc["state"] != _PENDING or due is None or due > now:
            return None
        doc["next_attempt_at"] = until
        return delivery_from_doc(doc)

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
        """Pending deliveries due by ``now``, oldest due first."""
        due = [d for d in self.deliveries.values()
               if d["state"] == _PENDING and d.get("next_attempt_at") is not None and d["next_attempt_at"] <= now]
        return [str(d["_id"]) for d in sorted(due, key=lambda d: (d["next_attempt_at"], d["_id"]))[:limit]]

    def last_delivery(self, subscription_id: str) -> Delivery | None:
        """The subscription's most recently updated delivery."""
        mine = [d for d in self.deliveries.values() if d["subscription_id"] == subscription_id]
        if not mine:
            return None
        return delivery_from_doc(max(mine, key=lambda d: (d["updated_at"], d["_id"])))
