"""In-memory fakes behind the project's own interfaces, for unit tests and offline runs."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.clock import Clock, SystemClock
from shared.domain.records import DraftClaim
from shared.errors import DraftingError, SendDeferred
from shared.ports import DeliveryStatus, Draft, DraftRequest, OutboundRequest, SendResult


@dataclass
class RecordingQueue:
    """A TaskQueue that records what was enqueued."""

    drafts: list[tuple[str, int]] = field(default_factory=list)
    claims: dict[str, DraftClaim] = field(default_factory=dict)
    send_contacts: dict[str, str] = field(default_factory=dict)
    sends: list[tuple[str, float]] = field(default_factory=list)
    inbound: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    reconciles: list[str] = field(default_factory=list)
    status_polls: list[str] = field(default_factory=list)
    hooks: list[tuple[str, float]] = field(default_factory=list)

    def draft_followup(self, followup_id: str, step: int, claim: DraftClaim | None = None) -> None:
        """Record a draft request (``drafts``), and its claim when given (``claims``, by follow-up)."""
        self.drafts.append((followup_id, step))
        if claim is not None:
            self.claims[followup_id] = claim

    def send_message(self, message_id: str, delay_seconds: float = 0, contact_id: str | None = None) -> None:
        """Record a send request (``sends``), and its contact when given (``send_contacts``, by message)."""
        self.sends.append((message_id, delay_seconds))
        if contact_id is not None:
            self.send_contacts[message_id] = contact_id

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

    def deliver_hook(self, delivery_id: str, delay_seconds: float = 0) -> None:
        """Record an outbound webhook delivery request."""
        self.hooks.append((delivery_id, delay_seconds))


class FakeSender:
    """A Sender that keeps what it was asked to send, like a small in-memory Twilio.

    Its list honours Twilio's filters (``to``, ``from_``, ``date_sent_after`` on the send time,
    whole seconds: a message still queued, see ``hold_queued``, has no send time and is left
    out of a dated list). It can be told to raise once, to lose an answer, to keep messages
    queued, and it can hold inbound messages (``add_inbound``) for the backfill.
    """

    def __init__(self, *, clock: Clock | None = None, from_number: str = "whatsapp:+14155238886") -> None:
        self.clock: Clock = clock or SystemClock()
        self.from_number = from_number if from_number.startswith("whatsapp:") else f"whatsapp:{from_number}"
        self.sent: list[OutboundRequest] = []
        self.sids: list[str] = []
        self.created: list[datetime] = []
        self.fail_with: Exception | None = None
        # Accept the message, then fail as a lost answer would (the send is uncertain):
        # no answer at all, or the HTTP status in ``lost_answer_status`` (a gateway's 502…).
        self.lose_answer_once = False
        self.lost_answer_status: int | None = None
        # New messages stay queued (no send date) while this is set; ``release()`` sends them.
        self.hold_queued = False
        # What fetch_status reports per SID (default: "sent" for a SID this fake created).
        self.statuses: dict[str, DeliveryStatus] = {}
        # Raised (once) by the next fetch_status / list_messages instead of answering.
        self.fetch_fail_with: Exception | None = None
        self.list_fail_with: Exception | None = None
        self.list_calls: list[dict[str, Any]] = []
        self._date_sent: dict[str, datetime | None] = {}
        self._inbound: list[dict[str, Any]] = []
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
            now = self.clock.now()
            self.created.append(now)
            self._date_sent[sid] = None if self.hold_queued else now
            if self.lose_answer_once:
                self.lose_answer_once = False
                status = self.lost_answer_status
                if status is None:
                    raise SendDeferred(None, "read timeout; the message may have been created")
                raise SendDeferred(20500 if status >= 500 else None, f"HTTP {status} from a gateway", status)
            return SendResult(sid=sid, status="queued")

    def release(self) -> None:
        """Messages held queued are sent now."""
        with self._lock:
            for sid, sent in self._date_sent.items():
                if sent is None:
                    self._date_sent[sid] = self.clock.now()

    def add_inbound(self, from_: str, body: str, *, at: datetime | None = None, num_media: int = 0) -> str:
        """A client's message to our sender, as Twilio keeps it; returns its SID."""
        with self._lock:
            sid = f"SM{next(self._ids):032x}"
            at = at or self.clock.now()
            self._inbound.append({
                "sid": sid, "to": self.from_number, "from": _whatsapp(from_), "body": body, "status": "received",
                "direction": "inbound", "num_media": num_media, "date_created": at, "date_sent": at,
                "error_code": None,
            })
        return sid

    def list_messages(self, *, to: str, from_: str | None = None, date_sent_after: datetime | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """What this fake 'Twilio' holds, filtered as Twilio filters, newest first."""
        with self._lock:
            self.list_calls.append({"to": to, "from_": from_, "date_sent_after": date_sent_after, "limit": limit})
            if self.list_fail_with is not None:
                error, self.list_fail_with = self.list_fail_with, None
                raise error
            rows = [*self._inbound, *(
                {"sid": sid, "to": _whatsapp(r.to), "from": self.from_number, "body": _rendered(r),
                 "status": "sent" if self._date_sent[sid] else "queued", "direction": "outbound-api",
                 "num_media": 0, "date_created": at, "date_sent": self._date_sent[sid], "error_code": None}
                for r, sid, at in zip(self.sent, self.sids, self.created, strict=True))]
        after = date_sent_after.replace(microsecond=0) if date_sent_after is not None else None
        found = [
            row for row in rows
            if row["to"] == _whatsapp(to) and (from_ is None or row["from"] == _whatsapp(from_))
            and (after is None or (row["date_sent"] is not None and row["date_sent"].replace(microsecond=0) >= after))
        ]
        found.sort(key=lambda row: row["date_created"], reverse=True)
        return found[:limit]

    def fetch_status(self, sid: str) -> DeliveryStatus | None:
        """The status set in ``statuses``; "sent" for a SID it created; None for an unknown SID."""
        with self._lock:
            if self.fetch_fail_with is not None:
                error, self.fetch_fail_with = self.fetch_fail_with, None
                raise error
            if sid in self.statuses:
                return self.statuses[sid]
            return DeliveryStatus(status="sent") if sid in self.sids else None


def _whatsapp(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def _rendered(request: OutboundRequest) -> str:
    """The body Twilio shows: a template rendered (here, as the simulator: its values, one per line)."""
    if request.content_sid:
        variables = request.content_variables or {}
        order = sorted(variables, key=lambda key: (int(key), "") if key.isdigit() else (1 << 30, key))
        return "\n".join(variables[key] for key in order)
    return request.body or ""


class FailingDrafter:
    """A Drafter that always fails (to exercise fallbacks)."""

    def draft(self, request: DraftRequest) -> Draft:
        """Always raise DraftingError."""
        raise DraftingError("fake failure")
