"""The console's response and request bodies (its OpenAPI schemas)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

from shared.domain.hooks import Delivery, Subscription
from shared.domain.invoices import Invoice
from shared.domain.models import Contact, FollowUp, OutboundMessage
from shared.domain.records import MessageSummary
from shared.usecases.campaigns import CampaignLine, CampaignProgress, StatusChange
from shared.usecases.conversations import ConversationRow, Timeline

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
    """A payment recorded by a person: all that is due, or ``amount`` (as written in an invoices file).

    ``amount_due_was``: the amount due (cents, the invoice's ``amount_due_cents``) the caller saw: the payment is
    recorded only while it still is (409 otherwise), so the same request sent twice records one payment.
    Send it, or an Idempotency-Key, with an ``amount``.
    """

    amount: str | None = Field(default=None, max_length=32, examples=["120.50"])
    amount_due_was: int | None = Field(default=None, ge=0, le=10**15, examples=[25000])


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


# ------------------------------------------------------------------ writes: contacts, invoices, campaigns

class ContactIn(BaseModel):
    """A new client, checked as a contacts file's row: phone normalised (the default country's when it has no
    +), language fr/en (default from the phone's country), an IANA timezone (default from the phone)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, examples=["Marie Dupont"])
    phone: str = Field(max_length=40, examples=["+33612345678"])
    language: str | None = Field(default=None, max_length=20, examples=["fr"])
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Paris"])
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    fields: dict[str, Annotated[str, Field(max_length=1000)]] = Field(default_factory=dict, max_length=100)


class ContactPatch(BaseModel):
    """What to change on a client (only what is given). ``fields`` are merged: a field set to null is
    removed. ``opted_out: true`` opts the client out and stops its follow-ups; false cannot undo an opt-out
    (only the client can, by writing START). The phone cannot change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=20)
    timezone: str | None = Field(default=None, max_length=64)
    tags: list[Annotated[str, Field(max_length=100)]] | None = Field(default=None, max_length=50)
    fields: dict[str, Annotated[str | None, Field(max_length=1000)]] | None = Field(default=None, max_length=100)
    opted_out: bool | None = None


class InvoiceIn(BaseModel):
    """A new invoice, as one row of an invoices file: amounts as written there (``1 250,50``), dates
    YYYY-MM-DD or DD/MM/YYYY; name, language, timezone and tags describe a client not known yet."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=40, examples=["+33612345678"])
    invoice: str = Field(max_length=200, description="the reference", examples=["FA-2026-001"])
    amount: str = Field(max_length=32, examples=["1250.50"])
    amount_due: str | None = Field(default=None, max_length=32)
    currency: str | None = Field(default=None, max_length=8, examples=["EUR"])
    issued_on: str | None = Field(default=None, max_length=32)
    due_date: str | None = Field(default=None, max_length=32, examples=["2026-03-31"])
    payment_link: str | None = Field(default=None, max_length=2000)
    status: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=20)
    timezone: str | None = Field(default=None, max_length=64)
    tags: list[Annotated[str, Field(max_length=100)]] | None = Field(default=None, max_length=50)


class InvoicePatch(BaseModel):
    """What to change on an invoice (only what is given): ``amount`` of an open or partly paid one (what is
    due moves by as much), ``due_date``, ``issued_on``, ``payment_link`` (null clears them)."""

    model_config = ConfigDict(extra="forbid")

    amount: str | None = Field(default=None, max_length=32, examples=["980.00"])
    due_date: str | None = Field(default=None, max_length=32, examples=["2026-04-30"])
    issued_on: str | None = Field(default=None, max_length=32)
    payment_link: str | None = Field(default=None, max_length=2000)


class CampaignIn(RootModel[dict[str, Any]]):
    """A campaign as in a campaign file (docs/campaigns.md): id, name, steps, send_window, enrol…"""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "relance-factures", "name": "Relance factures",
        "steps": [{"delay": "3d", "anchor": "due_date", "tone": "courteous"}],
        "enrol": {"invoices": {"overdue_days": 0}}}]})


class CampaignDetailOut(BaseModel):
    """A campaign with its progress: its follow-ups counted by state, and how many wait for a person."""

    id: str
    name: str
    status: str
    steps: int
    about_invoices: bool
    enrolled: int
    by_state: dict[str, int]
    needs_human: int

    @classmethod
    def of(cls, progress: CampaignProgress) -> CampaignDetailOut:
        """From the use case's report."""
        campaign = progress.campaign
        return cls(id=campaign.id, name=campaign.name, status=campaign.status, steps=len(campaign.steps),
                   about_invoices=campaign.about_invoices,
                   enrolled=progress.enrolled, by_state=progress.by_state, needs_human=progress.needs_human)


class EnrolIn(BaseModel):
    """Enrol what the campaign's rule selects, restricted to contacts with these tags too."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)


class EnrolOut(BaseModel):
    """What an enrolment did (as ``relance campaigns enrol``)."""

    campaign_id: str
    enrolled: int
    already_enrolled: int
    skipped: list[str]


# ------------------------------------------------------------------ messages, conversations

class MessageOut(BaseModel):
    """A message Relance sends (a step of a campaign, a reply, an alert to the owner), with its text."""

    id: str
    followup_id: str | None
    contact_id: str | None
    campaign_id: str | None
    step: int
    purpose: str
    state: str
    kind: str
    body: str
    language: str
    content_sid: str | None
    invoices: list[str] | None
    draft_source: str
    fallback_reason: str | None
    error_code: int | None
    twilio_sid: str | None
    not_before: datetime | None
    created_at: datetime | None
    sent_at: datetime | None
    state_changed_at: datetime | None

    @classmethod
    def of(cls, message: OutboundMessage) -> MessageOut:
        """From the domain model (the recipient's number and the template's variables left out)."""
        return cls(id=message.id, followup_id=message.followup_id, contact_id=message.contact_id,
                   campaign_id=message.campaign_id, step=message.step, purpose=message.purpose,
                   state=message.state.value, kind=message.kind, body=message.body, language=message.language.value,
                   content_sid=message.content_sid, invoices=message.invoices, draft_source=message.draft_source,
                   fallback_reason=message.fallback_reason, error_code=message.error_code,
                   twilio_sid=message.twilio_sid, not_before=message.not_before, created_at=message.created_at,
                   sent_at=message.sent_at, state_changed_at=message.state_changed_at)


class ConversationOut(BaseModel):
    """A client with follow-ups, or an unknown number that wrote (``contact_id`` null)."""

    phone: str | None
    contact_id: str | None
    name: str | None
    states: list[str]
    needs_human: bool
    needs_human_reasons: list[str]
    last_activity: datetime
    last_inbound_at: datetime | None
    unknown_messages: int

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationOut:
        """From the use case's row."""
        return cls(phone=row.phone, contact_id=row.contact_id, name=row.name, states=row.states,
                   needs_human=row.needs_human, needs_human_reasons=row.needs_human_reasons,
                   last_activity=row.last_activity, last_inbound_at=row.last_inbound_at,
                   unknown_messages=row.unknown_messages)


class ListOut(BaseModel, Generic[T]):
    """A list of the most recent items (at most ``limit``)."""

    items: list[T]


class TimelineContactOut(BaseModel):
    """The client as stored (``problem``: what makes the record unreadable, if anything)."""

    id: str
    name: str | None
    phone: str | None
    language: str | None
    timezone: str | None
    fields: dict[str, str]
    opted_out: bool
    last_inbound_at: datetime | None
    problem: str | None


class TimelineFollowUpOut(BaseModel):
    """One of the client's follow-ups."""

    id: str
    campaign_id: str
    state: str
    step: int
    stop_reason: str | None
    pause_reason: str | None
    needs_human: bool
    needs_human_reason: str | None
    handled_at: datetime | None
    handled_action: str | None


class TimelineMessageOut(BaseModel):
    """A message in (from the client) or out, with its state and times; ``intent`` as a reply was read."""

    id: str
    direction: str
    state: str
    created_at: datetime | None
    sent_at: datetime | None
    body: str
    purpose: str | None
    kind: str | None
    step: int | None
    num_media: int
    error_code: int | None
    intent: str | None
    confidence: float | None
    outcome: str | None


class TimelineOut(BaseModel):
    """A client's conversation: who, its follow-ups, every message in and out (oldest first), its invoices.
    For an unknown number that wrote: ``contact`` null and what it sent."""

    phone: str
    contact: TimelineContactOut | None
    followups: list[TimelineFollowUpOut]
    messages: list[TimelineMessageOut]
    invoices: list[InvoiceOut]

    @classmethod
    def of(cls, found: Timeline) -> TimelineOut:
        """From the use case's timeline."""
        record = found.contact
        contact = None if record is None else TimelineContactOut(
            id=record.id, name=record.name, phone=record.phone, language=record.language, timezone=record.timezone,
            fields={str(k): str(v) for k, v in record.fields.items()}, opted_out=bool(record.opted_out),
            last_inbound_at=record.last_inbound_at if isinstance(record.last_inbound_at, datetime) else None,
            problem=record.problem)
        return cls(phone=found.phone, contact=contact, invoices=[InvoiceOut.of(i) for i in found.invoices],
                   followups=[TimelineFollowUpOut(
                       id=f.id, campaign_id=f.campaign_id, state=f.state, step=f.step, stop_reason=f.stop_reason,
                       pause_reason=f.pause_reason, needs_human=f.needs_human,
                       needs_human_reason=f.needs_human_reason, handled_at=f.handled_at,
                       handled_action=f.handled_action) for f in found.followups],
                   messages=[_timeline_message(m) for m in found.messages])


def _timeline_message(message: MessageSummary) -> TimelineMessageOut:
    reading = message.classification or {}
    confidence = reading.get("confidence")
    return TimelineMessageOut(
        id=message.id, direction=message.direction, state=message.state, created_at=message.created_at,
        sent_at=message.sent_at, body=message.body, purpose=message.purpose, kind=message.kind, step=message.step,
        num_media=message.num_media, error_code=message.error_code,
        intent=str(reading["intent"]) if reading.get("intent") else None,
        confidence=float(confidence) if isinstance(confidence, int | float) else None, outcome=message.outcome)


# ------------------------------------------------------------------ outbound webhooks

class HookIn(BaseModel):
    """A URL to send events to (https; http only to this machine) and the events it receives."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, examples=["https://erp.example.com/relance-events"])
    events: list[Annotated[str, Field(max_length=64)]] = Field(max_length=10, examples=[["invoice.paid"]])


class DeliveryOut(BaseModel):
    """The last delivery of a webhook: its state, attempts and the receiver's last answer."""

    event_id: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    updated_at: datetime | None


class HookOut(BaseModel):
    """An outbound webhook (never its secret) and its last delivery (null before the first)."""

    id: str
    url: str
    events: list[str]
    created_at: datetime
    last_delivery: DeliveryOut | None

    @classmethod
    def of(cls, subscription: Subscription, last: Delivery | None) -> HookOut:
        """From the subscription and its last delivery."""
        delivery = None if last is None else DeliveryOut(
            event_id=last.event_id, state=last.state.value, attempts=last.attempts, last_status=last.last_status,
            last_error=last.last_error, next_attempt_at=last.next_attempt_at, updated_at=last.updated_at)
        return cls(id=subscription.id, url=subscription.url, events=list(subscription.events),
                   created_at=subscription.created_at, last_delivery=delivery)


class HookCreatedOut(HookOut):
    """A new webhook with its signing secret: shown in this answer only, keep it in the receiver's settings."""

    secret: str
