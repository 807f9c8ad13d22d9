"""How ``relance conversations`` and ``relance conversation PHONE`` print what the use cases return
(:mod:`shared.usecases.conversations`, whose structured results the console's API returns as JSON).

Lines of text, as stored: :mod:`services.cli` makes them harmless before printing
(``services.terminal.printable``: a client chooses its name and messages).
"""

from __future__ import annotations

from shared.domain.records import MessageSummary
from shared.usecases.conversations import (
    UNKNOWN_REASON,
    ConversationRow,
    Timeline,
    followup_state_text,
    when_text,
)


def conversation_line(row: ConversationRow) -> str:
    """One line of ``relance conversations``: phone, name, follow-up states, the hand-over reason if any;
    for an unknown number, its message count and the last one's time."""
    if row.contact_id is None:
        count = row.unknown_messages
        return (f"{row.phone}  unknown number  [{count} message{'s' if count != 1 else ''}]  "
                f"last message {when_text(row.last_activity)}  needs a person: {UNKNOWN_REASON}")
    line = (f"{row.phone or '?'}  {row.name or '?'}  [{', '.join(row.states)}]  "
            f"last reply {when_text(row.last_inbound_at)}")
    if row.needs_human_reasons:
        line += "  needs a person: " + "; ".join(row.needs_human_reasons)
    return line


def timeline_lines(found: Timeline) -> list[str]:
    """``relance conversation PHONE``: the contact's details, follow-ups and every message in and out,
    oldest first; for a number that is no contact but wrote, what it sent under a header saying so."""
    contact = found.contact
    if contact is None:
        count = len(found.messages)
        return [f"{found.phone}: unknown number, not a contact ({count} message{'s' if count != 1 else ''}); "
                "to follow it up, add it to a contacts file and run `relance contacts import FILE`",
                f"needs a person: {UNKNOWN_REASON}",
                *(_message_line(message) for message in found.messages)]
    lines = [f"{contact.name or '?'} {contact.phone or found.phone} ({contact.language or 'fr'}, "
             f"{contact.timezone or 'Europe/Paris'})" + ("  OPTED OUT" if contact.opted_out else "")]
    if contact.problem:
        lines.append(f"  RECORD UNREADABLE: {contact.problem} (import the contact again with a valid value)")
    for key, value in sorted(contact.fields.items()):
        lines.append(f"  {key}: {value}")
    for followup in found.followups:
        flag = f"  needs a person: {followup.needs_human_reason}" if followup.needs_human else ""
        if not flag and followup.handled_at:
            flag = (f"  handled {when_text(followup.handled_at)} ({followup.handled_action or 'keep'}): "
                    f"{followup.needs_human_reason}")
        lines.append(followup_state_text(followup) + flag)
    lines.extend(_message_line(message) for message in found.messages)
    return lines


def _message_line(message: MessageSummary) -> str:
    arrow = "←" if message.direction == "inbound" else "→"
    body = " ".join(message.body.split()) or ("[media]" if message.num_media else "")
    extra = ""
    if message.classification:
        c = message.classification
        extra = f"  [{c['intent']} {c['confidence']:.2f}{' → person' if c.get('needs_human') else ''}]"
    if message.error_code:
        extra += f"  [error {message.error_code}]"
    return f"{when_text(message.created_at)} {arrow} {message.state}: {body}{extra}"
