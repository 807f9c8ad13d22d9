"""What an operator sees of conversations: the hand-over list and one phone number's timeline,
and how a person closes a hand-over (``relance handled PHONE``).

A message from a number that is no contact (``unknown_sender``, see :mod:`workers.replies`) is
kept and flagged: such numbers are listed with the conversations, as needing a person, and
``timeline`` shows their messages. Once the number is imported as a contact, its earlier
messages join the contact's timeline and it is no longer listed as unknown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.terminal import printable
from shared.errors import InputError
from shared.store import Store, contact_from_doc

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


def _unknown_query(phone: str | None = None) -> dict[str, Any]:
    """Messages from a number that was no contact (the owner's own are not: see workers.replies).

    Those a person has handled (``relance handled PHONE``) carry ``handled_at``; they are told
    apart after the query, not in it, so that the planner keeps the partial indexes.
    """
    return {"unknown_sender": True, **({"from": phone} if phone is not None else {})}


def _open_unknown_ids(store: Store, phone: str) -> list[Any]:
    """The messages from this unknown number that no person has handled yet."""
    return [doc["_id"] for doc in store.messages.find(_unknown_query(phone), {"handled_at": 1})
            if "handled_at" not in doc]


def list_conversations(store: Store, *, needs_human: bool = False, limit: int = 50) -> list[str]:
    """One line per contact with follow-ups and per unknown number that wrote, newest activity first.

    Contact lines: phone, name, follow-up states, and the hand-over reason if any. Unknown numbers
    always need a person: phone, message count and the last one's time. At most ``limit`` lines.
    """
    rows = _contact_rows(store, needs_human=needs_human, limit=limit) + _unknown_rows(store, limit=limit)
    rows.sort(key=lambda row: row[0], reverse=True)  # stable: contacts keep their order
    return [printable(line) for _, line in rows[:max(limit, 0)]]


def _contact_rows(store: Store, *, needs_human: bool, limit: int) -> list[tuple[datetime, str]]:
    query: dict[str, Any] = {"needs_human": True} if needs_human else {}
    by_contact: dict[str, list[dict[str, Any]]] = {}
    for doc in store.followups.find(query).sort("updated_at", -1).limit(limit * 5):
        by_contact.setdefault(doc["contact_id"], []).append(doc)
    rows = []
    for contact_id, followups in list(by_contact.items())[:limit]:
        # Read raw: a record the Contact model refuses is exactly one a person must see.
        contact = store.contacts.find_one({"_id": contact_id}, {"phone": 1, "name": 1, "last_inbound_at": 1})
        if contact is None:
            continue
        states = ", ".join(sorted({f"{f['campaign_id']}: {f['state']}" for f in followups}))
        reasons = sorted({str(f.get("needs_human_reason")) for f in followups if f.get("needs_human")})
        last = _when(contact.get("last_inbound_at"))
        line = f"{contact.get('phone', '?')}  {contact.get('name', '?')}  [{states}]  last reply {last}"
        if reasons:
            line += "  needs a person: " + "; ".join(reasons)
        rows.append((_moment(followups[0].get("updated_at")), line))  # sorted newest first
    return rows


def _unknown_rows(store: Store, *, limit: int) -> list[tuple[datetime, str]]:
    """The unknown numbers that wrote, newest first (numbers imported as contacts since are left out)."""
    last_of: dict[str, datetime] = {}
    passed: set[str] = set()
    newest = store.messages.find(_unknown_query(), {"from": 1, "created_at": 1, "handled_at": 1})
    for doc in newest.sort("created_at", -1).limit(UNKNOWN_SCAN):
        if len(last_of) >= limit:
            break
        phone = str(doc.get("from") or "")
        if not phone or phone in last_of or phone in passed or "handled_at" in doc:
            continue
        if store.contacts.find_one({"phone": phone}, {"_id": 1}) is not None:
            passed.add(phone)  # a contact now: its messages are in its timeline
            continue
        last_of[phone] = _moment(doc.get("created_at"))
    rows = []
    for phone, last in last_of.items():
        count = len(_open_unknown_ids(store, phone))
        rows.append((last, f"{phone}  unknown number  [{count} message{'s' if count != 1 else ''}]  "
                           f"last message {_when(last)}  needs a person: {UNKNOWN_REASON}"))
    return rows


def timeline(store: Store, phone: str) -> list[str]:
    """A contact's details, follow-ups and every message in and out, oldest first.

    For a number that is no contact but wrote: what it sent, under a header saying so. Every
    line is :func:`~services.terminal.printable`: a client's name or message cannot drive the
    operator's terminal.
    """
    return [printable(line) for line in _timeline(store, phone)]


def _timeline(store: Store, phone: str) -> list[str]:
    contact = store.contacts.find_one({"phone": phone})  # raw: shown even when the model refuses it
    if contact is None:
        return _unknown_timeline(store, phone)
    contact_id = contact["_id"]
    lines = [f"{contact.get('name', '?')} {contact.get('phone', phone)} ({contact.get('language', 'fr')}, "
             f"{contact.get('timezone', 'Europe/Paris')})" + ("  OPTED OUT" if contact.get("opted_out") else "")]
    try:
        contact_from_doc(contact)
    except ValidationError as exc:
        problem = exc.errors()[0]
        lines.append(f"  RECORD UNREADABLE: {'.'.join(map(str, problem['loc']))}: {problem['msg']} "
                     "(import the contact again with a valid value)")
    fields = contact.get("fields")
    for key, value in sorted(fields.items() if isinstance(fields, dict) else []):
        lines.append(f"  {key}: {value}")
    for doc in store.followups.find({"contact_id": contact_id}):
        flag = f"  needs a person: {doc.get('needs_human_reason')}" if doc.get("needs_human") else ""
        if not flag and doc.get("handled_at"):
            flag = (f"  handled {_when(doc['handled_at'])} ({doc.get('handled_action', 'keep')}): "
                    f"{doc.get('needs_human_reason')}")
        lines.append(_followup_state(doc) + flag)
    messages = list(store.messages.find({"contact_id": contact_id}).sort("created_at", 1))
    before = list(store.messages.find(_unknown_query(phone)).sort("created_at", 1))
    if before:  # written before the number was imported as a contact
        messages = sorted(before + messages, key=lambda doc: _moment(doc.get("created_at")))
    lines.extend(_message_line(doc) for doc in messages)
    return lines


def _followup_state(doc: dict[str, Any]) -> str:
    detail = doc.get("stop_reason") or doc.get("pause_reason") or ""
    return (f"follow-up {doc['campaign_id']}: {doc['state']} (next step {doc['step'] + 1})"
            f"{' ' + detail if detail else ''}")


def _unknown_timeline(store: Store, phone: str) -> list[str]:
    messages = list(store.messages.find(_unknown_query(phone)).sort("created_at", 1))
    if not messages:
        raise InputError(f"no contact with phone {phone}, and no message from it as an unknown number: "
                         "see `relance conversations`")
    count = len(messages)
    return [f"{phone}: unknown number, not a contact ({count} message{'s' if count != 1 else ''}); "
            "to follow it up, add it to a contacts file and run `relance contacts import FILE`",
            f"needs a person: {UNKNOWN_REASON}",
            *(_message_line(doc) for doc in messages)]


def _message_line(doc: dict[str, Any]) -> str:
    arrow = "←" if doc.get("direction") == "inbound" else "→"
    body = " ".join(str(doc.get("body") or "").split()) or ("[media]" if doc.get("num_media") else "")
    extra = ""
    if doc.get("classification"):
        c = doc["classification"]
        extra = f"  [{c['intent']} {c['confidence']:.2f}{' → person' if c.get('needs_human') else ''}]"
    if doc.get("error_code"):
        extra += f"  [error {doc['error_code']}]"
    return f"{_when(doc.get('created_at'))} {arrow} {doc.get('state', '')}: {body}{extra}"


HANDLED_ACTIONS = ("keep", "resume", "stop", "paid")


def close_hand_over(store: Store, phone: str, *, action: str, now: datetime) -> list[str]:
    """A person dealt with this number: clear its hand-over flags and apply their decision.

    ``action``: ``keep`` leaves the follow-ups as they are, ``resume`` sends the paused ones on
    from their current step, ``stop`` ends the open ones (their unsent drafts are cancelled),
    ``paid`` too, with ``paid`` as the reason: the payment a client claimed has arrived.
    Stopped and completed follow-ups stay so. For an unknown number, its messages are marked as
    handled and it leaves the list (until it writes again). Returns what was done, one line each.
    """
    from shared.cadence import clear_hand_over, resume_contact, stop_contact

    if action not in HANDLED_ACTIONS:
        raise InputError(f"unknown action {action!r}: one of {', '.join(HANDLED_ACTIONS)}")
    contact = store.contacts.find_one({"phone": phone}, {"name": 1, "opted_out": 1})
    if contact is None:
        return _close_unknown(store, phone, action=action, now=now)
    contact_id, name = contact["_id"], contact.get("name", "?")
    if action == "resume" and contact.get("opted_out"):
        raise InputError(f"{name} {phone} opted out: nothing is sent to them until they write START; "
                         "nothing was changed")
    if action == "resume":
        done = f"{len(resume_contact(store, contact_id, now=now))} paused follow-up(s) resumed"
    elif action == "stop":
        done = f"{stop_contact(store, contact_id, reason='stopped_by_owner', now=now)} follow-up(s) stopped"
    elif action == "paid":
        done = f"{stop_contact(store, contact_id, reason='paid', now=now)} follow-up(s) stopped as paid"
    else:
        done = "follow-ups left as they are"
    flagged = clear_hand_over(store, contact_id, action=action, now=now)
    lines = [f"{name} {phone}: {flagged} hand-over(s) closed; {done}"]
    lines.extend("  " + _followup_state(doc) for doc in store.followups.find({"contact_id": contact_id})
                 .sort("campaign_id", 1))
    return [printable(line) for line in lines]


_VERB = {"resume": "resume", "stop": "stop", "paid": "mark paid"}


def _close_unknown(store: Store, phone: str, *, action: str, now: datetime) -> list[str]:
    if store.messages.count_documents(_unknown_query(phone), limit=1) == 0:
        raise InputError(f"no contact with phone {phone}, and no message from it as an unknown number: "
                         "see `relance conversations`")
    if action != "keep":
        raise InputError(f"{phone} is no contact: there is no follow-up to {_VERB[action]}; "
                         "run `relance handled PHONE` alone to take it off the list")
    result = store.messages.update_many({"_id": {"$in": _open_unknown_ids(store, phone)}},
                                        {"$set": {"handled_at": now}})
    return [f"{phone}: unknown number handled ({result.modified_count} message(s)); "
            "it is listed again if it writes again"]
