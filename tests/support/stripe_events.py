"""Stripe webhook events for tests: the JSON Stripe posts, signed with the ``stripe`` SDK's own code."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import stripe


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header as Stripe makes it: ``t=<time>,v1=<HMAC-SHA256 of "<time>.<body>">``."""
    at = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{at}.{payload}", secret)
    return f"t={at},{stripe.WebhookSignature.EXPECTED_SCHEME}={signature}"


def event(event_id: str, event_type: str, obj: dict[str, Any]) -> str:
    """An event's body, as Stripe serialises it."""
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "api_version": "2026-09-30",
                       "created": int(time.time()), "livemode": False, "data": {"object": obj}})


def checkout_completed(event_id: str, reference: str, amount_cents: int, *, payment_intent: str,
                       payment_status: str = "paid") -> str:
    """``checkout.session.completed`` for a Checkout Session naming ``reference`` in its metadata."""
    return event(event_id, "checkout.session.completed", {
        "id": f"cs_{event_id}", "object": "checkout.session", "payment_status": payment_status,
        "amount_total": amount_cents, "currency": "eur", "payment_intent": payment_intent,
        "metadata": {"invoice": reference}})


def payment_intent_succeeded(event_id: str, reference: str, amount_cents: int, *, payment_intent: str) -> str:
    """``payment_intent.succeeded`` for a PaymentIntent naming ``reference`` in its metadata."""
    return event(event_id, "payment_intent.succeeded", {
        "id": payment_intent, "object": "payment_intent", "amount": amount_cents, "amount_received": amount_cents,
        "currency": "eur", "status": "succeeded", "metadata": {"invoice": reference}})


def post_event(base_url: str, payload: str, secret: str) -> dict[str, Any]:
    """POST a signed event to ``<base_url>/payments/stripe``; the JSON answer (asserting 200)."""
    response = httpx.post(f"{base_url}/payments/stripe", content=payload, timeout=10,
                          headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)})
    assert response.status_code == 200, (response.status_code, response.text)
    answer: dict[str, Any] = response.json()
    return answer
