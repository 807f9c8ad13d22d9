"""Outbound webhooks: a business's subscriptions, the events emitted to them, and each delivery's attempts.

The use cases call :func:`emit` at the moment something happens (an invoice paid, a reply read,
a hand-over, a message failed). Without a subscription to that event it costs one indexed read.
With one, the event is stored once under an id derived from what happened (a redelivered actor
emits nothing twice) with a pending delivery per subscription, and an outbound actor is asked to
POST each (:func:`deliver`). A delivery that is not answered 2xx is tried again after each of
:data:`BACKOFF`, then marked failed. docs/webhooks-out.md is the business's side of it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from shared.domain.hooks import Delivery, HookEvent, HookEventType, Subscription
from shared.domain.invoices import InvoiceStatus
from shared.domain.repositories import Repositories
from shared.errors import Conflict, InputError, NotFound
from shared.ports import Classification, TaskQueue
from shared.usecases import audit

if TYPE_CHECKING:
    from shared.usecases.browsing import Page

log = logging.getLogger(__name__)

# The waits between attempts: 6 attempts in all, the last about 7 h 11 min after the first.
BACKOFF = (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1),
           timedelta(hours=6))
TIMEOUT_SECONDS = 10.0
# While one actor POSTs, the delivery is not due for others (the sweep of lost messages).
ATTEMPT_LEASE = timedelta(seconds=60)
SIGNATURE_HEADER = "Relance-Signature"
EVENT_ID_HEADER = "Relance-Event-Id"
EVENT_NAMES = tuple(e.value for e in HookEventType)
_LOCAL_HOSTS = {"localhost"}


class HookPostError(Exception):
    """The POST got no HTTP answer (refused, timed out, bad TLS): ``str(error)`` says which, without secrets."""


class HookPoster(Protocol):
    """POSTs one signed body; the HTTP status code (raises HookPostError without an answer)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """POST ``body`` to ``url``; the status code."""
        ...


class DeliveryOutcome(StrEnum):
    """What one run of :func:`deliver` did."""

    DELIVERED = "delivered"
    RETRY = "retry"  # a failed attempt, another one later
    FAILED = "failed"  # the last attempt failed, or the subscription is gone
    SKIPPED = "skipped"  # not pending, not due, or held by another attempt


@dataclass(frozen=True)
class DeliveryRun:
    """The outcome of one :func:`deliver` and, for a retry, when to try again."""

    outcome: DeliveryOutcome
    retry_in: timedelta | None = None


# ------------------------------------------------------------------ subscriptions (the CLI, later the API)
def check_url(url: str) -> str:
    """The URL as given when it can receive events: https, or http to this machine only; else InputError."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:  # "http://[" and the like
        parts, host = urlsplit(""), ""
    if parts.scheme not in ("https", "http") or not host:
        raise InputError(f"{url!r} is not a URL events can be sent to: give https://your.host/path")
    if parts.scheme == "http" and not _is_local(host):
        raise InputError(f"{url!r} is plain http: events are sent over https (http only to localhost)")
    return url.strip()


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    """The event names, each once, in order; InputError for none or an unknown one."""
    names = tuple(dict.fromkeys(e.strip() for e in events))
    if not names:
        raise InputError(f"name at least one event (--event), among: {', '.join(EVENT_NAMES)}")
    unknown = [name for name in names if name not in EVENT_NAMES]
    if unknown:
        raise InputError(f"unknown event {unknown[0]!r}: the events are {', '.join(EVENT_NAMES)}")
    return names


def add_subscription(store: Repositories, url: str, events: Iterable[str], *, now: datetime, by: str | None = None,
                     subscription_id: str | None = None) -> Subscription:
    """Subscribe ``url`` to ``events`` with a new random signing secret (shown once by the caller); ``by``: who,
    written to the audit log.

    ``subscription_id`` (the API's, derived from its Idempotency-Key): when a subscription by that id exists
    already (a retry of a request whose process died before answering), that one is returned, unchanged.
    """
    subscription = Subscription(id=subscription_id or f"wh_{secrets.token_hex(6)}", url=check_url(url),
                                events=check_events(events), secret=f"whsec_{secrets.token_urlsafe(32)}",
                                created_at=now)
    if not store.hooks.add_subscription(subscription):
        existing = store.hooks.get_subscription(subscription.id)
        if existing is None or not existing.active:
            raise Conflict(f"webhook subscription {subscription.id!r} was made by this request and removed since: "
                           "send it with a new Idempotency-Key")
        return existing
    log.info("webhook subscription=%s added for %s", subscription.id, ",".join(subscription.events))
    if by:
        audit.record(store, by=by, action="hook.add", target=subscription.id, detail=",".join(subscription.events),
                     now=now)
    return subscription


def remove_subscription(store: Repositories, subscription_id: str, *, by: str | None = None,
                        now: datetime | None = None) -> None:
    """Stop sending to a subscription (NotFound when there is no active one by that id); ``by``: who, written
    to the audit log at ``now``."""
    if not store.hooks.remove_subscription(subscription_id.strip()):
        raise NotFound(f"no webhook subscription {subscription_id!r} (relance hooks list shows them)")
    if by and now is not None:
        audit.record(store, by=by, action="hook.remove", target=subscription_id.strip(), now=now)


def subscriptions(store: Repositories) -> list[tuple[Subscription, Delivery | None]]:
    """The active subscriptions, oldest first, each with its last delivery (None before the first)."""
    return [(sub, store.hooks.last_delivery(sub.id)) for sub in store.hooks.subscriptions()]


def subscriptions_page(store: Repositories, *, after: str | None = None,
                       limit: int = 50) -> Page[tuple[Subscription, Delivery | None]]:
    """One page of :func:`subscriptions` (oldest first), after the subscription id ``after``.

    A business has a few subscriptions: they are read whole, their last deliveries only for the page.
    An ``after`` removed since still finds its place (its creation time); an unknown one is an InputError.
    """
    from shared.usecases.browsing import Page, check_limit  # browsing imports invoices, which import this

    check_limit(limit)
    subs = store.hooks.subscriptions()
    if after is not None:
        ids = [sub.id for sub in subs]
        if after in ids:
            subs = subs[ids.index(after) + 1:]
        else:
            gone = store.hooks.get_subscription(after)
            if gone is None:
                raise InputError("cursor is not valid here: use the next_cursor of this list's previous page")
            subs = [sub for sub in subs if (sub.created_at, sub.id) > (gone.created_at, gone.id)]
    page = subs[:limit]
    return Page(items=[(sub, store.hooks.last_delivery(sub.id)) for sub in page],
                next_after=page[-1].id if len(subs) > limit else None)


def subscription_lines(store: Repositories) -> list[str]:
    """``relance hooks list``: id, URL, events and the last delivery's state (never the secret)."""
    return [f"{sub.id}  {sub.url}  {','.join(sub.events)}  last: {_delivery_text(last)}"
            for sub, last in subscriptions(store)]


def _delivery_text(delivery: Delivery | None) -> str:
    if delivery is None:
        return "none yet"
    answer = (f"HTTP {delivery.last_status}" if delivery.last_status is not None
              else delivery.last_error or "not attempted yet")
    return f"{delivery.state.value} after {delivery.attempts} attempt(s) ({answer}) event {delivery.event_id}"


# ------------------------------------------------------------------ emission (called by the use cases)
def emit(store: Repositories, queue: TaskQueue | None, event_type: HookEventType,
         build: Callable[[], tuple[str, Mapping[str, Any]] | None], *, now: datetime) -> list[str]:
    """Emit ``event_type`` once; the delivery ids stored now.

    ``build`` is called only when someone subscribes to the event: it returns the event's key
    (what happened, e.g. an invoice's n-th paid change) and data, or None when there is nothing
    to emit. Idempotent: the event's id is ``<type>:<key>``, so emitting it again sends nothing.
    Without a queue, the deliveries wait for the scheduler's sweep (:func:`requeue_due`).
    """
    subscribers = store.hooks.subscribers(event_type.value)
    if not subscribers:
        return []
    built = build()
    if built is None:
        return []
    key, data = built
    event = HookEvent(id=f"{event_type.value}:{key}", type=event_type.value, created_at=now, data=dict(data))
    delivery_ids = store.hooks.record_event(event, [sub.id for sub in subscribers])
    if queue is not None:
        for delivery_id in delivery_ids:
            queue.deliver_hook(delivery_id)
    if delivery_ids:
        log.info("webhook event=%s deliveries=%d", event.id, len(delivery_ids))
    return delivery_ids


def _contact(store: Repositories, contact_id: str | None) -> dict[str, Any]:
    contact = store.contacts.get(contact_id) if contact_id else None
    if contact is None:
        return {"id": contact_id}
    return {"id": contact.id, "name": contact.name, "phone": contact.phone}


def invoice_paid(store: Repositories, queue: TaskQueue | None, reference: str, *, now: datetime) -> None:
    """``invoice.paid`` when the invoice is paid now (once per time it became paid)."""
    def build() -> tuple[str, Mapping[str, Any]] | None:
        invoice = store.invoices.get(reference)
        if invoice is None or invoice.status != InvoiceStatus.PAID:
            return None
        paid = [change for change in invoice.history if change.status == InvoiceStatus.PAID]
        last = paid[-1] if paid else None
        return f"{invoice.reference}:{len(paid)}", {
            "invoice": {"reference": invoice.reference, "amount_cents": invoice.amount_cents,
                        "currency": invoice.currency,
                        "due_date": invoice.due_date.isoformat() if invoice.due_date else None},
            "source": last.source.value if last else None, "paid_at": last.at.isoformat() if last else None,
            "contact": _contact(store, invoice.contact_id)}

    emit(store, queue, HookEventType.INVOICE_PAID, build, now=now)


def reply_received(store: Repositories, queue: TaskQueue | None, contact_id: str, sid: str,
                   reading: Classification, *, now: datetime) -> None:
    """``reply.received`` for a client's message, with what it was read to mean (not its text)."""
    emit(store, queue, HookEventType.REPLY_RECEIVED, lambda: (sid, {
        "message_sid": sid, "intent": reading.intent.value, "confidence": reading.confidence,
        "promised_date": reading.promised_date.isoformat() if reading.promised_date else None,
        "question_topic": reading.question_topic, "contact": _contact(store, contact_id)}), now=now)


def handover_needed(store: Repositories, queue: TaskQueue | None, contact_id: str, inbound_sid: str,
                    reason: str, *, now: datetime) -> None:
    """``handover.needed``: a person must take the conversation over (once per hand-over: the one
    this message opened, also when a redelivered actor finds it claimed already)."""
    def build() -> tuple[str, Mapping[str, Any]] | None:
        if store.followups.open_hand_over(contact_id) != inbound_sid:
            return None  # another message's hand-over: emitted for that one
        return inbound_sid, {"message_sid": inbound_sid, "reason": reason, "contact": _contact(store, contact_id)}

    emit(store, queue, HookEventType.HANDOVER_NEEDED, build, now=now)


def message_failed(store: Repositories, queue: TaskQueue | None, status_event_id: str, *, message_id: str | None,
                   contact_id: str | None, status: str | None, error_code: int | None, action: str,
                   now: datetime) -> None:
    """``message.failed``: Twilio reported a message failed or undelivered (once per status event)."""
    emit(store, queue, HookEventType.MESSAGE_FAILED, lambda: (status_event_id, {
        "message_id": message_id, "status": status, "error_code": error_code, "action": action,
        "contact": _contact(store, contact_id)}), now=now)


def requeue_due(store: Repositories, queue: TaskQueue, now: datetime, limit: int = 100) -> list[str]:
    """Enqueue the deliveries whose attempt is due and not held (their queue message was lost)."""
    due = store.hooks.due_deliveries(now, limit)
    for delivery_id in due:
        queue.deliver_hook(delivery_id)
    return due


# ------------------------------------------------------------------ delivery (the outbound actor)
def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Relance-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def deliver(store: Repositories, poster: HookPoster, delivery_id: str, *, now: datetime) -> DeliveryRun:
    """One attempt at a pending, due delivery: delivered on a 2xx, else retried later or failed.

    The attempt is claimed first (its next attempt moved past a lease), so the same delivery is
    never POSTed by two actors at once; a redelivered message finds it delivered and skips it.
    """
    delivery = store.hooks.claim_attempt(delivery_id, now=now, until=now + ATTEMPT_LEASE)
    if delivery is None:
        return DeliveryRun(DeliveryOutcome.SKIPPED)
    subscription = store.hooks.get_subscription(delivery.subscription_id)
    event = store.hooks.get_event(delivery.event_id)
    if subscription is None or not subscription.active or event is None:
        store.hooks.give_up(delivery_id, status=None, error="subscription removed", now=now)
        return DeliveryRun(DeliveryOutcome.FAILED)
    body = json.dumps(event.payload(), separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Relance-Webhooks/1",
               EVENT_ID_HEADER: event.id, SIGNATURE_HEADER: sign(subscription.secret, int(now.timestamp()), body)}
    status: int | None = None
    error: str | None = None
    try:
        status = poster.post(subscription.url, body, headers, TIMEOUT_SECONDS)
    except HookPostError as exc:
        error = str(exc)[:200]
    if status is not None and 200 <= status < 300:
        store.hooks.deliver(delivery_id, status=status, now=now)
        log.info("webhook delivery=%s delivered (HTTP %s)", delivery_id, status)
        return DeliveryRun(DeliveryOutcome.DELIVERED)
    attempt = delivery.attempts  # attempts before this one
    if attempt < len(BACKOFF):
        wait = BACKOFF[attempt]
        store.hooks.retry(delivery_id, status=status, error=error, at=now + wait, now=now)
        log.warning("webhook delivery=%s attempt %d failed (%s): again in %s", delivery_id, attempt + 1,
                    status if status is not None else error, wait)
        return DeliveryRun(DeliveryOutcome.RETRY, retry_in=wait)
    store.hooks.give_up(delivery_id, status=status, error=error, now=now)
    log.warning("webhook delivery=%s failed after %d attempts (%s)", delivery_id, attempt + 1,
                status if status is not None else error)
    return DeliveryRun(DeliveryOutcome.FAILED)
