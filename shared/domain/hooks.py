"""Outbound webhooks: a business's subscriptions, the events Relance emits to them, their deliveries.

A delivery moves ``pending → delivered`` (a 2xx answer) or ``pending → failed`` (attempts used
up); a failed attempt with attempts left keeps it pending with a later ``next_attempt_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class HookEventType(StrEnum):
    """What a business can subscribe to."""

    INVOICE_PAID = "invoice.paid"
    REPLY_RECEIVED = "reply.received"
    HANDOVER_NEEDED = "handover.needed"
    MESSAGE_FAILED = "message.failed"


class DeliveryState(StrEnum):
    """Where one event's delivery to one subscription stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# Where a delivery may go from each state: a failed attempt keeps it pending; delivered and failed are final.
DELIVERY_MOVES: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.FAILED}),
    DeliveryState.DELIVERED: frozenset(),
    DeliveryState.FAILED: frozenset(),
}
# The repository methods that move a delivery: name → (from, to), each a move the table allows.
DELIVERY_TRANSITIONS: dict[str, tuple[DeliveryState, DeliveryState]] = {
    "retry": (DeliveryState.PENDING, DeliveryState.PENDING),
    "deliver": (DeliveryState.PENDING, DeliveryState.DELIVERED),
    "give_up": (DeliveryState.PENDING, DeliveryState.FAILED),
}


@dataclass(frozen=True)
class Subscription:
    """A URL that receives the events named in ``events``, signed with ``secret``."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    active: bool = True


@dataclass(frozen=True)
class HookEvent:
    """One emitted event; ``id`` is derived from what happened, so it is emitted once."""

    id: str
    type: str
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The JSON body POSTed to the subscribers."""
        return {"id": self.id, "type": self.type, "created_at": self.created_at.isoformat(), "data": self.data}


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to one subscription, with its last attempt's outcome."""

    id: str
    event_id: str
    subscription_id: str
    state: DeliveryState
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None


class HookRepository(Protocol):
    """Subscriptions, emitted events and their deliveries."""

    def add_subscription(self, subscription: Subscription) -> bool:
        """Store a new subscription unless one has its id; True when stored."""
        ...

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        """A subscription, active or not."""
        ...

    def subscriptions(self) -> list[Subscription]:
        """Every active subscription, oldest first."""
        ...

    def remove_subscription(self, subscription_id: str) -> bool:
        """Deactivate a subscription (its deliveries stop); False when there is no active one by that id."""
        ...

    def subscribers(self, event_type: str) -> list[Subscription]:
        """The active subscriptions to ``event_type`` (one indexed read)."""
        ...

    def record_event(self, event: HookEvent, subscription_ids: Sequence[str]) -> list[str]:
        """Store the event once with one pending delivery per subscription; the delivery ids stored now
        (empty when the event was stored already)."""
        ...

    def get_event(self, event_id: str) -> HookEvent | None:
        """A stored event."""
        ...

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        """A delivery."""
        ...

    def claim_attempt(self, delivery_id: str, *, now: datetime, until: datetime) -> Delivery | None:
        """Hold a pending delivery whose attempt is due (not due again before ``until``); None when it is
        not pending, not due, or held by another caller."""
        ...

    def deliver(self, delivery_id: str, *, status: int, now: datetime) -> bool:
        """``pending → delivered`` after a 2xx; False when it was not pending."""
        ...

    def retry(self, delivery_id: str, *, status: int | None, error: str | None, at: datetime,
              now: datetime) -> bool:
        """A failed attempt, another one due ``at`` (stays pending); False when it was not pending."""
        ...

    def give_up(self, delivery_id: str, *, status: int | None, error: str | None, now: datetime) -> bool:
        """``pending → failed`` after the last attempt; False when it was not pending."""
        ...

    def due_deliveries(self, now: datetime, limit: int = 100) -> list[str]:
        """Pending deliveries whose next attempt is due (a lost queue message), oldest first."""
        ...

    def last_delivery(self, subscription_id: str) -> Delivery | None:
        """The subscription's most recently attempted or created delivery."""
        ...
