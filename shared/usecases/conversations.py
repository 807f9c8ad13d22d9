"""What an operator sees of conversations: the hand-over list, one phone number's timeline, and
what closing a hand-over did (``relance handled PHONE``, :mod:`shared.usecases.handover`).

Lines of text, as stored: whoever shows them on a terminal makes them harmless first
(``services.terminal.printable``: a client chooses its name and messages).

A message from a number that is no contact (``unknown_sender``, see :mod:`shared.usecases.replies`) is
kept and flagged: such numbers are listed with the conversations, as needing a person, and
``timeline`` shows their messages. Once the number is imported as a contact, its earlier
messages join the contact's timeline and it is no longer listed as unknown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.domain.reasons import HandledAction
from shared.domain.records import FollowUpSummary, MessageSummary
from shared.domain.repositories import Repositories
from shared.errors import InputError
from shared.usecases.handover import HandOverClosed

UNKNOWN_REASON = "message from an unknown number"
# The newest unknown-sender messages read to find the numbers to list: a bound on the work done
# whatever has been received (through the partial index ``unknown_sender_time``).
UNKNOWN_SCAN = 5000
_NEVER = datetime.min.replace(tzinfo=UTC)


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if isinstance(moment, datetime) else "-"


def _moment(value: Any) -> datetime:
    """A sort key for a stored date (missing or odd values sort as the oldest)."""
    if not isinstance(value, datetime):
        return _NEVER
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def list_conversations(store: Repositories, *, needs_human: bool = False, limit: int = 50) -> list[str]:
    """One line per contact with follow-ups and per unknown number that wrote, newest activity first.

    Contact lines: phone, name, follow-up states, and the hand-over reason if any. Unknown numbers
    always need a person: phone, message count and the last one's time. At most ``limit`` lines.
    """
    rows = _contact_rows(store, needs_human=needs_human, limit=limit) + _unknown_rows(store, limit=limit)
    rows.sort(key=lambda row: row[0], reverse=True)  # stable: contacts keep their order
    return [line for _, line in rows[:max(limit, 0)]]


def _contact_rows(store: Repositories, *, needs_human: bool, limit: int) -> list[tuple[datetime, str]]:
    by_contact: dict[str, list[FollowUpSummary]] = {}
    for followup in store.followups.recent_summaries(needs_human=needs_human, limit=limit * 5):
        by_contact.setdefault(followup.contact_id, []).append(followup)
    rows = []
    for contact_id, followups in list(by_contact.items())[:limit]:
        # Read leniently: a record the Contact model refuses is exactly one a person must see.
        contact = store.contacts.record(contact_id)
        if contact is None:
            continue
        states = ", ".join(sorted({f"{f.campaign_id}: {f.state}" for f in followups}))
        reasons = sorted({str(f.needs_human_reason) for f in followups if f.needs_human})
        last = _when(contact.last_inbound_at)
        line = f"{contact.phone or '?'}  {contact.name or '?'}  [{states}]  last reply {last}"
        if reasons:
            line += "  needs a person: " + "; ".join(reasons)
        rows.append((_moment(followups[0].updated_at), line))  # sorted newest first
    return rows


def _unknown_rows(store: Repositories, *, limit: int) -> list[tuple[datetime, str]]:
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
    rows = []
    for phone, last in last_of.items():
        count = len(store.messages.open_unknown_ids(phone))
        rows.append((last, f"{phone}  unknown number  [{count} message{'s' if count != 1 else ''}]  "
                           f"last message {_when(last)}  needs a person: {UNKNOWN_REASON}"))
    return rows


def timeline(store: Repositories, phone: str) -> list[str]:
    """A contact's details, follow-ups and every message in and out, oldest first.

    For a number that is no contact but wrote: what it sent, under a header saying so.
    """
    contact = store.contacts.record_by_phone(phone)  # shown even when the model refuses it
    if contact is None:
        return _unknown_timeline(store, phone)
    lines = [f"{contact.name or '?'} {contact.phone or phone} ({contact.language or 'fr'}, "
             f"{contact.timezone or 'Europe/Paris'})" + ("  OPTED OUT" if contact.opted_out else "")]
    if contact.problem:
        lines.append(f"  RECORD UNREADABLE: {contact.problem} (import the contact again with a valid value)")
    for key, value in sorted(contact.fields.items()):
        lines.append(f"  {key}: {value}")
    for followup in store.followups.summaries_of_contact(contact.id):
        flag = f"  needs a person: {followup.needs_human_reason}" if followup.needs_human else ""
        if not flag and followup.handled_at:
            flag = (f"  handled {_when(followup.handled_at)} ({followup.handled_action or 'keep'}): "
                    f"{followup.needs_human_reason}")
        lines.append(_followup_state(followup) + flag)
    messages = store.messages.summaries_of_contact(contact.id)
    before = store.messages.from_unknown(phone)
    if before:  # written before the number was imported as a contact
        messages = sorted(before + messages, key=lambda message: _moment(message.created_at))
    lines.extend(_message_line(message) for message in messages)
    return lines


def _followup_state(followup: FollowUpSummary) -> str:
    detail = followup.stop_reason or followup.pause_reason or ""
    return (f"follow-up {followup.campaign_id}: {followup.state} (next step {followup.step + 1})"
            f"{' ' + detail if detail else ''}")


def _unknown_timeline(store: Repositories, phone: str) -> list[str]:
    messages = store.messages.from_unknown(phone)
    if not messages:
        raise InputError(f"no contact with phone {phone}, and no message from it as an unknown number: "
                         "see `relance conversations`")
    count = len(messages)
    return [f"{phone}: unknown number, not a contact ({count} message{'s' if count != 1 else ''}); "
            "to follow it up, add it to a contacts file and run `relance contacts import FILE`",
            f"needs a person: {UNKNOWN_REASON}",
            *(_message_line(message) for message in messages)]


def _message_line(message: MessageSummary) -> str:
    arrow = "←" if message.direction == "inbound" else "→"
    body = " ".join(message.body.split()) or ("[media]" if message.num_media else "")
    extra = ""
    if message.classification:
        c = message.classification
        extra = f"  [{c['intent']} {c['confidence']:.2f}{' → person' if c.get('needs_human') else ''}]"
    if message.error_code:
        extra += f"  [error {message.error_code}]"
    return f"{_when(message.created_at)} {arrow} {message.state}: {body}{extra}"


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
    lines.extend("  " + _followup_state(followup) for followup in closed.followups)
    return lines
