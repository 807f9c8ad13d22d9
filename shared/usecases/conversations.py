"""What an operator sees of conversations: the hand-over list, one phone number's timeline, and
what closing a hand-over did (``relance handled PHONE``, :mod:`shared.usecases.handover`).

Structured results (rows, a :class:`Timeline`): the console's API returns them as JSON, the CLI
prints them (:mod:`services.cli_conversations`). ``handled_lines`` is what ``relance handled``
prints, as stored: whoever shows text on a terminal makes it harmless first
(``services.terminal.printable``: a client chooses its name and messages).

A message from a number that is no contact (``unknown_sender``, see :mod:`shared.usecases.replies`) is
kept and flagged: such numbers are listed with the conversations, as needing a person, and
``timeline`` shows their messages. Once the number is imported as a contact, its earlier
messages join the contact's timeline and it is no longer listed as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.domain.invoices import Invoice
from shared.domain.reasons import HandledAction
from shared.domain.records import ContactRecord, FollowUpSummary, MessageSummary
from shared.domain.repositories import Repositories
from shared.errors import InputError, NotFound
from shared.usecases.browsing import Page, check_limit
from shared.usecases.handover import HandOverClosed

UNKNOWN_REASON = "message from an unknown number"
# The newest unknown-sender messages read to find the numbers to list: a bound on the work done
# whatever has been received (through the partial index ``unknown_sender_time``).
UNKNOWN_SCAN = 5000
# The deepest a page of :func:`conversations_page` reads: pages beyond it end the list.
PAGE_SCAN = 5000
_NEVER = datetime.min.replace(tzinfo=UTC)


def when_text(moment: Any) -> str:
    """A stored time as a person reads it (``-`` when there is none)."""
    return moment.strftime("%Y-%m-%d %H:%M") if isinstance(moment, datetime) else "-"


def _moment(value: Any) -> datetime:
    """A sort key for a stored date (missing or odd values sort as the oldest)."""
    if not isinstance(value, datetime):
        return _NEVER
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ConversationRow:
    """A contact with follow-ups, or an unknown number that wrote, as the conversations list shows it."""

    phone: str | None
    last_activity: datetime
    contact_id: str | None = None  # None: an unknown number
    name: str | None = None
    states: list[str] = field(default_factory=list)  # "campaign: state"
    needs_human_reasons: list[str] = field(default_factory=list)
    last_inbound_at: datetime | None = None
    unknown_messages: int = 0

    @property
    def needs_human(self) -> bool:
        """Whether a person should look at it (an unknown number always)."""
        return bool(self.needs_human_reasons)


def conversations(store: Repositories, *, needs_human: bool = False, limit: int = 50) -> list[ConversationRow]:
    """Contacts with follow-ups and unknown numbers that wrote, newest activity first (at most ``limit``).

    With ``needs_human``: the contacts with a hand-over (and the unknown numbers, which always need a person).
    """
    rows = _contact_rows(store, needs_human=needs_human, limit=limit) + _unknown_rows(store, limit=limit)
    rows.sort(key=lambda row: row.last_activity, reverse=True)  # stable: contacts keep their order
    return rows[:max(limit, 0)]


def conversations_page(store: Repositories, *, needs_human: bool = False, after: str | None = None,
                       limit: int = 50) -> Page[ConversationRow]:
    """One page of :func:`conversations`, newest activity first; ``after``: the previous page's ``next_after``.

    The key is the last row's activity time and identity (contact id, or the unknown number), so a
    row is never listed twice while the list changes, and a conversation that became active again
    since moves up to the first page. Each page reads the list from its top down to its own
    rows: cheap for the first pages a person reads, linear in the depth for a client walking far.
    """
    check_limit(limit)
    moment, key = _parse_after(after)
    window = limit + 1
    while True:
        found = conversations(store, needs_human=needs_human, limit=window)
        found.sort(key=_row_key)
        found.sort(key=lambda row: row.last_activity, reverse=True)  # stable: ties in key order
        rows = [row for row in found if moment is None or row.last_activity < moment
                or (row.last_activity == moment and _row_key(row) > key)]
        if len(rows) > limit or len(found) < window or window >= PAGE_SCAN:
            break
        window = min(window * 4, PAGE_SCAN)
    items = rows[:limit]
    last = items[-1] if len(rows) > limit else None
    return Page(items=items, next_after=f"{last.last_activity.isoformat()}|{_row_key(last)}" if last else None)


def _row_key(row: ConversationRow) -> str:
    return row.contact_id or f"phone:{row.phone or ''}"


def _parse_after(after: str | None) -> tuple[datetime | None, str]:
    """The (activity time, row key) of a page key (InputError for one that is not)."""
    if after is None:
        return None, ""
    text, _, key = after.partition("|")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("cursor is not valid here: use the next_cursor of this list's previous page") from None
    if not key:
        raise InputError("cursor is not valid here: use the next_cursor of this list's previous page")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), key


def _contact_rows(store: Repositories, *, needs_human: bool, limit: int) -> list[ConversationRow]:
    by_contact: dict[str, list[FollowUpSummary]] = {}
    for followup in store.followups.recent_summaries(needs_human=needs_human, limit=limit * 5):
        by_contact.setdefault(followup.contact_id, []).append(followup)
    rows = []
    shown = list(by_contact.items())[:limit]
    # One read, leniently: a record the Contact model refuses is exactly one a person must see.
    contacts = {record.id: record for record in store.contacts.records([contact_id for contact_id, _ in shown])}
    for contact_id, followups in shown:
        contact = contacts.get(contact_id)
        if contact is None:
            continue
        rows.append(ConversationRow(
            phone=contact.phone, last_activity=_moment(followups[0].updated_at), contact_id=contact.id,
            name=contact.name, states=sorted({f"{f.campaign_id}: {f.state}" for f in followups}),
            needs_human_reasons=sorted({str(f.needs_human_reason) for f in followups if f.needs_human}),
            last_inbound_at=contact.last_inbound_at if isinstance(contact.last_inbound_at, datetime) else None))
    return rows


def _unknown_rows(store: Repositories, *, limit: int) -> list[ConversationRow]:
    """The unknown numbers that wrote, newest first (numbers imported as contacts since are left out)."""
    last_of: dict[str, datetime] = {}
    passed: set[str] = set()
    for message in store.messages.newest_from_unknown(UNKNOWN_SCAN):
        if len(last_of) >= limit:
            break
        phone = message.sender or ""
        if not phone or phone in last_of or phone in passed or message.handled_at is not None:
            continue
        if store.contacts.record_by_phone(phone) is not None:
            passed.add(phone)  # a contact now: its messages are in its timeline
            continue
        last_of[phone] = _moment(message.created_at)
    return [ConversationRow(phone=phone, last_activity=last, needs_human_reasons=[UNKNOWN_REASON],
                            unknown_messages=len(store.messages.open_unknown_ids(phone)))
            for phone, last in last_of.items()]


@dataclass(frozen=True)
class Timeline:
    """One phone number's conversation: the contact (None for an unknown number), its follow-ups,
    every message in and out (oldest first) and its invoices."""

    phone: str
    contact: ContactRecord | None
    followups: list[FollowUpSummary]
    messages: list[MessageSummary]
    invoices: list[Invoice]


def client_timeline(store: Repositories, phone: str) -> Timeline:
    """The timeline of ``phone`` (E.164): a contact's, or what an unknown number sent (NotFound for neither)."""
    contact = store.contacts.record_by_phone(phone)  # shown even when the model refuses it
    if contact is None:
        messages = store.messages.from_unknown(phone)
        if not messages:
            raise NotFound(f"no contact with phone {phone}, and no message from it as an unknown number: "
                           "see `relance conversations`")
        return Timeline(phone, None, [], messages, [])
    messages = store.messages.summaries_of_contact(contact.id)
    before = store.messages.from_unknown(phone)
    if before:  # written before the number was imported as a contact
        messages = sorted(before + messages, key=lambda message: _moment(message.created_at))
    return Timeline(phone, contact, store.followups.summaries_of_contact(contact.id), messages,
                    store.invoices.find(contact_id=contact.id))


def contact_timeline(store: Repositories, contact_id: str) -> Timeline:
    """The timeline of the contact with ``contact_id`` (NotFound when there is none)."""
    contact = store.contacts.record(contact_id)
    if contact is None or not contact.phone:
        raise NotFound(f"no contact {contact_id!r}")
    return client_timeline(store, contact.phone)


def followup_state_text(followup: FollowUpSummary) -> str:
    """A follow-up's state as a line tells it: campaign, state, next step, why it stopped or waits."""
    detail = followup.stop_reason or followup.pause_reason or ""
    return (f"follow-up {followup.campaign_id}: {followup.state} (next step {followup.step + 1})"
            f"{' ' + detail if detail else ''}")


_DONE = {
    HandledAction.KEEP: "follow-ups left as they are",
    HandledAction.RESUME: "{moved} paused follow-up(s) resumed",
    HandledAction.STOP: "{moved} follow-up(s) stopped",
    HandledAction.PAID: "{moved} follow-up(s) stopped as paid",
}


def handled_lines(closed: HandOverClosed) -> list[str]:
    """What ``relance handled`` prints: what was closed and done, then the contact's follow-ups."""
    if closed.contact_id is None:
        return [f"{closed.phone}: unknown number handled ({closed.closed} message(s)); "
                "it is listed again if it writes again"]
    done = _DONE[closed.action].format(moved=closed.moved)
    lines = [f"{closed.name} {closed.phone}: {closed.closed} hand-over(s) closed; {done}"]
    if closed.invoices:
        what = "marked paid" if closed.action == HandledAction.PAID else "reopened"
        lines.append(f"  invoice(s) {what}: {', '.join(closed.invoices)}")
    lines.extend("  " + followup_state_text(followup) for followup in closed.followups)
    return lines
