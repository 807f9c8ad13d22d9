"""MongoDB repositories: contacts, campaigns, follow-ups, messages and webhook events.

MongoDB is the truth; Redis only carries ids. Every state change here is a conditional
``update_one`` on (id, expected state[, step]) whose ``modified_count`` says whether this caller
won; each winning transition is recorded in the document's ``history`` with its time.
pymongo errors that mean "store unreachable" are raised as :class:`TransientError`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from shared.errors import TransientError
from shared.models import (
    FOLLOWUP_MOVES,
    MESSAGE_MOVES,
    STATUS_RANK,
    TWILIO_STATUS_TO_STATE,
    Campaign,
    Contact,
    FollowUp,
    FollowUpState,
    MessageState,
    OutboundMessage,
    check_move,
)

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000  # MongoDB's error code for a unique index violation
OBSOLETE_EVENT_INDEXES = frozenset({"sid", "kind_action_received"})  # dropped by ensure_indexes
# The index through which earlier versions found waiting events; replaced by the pending notes.
LEGACY_WAITING_INDEX = "kind_state_received"
NOTE_MAX_EVENTS = 1000  # events per pending note written by the migration (a note is one document)
NOTE_PREFIX, NOTE_END = "pending:", "pending;"  # every note's _id is in [NOTE_PREFIX, NOTE_END)
NOTES_PER_SWEEP = 1000  # pending notes one sweep reads at most
T = TypeVar("T")
Doc = dict[str, Any]
HISTORY_CAP = 50


def _note_bound(at: datetime) -> str:
    """The ``_id`` prefix of notes written at ``at``: fixed-width time, so ``_id`` order is time order."""
    return f"{NOTE_PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%S.%f}"


def pending_note(at: datetime, waiting: list[Doc]) -> Doc:
    """The note stored with a batch: which of its events wait for an actor (id, sender)."""
    return {"_id": f"{_note_bound(at)}:{secrets.token_hex(6)}", "kind": "pending", "events": waiting}


FAILED_STATUSES = frozenset({"failed", "undelivered"})


def status_event_doc(sid: str, status: str, error_code: int | None) -> tuple[str, Doc]:
    """The event id and document stored for a Twilio delivery status, from a callback or a poll.

    One shape for both, so whichever comes second is a duplicate. A failure stays ``received``
    (``action_state`` pending) until the replies actor has acted on it: the scheduler finds it there.
    """
    failed = status in FAILED_STATUSES
    event: Doc = {"kind": "status", "sid": sid, "status": status, "error_code": error_code,
                  "state": "received" if failed else "processed", "action_state": "pending" if failed else None}
    return f"status:{sid}:{status}", event


def connect(uri: str, *, timeout_ms: int = 5000, socket_timeout_ms: int | None = None) -> MongoClient[Doc]:
    """A pymongo client returning timezone-aware UTC datetimes.

    ``socket_timeout_ms``: how long one operation may wait on a silent server (a hung link)
    before failing as unreachable; None waits as long as the OS does.
    """
    return MongoClient(
        uri,
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=socket_timeout_ms,
        appname="relance",
    )


@contextmanager
def unreachable_as_transient() -> Iterator[None]:
    """Translate 'cannot reach MongoDB' into TransientError, so actors retry."""
    try:
        yield
    except (ConnectionFailure, ServerSelectionTimeoutError) as exc:
        raise TransientError(f"MongoDB unreachable: {type(exc).__name__}") from None


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix (``ct_3f9a…``)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def _history(state: str, now: datetime, **extra: Any) -> Doc:
    return {"$each": [{"state": state, "at": now, **extra}], "$slice": -HISTORY_CAP}


class Store:
    """All repositories over one MongoDB database."""

    def __init__(self, db: Database[Doc]) -> None:
        self.db = db
        self.contacts: Collection[Doc] = db["contacts"]
        self.campaigns: Collection[Doc] = db["campaigns"]
        self.followups: Collection[Doc] = db["followups"]
        self.messages: Collection[Doc] = db["messages"]
        self.events: Collection[Doc] = db["events"]
        # One small document per owner number: when the owner last wrote (their 24-hour window).
        self.owner: Collection[Doc] = db["owner"]
        # One small document per periodic job shared by the schedulers (its next run, its cursor).
        self.jobs: Collection[Doc] = db["jobs"]

    # ---------------------------------------------------------------- set-up
    def ensure_indexes(self) -> None:
        """Create every index (idempotent: safe at each process start)."""
        with unreachable_as_transient():
            self.contacts.create_index([("phone", ASCENDING)], unique=True, name="phone_unique")
            self.contacts.create_index([("tags", ASCENDING)], name="tags")
            self.campaigns.create_index([("status", ASCENDING)], name="status")
            self.followups.create_index(
                [("contact_id", ASCENDING), ("campaign_id", ASCENDING)],
                unique=True,
                name="enrolment_unique",
            )
            self.followups.create_index(
                [("state", ASCENDING), ("next_run_at", ASCENDING)], name="state_next_run"
            )
            self.followups.create_index(
                [("state", ASCENDING), ("state_changed_at", ASCENDING)], name="state_changed"
            )
            self.followups.create_index([("campaign_id", ASCENDING)], name="campaign")
            self.messages.create_index(
                [("twilio_sid", ASCENDING)], unique=True, sparse=True, name="twilio_sid_unique"
            )
            self.messages.create_index(
                [("state", ASCENDING), ("state_changed_at", ASCENDING)], name="state_changed"
            )
            self.messages.create_index([("contact_id", ASCENDING), ("created_at", ASCENDING)],
                                       name="contact_time")
            # Messages from numbers that are no contact (services.conversations): partial, so the
            # messages of contacts cost these indexes nothing.
            unknown_only = {"unknown_sender": True}
            self.messages.create_index([("created_at", ASCENDING)], name="unknown_sender_time",
                                       partialFilterExpression=unknown_only)
            self.messages.create_index([("from", ASCENDING), ("created_at", ASCENDING)],
                                       name="unknown_sender_from", partialFilterExpression=unknown_only)
            # Events are written on the webhook's hot path and kept for good: no secondary index
            # (each one costs every insert, and grows with every event ever received). Work left
            # waiting is found through pending notes, a SID's events by _id range.
            existing = set(self.events.index_information())
            if LEGACY_WAITING_INDEX in existing:
                self._note_legacy_waiting_events()
            for obsolete in sorted((OBSOLETE_EVENT_INDEXES | {LEGACY_WAITING_INDEX}) & existing):
                try:
                    self.events.drop_index(obsolete)
                except OperationFailure:  # another process starting at the same time dropped it first
                    log.debug("index %s already dropped", obsolete)

    def _note_legacy_waiting_events(self) -> None:
        """Upgrade: note the events an earlier version left waiting, before its index goes."""
        docs = list(self.events.find({"kind": {"$in": ["inbound", "status"]}, "state": "received"},
                                     {"from": 1, "received_at": 1}).sort("received_at", ASCENDING))
        waiting = [{"id": doc["_id"], "from": doc.get("from", "")} for doc in docs]
        for start in range(0, len(waiting), NOTE_MAX_EVENTS):
            # Dated as its oldest event: the sweep sees it as it saw the events themselves.
            noted_at = docs[start].get("received_at") or datetime.now(UTC)
            self.events.insert_one(pending_note(noted_at, waiting[start:start + NOTE_MAX_EVENTS]))
        if waiting:
            log.info("noted %d waiting event(s) of an earlier version", len(waiting))

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            self.db.command("ping")
            return True
        except PyMongoError:
            return False

    # ---------------------------------------------------------------- contacts
    def upsert_contact(self, contact: Contact, now: datetime) -> str:
        """Insert or update a contact by phone; returns 'inserted', 'updated' or 'unchanged'.

        Importing the same data twice changes nothing: fields that are equal are not rewritten
        and ``updated_at`` only moves when something changed.
        """
        data = contact.model_dump(mode="python", exclude={"id", "opted_out", "last_inbound_at"})
        with unreachable_as_transient():
            existing = self.contacts.find_one({"phone": contact.phone})
            if existing is None:
                try:
                    self.contacts.insert_one(
                        {"_id": contact.id, **data, "opted_out": False, "last_inbound_at": None,
                         "created_at": now, "updated_at": now}
                    )
                    return "inserted"
                except DuplicateKeyError:
                    existing = self.contacts.find_one({"phone": contact.phone})
                    if existing is None:
                        raise
            changed = {k: v for k, v in data.items() if existing.get(k) != v}
            if not changed:
                return "unchanged"
            self.contacts.update_one({"_id": existing["_id"]}, {"$set": {**changed, "updated_at": now}})
            return "updated"

    def get_contact(self, contact_id: str) -> Contact | None:
        """A contact by id."""
        with unreachable_as_transient():
            doc = self.contacts.find_one({"_id": contact_id})
        return contact_from_doc(doc) if doc else None

    def contact_by_phone(self, phone: str) -> Contact | None:
        """A contact by E.164 phone."""
        with unreachable_as_transient():
            doc = self.contacts.find_one({"phone": phone})
        return contact_from_doc(doc) if doc else None

    def find_contacts(self, *, tags: list[str] | None = None, equals: dict[str, str] | None = None) -> list[Contact]:
        """Contacts having all ``tags`` and whose fields equal ``equals``."""
        query: Doc = {}
        if tags:
            query["tags"] = {"$all": tags}
        for key, value in (equals or {}).items():
            query[f"fields.{key}"] = value
        with unreachable_as_transient():
            return [contact_from_doc(d) for d in self.contacts.find(query).sort("_id", ASCENDING)]

    def set_opt_out(self, contact_id: str, opted_out: bool, now: datetime) -> bool:
        """Record an opt-out (or re-subscription); True if it changed."""
        with unreachable_as_transient():
            result = self.contacts.update_one(
                {"_id": contact_id, "opted_out": {"$ne": opted_out}},
                {"$set": {"opted_out": opted_out, "opted_out_at": now if opted_out else None,
                          "updated_at": now}},
            )
        return result.modified_count == 1

    def touch_inbound(self, contact_id: str, at: datetime) -> None:
        """Open the 24-hour window: remember the contact's latest message time."""
        with unreachable_as_transient():
            self.contacts.update_one(
                {"_id": contact_id, "$or": [{"last_inbound_at": None}, {"last_inbound_at": {"$lt": at}}]},
                {"$set": {"last_inbound_at": at, "updated_at": at}},
            )

    # ---------------------------------------------------------------- the business owner
    def touch_owner_inbound(self, phone: str, at: datetime) -> None:
        """Open the owner's 24-hour window: remember their latest message time (only moves forward)."""
        with unreachable_as_transient():
            try:
                self.owner.update_one(
                    {"_id": phone, "$or": [{"last_inbound_at": None}, {"last_inbound_at": {"$lt": at}}]},
                    {"$set": {"last_inbound_at": at, "updated_at": at}, "$setOnInsert": {"created_at": at}},
                    upsert=True,
                )
            except DuplicateKeyError:
                pass  # the document exists with a later time: nothing to move

    def owner_last_inbound(self, phone: str) -> datetime | None:
        """When the owner (``phone``, E.164) last wrote to the sender, if ever."""
        with unreachable_as_transient():
            doc = self.owner.find_one({"_id": phone}, {"last_inbound_at": 1})
        return doc.get("last_inbound_at") if doc else None

    # ---------------------------------------------------------------- campaigns
    def create_campaign(self, campaign: Campaign, now: datetime) -> bool:
        """Store a new campaign; False when one with this id exists."""
        doc = campaign.model_dump(mode="json", exclude={"id"})
        with unreachable_as_transient():
            try:
                self.campaigns.insert_one({"_id": campaign.id, **doc, "created_at": now, "updated_at": now})
            except DuplicateKeyError:
                return False
        return True

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        """A campaign by id."""
        with unreachable_as_transient():
            doc = self.campaigns.find_one({"_id": campaign_id})
        return _campaign(doc) if doc else None

    def list_campaigns(self) -> list[Campaign]:
        """Every campaign."""
        with unreachable_as_transient():
            return [_campaign(d) for d in self.campaigns.find().sort("_id", ASCENDING)]

    def set_campaign_status(self, campaign_id: str, status: str, now: datetime) -> bool:
        """Pause or resume a campaign; True if it changed."""
        with unreachable_as_transient():
            result = self.campaigns.update_one(
                {"_id": campaign_id, "status": {"$ne": status}},
                {"$set": {"status": status, "updated_at": now}},
            )
        return result.modified_count == 1

    def active_campaign_ids(self) -> list[str]:
        """Ids of campaigns that are not paused."""
        with unreachable_as_transient():
            return [d["_id"] for d in self.campaigns.find({"status": "active"}, {"_id": 1})]

    # ---------------------------------------------------------------- follow-ups
    def enrol(self, *, contact_id: str, campaign_id: str, next_run_at: datetime, now: datetime) -> bool:
        """Enrol a contact in a campaign at step 0; False if already enrolled."""
        doc = {
            "_id": f"{campaign_id}:{contact_id}",
            "contact_id": contact_id,
            "campaign_id": campaign_id,
            "state": FollowUpState.SCHEDULED.value,
            "step": 0,
            "next_run_at": next_run_at,
            "enrolled_at": now,
            "state_changed_at": now,
            "needs_human": False,
            "history": [{"state": FollowUpState.SCHEDULED.value, "at": now, "step": 0}],
            "created_at": now,
            "updated_at": now,
        }
        with unreachable_as_transient():
            try:
                self.followups.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    def get_followup(self, followup_id: str) -> FollowUp | None:
        """A follow-up by id."""
        with unreachable_as_transient():
            doc = self.followups.find_one({"_id": followup_id})
        return _followup(doc) if doc else None

    def due_followups(self, now: datetime, campaign_ids: list[str], limit: int) -> list[Doc]:
        """Follow-ups whose next run is due (index: state + next_run_at)."""
        with unreachable_as_transient():
            return list(
                self.followups.find(
                    {"state": FollowUpState.SCHEDULED.value, "next_run_at": {"$lte": now},
                     "campaign_id": {"$in": campaign_ids}},
                    {"_id": 1, "step": 1},
                )
                .sort("next_run_at", ASCENDING)
                .limit(limit)
            )

    def claim_followups(self, ids: list[str], now: datetime) -> list[Doc]:
        """Claim due follow-ups in one conditional ``update_many`` (``scheduled → queued``).

        Each document is updated atomically and only while still ``scheduled``, so of several
        schedulers claiming at once each follow-up goes to exactly one: the one whose claim
        token it carries afterwards. Two round trips per batch instead of one per follow-up.
        """
        if not ids:
            return []
        token = secrets.token_hex(8)
        with unreachable_as_transient():
            self.followups.update_many(
                {"_id": {"$in": ids}, "state": FollowUpState.SCHEDULED.value, "next_run_at": {"$lte": now}},
                {"$set": {"state": FollowUpState.QUEUED.value, "state_changed_at": now, "updated_at": now,
                          "claim": token},
                 "$push": {"history": _history(FollowUpState.QUEUED.value, now, claim=token)}},
            )
            return list(self.followups.find({"_id": {"$in": ids}, "claim": token,
                                             "state": FollowUpState.QUEUED.value}, {"_id": 1, "step": 1}))

    def move_followup(
        self,
        followup_id: str,
        *,
        expected: FollowUpState | tuple[FollowUpState, ...],
        new: FollowUpState,
        now: datetime,
        step: int | None = None,
        extra: Doc | None = None,
        unset: tuple[str, ...] = (),
    ) -> bool:
        """Conditional transition of a follow-up; True when this caller made it.

        Raises :class:`IllegalMove` for a move ``FOLLOWUP_MOVES`` does not allow.
        """
        states = expected if isinstance(expected, tuple) else (expected,)
        check_move(FOLLOWUP_MOVES, states, new)
        query: Doc = {"_id": followup_id, "state": {"$in": [s.value for s in states]}}
        if step is not None:
            query["step"] = step
        fields = {"state": new.value, "state_changed_at": now, "updated_at": now, **(extra or {})}
        update: Doc = {
            "$set": fields,
            "$push": {"history": _history(new.value, now, step=fields.get("step", step))},
        }
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        with unreachable_as_transient():
            return self.followups.update_one(query, update).modified_count == 1

    def stale_followups(self, states: list[FollowUpState], before: datetime, limit: int) -> list[Doc]:
        """Follow-ups sitting in one of ``states`` since before ``before``."""
        with unreachable_as_transient():
            return list(
                self.followups.find(
                    {"state": {"$in": [s.value for s in states]}, "state_changed_at": {"$lt": before}},
                    {"_id": 1, "step": 1, "state": 1, "state_changed_at": 1},
                ).limit(limit)
            )

    def touch_followup(self, followup_id: str, state: FollowUpState, changed_at: datetime, now: datetime, *,
                       requeued: bool = True) -> bool:
        """Claim a stale follow-up (conditional on its last change time): not stale again for a while.

        ``requeued``: the caller enqueues it again (counted in ``requeued``); else it is only
        put aside until the next stale period.
        """
        update: Doc = {"$set": {"state_changed_at": now, "updated_at": now}}
        if requeued:
            update["$inc"] = {"requeued": 1}
        with unreachable_as_transient():
            result = self.followups.update_one(
                {"_id": followup_id, "state": state.value, "state_changed_at": changed_at}, update)
        return result.modified_count == 1

    def followups_of_contact(self, contact_id: str, states: tuple[FollowUpState, ...]) -> list[FollowUp]:
        """A contact's follow-ups in the given states."""
        with unreachable_as_transient():
            docs = self.followups.find({"contact_id": contact_id, "state": {"$in": [s.value for s in states]}})
            return [_followup(d) for d in docs]

    def resume_due_pauses(self, now: datetime, limit: int) -> list[str]:
        """Paused follow-ups whose pause has ended go back to scheduled; returns their ids."""
        with unreachable_as_transient():
            docs = list(self.followups.find(
                {"state": FollowUpState.PAUSED.value, "paused_until": {"$ne": None, "$lte": now}},
                {"_id": 1},
            ).limit(limit))
        return [doc["_id"] for doc in docs if self.resume_followup(doc["_id"], now)]

    def resume_followup(self, followup_id: str, now: datetime) -> bool:
        """``paused → scheduled``, due now, its pause forgotten; True when this caller moved it.

        The step is drafted again when it is claimed (the draft made before the pause was cancelled).
        """
        return self.move_followup(followup_id, expected=FollowUpState.PAUSED, new=FollowUpState.SCHEDULED, now=now,
                                  extra={"next_run_at": now, "paused_until": None, "pause_reason": None})

    # ---------------------------------------------------------------- messages
    def insert_message(self, message: OutboundMessage, now: datetime) -> bool:
        """Store a drafted message once; False when this (follow-up, step) already has one."""
        doc = message.model_dump(mode="python", exclude={"id"})
        doc["language"] = message.language.value
        doc["state"] = message.state.value
        doc.pop("twilio_sid", None)  # sparse unique index: absent until Twilio answers
        doc.update({"_id": message.id, "direction": "outbound", "status_rank": STATUS_RANK["ready"],
                    "created_at": now, "updated_at": now, "state_changed_at": now,
                    "history": [{"state": message.state.value, "at": now}]})
        with unreachable_as_transient():
            try:
                self.messages.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    def redraft_message(self, message: OutboundMessage, now: datetime) -> bool:
        """Replace a cancelled step message by a new draft (``cancelled → ready``, conditional)."""
        fields = message.model_dump(mode="python", exclude={"id", "twilio_sid", "state"})
        fields["language"] = message.language.value
        fields.update({"state": MessageState.READY.value, "status_rank": STATUS_RANK["ready"], "updated_at": now,
                       "state_changed_at": now, "cancel_reason": None})
        with unreachable_as_transient():
            result = self.messages.update_one(
                {"_id": message.id, "state": MessageState.CANCELLED.value, "twilio_sid": {"$exists": False}},
                {"$set": fields, "$push": {"history": _history(MessageState.READY.value, now, redraft=True)}},
            )
        return result.modified_count == 1

    def get_message(self, message_id: str) -> OutboundMessage | None:
        """An outbound message by id."""
        with unreachable_as_transient():
            doc = self.messages.find_one({"_id": message_id, "direction": "outbound"})
        return _message(doc) if doc else None

    def message_doc(self, message_id: str) -> Doc | None:
        """The raw document of a message (for status details and tests)."""
        with unreachable_as_transient():
            return self.messages.find_one({"_id": message_id})

    def move_message(
        self,
        message_id: str,
        *,
        expected: MessageState | tuple[MessageState, ...],
        new: MessageState,
        now: datetime,
        extra: Doc | None = None,
    ) -> bool:
        """Conditional transition of a message; True when this caller made it.

        Raises :class:`IllegalMove` for a move ``MESSAGE_MOVES`` does not allow.
        """
        states = expected if isinstance(expected, tuple) else (expected,)
        check_move(MESSAGE_MOVES, states, new)
        fields = {"state": new.value, "state_changed_at": now, "updated_at": now, **(extra or {})}
        if new.value in STATUS_RANK:
            fields.setdefault("status_rank", STATUS_RANK[new.value])
        with unreachable_as_transient():
            result = self.messages.update_one(
                {"_id": message_id, "state": {"$in": [s.value for s in states]}},
                {"$set": fields, "$push": {"history": _history(new.value, now)}},
            )
        return result.modified_count == 1

    def stale_messages(self, state: MessageState, before: datetime, limit: int) -> list[Doc]:
        """Outbound messages sitting in ``state`` since before ``before``."""
        with unreachable_as_transient():
            return list(self.messages.find(
                {"state": state.value, "direction": "outbound", "state_changed_at": {"$lt": before}},
                {"_id": 1, "not_before": 1, "state_changed_at": 1, "followup_id": 1, "step": 1},
            ).limit(limit))

    def stranded_ready_messages(self, before: datetime, limit: int) -> list[Doc]:
        """Outbound messages of any purpose left ``ready`` since before ``before``, for the scheduler.

        Only those whose hold (``not_before``) also ended before ``before`` (the sending actor's own
        delayed retry had its chance) and not enqueued again since (``requeued_at``).
        """
        with unreachable_as_transient():
            return list(self.messages.find(
                {"state": MessageState.READY.value, "direction": "outbound", "state_changed_at": {"$lt": before},
                 "$and": [{"$or": [{"not_before": None}, {"not_before": {"$lt": before}}]},
                          {"$or": [{"requeued_at": None}, {"requeued_at": {"$lt": before}}]}]},
                {"_id": 1, "followup_id": 1, "step": 1, "resend_of": 1},
            ).limit(limit))

    def claim_message_requeue(self, message_id: str, before: datetime, now: datetime) -> bool:
        """True for one caller while the message is ``ready`` and was not enqueued again since ``before``."""
        with unreachable_as_transient():
            result = self.messages.update_one(
                {"_id": message_id, "state": MessageState.READY.value,
                 "$or": [{"requeued_at": None}, {"requeued_at": {"$lt": before}}]},
                {"$set": {"requeued_at": now, "updated_at": now}, "$inc": {"requeues": 1}},
            )
        return result.modified_count == 1

    def uncertain_to_reconcile(self, asked_before: datetime, limit: int) -> list[Doc]:
        """Uncertain outbound messages whose reconciliation was not asked for since ``asked_before``."""
        with unreachable_as_transient():
            return list(self.messages.find(
                {"state": MessageState.UNCERTAIN.value, "direction": "outbound",
                 "$or": [{"reconcile_asked_at": None}, {"reconcile_asked_at": {"$lt": asked_before}}]},
                {"_id": 1},
            ).limit(limit))

    def claim_reconcile(self, message_id: str, asked_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is uncertain and not asked about since ``asked_before``."""
        with unreachable_as_transient():
            result = self.messages.update_one(
                {"_id": message_id, "state": MessageState.UNCERTAIN.value,
                 "$or": [{"reconcile_asked_at": None}, {"reconcile_asked_at": {"$lt": asked_before}}]},
                {"$set": {"reconcile_asked_at": now}},
            )
        return result.modified_count == 1

    def apply_status(self, sid: str, status: str, error_code: int | None, now: datetime, *,
                     source: str = "callback") -> bool:
        """Apply a Twilio delivery status to the message with this SID, forward only.

        Callbacks arrive out of order: a status ranked at or below the current one is ignored,
        so ``delivered`` after ``read`` changes nothing. True when the message changed.
        ``source`` ("callback" or "poll") is kept in the message's history.
        """
        state = TWILIO_STATUS_TO_STATE.get(status)
        if state is None:
            return False
        rank = STATUS_RANK[status] if status in STATUS_RANK else STATUS_RANK[state.value]
        fields: Doc = {"state": state.value, "status_rank": rank, "updated_at": now, "state_changed_at": now}
        if error_code is not None:
            fields["error_code"] = error_code
        if state in (MessageState.DELIVERED, MessageState.READ):
            fields[f"{state.value}_at"] = now
        with unreachable_as_transient():
            result = self.messages.update_one(
                {"twilio_sid": sid, "status_rank": {"$lt": rank}},
                {"$set": fields, "$push": {"history": _history(state.value, now, source=source)}},
            )
        return result.modified_count == 1

    def record_sid(self, message_id: str, sid: str, now: datetime) -> bool:
        """sending → sent with Twilio's SID; then replay callbacks that arrived before it."""
        moved = self.move_message(
            message_id, expected=(MessageState.SENDING, MessageState.UNCERTAIN), new=MessageState.SENT,
            now=now, extra={"twilio_sid": sid, "sent_at": now},
        )
        if moved:
            with unreachable_as_transient():
                early = list(self.events.find({"_id": {"$gt": f"status:{sid}:", "$lt": f"status:{sid};"}})
                             .sort("received_at", ASCENDING))
            for event in early:
                self.apply_status(sid, event["status"], event.get("error_code"), now)
        return moved

    def conversation(self, contact_id: str, limit: int = 20) -> list[Doc]:
        """The contact's latest messages, oldest first."""
        with unreachable_as_transient():
            docs = list(self.messages.find({"contact_id": contact_id}).sort("created_at", -1).limit(limit))
        return list(reversed(docs))

    # ---------------------------------------------------------------- events
    def record_event(self, event_id: str, doc: Doc, now: datetime) -> bool:
        """Store a webhook event once (its id is its dedupe key); False if already stored."""
        return self.record_events([(event_id, doc)], now)[0]

    def record_events(self, events: list[tuple[str, Doc]], now: datetime) -> list[bool]:
        """Store many webhook events at once, each once; for each, whether this call stored it.

        One unordered ``insert_many``: an id already stored (a Twilio retry), or seen earlier in
        the same batch, is a duplicate (False). Events stored waiting for an actor (``state``
        received) are listed in a pending note inserted with them, which :meth:`sweep_notes` and
        :meth:`unprocessed_inbound` read. Raises TransientError when MongoDB cannot be reached or
        refuses a write for another reason; what the server had stored by then stays stored and
        is found as a duplicate when Twilio retries (the scheduler enqueues it).
        """
        if not events:
            return []
        docs = [{"_id": event_id, **doc, "received_at": now, "created_at": now, "updated_at": now}
                for event_id, doc in events]
        waiting = [{"id": event_id, "from": doc.get("from", "")} for event_id, doc in events
                   if doc.get("state") == "received"]
        if waiting:
            # The batch's pending note goes first, in the same insert: the server stores an
            # unordered batch in order and skips only what fails, and nothing can fail for the
            # note alone (random id, no index) but what makes this raise. A note whose events
            # were not stored is dropped by the sweep.
            docs.insert(0, {**pending_note(now, waiting), "received_at": now, "created_at": now, "updated_at": now})
        with unreachable_as_transient():
            try:
                self.events.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise TransientError(f"MongoDB refused {len(errors)} event write(s)") from None
                refused = {error["index"] - (1 if waiting else 0) for error in errors}
                return [i not in refused for i in range(len(events))]
        return [True] * len(events)

    def unprocessed_inbound(self, phone: str, limit: int = 10) -> list[Doc]:
        """Inbound events from ``phone`` (E.164) stored but not yet processed, oldest first.

        Reads the pending notes (recent batches, and older ones with an event still waiting),
        then those events by id.
        """
        senders = [f"whatsapp:{phone}", phone]
        with unreachable_as_transient():
            notes = self.events.find({"_id": {"$gte": NOTE_PREFIX, "$lt": NOTE_END}, "events.from": {"$in": senders}},
                                     {"events": 1})
            ids = [event["id"] for note in notes for event in note["events"]
                   if event["from"] in senders and event["id"].startswith("inbound:")]
            if not ids:
                return []
            return list(self.events.find(
                {"_id": {"$in": ids}, "kind": "inbound", "state": "received"}, {"_id": 1, "received_at": 1},
            ).sort("received_at", ASCENDING).limit(limit))

    def sweep_notes(self, *, requeue_before: datetime, drop_before: datetime, limit: int) -> list[Doc]:
        """One pass over the pending notes, oldest first, for the scheduler; returns events to enqueue again.

        A note none of whose events still waits (all processed, or never stored because the
        insert failed) is deleted once written before ``drop_before``: the notes
        :meth:`unprocessed_inbound` reads before every send stay few. Events still ``received``
        in a note written before ``requeue_before`` (``_id`` and ``kind``) are returned, at most
        ``limit``: an inbound message or a failed status whose actor message Redis lost.
        """
        requeue_bound, drop_bound = _note_bound(requeue_before), _note_bound(drop_before)
        found: list[Doc] = []
        with unreachable_as_transient():
            notes = self.events.find({"_id": {"$gte": NOTE_PREFIX, "$lt": max(requeue_bound, drop_bound)}},
                                     {"events": 1})
            for note in notes.sort("_id", ASCENDING).limit(NOTES_PER_SWEEP):
                ids = [event["id"] for event in note["events"]]
                still = list(self.events.find({"_id": {"$in": ids}, "state": "received"}, {"_id": 1, "kind": 1}))
                if not still:
                    if note["_id"] < drop_bound:
                        self.events.delete_one({"_id": note["_id"]})
                elif note["_id"] < requeue_bound and len(found) < limit:
                    found.extend(still[:limit - len(found)])
        return found

    def known_event_ids(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids are stored already."""
        if not event_ids:
            return set()
        with unreachable_as_transient():
            return {doc["_id"] for doc in self.events.find({"_id": {"$in": event_ids}}, {"_id": 1})}

    # ---------------------------------------------------------------- periodic jobs
    def claim_job(self, job: str, now: datetime, every: timedelta) -> Doc | None:
        """This run of a periodic job, for one caller per ``every``: its document (cursor…) when this caller won.

        Several schedulers call it each tick; the conditional update on ``next_run_at`` is the
        lock, so one of them runs the job each period. A run that fails is tried next period.
        """
        with unreachable_as_transient():
            doc = self.jobs.find_one({"_id": job})
            if doc is None:
                try:
                    self.jobs.insert_one({"_id": job, "next_run_at": now + every, "claimed_at": now, "cursor": None,
                                          "created_at": now, "updated_at": now})
                except DuplicateKeyError:
                    return None  # another scheduler created it first: its run
                return self.jobs.find_one({"_id": job})
            if doc.get("next_run_at") is not None and doc["next_run_at"] > now:
                return None
            claimed = self.jobs.update_one(
                {"_id": job, "next_run_at": doc.get("next_run_at")},
                {"$set": {"next_run_at": now + every, "claimed_at": now, "updated_at": now}},
            )
        return {**doc, "next_run_at": now + every, "claimed_at": now} if claimed.modified_count == 1 else None

    def advance_job_cursor(self, job: str, cursor: datetime, now: datetime, **details: Any) -> bool:
        """Move a job's cursor forward to ``cursor`` (never back); ``details`` are kept as its last run's."""
        with unreachable_as_transient():
            self.jobs.update_one({"_id": job}, {"$set": {"last_run": {"at": now, **details}, "updated_at": now}})
            result = self.jobs.update_one({"_id": job, "$or": [{"cursor": None}, {"cursor": {"$lt": cursor}}]},
                                          {"$set": {"cursor": cursor, "updated_at": now}})
        return result.modified_count == 1

    def claim_event_requeue(self, event_id: str, now: datetime, every: timedelta) -> bool:
        """True for one caller per ``every`` while the inbound event waits: that caller enqueues it."""
        with unreachable_as_transient():
            result = self.events.update_one(
                {"_id": event_id, "state": "received",
                 "$or": [{"requeued_at": None}, {"requeued_at": {"$lt": now - every}}]},
                {"$set": {"requeued_at": now, "updated_at": now}},
            )
        return result.modified_count == 1

    def get_event(self, event_id: str) -> Doc | None:
        """A stored webhook event."""
        with unreachable_as_transient():
            return self.events.find_one({"_id": event_id})

    def count_event_failure(self, event_id: str, error: str, now: datetime) -> int:
        """Count one failed processing of a waiting event; its failures so far (0: it no longer waits)."""
        with unreachable_as_transient():
            result = self.events.update_one({"_id": event_id, "state": "received"},
                                            {"$inc": {"failures": 1},
                                             "$set": {"last_error": error, "failed_at": now, "updated_at": now}})
            if result.modified_count != 1:
                return 0
            doc = self.events.find_one({"_id": event_id}, {"failures": 1})
        return int(doc.get("failures", 0)) if doc else 0

    def mark_event(self, event_id: str, expected: str, new: str, now: datetime) -> bool:
        """Move an event's processing state (received → processed) conditionally."""
        with unreachable_as_transient():
            result = self.events.update_one(
                {"_id": event_id, "state": expected}, {"$set": {"state": new, "processed_at": now, "updated_at": now}}
            )
        return result.modified_count == 1

    def insert_inbound(self, doc: Doc, now: datetime) -> bool:
        """Store an inbound message once (id derived from its MessageSid)."""
        with unreachable_as_transient():
            try:
                self.messages.insert_one({**doc, "direction": "inbound", "state": MessageState.RECEIVED.value,
                                          "created_at": now, "updated_at": now})
            except DuplicateKeyError:
                return False
        return True

    def counts(self) -> dict[str, dict[str, int]]:
        """Follow-ups and outbound messages counted by state (for progress displays)."""
        out: dict[str, dict[str, int]] = {}
        with unreachable_as_transient():
            for name, coll, match in (
                ("followups", self.followups, {}),
                ("messages", self.messages, {"direction": "outbound"}),
            ):
                rows = coll.aggregate([{"$match": match}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}])
                out[name] = {r["_id"]: r["n"] for r in rows}
        return out


def open_store(uri: str, database: str, *, timeout_ms: int = 5000,
               socket_timeout_ms: int | None = None) -> tuple[MongoClient[Doc], Store]:
    """Connect and build the store (the caller closes the client)."""
    client = connect(uri, timeout_ms=timeout_ms, socket_timeout_ms=socket_timeout_ms)
    return client, Store(client[database])


def retry_on_transient(fn: Callable[[], T], attempts: int = 3, delay: float = 0.5) -> T:
    """Run ``fn``; on TransientError retry a few times (used by short CLI commands)."""
    import time

    for attempt in range(attempts):
        try:
            return fn()
        except TransientError:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * (attempt + 1))
    raise AssertionError("unreachable")


def contact_from_doc(doc: Doc) -> Contact:
    """A contact as stored (raises pydantic's ValidationError for a record the model refuses)."""
    return Contact(
        id=doc["_id"], phone=doc["phone"], name=doc["name"], language=doc.get("language", "fr"),
        timezone=doc.get("timezone", "Europe/Paris"), fields=doc.get("fields", {}),
        tags=doc.get("tags", []), opted_out=doc.get("opted_out", False),
        last_inbound_at=doc.get("last_inbound_at"),
    )


def _campaign(doc: Doc) -> Campaign:
    data = {k: v for k, v in doc.items() if k not in ("_id", "created_at", "updated_at")}
    return Campaign(id=doc["_id"], **data)


def _followup(doc: Doc) -> FollowUp:
    fields = {k: doc.get(k) for k in FollowUp.model_fields if k != "id" and k in doc}
    return FollowUp.model_validate({"id": doc["_id"], **fields})


def _message(doc: Doc) -> OutboundMessage:
    fields = {k: doc.get(k) for k in OutboundMessage.model_fields if k != "id" and k in doc}
    return OutboundMessage.model_validate({"id": doc["_id"], **fields})

