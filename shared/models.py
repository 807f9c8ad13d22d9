"""Domain models: contacts, campaigns, follow-ups and messages, and their states.

These are plain pydantic models; :mod:`shared.store` maps them to MongoDB documents.
Each document has exactly one ``state`` field; states only move through the conditional
updates in :mod:`shared.store`.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.durations import parse_duration
from shared.errors import InputError


class Language(StrEnum):
    """Languages a contact can be written to in."""

    FR = "fr"
    EN = "en"


class FollowUpState(StrEnum):
    """States of one contact's enrolment in one campaign."""

    SCHEDULED = "scheduled"  # next_run_at set, waiting for the clock
    QUEUED = "queued"  # claimed by a scheduler, draft_followup enqueued
    DRAFTING = "drafting"  # a drafting actor is writing the message
    AWAITING_SEND = "awaiting_send"  # message stored as ready, send_message enqueued
    PAUSED = "paused"  # suspended (until a date, or until the contact writes)
    COMPLETED = "completed"  # every step sent
    STOPPED = "stopped"  # ended early, with a stop_reason


ACTIVE_FOLLOWUP_STATES = (
    FollowUpState.SCHEDULED,
    FollowUpState.QUEUED,
    FollowUpState.DRAFTING,
    FollowUpState.AWAITING_SEND,
)


class MessageState(StrEnum):
    """States of a message. Outbound: ready → sending → sent → delivered → read."""

    READY = "ready"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    UNCERTAIN = "uncertain"  # crashed between the Twilio call and the write; reconciled
    CANCELLED = "cancelled"  # never sent (opt-out, campaign stopped)
    RECEIVED = "received"  # inbound


_F, _M = FollowUpState, MessageState

# The follow-up state machine: every move a follow-up may make. ``Store.move_followup`` refuses
# any other, so a code path that would, say, reopen a stopped follow-up fails loudly instead of
# writing it. completed and stopped are final.
FOLLOWUP_MOVES: dict[FollowUpState, frozenset[FollowUpState]] = {
    _F.SCHEDULED: frozenset({_F.QUEUED, _F.PAUSED, _F.STOPPED}),  # claimed by a scheduler
    _F.QUEUED: frozenset({_F.DRAFTING, _F.AWAITING_SEND, _F.PAUSED, _F.STOPPED}),
    _F.DRAFTING: frozenset({_F.AWAITING_SEND, _F.PAUSED, _F.STOPPED}),
    # sent: the next step or the end; a draft lost on the way: drafted again (queued)
    _F.AWAITING_SEND: frozenset({_F.SCHEDULED, _F.COMPLETED, _F.QUEUED, _F.PAUSED, _F.STOPPED}),
    _F.PAUSED: frozenset({_F.PAUSED, _F.SCHEDULED, _F.STOPPED}),  # paused again: a new reason or date
    _F.COMPLETED: frozenset(),
    _F.STOPPED: frozenset(),
}

# The outbound message state machine (inbound messages are stored ``received`` and never move).
# Delivery statuses only move forward (see STATUS_RANK); failed, undelivered are final, and so is
# read unless Twilio reports a late failure.
MESSAGE_MOVES: dict[MessageState, frozenset[MessageState]] = {
    _M.READY: frozenset({_M.SENDING, _M.CANCELLED}),
    # Twilio answered; refused it; no answer (network); a retryable error: ready again
    _M.SENDING: frozenset({_M.SENT, _M.FAILED, _M.UNCERTAIN, _M.READY}),
    _M.UNCERTAIN: frozenset({_M.SENT, _M.READY}),  # found at Twilio after all; not found: sent again
    _M.CANCELLED: frozenset({_M.READY}),  # drafted again (never sent: it has no Twilio SID)
    _M.SENT: frozenset({_M.DELIVERED, _M.READ, _M.FAILED, _M.UNDELIVERED}),
    _M.DELIVERED: frozenset({_M.READ, _M.FAILED, _M.UNDELIVERED}),
    _M.READ: frozenset({_M.FAILED, _M.UNDELIVERED}),
    _M.FAILED: frozenset(),
    _M.UNDELIVERED: frozenset(),
    _M.RECEIVED: frozenset(),
}


class IllegalMove(ValueError):
    """A state move the state machine does not allow (a programming error, never user input)."""


def check_move(moves: dict[Any, frozenset[Any]], expected: tuple[StrEnum, ...], new: StrEnum) -> None:
    """Raise :class:`IllegalMove` unless ``new`` may follow each of the ``expected`` states."""
    wrong = [state.value for state in expected if new not in moves[state]]
    if wrong:
        kind = "follow-up" if isinstance(new, FollowUpState) else "message"
        raise IllegalMove(f"a {kind} cannot move from {', '.join(wrong)} to {new.value}")


# Rank of each delivery status: a status callback only ever moves a message forward.
STATUS_RANK: dict[str, int] = {
    "ready": 0,
    "sending": 1,
    "uncertain": 1,
    "queued": 2,
    "accepted": 2,
    "sent": 3,
    "delivered": 4,
    "read": 5,
    "failed": 6,
    "undelivered": 6,
}
TWILIO_STATUS_TO_STATE: dict[str, MessageState] = {
    "queued": MessageState.SENT,
    "accepted": MessageState.SENT,
    "sending": MessageState.SENT,
    "sent": MessageState.SENT,
    "delivered": MessageState.DELIVERED,
    "read": MessageState.READ,
    "failed": MessageState.FAILED,
    "undelivered": MessageState.UNDELIVERED,
}


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


class EnrolRule(BaseModel):
    """Which contacts a campaign enrols: all of ``tags``, and fields equal to ``filter``."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)
    filter: dict[str, str] = Field(default_factory=dict)


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

    def referenced_fields(self) -> set[str]:
        """Contact fields this campaign needs: date anchors and template variables."""
        needed: set[str] = set()
        for step in self.steps:
            if step.anchor not in ("enrolment", "previous"):
                needed.add(step.anchor)
            if step.template:
                needed.update(v for v in step.template.variables.values() if v != "name")
        needed.update(self.enrol.filter)
        return needed


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
    paused_until: datetime | None = None
    needs_human: bool = False
    needs_human_reason: str | None = None


class OutboundMessage(BaseModel):
    """A message we send: a follow-up step, a reply to a client, or an alert to the owner."""

    id: str
    followup_id: str | None
    contact_id: str | None
    campaign_id: str | None
    step: int
    # "step": one step of a campaign; "reply": an answer in a conversation the client opened;
    # "alert": a hand-over notice to the business owner.
    purpose: Literal["step", "reply", "alert"] = "step"
    to: str | None = None  # only for alerts: the owner's number
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
    twilio_sid: str | None = None
    error_code: int | None = None


def message_id_for(followup_id: str, step: int) -> str:
    """The deterministic id of a step's message: one message per (follow-up, step), ever."""
    return f"{followup_id}:{step}"


def public_dict(model: BaseModel) -> dict[str, Any]:
    """A JSON-friendly dict of a model (for the CLI and logs)."""
    return model.model_dump(mode="json")
