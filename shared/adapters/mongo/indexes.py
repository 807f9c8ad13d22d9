"""Every index the repositories' queries need, created at each process start (idempotent)."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import OperationFailure

from shared.adapters.mongo.connection import Doc
from shared.adapters.mongo.contacts import backfill_name_keys
from shared.adapters.mongo.hooks import ensure_hook_indexes
from shared.adapters.mongo.messages import backfill_requeue_from

# Indexes an earlier release created and a newer one replaced: each costs every write, so it goes.
# state_next_run: by due_by_campaign (one equality more); enrolment_unique: by enrolment_generation_unique
# (a client enrolled again in an invoice campaign after their follow-up there stopped as paid).
REPLACED = {"followups": ("state_next_run", "enrolment_unique")}


IDEMPOTENCY_KEPT_SECONDS = 24 * 3600  # how long the console keeps a POST's response for its retries

def ensure_indexes(db: Database[Doc]) -> None:
    """Create every index (safe to run again, and from several processes at once).

    The scheduler's scans (docs/scheduler.md) each have an index that starts with their
    equalities and then their one range, so that a tick reads what is due, not the whole book;
    the fields they range on that documents written before them lack are filled here too.
    """
    contacts, followups, messages = db["contacts"], db["followups"], db["messages"]
    contacts.create_index([("phone", ASCENDING)], unique=True, name="phone_unique")
    db["api_keys"].create_index([("key_hash", ASCENDING)], unique=True, name="key_hash_unique")
    # The console's kept POST responses: a retry comes within minutes; a day later the key is free again.
    db["idempotency"].create_index([("created_at", ASCENDING)], expireAfterSeconds=IDEMPOTENCY_KEPT_SECONDS,
                                   name="created_ttl")
    # The console's log-in sessions: gone once expired (the repository checks the expiry at once).
    db["web_sessions"].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_ttl")
    db["web_sessions"].create_index([("email", ASCENDING)], name="email")
    contacts.create_index([("tags", ASCENDING)], name="tags")
    # The console's clients list: sorted by the folded name, searched by its prefix (a range).
    contacts.create_index([("name_key", ASCENDING), ("_id", ASCENDING)], name="name_key")
    contacts.create_index([("name_words", ASCENDING)], name="name_words")  # a search by any word's start
    backfill_name_keys(contacts)
    db["campaigns"].create_index([("status", ASCENDING)], name="status")
    followups.create_index([("contact_id", ASCENDING), ("campaign_id", ASCENDING), ("generation", ASCENDING)],
                           unique=True, name="enrolment_generation_unique")
    # The claim: one query per active campaign, (state, campaign_id) equal, next_run_at ≤ now.
    followups.create_index([("state", ASCENDING), ("campaign_id", ASCENDING), ("next_run_at", ASCENDING)],
                           name="due_by_campaign")
    followups.create_index([("state", ASCENDING), ("state_changed_at", ASCENDING)], name="state_changed")
    followups.create_index([("state", ASCENDING), ("paused_until", ASCENDING)], name="state_paused_until")
    followups.create_index([("campaign_id", ASCENDING)], name="campaign")
    # The hand-overs waiting (GET /metrics): partial, so the follow-ups nobody flagged cost it nothing.
    followups.create_index([("contact_id", ASCENDING)], name="needs_human",
                           partialFilterExpression={"needs_human": True})
    messages.create_index([("twilio_sid", ASCENDING)], unique=True, sparse=True, name="twilio_sid_unique")
    messages.create_index([("state", ASCENDING), ("state_changed_at", ASCENDING)], name="state_changed")
    messages.create_index([("state", ASCENDING), ("requeue_from", ASCENDING)], name="state_requeue_from")
    messages.create_index([("state", ASCENDING), ("dead_check_at", ASCENDING), ("state_changed_at", ASCENDING)],
                          name="state_dead_check")
    messages.create_index([("state", ASCENDING), ("reconcile_asked_at", ASCENDING)], name="state_reconcile_asked")
    messages.create_index([("state", ASCENDING), ("status_polled_at", ASCENDING), ("sent_at", ASCENDING)],
                          name="state_status_polled")
    messages.create_index([("contact_id", ASCENDING), ("created_at", ASCENDING)], name="contact_time")
    # Drafts waiting for approval whose 24-hour window closed (the scheduler's approval_windows step).
    messages.create_index([("state", ASCENDING), ("window_closes_at", ASCENDING)], name="state_window_closes")
    # The console's overview: messages sent in the last 30 days (only sent ones have sent_at).
    messages.create_index([("sent_at", ASCENDING)], name="sent_at", sparse=True)
    # Messages from numbers that are no contact (services.conversations): partial, so the
    # messages of contacts cost these indexes nothing.
    unknown_only = {"unknown_sender": True}
    messages.create_index([("created_at", ASCENDING)], name="unknown_sender_time",
                          partialFilterExpression=unknown_only)
    messages.create_index([("from", ASCENDING), ("created_at", ASCENDING)], name="unknown_sender_from",
                          partialFilterExpression=unknown_only)
    # Events are written on the webhook's hot path and kept for good: no secondary index (each
    # one costs every insert, and grows with every event ever received). Work left waiting is
    # found through pending notes (see events.py), a SID's events by _id range. The notes have a
    # partial index of their own: it holds only them, so events cost it nothing.
    db["events"].create_index([("kind", ASCENDING), ("_id", ASCENDING)], name="pending_notes",
                              partialFilterExpression={"kind": "pending"})
    invoices = db["invoices"]
    invoices.create_index([("reference", ASCENDING)], unique=True, name="reference_unique")
    invoices.create_index([("contact_id", ASCENDING), ("status", ASCENDING)], name="contact_status")
    # The audit log of a client (the conversation page); the recent entries read the _id index.
    db["audit"].create_index([("contact_id", ASCENDING), ("_id", ASCENDING)], name="contact_time")
    ensure_hook_indexes(db)
    backfill_requeue_from(messages)
    for collection, names in REPLACED.items():
        for name in names:
            try:
                db[collection].drop_index(name)
            except OperationFailure:
                pass  # not there (a new database, or another process dropped it first)
