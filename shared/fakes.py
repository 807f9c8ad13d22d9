"""In-memory fakes behind the project's own interfaces, for unit tests and offline runs."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import DraftingError, SendDeferred
from shared.ports import DeliveryStatus, Draft, DraftRequest, OutboundRequest, SendResult


@dataclass
class RecordingQueue:
    """A TaskQueue that records what was enqueued."""

    drafts: list[tuple[str, int]] = field(default_factory=list)
    sends: list[tuple[str, float]] = field(default_factory=list)
    inbound: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    reconciles: list[str] = field(default_factory=list)
    status_polls: list[str] = field(default_factory=list)

    def draft_followup(self, followup_id: str, step: int) -> None:
        """Record a draft request."""
        self.drafts.append((followup_id, step))

    def send_message(self, message_id: str, delay_seconds: float = 0) -> None:
        """Record a send request."""
        self.sends.append((message_id, delay_seconds))

    def process_inbound(self, event_id: str) -> None:
        """Record an inbound event."""
        self.inbound.append(event_id)

    def process_inbound_many(self, event_ids: Sequence[str]) -> None:
        """Record several inbound events."""
        self.inbound.extend(event_ids)

    def process_inbound_each(self, event_ids: Sequence[str]) -> None:
        """Record several inbound events."""
        self.inbound.extend(event_ids)

    def process_status(self, event_id: str) -> None:
        """Record a failed-status event."""
        self.statuses.append(event_id)

    def reconcile_message(self, message_id: str) -> None:
        """Record a reconciliation request."""
        self.reconciles.append(message_id)

    def poll_status(self, message_id: str) -> None:
        """Record a status poll request."""
        self.status_polls.append(message_id)


class FakeSender:
    """A Sender that keeps what it was asked to send; can be told to raise once."""

    def __init__(self) -> None:
        self.sent: list[OutboundRequest] = []
        self.sids: list[str] = []
        self.created: list[datetime] = []
        self.fail_with: Exception | None = None
        # Accept the message, then fail as a lost answer would (the send is uncertain).
        self.lose_answer_once = False
        # What fetch_status reports per SID (default: "sent" for a SID this fake created).
        self.statuses: dict[str, DeliveryStatus] = {}
        # Raised (once) by the next fetch_status instead of answering.
        self.fetch_fail_with: Exception | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, request: OutboundRequest) -> SendResult:
        """Record the request, or raise the configured error."""
        with self._lock:
            if self.fail_with is not None:
                error, self.fail_with = self.fail_with, None
                raise error
            self.sent.append(request)
            sid = f"SM{next(self._ids):032x}"
            self.sids.append(sid)
            self.created.append(datetime.now(UTC))
            if self.lose_answer_once:
                self.lose_answer_once = False
                raise SendDeferred(None, "read timeout; the message may have been created")
            return SendResult(sid=sid, status="queued")

    def list_messages(self, *, to: str, from_: str | None = None, date_sent_after: datetime | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """What this fake 'Twilio' holds for a recipient, newest first."""
        with self._lock:
            rows = [{"sid": sid, "to": f"whatsapp:{r.to}", "body": r.body or "", "status": "sent",
                     "date_created": at, "date_sent": at}
                    for r, sid, at in zip(self.sent, self.sids, self.created, strict=True)
                    if r.to == to.removeprefix("whatsapp:")]
        return list(reversed(rows))[:limit]

    def fetch_status(self, sid: str) -> DeliveryStatus | None:
        """The status set in ``statuses``; "sent" for a SID it created; None for an unknown SID."""
        with self._lock:
            if self.fetch_fail_with is not None:
                error, self.fetch_fail_with = self.fetch_fail_with, None
                raise error
            if sid in self.statuses:
                return self.statuses[sid]
            return DeliveryStatus(status="sent") if sid in self.sids else None


class FailingDrafter:
    """A Drafter that always fails (to exercise fallbacks)."""

    def draft(self, request: DraftRequest) -> Draft:
        """Always raise DraftingError."""
        raise DraftingError("fake failure")
