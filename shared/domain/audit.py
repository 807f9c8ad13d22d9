"""The audit log: who did what, when, to which client (every action a person or an API key takes).

An entry never holds a message body or a full phone number: ``detail`` is a short, masked note
(:func:`shared.usecases.audit.record` masks phone numbers and caps its length).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

DETAIL_MAX_CHARS = 200


class AuditEntry(BaseModel):
    """One action: ``by`` (``key:<name>`` or ``user:<email>``), ``action`` (e.g. ``handover.close``)."""

    id: str  # sortable by time: "<UTC time, microseconds>-<random>"
    by: str
    action: str
    contact_id: str | None = None
    target: str | None = None  # what the action was on: a message id, an invoice reference, a campaign id…
    detail: str | None = None
    at: datetime


class AuditRepository(Protocol):
    """The audit entries, newest first."""

    def add(self, entry: AuditEntry) -> bool:
        """Store an entry; False when its id exists (nothing changed)."""

    def for_contact(self, contact_id: str, limit: int) -> list[AuditEntry]:
        """The client's latest ``limit`` entries, newest first."""

    def recent(self, limit: int, before: str | None = None) -> list[AuditEntry]:
        """The latest ``limit`` entries older than the entry ``before`` (an id; None: the newest), newest first."""
