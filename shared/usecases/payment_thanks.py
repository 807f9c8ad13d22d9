"""The thank-you a client gets when a payment settles one of their invoices (Stripe's events).

At most one per client and day (the day of the payment, in the client's timezone), naming the
invoices paid by a payment that day so far: a client who pays two invoices at once (two events)
is thanked once. Only a payment that makes an invoice ``paid`` counts (not a part payment).
Inside WhatsApp's 24-hour window (the client wrote less than 24 h ago) it is plain text in their
language; outside it THANK_YOU_TEMPLATE_SID (variables ``{"1": name, "2": the references}``)
when it is set, else nothing. Never to a client who opted out, never past
MAX_AUTO_REPLIES_PER_DAY, and not when THANK_YOU_ON_PAID is off. The message's id is derived
from the client and the day (:func:`thank_you_id`) and its insert is conditional, so a second
payment that day, a replayed event, or the provider's retry after a crash never makes a second
one (nor a retry of a payment thanked under the id of before, :func:`legacy_thank_you_id`); it is a
``reply`` to the sending actor (sent at once, no send window), which sends a freeform one only inside
the window.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Contact, Language, OutboundMessage
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.domain.states import InvoiceStatus, MessageState
from shared.policy import window_open
from shared.ports import TaskQueue

log = logging.getLogger(__name__)

_ID_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
# References a thank-you names at most (then "+N").
NAMED = 5


def _part(value: str) -> str:
    """``value`` as one segment of a message id (what a status callback's ``mid`` allows), else its digest."""
    return value if _ID_PART.fullmatch(value) else hashlib.sha256(value.encode()).hexdigest()[:24]


def thank_you_id(contact_id: str, day: date) -> str:
    """The id of the one thank-you client ``contact_id`` may get on ``day`` (their own calendar day)."""
    return f"thanks:{_part(contact_id)}:{day.isoformat()}"


def legacy_thank_you_id(reference: str, payment_ref: str) -> str:
    """The id a thank-you had before one per client and day (one per payment ``payment_ref`` of invoice
    ``reference``): a provider's retry after an upgrade must not thank again a payment thanked under it."""
    return ":".join(["thanks", _part(reference), *(_part(piece) for piece in payment_ref.split(":"))])


def references_text(references: list[str], language: Language) -> str:
    """``FA-1``, ``FA-1 et FA-2``, ``FA-1, FA-2 et FA-3``… (at most NAMED, then ``+N``)."""
    named = [" ".join(ref.split()) for ref in references[:NAMED]]
    if len(references) > NAMED:
        named[-1] += f" (+{len(references) - NAMED})"
    if len(named) == 1:
        return named[0]
    return f"{', '.join(named[:-1])} {'and' if language == Language.EN else 'et'} {named[-1]}"


def thank_you_text(business_name: str, contact: Contact, references: list[str]) -> str:
    """The freeform thank-you for the payment of the invoices ``references``."""
    named = references_text(references, contact.language)
    several = len(references) > 1
    if contact.language == Language.EN:
        text = f"Thank you {contact.name}, we have received your payment for invoice{'s' if several else ''} {named}."
    else:
        what = "les factures" if several else "la facture"
        text = f"Merci {contact.name}, nous avons bien reçu votre paiement pour {what} {named}."
    return f"{text}\n{business_name}"


def thank_you_variables(contact: Contact, references: list[str]) -> dict[str, str]:
    """THANK_YOU_TEMPLATE_SID's variables (WhatsApp refuses empty ones and line breaks)."""
    return {"1": " ".join(contact.name.split()) or "-", "2": references_text(references, contact.language)}


def _zone(contact: Contact) -> ZoneInfo:
    try:
        return ZoneInfo(contact.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _paid_at(invoice: Invoice, payment_ref: str | None = None) -> datetime | None:
    """When a payment (``payment_ref``'s, else the last one) made ``invoice`` paid."""
    found = [change.at for change in invoice.history if change.status == InvoiceStatus.PAID
             and change.source == InvoiceSource.PAYMENT and (payment_ref is None or change.ref == payment_ref)]
    return found[-1] if found else None


def paid_that_day(store: Repositories, contact: Contact, invoice: Invoice, day: date) -> list[str]:
    """The client's invoices a payment made paid on ``day`` (their calendar day), ``invoice`` among them."""
    zone = _zone(contact)
    others = []
    for other in store.invoices.find(contact_id=contact.id, statuses=[InvoiceStatus.PAID]):
        at = _paid_at(other)
        if other.reference != invoice.reference and at is not None and at.astimezone(zone).date() == day:
            others.append(other.reference)
    return sorted([invoice.reference, *others])


def thank_for_payment(store: Repositories, queue: TaskQueue, rules: Rules, invoice: Invoice, payment_ref: str, *,
                      now: datetime) -> str | None:
    """Store and enqueue the client's thank-you of the day for ``invoice``'s payment ``payment_ref``; its id,
    or None when none is sent (turned off, unknown or opted-out client, outside the window without a
    template, or the cap of automated replies reached). Idempotent: one per client and day."""
    if not rules.thank_you_on_paid:
        return None
    contact = store.contacts.get(invoice.contact_id)
    if contact is None or contact.opted_out:
        return None
    paid_at = _paid_at(invoice, payment_ref) or now
    day = paid_at.astimezone(_zone(contact)).date()
    message_id = thank_you_id(contact.id, day)
    legacy_id = legacy_thank_you_id(invoice.reference, payment_ref)
    if store.messages.get(legacy_id) is not None:
        log.info("invoice %s paid: this payment was thanked already (%s)", invoice.reference, legacy_id)
        _enqueue(queue, legacy_id)
        return legacy_id
    if store.messages.get(message_id) is not None:
        log.info("invoice %s paid: contact=%s was thanked already that day (%s)", invoice.reference, contact.id,
                 message_id)
        _enqueue(queue, message_id)
        return message_id
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
    references = paid_that_day(store, contact, invoice, day)
    body = thank_you_text(rules.business_name, contact, references)
    template = not inside
    message = OutboundMessage(
        id=message_id, followup_id=None, contact_id=contact.id, campaign_id=None, step=-1, purpose="reply",
        state=MessageState.READY, kind="template" if template else "freeform", body=body, language=contact.language,
        content_sid=template_sid if template else None,
        content_variables=thank_you_variables(contact, references) if template else None,
        draft_source="template" if template else "system",
        fallback_reason="outside_24h_window" if template else None,
    )
    if not store.messages.insert(message, now):
        log.info("thank-you %s stored already", message_id)
    _enqueue(queue, message_id)
    return message_id


def _enqueue(queue: TaskQueue, message_id: str) -> None:
    """Hand the thank-you to the sending actor (again: a sent one is not sent twice)."""
    try:
        queue.send_message(message_id)
    except Exception:  # the message waits in the store: the scheduler enqueues ready messages it finds
        log.warning("thank-you %s stored but not enqueued (queue unavailable); the scheduler will enqueue it",
                    message_id)
