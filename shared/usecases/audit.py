"""Writing the audit log: every action a person or an API key takes, who, what, when.

The CLI, the console's API and pages call :func:`record` after an action succeeded. The entry
never holds a message body or a full phone number: ``detail`` is masked and capped, and the
callers pass notes (a count, a reason, a step), not texts.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from shared.domain.audit import DETAIL_MAX_CHARS, AuditEntry
from shared.domain.repositories import Repositories
from shared.phones import redact_phones


def entry_id(now: datetime) -> str:
    """A new entry's id: its UTC time to the microsecond (sortable), then random (unique)."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"


def masked(detail: str | None) -> str | None:
    """``detail`` with phone numbers masked, capped at DETAIL_MAX_CHARS (None or empty: None)."""
    if not detail:
        return None
    text = redact_phones(detail)
    return text if len(text) <= DETAIL_MAX_CHARS else text[:DETAIL_MAX_CHARS - 1] + "…"


def record(store: Repositories, *, by: str, action: str, contact_id: str | None = None, target: str | None = None,
           detail: str | None = None, now: datetime) -> AuditEntry:
    """Write one audit entry: ``by`` acted (``key:<name>`` or ``user:<email>``); the entry written.

    ``action`` names what was done (``handover.close``, ``reply.manual``, ``invoice.paid``…),
    ``contact_id`` the client it concerns, ``target`` what it was on (a message id, an invoice
    reference, a campaign id: never a phone number). Phone numbers in ``target`` and ``detail``
    are masked.
    """
    entry = AuditEntry(id=entry_id(now), by=by, action=action, contact_id=contact_id,
                       target=redact_phones(target) if target else None, detail=masked(detail), at=now)
    store.audit.add(entry)
    return entry


def for_contact(store: Repositories, contact_id: str, *, limit: int = 50) -> list[AuditEntry]:
    """The client's latest audit entries, newest first."""
    return store.audit.for_contact(contact_id, limit)


def recent(store: Repositories, *, limit: int = 50, before: str | None = None) -> list[AuditEntry]:
    """The latest audit entries older than the entry ``before``, newest first."""
    return store.audit.recent(limit, before)
