"""Invoice campaigns: one reminder per client covering the client's unpaid invoices, true to them.

A follow-up of an invoice campaign (``enrol: {invoices: {...}}``) belongs to a client and covers
every invoice of theirs the campaign's selector covers
(:func:`shared.domain.invoices.covered_invoices`): an invoice added while it runs joins it, and
it ends (stopped, reason ``paid``) when none is left. Three places keep reminders true:

- drafting builds each step from the covered invoices, read then (:func:`reminder_invoices`);
- every change to a client's invoices (a payment, a sync, a command) calls
  :func:`settle_client`: a follow-up with nothing left to remind of is stopped and its drafts
  withdrawn; a draft that states other invoices or amounts than the client now owes is withdrawn
  and drafted again;
- the sending use case re-reads the invoices just before calling Twilio
  (:func:`still_true`), in case a change came between that check and the send.

A follow-up of a campaign without ``invoices`` (the contacts' fields, earlier versions) is
stopped as paid when the invoice named by its contact's ``invoice_number`` field closes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from shared.domain.invoices import Invoice, covered_invoices, dues_key, oldest_due_date
from shared.domain.models import OLDEST_DUE_DATE, Campaign, Contact, OutboundMessage, message_id_for
from shared.domain.reasons import CancelReason, StopReason
from shared.domain.repositories import Repositories
from shared.domain.states import OPEN, FollowUpState, InvoiceStatus, MessageState
from shared.ports import TaskQueue
from shared.usecases.cadence import stop_followup

log = logging.getLogger(__name__)

# The invoice fields a contact carried before invoices were stored apart: an invoice campaign's
# drafts take these from the invoices, never from the contact.
CONTACT_INVOICE_FIELDS = frozenset({
    "invoice_number", "invoice", "amount", "amount_due", "currency", "due_date", "issued_on", "payment_link",
})


@dataclass(frozen=True)
class ReminderInvoices:
    """What one step of an invoice campaign is about: the covered invoices, oldest due first."""

    invoices: list[Invoice]

    @property
    def references(self) -> list[str]:
        """The references the reminder names."""
        return [invoice.reference for invoice in self.invoices]

    @property
    def key(self) -> str:
        """What it states (references, amounts due): a draft with another key is out of date."""
        return dues_key(self.invoices)


def reminder_invoices(store: Repositories, campaign: Campaign, contact_id: str) -> ReminderInvoices:
    """The client's invoices a step of this invoice campaign covers (one query)."""
    assert campaign.enrol.invoices is not None
    return ReminderInvoices(covered_invoices(campaign.enrol.invoices, store.invoices.find(contact_id=contact_id)))


def contact_facts(contact: Contact) -> dict[str, str]:
    """The contact's own facts an invoice reminder may use besides its invoices (their old invoice fields left out)."""
    return {key: value for key, value in contact.fields.items() if key not in CONTACT_INVOICE_FIELDS}


def with_oldest_due_date(contact: Contact, invoices: list[Invoice]) -> Contact:
    """The contact with ``oldest_due_date`` among its fields, for the steps anchored on it."""
    oldest: date | None = oldest_due_date(invoices)
    if oldest is None:
        return contact
    return contact.model_copy(update={"fields": {**contact.fields, OLDEST_DUE_DATE: oldest.isoformat()}})


# Invoices the client's reply put aside until a person decides (relance handled --paid / --resume).
AWAITING_A_PERSON = frozenset({InvoiceStatus.CLAIMED_PAID, InvoiceStatus.DISPUTED})


def settle_client(store: Repositories, contact_id: str, *, now: datetime, queue: TaskQueue | None = None,
                  closed: Collection[str] = ()) -> int:
    """Bring the client's running follow-ups in line with their invoices after a change; returns how
    many were stopped or had their draft withdrawn.

    Idempotent, and cheap when nothing changed: the client's follow-ups, their invoices once, and a
    follow-up's pending draft only when it has one. ``closed``: the references just paid or
    cancelled, for the follow-ups of campaigns without invoices (their contact's ``invoice_number``).
    ``queue``: where a withdrawn draft is asked again at once (else the scheduler's stale sweep does).
    """
    followups = store.followups.of_contact(contact_id, OPEN)
    if not followups:
        return 0
    invoices: list[Invoice] | None = None
    contact: Contact | None = None
    changed = 0
    for followup in followups:
        campaign = store.campaigns.get(followup.campaign_id)
        if campaign is None:
            continue
        if campaign.enrol.invoices is None:
            if not closed:
                continue
            contact = contact or store.contacts.get(contact_id)
            if contact is not None and contact.fields.get("invoice_number", "").strip() in closed:
                changed += stop_followup(store, followup.id, reason=StopReason.PAID, now=now)
            continue
        invoices = invoices if invoices is not None else store.invoices.find(contact_id=contact_id)
        covered = ReminderInvoices(covered_invoices(campaign.enrol.invoices, invoices))
        if not covered.invoices:
            if followup.state == FollowUpState.PAUSED and any(i.status in AWAITING_A_PERSON for i in invoices):
                continue  # paused for a person who checks a claimed payment or a dispute: theirs to decide
            if stop_followup(store, followup.id, reason=StopReason.PAID, now=now):
                log.info("followup=%s stopped: no unpaid invoice left", followup.id)
                changed += 1
            continue
        if followup.state == FollowUpState.AWAITING_SEND:
            message = store.messages.get(message_id_for(followup.id, followup.step))
            if message is not None and message.state in (MessageState.READY, MessageState.AWAITING_APPROVAL) \
                    and message.invoices is not None \
                    and message.invoices_key != covered.key:
                changed += redraft(store, message, now=now, queue=queue)
    return changed


def redraft(store: Repositories, message: OutboundMessage, *, now: datetime, queue: TaskQueue | None) -> bool:
    """Withdraw a ready reminder that is out of date and have its step drafted again; True when withdrawn.

    ``ready → cancelled`` (conditional: a send that started first wins, and the message is then
    the sender's), then the follow-up ``awaiting_send → queued`` at that step; the new draft
    replaces the cancelled message (same id: still one message per step).
    """
    if not message.followup_id or not store.messages.cancel(message.id, reason=CancelReason.INVOICES_CHANGED,
                                                             now=now):
        return False
    if store.followups.draft_again(message.followup_id, step=message.step, now=now) and queue is not None:
        try:
            queue.draft_followup(message.followup_id, message.step)
        except Exception as exc:  # Redis away: the scheduler's stale sweep asks for it instead
            log.warning("followup=%s step %s not queued for drafting (%s): the scheduler will", message.followup_id,
                        message.step, type(exc).__name__)
    log.info("message=%s withdrawn: the client's invoices changed since it was drafted", message.id)
    return True


def still_true(store: Repositories, message: OutboundMessage, campaign: Campaign, *, now: datetime,
               queue: TaskQueue | None) -> bool:
    """Whether an invoice reminder still states what the client owes, read just before it is sent.

    False (handled) when it does not: every invoice it covered is closed → the message is
    cancelled and the follow-up stopped as paid; something else changed (an invoice paid among
    others, a part payment, an invoice added) → it is drafted again.
    """
    if message.invoices is None or campaign.enrol.invoices is None:
        return True
    covered = reminder_invoices(store, campaign, message.contact_id or "")
    if covered.key == message.invoices_key:
        return True
    if not covered.invoices:
        store.messages.cancel(message.id, reason=CancelReason.PAID, now=now)
        if message.followup_id:
            stop_followup(store, message.followup_id, reason=StopReason.PAID, now=now)
        log.info("message=%s cancelled: every invoice it named is closed", message.id)
        return False
    redraft(store, message, now=now, queue=queue)
    return False
