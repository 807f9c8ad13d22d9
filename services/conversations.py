"""What an operator sees of conversations: the hand-over list and one contact's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.errors import InputError
from shared.models import Contact
from shared.store import Store


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if isinstance(moment, datetime) else "-"


def list_conversations(store: Store, *, needs_human: bool = False, limit: int = 50) -> list[str]:
    """One line per contact: phone, name, follow-up states, and the hand-over reason if any."""
    query: dict[str, Any] = {"needs_human": True} if needs_human else {}
    by_contact: dict[str, list[dict[str, Any]]] = {}
    for doc in store.followups.find(query).sort("updated_at", -1).limit(limit * 5):
        by_contact.setdefault(doc["contact_id"], []).append(doc)
    lines = []
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
        lines.append(line)
    return lines


def timeline(store: Store, phone: str) -> list[str]:
    """A contact's details, follow-ups and every message in and out, oldest first."""
    contact = store.contacts.find_one({"phone": phone})  # raw: shown even when the model refuses it
    if contact is None:
        raise InputError(f"no contact with phone {phone}: see `relance conversations`")
    contact_id = contact["_id"]
    lines = [f"{contact.get('name', '?')} {contact.get('phone', phone)} ({contact.get('language', 'fr')}, "
             f"{contact.get('timezone', 'Europe/Paris')})" + ("  OPTED OUT" if contact.get("opted_out") else "")]
    try:
        Contact.model_validate({"id": contact_id, **{k: v for k, v in contact.items()
                                                     if k in Contact.model_fields and k != "id"}})
    except ValidationError as exc:
        problem = exc.errors()[0]
        lines.append(f"  RECORD UNREADABLE: {'.'.join(map(str, problem['loc']))}: {problem['msg']} "
                     "(import the contact again with a valid value)")
    fields = contact.get("fields")
    for key, value in sorted(fields.items() if isinstance(fields, dict) else []):
        lines.append(f"  {key}: {value}")
    for doc in store.followups.find({"contact_id": contact_id}):
        detail = doc.get("stop_reason") or doc.get("pause_reason") or ""
        flag = f"  needs a person: {doc.get('needs_human_reason')}" if doc.get("needs_human") else ""
        lines.append(f"follow-up {doc['campaign_id']}: {doc['state']} (next step {doc['step'] + 1})"
                     f"{' ' + detail if detail else ''}{flag}")
    for doc in store.messages.find({"contact_id": contact_id}).sort("created_at", 1):
        arrow = "←" if doc.get("direction") == "inbound" else "→"
        body = " ".join(str(doc.get("body") or "").split()) or ("[media]" if doc.get("num_media") else "")
        extra = ""
        if doc.get("classification"):
            c = doc["classification"]
            extra = f"  [{c['intent']} {c['confidence']:.2f}{' → person' if c.get('needs_human') else ''}]"
        if doc.get("error_code"):
            extra += f"  [error {doc['error_code']}]"
        lines.append(f"{_when(doc.get('created_at'))} {arrow} {doc.get('state', '')}: {body}{extra}")
    return lines
