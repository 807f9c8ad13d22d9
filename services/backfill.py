"""Inbound backfill: messages Twilio received that the webhook never stored are stored late.

Twilio posts an incoming message to the webhook once; if the webhook answers 5xx (MongoDB
down) Twilio does not post it again, so a STOP sent during an outage would be lost and the
reminders would go on. Every INBOUND_BACKFILL_SECONDS one scheduler (the run is claimed in
MongoDB, ``JobRepository.claim``) lists the inbound messages Twilio holds for our sender since the
last one seen, minus an overlap, and stores those missing exactly as the webhook would have:
event ``inbound:<MessageSid>``, the document ``services.webhook_events.inbound_event`` builds, stored
with ``EventRepository.record_many`` (so a pending note is written) and enqueued for the replies actor.
A message the webhook did store is a duplicate and is left alone. Twilio unreachable: a warning,
and the next period tries again from the same cursor; the scheduler's tick goes on.

Logs carry counts and SIDs, never numbers or bodies.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.webhook_events import inbound_event
from shared.clock import Clock, utc
from shared.domain.repositories import Repositories
from shared.errors import SendDeferred, SendRejected, TransientError
from shared.ports import Sender, TaskQueue

log = logging.getLogger(__name__)

JOB = "inbound_backfill"
# Listed again behind the last message seen: Twilio's list may show a message some time after
# its send date (and dates compare at whole seconds).
OVERLAP = timedelta(minutes=10)
# How far back the very first run looks (no cursor yet).
FIRST_LOOKBACK = timedelta(hours=24)
# Messages one run reads at most (Twilio pages them); past it, a warning.
MAX_LISTED = 5000
API_VERSION = "2010-04-01"

_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
_WHATSAPP = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")


@dataclass
class BackfillReport:
    """What one backfill run found."""

    listed: int = 0
    stored: list[str] = field(default_factory=list)  # event ids stored by this run
    skipped: int = 0  # listed items that are not a well-formed inbound WhatsApp message
    error: str | None = None  # Twilio unreachable or refusing: tried again next period


@dataclass
class InboundBackfill:
    """Lists Twilio's recent inbound messages to ``our_number`` and stores those the webhook missed."""

    sender: Sender
    our_number: str  # whatsapp:+E164, TWILIO_WHATSAPP_NUMBER
    period: timedelta
    overlap: timedelta = OVERLAP
    first_lookback: timedelta = FIRST_LOOKBACK
    # The next period's start after this process's own run: no scheduler can claim a run before it,
    # so this one does not ask MongoDB at every tick until then.
    _next_due: datetime | None = field(default=None, init=False, repr=False)

    def run_in_tick(self, store: Repositories, queue: TaskQueue, clock: Clock) -> list[str]:
        """:meth:`run` for the scheduler's tick: the event ids stored late; a failure never ends the tick.

        A MongoDB outage (TransientError) is raised as by every other step of the tick;
        anything else is logged (its type only) and the next period tries again.
        """
        try:
            report = self.run(store, queue, clock)
        except TransientError:
            raise
        except Exception as exc:
            log.error("inbound backfill failed (%s); tried again in %.0f s", type(exc).__name__,
                      self.period.total_seconds())
            return []
        return report.stored if report is not None else []

    def run(self, store: Repositories, queue: TaskQueue, clock: Clock) -> BackfillReport | None:
        """One run if this period's is still unclaimed (None otherwise). Raises only TransientError (MongoDB)."""
        now = clock.now()
        if self._next_due is not None and utc(now) < self._next_due:
            return None
        job = store.jobs.claim(JOB, now, self.period)
        if job is None:
            return None
        self._next_due = utc(job.next_run_at)
        cursor = utc(job.cursor) if job.cursor else None
        since = (cursor or now - self.first_lookback) - self.overlap
        report = BackfillReport()
        try:
            listed = self.sender.list_messages(to=self.our_number, date_sent_after=since, limit=MAX_LISTED)
        except (SendDeferred, SendRejected) as exc:
            report.error = f"HTTP {exc.status}, code {exc.code}"
            log.warning("inbound backfill: Twilio's message list unavailable (%s); tried again in %.0f s",
                        report.error, self.period.total_seconds())
            return report
        report.listed = len(listed)
        if len(listed) >= MAX_LISTED:
            log.warning("inbound backfill: %d messages listed since %s, the most one run reads: older ones "
                        "are not looked at", len(listed), since.isoformat())
        inbound = [item for item in listed if str(item.get("direction") or "") == "inbound"]
        usable = [item for item in inbound if _usable(item, self.our_number)]
        report.skipped = len(inbound) - len(usable)
        known = store.events.known_ids([f"inbound:{item['sid']}" for item in usable])
        missing = []
        for item in sorted(usable, key=lambda item: _sent_at(item) or now):  # in the order the client wrote
            event_id, event = inbound_event(_webhook_form(item))
            if event_id not in known:
                missing.append((event_id, {**event, "source": "backfill", "date_sent": _sent_at(item)}))
        # Stored as the webhook stores a batch: received now (by us), one pending note for them all.
        fresh = store.events.record_many(missing, now)
        report.stored = [event_id for (event_id, _), new in zip(missing, fresh, strict=True) if new]
        if report.stored:
            try:
                queue.process_inbound_many(report.stored)
            except Exception:  # Redis away: the scheduler's sweep of pending notes enqueues them later
                log.warning("inbound backfill: %d message(s) stored but not enqueued (Redis unavailable)",
                            len(report.stored))
        newest = max((sent for sent in map(_sent_at, usable) if sent is not None), default=None)
        if newest is not None:
            store.jobs.advance_cursor(JOB, newest, now, listed=report.listed, stored=len(report.stored))
        if report.stored or report.skipped:
            log.info("inbound backfill: %d listed, %d stored late (%s), %d skipped", report.listed,
                     len(report.stored), " ".join(report.stored[:5]), report.skipped)
        return report


def _usable(item: dict[str, Any], our_number: str) -> bool:
    """An inbound WhatsApp message to our number with a well-formed SID and sender."""
    return (bool(_MESSAGE_SID.match(str(item.get("sid") or ""))) and bool(_WHATSAPP.match(str(item.get("from") or "")))
            and str(item.get("to") or "") == our_number)


def _sent_at(item: dict[str, Any]) -> datetime | None:
    when = item.get("date_sent") or item.get("date_created")
    return utc(when) if isinstance(when, datetime) else None


def _webhook_form(item: dict[str, Any]) -> dict[str, str]:
    """The webhook form Twilio would have posted for this message, as far as its resource tells."""
    sid, sender = str(item["sid"]), str(item["from"])
    return {
        "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": str(item.get("account_sid") or ""),
        "From": sender, "To": str(item["to"]), "Body": str(item.get("body") or ""),
        "NumMedia": str(int(item.get("num_media") or 0)), "SmsStatus": "received", "ApiVersion": API_VERSION,
        "WaId": sender.removeprefix("whatsapp:+"),
    }
