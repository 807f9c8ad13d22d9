"""The console's response and request bodies (its OpenAPI schemas)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from shared.domain.invoices import Invoice
from shared.domain.models import Contact, FollowUp
from shared.usecases.campaigns import CampaignLine, StatusChange

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """A page of a list; ``next_cursor`` asks the next one (null on the last)."""

    items: list[T]
    next_cursor: str | None


class ContactOut(BaseModel):
    """A client."""

    id: str
    name: str
    phone: str
    language: str
    timezone: str
    tags: list[str]
    fields: dict[str, str]
    opted_out: bool

    @classmethod
    def of(cls, contact: Contact) -> ContactOut:
        """From the domain model."""
        return cls(id=contact.id, name=contact.name, phone=contact.phone, language=contact.language.value,
                   timezone=contact.timezone, tags=contact.tags, fields=contact.fields, opted_out=contact.opted_out)


class InvoiceOut(BaseModel):
    """An invoice; amounts in cents."""

    reference: str
    contact_id: str
    status: str
    amount_cents: int
    amount_due_cents: int
    currency: str
    issued_on: date | None
    due_date: date | None
    payment_link: str | None

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceOut:
        """From the domain model."""
        return cls(reference=invoice.reference, contact_id=invoice.contact_id, status=invoice.status.value,
                   amount_cents=invoice.amount_cents, amount_due_cents=invoice.amount_due_cents,
                   currency=invoice.currency, issued_on=invoice.issued_on, due_date=invoice.due_date,
                   payment_link=invoice.payment_link)


class PaymentIn(BaseModel):
    """A payment recorded by a person: all that is due, or ``amount`` (as written in an invoices file)."""

    amount: str | None = Field(default=None, max_length=32, examples=["120.50"])


class CampaignOut(BaseModel):
    """A campaign and how many contacts it enrolled."""

    id: str
    name: str
    status: str
    steps: int
    enrolled: int

    @classmethod
    def of(cls, line: CampaignLine) -> CampaignOut:
        """From a campaigns list line."""
        return cls(id=line.campaign.id, name=line.campaign.name, status=line.campaign.status,
                   steps=len(line.campaign.steps), enrolled=line.enrolled)


class StatusChangeOut(BaseModel):
    """What pausing or resuming a campaign did."""

    campaign_id: str
    status: str
    changed: bool
    paused: int
    resumed: int

    @classmethod
    def of(cls, change: StatusChange) -> StatusChangeOut:
        """From the use case's report."""
        return cls(campaign_id=change.campaign_id, status=change.status, changed=change.changed,
                   paused=change.paused, resumed=change.resumed)


class FollowUpOut(BaseModel):
    """One contact enrolled in one campaign."""

    id: str
    contact_id: str
    campaign_id: str
    state: str
    step: int
    next_run_at: datetime | None
    paused_until: datetime | None
    pause_reason: str | None
    stop_reason: str | None
    needs_human: bool
    needs_human_reason: str | None

    @classmethod
    def of(cls, followup: FollowUp) -> FollowUpOut:
        """From the domain model."""
        return cls(id=followup.id, contact_id=followup.contact_id, campaign_id=followup.campaign_id,
                   state=followup.state.value, step=followup.step, next_run_at=followup.next_run_at,
                   paused_until=followup.paused_until, pause_reason=followup.pause_reason,
                   stop_reason=followup.stop_reason, needs_human=followup.needs_human,
                   needs_human_reason=followup.needs_human_reason)


class StatsOut(BaseModel):
    """Follow-ups and messages counted by state (as ``relance status --json``)."""

    followups: dict[str, int]
    messages: dict[str, int]
