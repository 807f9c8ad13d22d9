"""The demo's payment provider: ``relance dev`` plays Stripe paying a client's invoices.

Once the demo client owing several invoices (:data:`DEMO_PAYER`) has received its first, grouped
reminder, :func:`pay_invoices` posts one ``checkout.session.completed`` event per invoice to the
webhook's ``POST /payments/stripe``, signed as Stripe signs them (``t=<time>,v1=<HMAC-SHA256 of
"<time>.<body>">`` with STRIPE_WEBHOOK_SECRET, computed by the ``stripe`` SDK's own code). The
webhook verifies them like any Stripe event: the invoices turn paid (source ``payment``) and the
client's follow-up stops before its next reminder. :func:`payment_outcome` tells what came of it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from datetime import datetime

import httpx
import stripe

from shared.domain.invoices import REMINDED, Invoice
from shared.domain.models import Contact
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState
from shared.phones import mask_phone

__all__ = ["DEMO_PAYER", "new_webhook_secret", "pay_invoices", "payer", "payer_reminded", "payment_outcome",
           "signed_event", "stripe_signature"]

# The demo client who owes two invoices and pays them through Stripe after the first reminder.
DEMO_PAYER = "Claire Martin"
HANDED_OVER = {MessageState.SENT.value, MessageState.DELIVERED.value, MessageState.READ.value}
DELIVERED = {MessageState.DELIVERED.value, MessageState.READ.value}


def new_webhook_secret() -> str:
    """A random endpoint secret, shaped like Stripe's (``whsec_…``), for one dev run."""
    return "whsec_" + secrets.token_hex(24)


def stripe_signature(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload``."""
    at = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{at}.{payload}", secret)
    return f"t={at},{stripe.WebhookSignature.EXPECTED_SCHEME}={signature}"


def signed_event(invoice: Invoice, now: datetime) -> str:
    """A paid Checkout Session for the whole amount due of ``invoice``, as a Stripe event body."""
    tag = invoice.reference.lower().replace("-", "_")
    session = {
        "id": f"cs_demo_{tag}", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
        "status": "complete", "amount_total": invoice.amount_due_cents, "currency": invoice.currency.lower(),
        "payment_intent": f"pi_demo_{tag}", "metadata": {"invoice": invoice.reference},
    }
    return json.dumps({"id": f"evt_demo_{tag}", "object": "event", "type": "checkout.session.completed",
                       "api_version": "2026-09-30", "created": int(now.timestamp()), "livemode": False,
                       "data": {"object": session}})


def payer(store: Repositories) -> Contact | None:
    """The demo client who pays, when loaded."""
    return next((c for c in store.contacts.find(tags=["demo"]) if c.name == DEMO_PAYER), None)


def payer_reminded(store: Repositories, contact: Contact) -> bool:
    """Whether the payer's first reminder (step 1) was delivered."""
    return any(m.direction == "outbound" and m.purpose == "step" and m.step == 0 and m.state in DELIVERED
               for m in store.messages.summaries_of_contact(contact.id))


def pay_invoices(store: Repositories, contact: Contact, payments_url: str, secret: str, *, now: datetime
                 ) -> list[str]:
    """Post a signed paid-checkout event for each invoice the client still owes; the lines to print."""
    invoices = store.invoices.find(contact_id=contact.id, statuses=REMINDED)
    refused = []
    for invoice in invoices:
        payload = signed_event(invoice, now)
        try:
            answer = httpx.post(payments_url, content=payload, timeout=10, headers={
                "Content-Type": "application/json", "Stripe-Signature": stripe_signature(payload, secret)})
            if answer.status_code != 200:
                refused.append(f"  € Stripe: the webhook answered {answer.status_code} for {invoice.reference}")
        except httpx.HTTPError as exc:
            refused.append(f"  € Stripe: {invoice.reference} not posted ({type(exc).__name__})")
    if not invoices:
        return [f"  € Stripe: {contact.name} owes nothing any more: no payment sent"]
    return [f"  € Stripe: payment received for {mask_phone(contact.phone)} ({len(invoices)} invoice"
            f"{'s' if len(invoices) > 1 else ''}) — its next reminder will not be sent", *refused]


def _named(body: str, references: Sequence[str]) -> str:
    found = [ref for ref in references if ref in body]
    return f" naming {', '.join(found)}" if found else ""


def payment_outcome(store: Repositories, contact: Contact, received: Sequence[dict[str, object]]) -> list[str]:
    """What came of the payer's payment: their invoices, their follow-up, and every reminder they got.

    ``received``: the simulator's messages (``/_sim/messages``), of which those to the payer are
    counted; empty on a later run, when the database alone tells.
    """
    invoices = sorted(store.invoices.find(contact_id=contact.id), key=lambda i: i.reference)
    references = [i.reference for i in invoices]
    shown = ", ".join(f"{i.reference} {i.status.value}"
                      + (f" ({i.history[-1].source.value})" if i.history else "") for i in invoices)
    followups = store.followups.summaries_of_contact(contact.id)
    states = ", ".join(f.state + (f" ({f.stop_reason})" if f.stop_reason else "") for f in followups) or "none"
    lines = [f"  {contact.name}: paid through Stripe → {shown}; follow-up {states}"]
    for message in store.messages.summaries_of_contact(contact.id):
        if message.direction != "outbound" or message.state not in HANDED_OVER:
            continue
        if message.purpose == "step":
            lines.append(f"    ↳ reminder: step {(message.step or 0) + 1}{_named(message.body, references)}")
        else:
            lines.append(f"    ↳ {message.purpose or 'message'}: {' '.join(message.body.split())}")
    to_payer = [m for m in received if str(m.get("to", "")).removeprefix("whatsapp:") == contact.phone]
    if received:
        naming = sum(1 for m in to_payer if all(ref in str(m.get("rendered_body", "")) for ref in references))
        lines.append(f"    ↳ the Twilio simulator received {len(to_payer)} message(s) for {mask_phone(contact.phone)}, "
                     f"{naming} of them naming {' and '.join(references)}")
    return lines
