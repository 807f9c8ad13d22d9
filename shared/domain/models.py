"""Domain models: contacts, campaigns, follow-ups and messages.

Plain pydantic models; the repositories (:mod:`shared.adapters`) store them. Their states and
the moves between them are in :mod:`shared.domain.states`.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.domain.states import FollowUpState, MessageState
from shared.durations import parse_duration
from shared.errors import InputError


class Language(StrEnum):
    """Languages a contact can be written to in."""

    FR = "fr"
    EN = "en"


class Contact(BaseModel):
    """A client of the business, reachable on WhatsApp."""

    model_config = ConfigDict(extra="forbid")

    id: str
    phone: str  # E.164
    name: str
    language: Language = Language.FR
    timezone: str = "Europe/Paris"
    fields: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    opted_out: bool = False
    last_inbound_at: datetime | None = None


CONTENT_SID_SHAPE = "HX followed by 32 hexadecimal characters"
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


def is_content_sid(value: str) -> bool:
    """True when ``value`` has the shape of a Twilio Content template SID (``HX`` + 32 hex)."""
    return bool(_CONTENT_SID.match(value))


class TemplateRef(BaseModel):
    """An approved Twilio Content template and how to fill its variables."""

    model_config = ConfigDict(extra="forbid")

    content_sid: str
    # Template variable ("1", "2"…) → contact attribute: "name" or a field name.
    variables: dict[str, str] = Field(default_factory=dict)
    # Optional text of the template per language, used to show and check what was sent.
    preview: dict[Language, str] = Field(default_factory=dict)

    @field_validator("content_sid")
    @classmethod
    def _sid(cls, value: str) -> str:
        if not is_content_sid(value):
            raise ValueError(f"content_sid must look like {CONTENT_SID_SHAPE}")
        return value


class Step(BaseModel):
    """One follow-up in a campaign's cadence."""

    model_config = ConfigDict(extra="forbid")

    delay: str = "0s"
    # "enrolment", "previous" (the previous step's send) or a date field of the contact.
    anchor: str = "enrolment"
    relation: Literal["after", "before"] = "after"
    tone: str = "courteous"
    template: TemplateRef | None = None

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str) -> str:
        try:
            parse_duration(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def delay_delta(self) -> timedelta:
        """The delay as a timedelta, signed by ``relation``."""
        delta = parse_duration(self.delay)
        return -delta if self.relation == "before" else delta


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SendWindow(BaseModel):
    """When messages may go out, in the contact's own timezone."""

    model_config = ConfigDict(extra="forbid")

    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    start: time = time(9, 0)
    end: time = time(19, 0)

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.strip().lower()[:3] for d in value]
        bad = [d for d in days if d not in WEEKDAYS]
        if bad or not days:
            raise ValueError(f"days must be among {', '.join(WEEKDAYS)}")
        return days

    @model_validator(mode="after")
    def _order(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError("send window end must be after its start")
        return self


# A step of an invoice campaign may be anchored on the due date of the client's oldest unpaid invoice.
OLDEST_DUE_DATE = "oldest_due_date"


class InvoiceSelector(BaseModel):
    """Which invoices an invoice campaign reminds clients of (``enrol: {invoices: {...}}``).

    A client is enrolled once one of their unpaid invoices is ``overdue_days`` past its due date
    (an invoice without a due date counts as due) with at least ``min_amount`` still due; the
    follow-up then covers every open or part-paid invoice of the client with at least
    ``min_amount`` due, the ones added later included, and ends when none is left.
    """

    model_config = ConfigDict(extra="forbid")

    overdue_days: int = Field(default=0, ge=0, le=3650)
    min_amount: Decimal = Field(default=Decimal(0), ge=0, max_digits=14, decimal_places=2)

    @field_validator("min_amount", mode="before")
    @classmethod
    def _comma(cls, value: object) -> object:
        """``"12,50"`` (a French decimal comma) reads as 12.50."""
        return value.strip().replace(",", ".") if isinstance(value, str) else value

    @property
    def min_amount_cents(self) -> int:
        """``min_amount`` in cents."""
        return int(self.min_amount * 100)


class EnrolRule(BaseModel):
    """Which contacts a campaign enrols: all of ``tags``, fields equal to ``filter``, and for an
    invoice campaign (``invoices``) the clients owing invoices it selects."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)
    filter: dict[str, str] = Field(default_factory=dict)
    invoices: InvoiceSelector | None = None


class Campaign(BaseModel):
    """A follow-up cadence: ordered steps, a send window, an enrolment rule."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    description: str = ""
    steps: list[Step]
    send_window: SendWindow = Field(default_factory=SendWindow)
    enrol: EnrolRule = Field(default_factory=EnrolRule)
    status: Literal["active", "paused"] = "active"
    # "required": each step's draft waits in awaiting_approval until a person approves it (docs/console.md).
    approval: Literal["auto", "required"] = "auto"

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", value):
            raise ValueError("id must be lower-case letters, digits, - or _ (at most 64)")
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[Step]) -> list[Step]:
        if not value:
            raise ValueError("a campaign needs at least one step")
        return value

    @property
    def needs_approval(self) -> bool:
        """True when a person approves each draft before it is sent (``approval: required``)."""
        return self.approval == "required"

    @property
    def about_invoices(self) -> bool:
        """True for an invoice campaign: one follow-up per client, covering their unpaid invoices."""
        return self.enrol.invoices is not None

    @model_validator(mode="after")
    def _invoice_anchor(self) -> Campaign:
        if not self.about_invoices and any(step.anchor == OLDEST_DUE_DATE for step in self.steps):
            raise ValueError(f"anchor {OLDEST_DUE_DATE!r} needs an invoice campaign (enrol: {{invoices: {{}}}})")
        return self

    def referenced_fields(self) -> set[str]:
        """Contact fields this campaign needs: date anchors and template variables (an invoice
        campaign's invoice variables and its ``oldest_due_date`` anchor come from the invoices)."""
        from_invoices = INVOICE_VARIABLES if self.about_invoices else frozenset()
        needed: set[str] = set()
        for step in self.steps:
            if step.anchor not in ("enrolment", "previous", OLDEST_DUE_DATE):
                needed.add(step.anchor)
            if step.template:
                needed.update(v for v in step.template.variables.values() if v != "name" and v not in from_invoices)
        needed.update(self.enrol.filter)
        return needed


# Template variables an invoice campaign fills from the client's invoices (not the contact's fields).
INVOICE_VARIABLES = frozenset({
    "invoice_count", "total_due", "invoice_list", "payment_link", "invoice_number", "amount", "currency",
    "due_date",
})


class FollowUp(BaseModel):
    """One contact enrolled in one campaign."""

    id: str
    contact_id: str
    campaign_id: str
    state: FollowUpState
    step: int = 0
    next_run_at: datetime | None = None
    enrolled_at: datetime
    stop_reason: str | None = None
    pause_reason: str | None = None
    paused_until: datetime | None = None
    needs_human: bool = False
    needs_human_reason: str | None = None
    # The last step whose message was stored and handed to sending: a step queued again after
    # that (a pause, a lost draft) may find its message stored already.
    drafted_step: int | None = None
    # 0: the contact's first follow-up in the campaign; n: enrolled again n times after one ended
    # (shared.domain.records.Enrolment).
    generation: int = 0


class OutboundMessage(BaseModel):
    """A message we send: a follow-up step, a reply to a client, or an alert to the owner."""

    id: str
    followup_id: str | None
    contact_id: str | None
    campaign_id: str | None
    step: int
    # "step": one step of a campaign; "reply": an answer in a conversation the client opened;
    # "alert": a hand-over notice to the business owner; "manual": a person wrote it by hand
    # (:mod:`shared.usecases.manual_reply`), ``written_by`` says who.
    purpose: Literal["step", "reply", "alert", "manual"] = "step"
    # The recipient (E.164): the owner's number for an alert; the contact's phone for a step,
    # kept with its timezone when drafted, so that the sending actor need not read the contact.
    to: str | None = None
    timezone: str | None = None
    # The invoices a step of an invoice campaign names (references), and what was due on them when
    # drafted (:func:`shared.domain.invoices.dues_key`): re-read before it is sent.
    invoices: list[str] | None = None
    invoices_key: str | None = None
    resend_of: str | None = None  # a template re-send of a step or alert refused as freeform (63016)
    state: MessageState
    kind: Literal["freeform", "template"]
    body: str
    language: Language
    content_sid: str | None = None
    # A template's variables. An owner alert sent as freeform keeps the variables of
    # OWNER_ALERT_TEMPLATE_SID here too, for a template re-send if Twilio answers 63016.
    content_variables: dict[str, str] | None = None
    draft_source: str = "offline"
    fallback_reason: str | None = None
    not_before: datetime | None = None
    written_by: str | None = None  # a manual message's author: "key:<name>", "user:<email>"
    twilio_sid: str | None = None
    error_code: int | None = None
    # A freeform step drafted in the client's 24-hour window: when that window closes (awaiting
    # approval past it, the step is drafted again as its template).
    window_closes_at: datetime | None = None
    # Who approved, edited or rejected a draft waiting for approval (``key:<name>``, ``user:<email>``).
    approved_by: str | None = None
    approved_at: datetime | None = None
    edited_by: str | None = None
    edited_at: datetime | None = None
    rejected_by: str | None = None
    rejection_reason: str | None = None
    # Set by the repository as the message moves (never written from here).
    created_at: datetime | None = None
    state_changed_at: datetime | None = None
    sending_at: datetime | None = None
    sent_at: datetime | None = None


# OutboundMessage fields the repository keeps up to date itself.
MESSAGE_BOOKKEEPING = frozenset({"created_at", "state_changed_at", "sending_at", "sent_at"})


def message_id_for(followup_id: str, step: int) -> str:
    """The deterministic id of a step's message: one message per (follow-up, step), ever."""
    return f"{followup_id}:{step}"


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix (``ct_3f9a…``)."""
    return f"{prefix}_{secrets.token_hex(8)}"
