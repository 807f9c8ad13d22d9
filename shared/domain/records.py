"""Small typed records the repositories return where a whole model is not needed (or not readable).

The ``*Summary`` and :class:`ContactRecord` records are read leniently, for what a person is
shown: a stored document the models refuse is exactly one a person must see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.domain.states import ActionState, EventState, FollowUpState


# ---------------------------------------------------------------- follow-ups
@dataclass(frozen=True)
class Enrolment:
    """One contact to enrol in one campaign, due at ``next_run_at`` (see ``FollowUpRepository.enrol_many``)."""

    contact_id: str
    campaign_id: str
    next_run_at: datetime
    # 0: the first follow-up of this contact in this campaign; n: the n-th one after it ended (an invoice
    # campaign enrols a client again whose follow-up stopped as paid once they owe again).
    generation: int = 0



@dataclass(frozen=True)
class FollowUpRef:
    """A follow-up to work on: its id and current step (a claim also reads what drafting needs)."""

    id: str
    step: int
    contact_id: str | None = None
    campaign_id: str | None = None
    drafted_step: int | None = None


@dataclass(frozen=True)
class DraftClaim:
    """What the scheduler's claim read of a follow-up, handed to drafting so that it need not read it.

    The follow-up was ``queued`` at this step at ``claimed_at``; whether it still is, drafting's
    conditional ``await_send`` decides. ``drafted_step``: the last step handed to sending (a draft
    of this step may be stored already when it equals the step).
    """

    contact_id: str
    campaign_id: str
    drafted_step: int | None
    claimed_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The claim as a JSON object (a dramatiq message's keyword argument)."""
        return {"contact_id": self.contact_id, "campaign_id": self.campaign_id, "drafted_step": self.drafted_step,
                "claimed_at": self.claimed_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DraftClaim | None:
        """The claim of :meth:`to_json`; None when absent or unreadable (then drafting reads the follow-up)."""
        if not data:
            return None
        try:
            drafted = data.get("drafted_step")
            return cls(contact_id=str(data["contact_id"]), campaign_id=str(data["campaign_id"]),
                       drafted_step=None if drafted is None else int(drafted),
                       claimed_at=datetime.fromisoformat(str(data["claimed_at"])))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class StaleFollowUp:
    """A follow-up sitting in ``state`` since ``changed_at`` (the scheduler's reconciler)."""

    id: str
    step: int
    state: FollowUpState
    changed_at: datetime


@dataclass(frozen=True)
class DraftKeeper:
    """What decides whether a follow-up still wants a drafted message (see ``shared.usecases.cadence.keeps_draft``)."""

    state: str | None
    step: int | None
    pause_reason: str | None = None


@dataclass(frozen=True)
class FollowUpSummary:
    """A follow-up as shown to a person (``relance conversations``)."""

    id: str
    contact_id: str
    campaign_id: str
    state: str
    step: int
    stop_reason: str | None = None
    pause_reason: str | None = None
    needs_human: bool = False
    needs_human_reason: str | None = None
    handled_at: datetime | None = None
    handled_action: str | None = None
    updated_at: datetime | None = None
    hand_over_sid: str | None = None  # the inbound SID that opened its hand-over, while it is open


# ---------------------------------------------------------------- contacts


@dataclass(frozen=True, order=True)
class ContactName:
    """A contact as the clients list sorts and filters it (``ContactRepository.names``)."""

    key: str  # shared.language.text.name_key of its name
    id: str
    opted_out: bool = False


@dataclass(frozen=True)
class ContactRecord:
    """A contact as stored, whether or not the Contact model accepts it.

    ``problem`` says what the model refuses (``"language: Input should be 'fr' or 'en'"``), or None.
    """

    id: str
    phone: str | None
    name: str | None
    language: str | None = None
    timezone: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    opted_out: bool = False
    last_inbound_at: datetime | None = None
    problem: str | None = None


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class ReadyMessage:
    """A ``ready`` outbound message found by a scan: what decides whether it is still wanted."""

    id: str
    followup_id: str | None
    step: int
    resend_of: str | None = None


@dataclass(frozen=True)
class ConversationEntry:
    """One message of a conversation, as context for a model."""

    direction: str  # "outbound" | "inbound"
    body: str
    at: datetime


@dataclass(frozen=True)
class InboundRecord:
    """An inbound message as it joins the conversation (stored once, ``in:<MessageSid>``)."""

    id: str
    twilio_sid: str
    contact_id: str | None
    followup_ids: list[str] = field(default_factory=list)  # the follow-ups it answers
    unknown_sender: bool = False  # from a number that is no contact (and not the owner)
    from_owner: bool = False
    sender: str = ""  # E.164
    body: str = ""
    num_media: int = 0
    media_urls: list[str] = field(default_factory=list)
    button_payload: str = ""
    event_id: str = ""


@dataclass(frozen=True)
class MessageSummary:
    """A message in or out as shown to a person (timelines, the demo's output)."""

    id: str
    direction: str
    state: str
    created_at: datetime | None
    body: str = ""
    purpose: str | None = None
    kind: str | None = None
    step: int | None = None
    contact_id: str | None = None
    sender: str | None = None  # inbound: the number it came from
    num_media: int = 0
    error_code: int | None = None
    classification: Mapping[str, Any] | None = None
    outcome: str | None = None
    sent_at: datetime | None = None
    handled_at: datetime | None = None


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class WaitingEvent:
    """A stored webhook event still waiting for an actor."""

    id: str
    kind: str
    received_at: datetime | None = None


@dataclass(frozen=True)
class StoredEvent:
    """A stored webhook event: an inbound message (``inbound``) or a delivery status (``status``)."""

    id: str
    kind: str
    state: EventState
    sid: str
    received_at: datetime | None = None
    # inbound
    sender: str = ""  # whatsapp:+E164, as Twilio sent it
    body: str = ""
    num_media: int = 0
    media_urls: list[str] = field(default_factory=list)
    button_payload: str = ""
    # status
    status: str | None = None
    error_code: int | None = None
    action_state: ActionState | None = None
    failures: int = 0


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobRun:
    """This period's run of a periodic job, claimed by one scheduler: where the last run stopped."""

    id: str
    cursor: datetime | None
    next_run_at: datetime
