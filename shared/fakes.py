"""In-memory fakes behind the project's own interfaces, for unit tests and offline runs."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from shared.errors import DraftingError
from shared.ports import Draft, DraftRequest, OutboundRequest, SendResult


@dataclass
class RecordingQueue:
    """A TaskQueue that records what was enqueued."""

    drafts: list[tuple[str, int]] = field(default_factory=list)
    sends: list[tuple[str, float]] = field(default_factory=list)
    inbound: list[str] = field(default_factory=list)

    def draft_followup(self, followup_id: str, step: int) -> None:
        """Record a draft request."""
        self.drafts.append((followup_id, step))

    def send_message(self, message_id: str, delay_seconds: float = 0) -> None:
        """Record a send request."""
        self.sends.append((message_id, delay_seconds))

    def process_inbound(self, event_id: str) -> None:
        """Record an inbound event."""
        self.inbound.append(event_id)


class FakeSender:
    """A Sender that keeps what it was asked to send; can be told to raise once."""

    def __init__(self) -> None:
        self.sent: list[OutboundRequest] = []
        self.fail_with: Exception | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, request: OutboundRequest) -> SendResult:
        """Record the request, or raise the configured error."""
        with self._lock:
            if self.fail_with is not None:
                error, self.fail_with = self.fail_with, None
                raise error
            self.sent.append(request)
            return SendResult(sid=f"SM{next(self._ids):032x}", status="queued")


class FailingDrafter:
    """A Drafter that always fails (to exercise fallbacks)."""

    def draft(self, request: DraftRequest) -> Draft:
        """Always raise DraftingError."""
        raise DraftingError("fake failure")
