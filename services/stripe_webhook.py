"""``POST /payments/stripe``: Stripe's payment events → invoices paid, part-paid or reopened.

The route reads the body (at most :data:`MAX_BODY_BYTES`), verifies its ``Stripe-Signature``
header with the ``stripe`` SDK's own check (``WebhookSignature.verify_header``: HMAC-SHA256 of
``<timestamp>.<body>`` with STRIPE_WEBHOOK_SECRET, the timestamp within the SDK's 5 minutes),
reads the event into a :class:`~shared.usecases.payments.PaymentEvent` and hands it to
:func:`~shared.usecases.payments.apply_payment_event`. Answers: 200 (applied, ignored, unknown
invoice, or a replay); 400 missing or bad signature, or a body that is no Stripe event (nothing
stored); 413 body too large; 503 the store is unreachable (Stripe retries). The route exists
only when STRIPE_WEBHOOK_SECRET is set (services/bootstrap.py). See docs/invoices.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import stripe
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from shared.clock import Clock
from shared.domain.repositories import Repositories
from shared.errors import TransientError
from shared.ports import TaskQueue
from shared.usecases.payments import PaymentEvent, PaymentKind, apply_payment_event

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # Stripe's events are a few KiB
MAX_ID_CHARS = 255
PROVIDER = "stripe"
# A signature older than this is refused (a captured request replayed): the SDK's own default,
# which verify_header applies only when it is passed.
TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE
# Stripe's amounts are in the currency's smallest unit; Relance's in cents (hundredths).
# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
PAID_CHECKOUT = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class NotAnEvent(ValueError):
    """The body is no Stripe event Relance can read."""


def _text(value: Any, what: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        if not required:
            return None
        raise NotAnEvent(f"{what} is missing or not a short string")
    return value.strip()


def to_cents(amount: Any, currency: str | None) -> int | None:
    """Cents of a Stripe amount (smallest currency unit); None when there is none."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        return None
    if currency in ZERO_DECIMAL:
        return amount * 100
    if currency in THREE_DECIMAL:
        return amount // 10
    return amount


def _reference(obj: Mapping[str, Any]) -> str | None:
    """The invoice an object names: ``metadata.invoice``, else ``client_reference_id`` (Checkout)."""
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        found = _text(metadata.get("invoice"), "metadata.invoice", required=False)
        if found:
            return found
    return _text(obj.get("client_reference_id"), "client_reference_id", required=False)


def read_event(data: Any) -> PaymentEvent:
    """A Stripe event (parsed JSON) as a :class:`PaymentEvent`; NotAnEvent when it is none."""
    if not isinstance(data, Mapping):
        raise NotAnEvent("the body is not a JSON object")
    event_id = _text(data.get("id"), "id")
    event_type = _text(data.get("type"), "type")
    assert event_id is not None and event_type is not None
    inner = data.get("data")
    obj = inner.get("object") if isinstance(inner, Mapping) else None
    if not isinstance(obj, Mapping):
        raise NotAnEvent("data.object is missing")
    raw_currency = obj.get("currency")
    currency = raw_currency.upper() if isinstance(raw_currency, str) and len(raw_currency) == 3 else None
    reference = _reference(obj)
    ignored = PaymentEvent(PROVIDER, event_id, event_type, PaymentKind.IGNORED, reference)
    if event_type in PAID_CHECKOUT:
        if obj.get("payment_status") != "paid":
            return ignored  # e.g. a bank debit not settled yet: async_payment_succeeded follows
        return PaymentEvent(PROVIDER, event_id, event_type, PaymentKind.PAID, reference,
                            to_cents(obj.get("amount_total"), currency), currency,
                            _text(obj.get("payment_intent"), "payment_intent", required=False))
    if event_type == "payment_intent.succeeded":
        received = obj.get("amount_received", obj.get("amount"))
        return PaymentEvent(PROVIDER, event_id, event_type, PaymentKind.PAID, reference,
                            to_cents(received, currency), currency, _text(obj.get("id"), "id", required=False))
    if event_type == "charge.refunded":
        return PaymentEvent(PROVIDER, event_id, event_type, PaymentKind.REFUNDED, reference, currency=currency)
    return ignored


async def _read_body(request: Request) -> bytes | None:
    """The body, or None past MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def stripe_handler(store: Repositories, clock: Clock, secret: str, queue: TaskQueue | None = None
                   ) -> Callable[[Request], Awaitable[Response]]:
    """The ``POST /payments/stripe`` endpoint, verifying with ``secret`` (STRIPE_WEBHOOK_SECRET)."""

    async def payments_stripe(request: Request) -> Response:
        header = request.headers.get("stripe-signature", "")
        if not header:
            return PlainTextResponse("missing Stripe-Signature", status_code=400)
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            return PlainTextResponse("client disconnected", status_code=400, headers={"Connection": "close"})
        if body is None:
            return PlainTextResponse("body too large", status_code=413, headers={"Connection": "close"})
        try:
            payload = body.decode("utf-8")
            stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE_SECONDS)
        except (UnicodeDecodeError, stripe.SignatureVerificationError):
            log.warning("refused a Stripe webhook: bad signature")
            return PlainTextResponse("bad Stripe-Signature", status_code=400)
        try:
            event = read_event(json.loads(payload))
        except (ValueError, NotAnEvent) as exc:
            log.warning("refused a signed Stripe webhook: %s", exc if isinstance(exc, NotAnEvent) else "not JSON")
            return PlainTextResponse("not a Stripe event", status_code=400)
        try:
            outcome = await run_in_threadpool(apply_payment_event, store, event, now=clock.now(), queue=queue)
        except TransientError:
            return PlainTextResponse("store unavailable, retry later", status_code=503)
        return JSONResponse({"received": True, "outcome": outcome.value})

    return payments_stripe
