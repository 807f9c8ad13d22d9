"""Outbound-webhook documents as both adapters store them."""

from __future__ import annotations

from typing import Any

from shared.domain.hooks import Delivery, DeliveryState, HookEvent, Subscription

Doc = dict[str, Any]


def delivery_id(event_id: str, subscription_id: str) -> str:
    """One event's delivery to one subscription: its id says which (so it is stored once)."""
    return f"{event_id}>{subscription_id}"


def subscription_doc(sub: Subscription) -> Doc:
    """A subscription as stored."""
    return {"_id": sub.id, "url": sub.url, "events": list(sub.events), "secret": sub.secret,
            "created_at": sub.created_at, "active": sub.active}


def subscription_from_doc(doc: Doc) -> Subscription:
    """A stored subscription."""
    return Subscription(id=str(doc["_id"]), url=doc["url"], events=tuple(doc.get("events") or ()),
                        secret=doc["secret"], created_at=doc["created_at"], active=bool(doc.get("active")))


def event_doc(event: HookEvent) -> Doc:
    """An emitted event as stored."""
    return {"_id": event.id, "type": event.type, "created_at": event.created_at, "data": event.data}


def event_from_doc(doc: Doc) -> HookEvent:
    """A stored event."""
    return HookEvent(id=str(doc["_id"]), type=doc["type"], created_at=doc["created_at"], data=doc.get("data") or {})


def delivery_docs(event: HookEvent, subscription_ids: list[str]) -> list[Doc]:
    """The pending deliveries of a new event, due at once."""
    return [{"_id": delivery_id(event.id, sub), "event_id": event.id, "subscription_id": sub,
             "state": DeliveryState.PENDING.value, "attempts": 0, "next_attempt_at": event.created_at,
             "created_at": event.created_at, "updated_at": event.created_at} for sub in subscription_ids]


def delivery_from_doc(doc: Doc) -> Delivery:
    """A stored delivery."""
    return Delivery(id=str(doc["_id"]), event_id=doc["event_id"], subscription_id=doc["subscription_id"],
                    state=DeliveryState(doc["state"]), attempts=int(doc.get("attempts") or 0),
                    last_status=doc.get("last_status"), last_error=doc.get("last_error"),
                    next_attempt_at=doc.get("next_attempt_at"), updated_at=doc.get("updated_at"))


def attempt_fields(status: int | None, error: str | None, now: Any) -> Doc:
    """What every attempt records."""
    return {"last_status": status, "last_error": error, "last_attempt_at": now, "updated_at": now}
