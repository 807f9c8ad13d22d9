"""The conversations waiting for a person, as data (the console's inbox and ``GET /api/v1/handovers``),
and closing their hand-overs on behalf of someone (audited).

Two kinds wait: a client whose follow-ups were flagged ``needs_human`` (a reply the automation
would not answer, a dispute, an "I paid" to confirm, a failed send…), and a number that is no
contact but wrote. Each comes with its reason and since when it waits: the client's message that
opened the hand-over, else the flag's latest change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.domain.audit import AuditEntry
from shared.domain.reasons import HandledAction
from shared.domain.records import FollowUpSummary
from shared.domain.repositories import Repositories
from shared.policy import SERVICE_WINDOW, window_open
from shared.usecases import audit
from shared.usecases.browsing import Page, check_limit
from shared.usecases.conversations import UNKNOWN_REASON, Timeline, client_timeline
from shared.usecases.handover import HandOverClosed, close_hand_over

# Flagged follow-ups and unknown-sender messages read to build the list: a bound on the work done.
SCAN = 2000
_NEVER = datetime.min.replace(tzinfo=UTC)
AUDIT_ACTIONS = {HandledAction.KEEP: "handover.close", HandledAction.RESUME: "handover.resume",
                 HandledAction.STOP: "handover.stop", HandledAction.PAID: "handover.paid"}


@dataclass(frozen=True)
class Waiting:
    """A conversation waiting for a person."""

    phone: str
    contact_id: str | None  # None: a number that is no contact
    name: str | None
    reasons: tuple[str, ...]
    since: datetime | None
    campaigns: tuple[str, ...] = ()
    last_inbound_at: datetime | None = None
    messages: int = 0  # an unknown number: its messages no person handled yet

    @property
    def key(self) -> str:
        """The list's order (oldest waiting first) as a cursor key."""
        return f"{(self.since or _NEVER).astimezone(UTC).isoformat()}|{self.phone}"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def waiting(store: Repositories, *, limit: int = 0) -> list[Waiting]:
    """Every conversation waiting for a person (up to SCAN flagged follow-ups read), oldest waiting first;
    only the first ``limit`` (0: all), whose clients alone are then read."""
    by_contact: dict[str, list[FollowUpSummary]] = {}
    for followup in store.followups.recent_summaries(needs_human=True, limit=SCAN):
        by_contact.setdefault(followup.contact_id, []).append(followup)
    since_of = {contact_id: _since(store, contact_id, followups) for contact_id, followups in by_contact.items()}
    order = sorted(by_contact, key=lambda contact_id: _at(since_of[contact_id]))
    if limit and len(order) > limit:
        # The first ``limit`` and those waiting as long as the last of them (the phone, read below, breaks ties).
        cutoff = _at(since_of[order[limit - 1]])
        chosen = [contact_id for contact_id in order if _at(since_of[contact_id]) <= cutoff]
    else:
        chosen = order
    # One read for the clients, leniently: a refused record is one to look at.
    contacts = {record.id: record for record in store.contacts.records(chosen)}
    if len(contacts) < min(limit, len(order)):  # some were deleted: read every other one too
        contacts.update((record.id, record) for record in store.contacts.records(order[len(chosen):]))
    found: list[Waiting] = []
    for contact_id, followups in by_contact.items():
        contact = contacts.get(contact_id)
        if contact is None:
            continue
        found.append(Waiting(
            phone=contact.phone or "?", contact_id=contact_id, name=contact.name,
            reasons=tuple(sorted({str(f.needs_human_reason) for f in followups if f.needs_human_reason})),
            since=since_of[contact_id], campaigns=tuple(sorted({f.campaign_id for f in followups})),
            last_inbound_at=_utc(contact.last_inbound_at)))
    found.extend(_unknown(store))
    found.sort(key=lambda item: item.key)
    return found[:limit] if limit else found


def _at(since: datetime | None) -> datetime:
    return (since or _NEVER).astimezone(UTC)


def _since(store: Repositories, contact_id: str, followups: list[FollowUpSummary]) -> datetime | None:
    """When the hand-over opened: the time of the client's message holding it, else the oldest flag change."""
    # The flagged follow-ups carry the SID (as FollowUpRepository.open_hand_over reads it): no read per client.
    sid = next((f.hand_over_sid for f in followups if f.hand_over_sid), None)
    if sid:
        for message in store.messages.summaries_of_contact(contact_id):
            if message.direction == "inbound" and message.id in (sid, f"in:{sid}"):
                return _utc(message.created_at)
    times = [moment for f in followups if (moment := _utc(f.updated_at)) is not None]
    return min(times) if times else None


def _unknown(store: Repositories) -> list[Waiting]:
    oldest: dict[str, datetime | None] = {}
    counts: dict[str, int] = {}
    passed: set[str] = set()
    for message in store.messages.newest_from_unknown(SCAN):
        phone = message.sender or ""
        if not phone or phone in passed or message.handled_at is not None:
            continue
        if phone not in oldest and store.contacts.record_by_phone(phone) is not None:
            passed.add(phone)  # a contact now: its messages are in its timeline
            continue
        oldest[phone] = _utc(message.created_at)  # newest first: the last one seen is the oldest
        counts[phone] = counts.get(phone, 0) + 1
    return [Waiting(phone=phone, contact_id=None, name=None, reasons=(UNKNOWN_REASON,), since=since,
                    messages=counts[phone]) for phone, since in oldest.items()]


def waiting_page(store: Repositories, *, after: str | None = None, limit: int = 50) -> Page[Waiting]:
    """A page of :func:`waiting` after the key ``after``."""
    rest = [item for item in waiting(store) if after is None or item.key > after]
    chosen = rest[:check_limit(limit)]
    return Page(chosen, chosen[-1].key if len(rest) > limit else None)


def close(store: Repositories, phone: str, *, action: HandledAction | str, by: str, now: datetime) -> HandOverClosed:
    """Close the hand-over of ``phone`` as ``relance handled`` does (:func:`close_hand_over`), audited as ``by``."""
    closed = close_hand_over(store, phone, action=action, now=now)
    detail = f"{closed.closed} closed, {closed.moved} follow-up(s) moved"
    if closed.invoices:
        detail += f", invoices {', '.join(closed.invoices)}"
    audit.record(store, by=by, action=AUDIT_ACTIONS[closed.action], contact_id=closed.contact_id,
                 target=closed.contact_id or "unknown number", detail=detail, now=now)
    return closed


@dataclass(frozen=True)
class ConversationView:
    """What the conversation page shows of one phone number: its timeline, whether it waits for a
    person (why, since when), its 24-hour window, and the audit entries of the client."""

    timeline: Timeline
    waiting: Waiting | None
    window_open: bool
    window_closes_at: datetime | None
    audit: list[AuditEntry]

    @property
    def is_contact(self) -> bool:
        """Whether the number is a client's (else: a number that is no contact, which wrote)."""
        return self.timeline.contact is not None


def conversation(store: Repositories, phone: str, *, now: datetime, audit_limit: int = 50) -> ConversationView:
    """The conversation of ``phone`` (E.164) for the page (NotFound: neither a contact nor a number that wrote)."""
    timeline = client_timeline(store, phone)
    contact = timeline.contact
    waits = None
    if contact is None:
        waits = next((item for item in _unknown(store) if item.phone == phone), None)
    else:
        flagged = [f for f in timeline.followups if f.needs_human]
        if flagged:
            waits = Waiting(phone=phone, contact_id=contact.id, name=contact.name,
                            reasons=tuple(sorted({str(f.needs_human_reason) for f in flagged if f.needs_human_reason})),
                            since=_since(store, contact.id, flagged),
                            campaigns=tuple(sorted({f.campaign_id for f in flagged})),
                            last_inbound_at=_utc(contact.last_inbound_at))
    last = _utc(contact.last_inbound_at) if contact is not None else None
    return ConversationView(timeline=timeline, waiting=waits, window_open=window_open(last, now),
                            window_closes_at=last + SERVICE_WINDOW if last is not None else None,
                            audit=audit.for_contact(store, contact.id, limit=audit_limit) if contact else [])
