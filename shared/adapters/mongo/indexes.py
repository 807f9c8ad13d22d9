"""Every index the repositories' queries need, created at each process start (idempotent)."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.database import Database

from shared.adapters.mongo.connection import Doc


def ensure_indexes(db: Database[Doc]) -> None:
    """Create every index (safe to run again, and from several processes at once)."""
    contacts, followups, messages = db["contacts"], db["followups"], db["messages"]
    contacts.create_index([("phone", ASCENDING)], unique=True, name="phone_unique")
    contacts.create_index([("tags", ASCENDING)], name="tags")
    db["campaigns"].create_index([("status", ASCENDING)], name="status")
    followups.create_index([("contact_id", ASCENDING), ("campaign_id", ASCENDING)], unique=True,
                           name="enrolment_unique")
    followups.create_index([("state", ASCENDING), ("next_run_at", ASCENDING)], name="state_next_run")
    followups.create_index([("state", ASCENDING), ("state_changed_at", ASCENDING)], name="state_changed")
    followups.create_index([("campaign_id", ASCENDING)], name="campaign")
    messages.create_index([("twilio_sid", ASCENDING)], unique=True, sparse=True, name="twilio_sid_unique")
    messages.create_index([("state", ASCENDING), ("state_changed_at", ASCENDING)], name="state_changed")
    messages.create_index([("contact_id", ASCENDING), ("created_at", ASCENDING)], name="contact_time")
    # Messages from numbers that are no contact (services.conversations): partial, so the
    # messages of contacts cost these indexes nothing.
    unknown_only = {"unknown_sender": True}
    messages.create_index([("created_at", ASCENDING)], name="unknown_sender_time",
                          partialFilterExpression=unknown_only)
    messages.create_index([("from", ASCENDING), ("created_at", ASCENDING)], name="unknown_sender_from",
                          partialFilterExpression=unknown_only)
    # Events are written on the webhook's hot path and kept for good: no secondary index (each
    # one costs every insert, and grows with every event ever received). Work left waiting is
    # found through pending notes (see events.py), a SID's events by _id range.
