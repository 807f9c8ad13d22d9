"""The thank-you a client gets when a payment settles one of their invoices (Stripe's events).

Once per payment that makes an invoice ``paid`` (not a part payment): inside WhatsApp's 24-hour
window (the client wrote less than 24 h ago) as plain text in their language; outside it with
THANK_YOU_TEMPLATE_SID (variables ``{"1": name, "2": invoice reference}``) when it is set, else
not at all. Never to a client who opted out, never past MAX_AUTO_REPLIES_PER_DAY, and not when
THANK_YOU_ON_PAID is off. The message's id is derived from the invoice and the payment
(:func:`thank_you_id`) and its insert is conditional, so a replayed event, or the provider's
retry after a crash, never makes a second one; it is a ``reply`` to the sending actor (sent at
once, no send window), which sends a freeform one only inside the window.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta

from shared.domain.invoices import Invoice
from shared.domain.models import Contact, Language, OutboundMessage
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.domain.states import MessageState
from shared.policy import window_open
from shared.ports import TaskQueue

log = logging.getLogger(__name__)

_ID_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _part(value: str) -> str:
    """``value`` as one segment of a message id (what a status callback's ``mid`` allows), else its digest."""
    return value if _ID_PART.fullmatch(value) else hashlib.sha256(value.encode()).hexdigest()[:24]


def thank_you_id(reference: str, payment_ref: str) -> str:
    """The id of the one thank-you for the payment ``payment_ref`` (``stripe:pi_…``) of invoice ``reference``."""
    return ":".join(["thanks", _part(reference), *(_part(piece) for piece in payment_ref.split(":"))])


def thank_you_text(business_name: str, contact: Contact, reference: str) -> str:
    """The freeform thank-you for the payment of invoice ``reference``."""
    if contact.language == Language.EN:
        text = f"Thank you {contact.name}, we have received your payment for invoice {reference}."
    else:
        text = f"Merci {contact.name}, nous avons bien reçu votre paiement pour la facture {reference}."
    return f"{text}\n{business_name}"


def thank_you_variables(contact: Contact, reference: str) -> dict[str, str]:
    """THANK_YOU_TEMPLATE_SID's variables (WhatsApp refuses empty ones and line breaks)."""
    return {"1": " ".join(contact.name.split()) or "-", "2": " ".join(reference.split())}


def thank_for_payment(store: Repositories, queue: TaskQueue, rules: Rules, invoice: Invoice, payment_ref: str, *,
                      now: datetime) -> str | None:
    """Store and enqueue the thank-you for ``invoice``'s payment ``payment_ref``; its id, or None when none
    is sent (turned off, unknown or opted-out client, outside the window without a template, or the cap
    of automated replies reached). Idempotent."""
    if not rules.thank_you_on_paid:
        return None
    contact = store.contacts.get(invoice.contact_id)
    if contact is None or contact.opted_out:
        return None
    message_id = thank_you_id(invoice.reference, payment_ref)
    inside = window_open(contact.last_inbound_at, now)
    template_sid = rules.thank_you_template_sid
    if not inside and not template_sid:
        log.info("invoice %s paid: no thank-you, contact=%s has not written in 24 h and THANK_YOU_TEMPLATE_SID "
                 "is not set", invoice.reference, contact.id)
        return None
    limit = rules.max_auto_replies_per_day
    if limit and store.messages.count_replies_since(contact.id, now - timedelta(hours=24),
                                                    besides=message_id) >= limit:
        log.info("invoice %s paid: no thank-you, contact=%s had %d automated replies in 24 h", invoice.reference,
                 contact.id, limit)
        return None
    # Fixed sentences, the client's name and the invoice's own reference: nothing a facts check
    # could catch (and it would refuse "we received your payment", which here is the fact).
    body = thank_you_text(rules.business_name, contact, invoice.reference)
    template = not inside
    message = OutboundMessage(
        id=message_id, followup_id=None, contact_id=contact.id, campaign_id=None, step=-1, purpose="reply",
        state=MessageState.READY, kind="template" if template else "freeform", body=body, language=contact.language,
        content_sid=template_sid if template else None,
        content_variables=thank_you_variables(contact, invoice.reference) if template else None,
        draft_source="template" if template else "system",
        fallback_reason="outside_24h_window" if template else None,
    )
    if not store.messages.insert(message, now):
        log.info("thank-you %s stored already", message_id)
    try:
        queue.send_message(message_id)
    except Exception:  # the message waits in the store: the scheduler enqueues ready messages it finds
        log.warning("thank-you %s stored but not enqueued (queue unavailable); the scheduler will enqueue it",
                    message_id)
    return message_id
