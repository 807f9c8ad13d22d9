"""The small interfaces behind which outside services sit.

Real adapters: :class:`shared.twilio_sender.TwilioSender`, :class:`shared.gemini.GeminiDrafter`,
:class:`shared.offline.OfflineDrafter`, :class:`shared.queue.DramatiqQueue`.
Fakes for unit tests live in :mod:`shared.fakes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.models import Language


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


class Sender(Protocol):
    """Sends WhatsApp messages. Raises SendRejected (permanent) or SendDeferred (retry)."""

    def send(self, request: OutboundRequest) -> SendResult:
        """Send one message and return Twilio's SID and initial status."""
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

    def draft_followup(self, followup_id: str, step: int) -> None:
        """Ask a drafting actor to draft this step."""
        ...

    def send_message(self, message_id: str, delay_seconds: float = 0) -> None:
        """Ask a sending actor to send this message (optionally later)."""
        ...

    def process_inbound(self, event_id: str) -> None:
        """Ask a replies actor to process this inbound event."""
        ...
