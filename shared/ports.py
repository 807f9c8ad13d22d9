"""The small interfaces behind which outside services sit.

Real adapters: :class:`shared.twilio_sender.TwilioSender`, :class:`shared.gemini.GeminiDrafter`,
:class:`shared.language.drafts.OfflineDrafter`, :class:`shared.queue.DramatiqQueue`.
Fakes for unit tests live in :mod:`shared.fakes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from shared.domain.models import Language
from shared.domain.records import DraftClaim


@dataclass(frozen=True)
class OutboundRequest:
    """One WhatsApp message to hand to Twilio."""

    to: str  # E.164, without the whatsapp: prefix
    status_callback: str
    body: str | None = None
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None


@dataclass(frozen=True)
class SendResult:
    """What Twilio answered to a create."""

    sid: str
    status: str


@dataclass(frozen=True)
class DeliveryStatus:
    """A message's current status at Twilio, as a fetch reports it."""

    status: str  # queued, sent, delivered, read, failed, undelivered…
    error_code: int | None = None


class Sender(Protocol):
    """Sends WhatsApp messages. Raises SendRejected (permanent) or SendDeferred (retry)."""

    def send(self, request: OutboundRequest) -> SendResult:
        """Send one message and return Twilio's SID and initial status."""
        ...

    def list_messages(self, *, to: str, from_: str | None = None, date_sent_after: datetime | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """Messages Twilio has for this recipient (sid, to, from, body, status, date_created…)."""
        ...

    def fetch_status(self, sid: str) -> DeliveryStatus | None:
        """The message's current status and error code; None when Twilio does not know the SID."""
        ...


@dataclass(frozen=True)
class HistoryItem:
    """One earlier message of the conversation, as context for the model."""

    direction: str  # "outbound" | "inbound"
    body: str
    at: datetime


@dataclass(frozen=True)
class DraftRequest:
    """Everything a drafter may use. Only ``facts`` may supply amounts, dates, refs and links."""

    contact_name: str
    language: Language
    facts: dict[str, str]
    step_index: int  # 0-based
    step_count: int
    tone: str
    business_name: str
    campaign_name: str
    max_chars: int = 700
    history: tuple[HistoryItem, ...] = field(default_factory=tuple)
    # The campaign's description, as the business wrote it: shown to the model, and with the
    # campaign's name and the step's tone the only thing that allows a draft to mention legal steps.
    campaign_description: str = ""


@dataclass(frozen=True)
class Draft:
    """A drafted message and where it came from."""

    body: str
    language: Language
    source: str  # "gemini" | "offline"
    fallback_reason: str | None = None


class Drafter(Protocol):
    """Writes a follow-up. Raises DraftingError when it cannot."""

    def draft(self, request: DraftRequest) -> Draft:
        """Return a draft for the request."""
        ...


class TaskQueue(Protocol):
    """Where processes put work for the actors. Messages carry ids only."""

    def draft_followup(self, followup_id: str, step: int, claim: DraftClaim | None = None) -> None:
        """Ask a drafting actor to draft this step; ``claim``: what the scheduler's claim read (then
        drafting does not read the follow-up)."""
        ...

    def send_message(self, message_id: str, delay_seconds: float = 0, contact_id: str | None = None) -> None:
        """Ask a sending actor to send this message (optionally later); ``contact_id``: a step
        message's contact (then the actor reads the message and the contact's recent sends at once)."""
        ...

    def process_inbound(self, event_id: str) -> None:
        """Ask a replies actor to process this inbound event."""
        ...

    def process_inbound_many(self, event_ids: Sequence[str]) -> None:
        """Ask replies actors to process these inbound events (one message for them all)."""
        ...

    def process_inbound_each(self, event_ids: Sequence[str]) -> None:
        """Ask replies actors to process these inbound events (one message each)."""
        ...

    def process_status(self, event_id: str) -> None:
        """Ask a replies actor to act on a failed delivery status."""
        ...

    def reconcile_message(self, message_id: str) -> None:
        """Ask a sending actor to find out whether an uncertain message reached Twilio."""
        ...

    def poll_status(self, message_id: str) -> None:
        """Ask a sending actor to fetch the status of a message whose callbacks never came."""
        ...

    def deliver_hook(self, delivery_id: str, delay_seconds: float = 0) -> None:
        """Ask an outbound actor to POST this webhook delivery, optionally after a delay."""
        ...


class Intent(StrEnum):
    """What a client's reply means for the follow-up."""

    PAID = "paid"
    PROMISE_TO_PAY = "promise_to_pay"
    QUESTION = "question"
    DISPUTE = "dispute"
    OPT_OUT = "opt_out"
    WRONG_PERSON = "wrong_person"
    ACKNOWLEDGED = "acknowledged"
    OTHER = "other"


@dataclass(frozen=True)
class ClassifyRequest:
    """A client's reply and the context a classifier may use. ``text`` is data, never instructions."""

    text: str
    language: Language
    facts: dict[str, str]
    today: date  # in the contact's timezone, to resolve "vendredi", "next week"…
    business_name: str
    has_media: bool = False
    history: tuple[HistoryItem, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Classification:
    """A classifier's reading of a reply (same shape online and offline)."""

    intent: Intent
    confidence: float  # 0..1
    source: str  # "gemini" | "offline"
    promised_date: date | None = None
    # For questions: which fact is asked for ("amount", "due_date", "payment_link",
    # "invoice_number", "currency") or None when the data cannot answer it.
    question_topic: str | None = None
    reason: str | None = None


class Classifier(Protocol):
    """Reads a reply. Raises DraftingError when the model's answer is unusable."""

    def classify(self, request: ClassifyRequest) -> Classification:
        """Return the reply's intent and details."""
        ...


class RateLimiter(Protocol):
    """The sender's throughput, shared by every sending worker."""

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a slot; False when none came."""
        ...

    def slow_down(self) -> bool:
        """Twilio said the channel is going too fast (63018): every worker slows down for a while.

        True when this call started the slow-down (rather than extending one).
        """
        ...


class NoRateLimit:
    """A sender without a throughput limit (a single-worker test, a tool)."""

    def acquire(self, timeout: float) -> bool:
        """Always a slot."""
        return True

    def slow_down(self) -> bool:
        """Nothing to slow down."""
        return False


class ContactLocks(Protocol):
    """One worker at a time checks a contact's pacing and moves its message to ``sending``."""

    def hold(self, contact_id: str) -> AbstractContextManager[bool]:
        """Hold the contact's lock for the ``with`` block; it yields False when another worker holds it."""
        ...


class NoContactLocks:
    """Locks for a single worker: always granted."""

    @contextmanager
    def _granted(self) -> Iterator[bool]:
        yield True

    def hold(self, contact_id: str) -> AbstractContextManager[bool]:
        """Always held."""
        return self._granted()

