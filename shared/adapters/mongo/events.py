"""Webhook events in MongoDB (``events``), each stored once under its dedupe key, and pending notes.

Events are written on the webhook's hot path and kept for good, so the collection has no
secondary index but a partial one holding only the notes. The events of a batch that wait for
an actor (an inbound message, a failed status) are listed in a *pending note* inserted with
them (``_id`` ``pending:<time>:<random>``, so ``_id`` order is time order): the sending hold
reads the notes to find a contact's unread messages, and the scheduler's sweep re-enqueues
what Redis lost and drops finished notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from shared.adapters.documents import (
    NOTE_END,
    NOTE_PREFIX,
    event_docs,
    event_from_doc,
    note_bound,
)
from shared.adapters.mongo.connection import DUPLICATE_KEY, Doc, MongoRepository
from shared.domain.records import StoredEvent, WaitingEvent
from shared.domain.repositories import EventDoc
from shared.domain.states import EVENT_TRANSITIONS, ActionState, EventState, Transition
from shared.errors import TransientError

NOTES_PER_SWEEP = 1000  # pending notes one sweep reads at most
# A failed status's action is taken once: while it is pending (and so the event still received).
_ACTION_PENDING: Doc = {"action_state": ActionState.PENDING.value, "state": EventState.RECEIVED.value}


class MongoEvents(MongoRepository):
    """See :class:`shared.domain.repositories.EventRepository`."""

    collection_name = "events"

    def record(self, event_id: str, doc: EventDoc, now: datetime) -> bool:
        """Store a webhook event once (its id is its dedupe key); False if already stored."""
        return self.record_many([(event_id, doc)], now)[0]

    def record_many(self, events: Sequence[tuple[str, EventDoc]], now: datetime) -> list[bool]:
        """Store many webhook events at once, each once; for each, whether this call stored it.

        One unordered ``insert_many``: an id already stored (a Twilio retry), or seen earlier in
        the same batch, is a duplicate (False). Raises TransientError when MongoDB cannot be
        reached or refuses a write for another reason; what the server had stored by then stays
        stored and is found as a duplicate when Twilio retries (the scheduler enqueues it).
        """
        if not events:
            return []
        # The batch's pending note goes first, in the same insert: the server stores an unordered
        # batch in order and skips only what fails, and nothing can fail for the note alone
        # (random id, no index) but what makes this raise. A note whose events were not stored
        # is dropped by the sweep.
        docs = event_docs(events, now)
        noted = 1 if docs[0]["_id"].startswith(NOTE_PREFIX) else 0
        try:
            self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise TransientError(f"MongoDB refused {len(errors)} event write(s)") from None
            refused = {error["index"] - noted for error in errors}
            return [i not in refused for i in range(len(events))]
        return [True] * len(events)

    def get(self, event_id: str) -> StoredEvent | None:
        """A stored webhook event."""
        doc = self.collection.find_one({"_id": event_id})
        return event_from_doc(doc) if doc else None

    def known_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these event ids are stored already."""
        ids = list(event_ids)
        if not ids:
            return set()
        return {str(doc["_id"]) for doc in self.collection.find({"_id": {"$in": ids}}, {"_id": 1})}

    def unprocessed_inbound(self, phone: str, limit: int = 10) -> list[WaitingEvent]:
        """Inbound events from ``phone`` (E.164) stored but not yet processed, oldest first.

        Reads the pending notes (recent batches, and older ones with an event still waiting),
        then those events by id.
        """
        senders = [f"whatsapp:{phone}", phone]
        notes = self.collection.find(_notes(NOTE_END), {"events": 1})
        ids = [event["id"] for note in notes for event in note.get("events") or []
               if event["from"] in senders and event["id"].startswith("inbound:")]
        if not ids:
            return []
        docs = self.collection.find({"_id": {"$in": ids}, "kind": "inbound", "state": EventState.RECEIVED.value},
                                    {"_id": 1, "received_at": 1}).sort("received_at", ASCENDING).limit(limit)
        return [WaitingEvent(id=str(doc["_id"]), kind="inbound", received_at=doc.get("received_at")) for doc in docs]

    def sweep_notes(self, *, requeue_before: datetime, drop_before: datetime, limit: int) -> list[WaitingEvent]:
        """One pass over the pending notes, oldest first; returns events to enqueue again.

        A note none of whose events still waits (all processed, or never stored because the
        insert failed) is deleted once written before ``drop_before``: the notes the sending
        hold reads stay few. Events still waiting in a note written before ``requeue_before``
        are returned, at most ``limit``: an inbound message or a failed status Redis lost.
        """
        requeue_bound, drop_bound = note_bound(requeue_before), note_bound(drop_before)
        found: list[WaitingEvent] = []
        notes = self.collection.find(_notes(max(requeue_bound, drop_bound)), {"events": 1})
        for note in notes.sort("_id", ASCENDING).limit(NOTES_PER_SWEEP):
            ids = [event["id"] for event in note["events"]]
            # By _id alone (the _id index: examined = the note's events), the state checked here.
            still = [doc for doc in self.collection.find({"_id": {"$in": ids}}, {"_id": 1, "kind": 1, "state": 1})
                     if doc.get("state") == EventState.RECEIVED.value]
            if not still:
                if note["_id"] < drop_bound:
                    self.collection.delete_one({"_id": note["_id"]})
            elif note["_id"] < requeue_bound and len(found) < limit:
                found.extend(WaitingEvent(id=str(doc["_id"]), kind=str(doc.get("kind", "")))
                             for doc in still[:limit - len(found)])
        return found

    def claim_requeue(self, event_id: str, now: datetime, every: timedelta) -> bool:
        """True for one caller per ``every`` while the event waits: that caller enqueues it."""
        result = self.collection.update_one(
            # Never requeued, or before ``now - every``: no top-level $or beside the _id (see
            # messages._none_or_before: SecantusDB would read every event).
            {"_id": event_id, "state": EventState.RECEIVED.value, "requeued_at": {"$not": {"$gte": now - every}}},
            {"$set": {"requeued_at": now, "updated_at": now}},
        )
        return result.modified_count == 1

    def count_failure(self, event_id: str, error: str, now: datetime) -> int:
        """Count one failed processing of a waiting event; its failures so far (0: it no longer waits)."""
        result = self.collection.update_one({"_id": event_id, "state": EventState.RECEIVED.value},
                                            {"$inc": {"failures": 1},
                                             "$set": {"last_error": error, "failed_at": now, "updated_at": now}})
        if result.modified_count != 1:
            return 0
        doc = self.collection.find_one({"_id": event_id}, {"failures": 1})
        return int(doc.get("failures", 0)) if doc else 0

    # ------------------------------------------------------------ named transitions
    def _move(self, event_id: str, move: Transition[EventState], *, now: datetime, condition: Doc | None = None,
              fields: Doc | None = None) -> bool:
        query = condition or {"state": {"$in": [s.value for s in move.source]}}
        result = self.collection.update_one(
            {"_id": event_id, **query},
            {"$set": {"state": move.target.value, "processed_at": now, "updated_at": now, **(fields or {})}})
        return result.modified_count == 1

    def mark_processed(self, event_id: str, now: datetime) -> bool:
        """``received → processed``."""
        return self._move(event_id, EVENT_TRANSITIONS["mark_processed"], now=now)

    def mark_failed(self, event_id: str, now: datetime) -> bool:
        """``received → failed``."""
        return self._move(event_id, EVENT_TRANSITIONS["mark_failed"], now=now)

    def finish_action(self, event_id: str, *, action: str, now: datetime) -> bool:
        """A failed status acted on (once: conditional on its action still pending)."""
        return self._move(event_id, EVENT_TRANSITIONS["finish_action"], now=now,
                          condition=_ACTION_PENDING,
                          fields={"action_state": ActionState.DONE.value, "action": action})

    def fail_action(self, event_id: str, *, action: str, now: datetime) -> bool:
        """A failed status handed to a person (once: conditional on its action still pending)."""
        return self._move(event_id, EVENT_TRANSITIONS["fail_action"], now=now,
                          condition=_ACTION_PENDING,
                          fields={"action_state": ActionState.FAILED.value, "action": action})

    def count_waiting(self, kinds: Iterable[str], limit: int = 0) -> int:
        """Events of these kinds still waiting for an actor."""
        query = {"kind": {"$in": list(kinds)}, "state": EventState.RECEIVED.value}
        if limit > 0:
            return self.collection.count_documents(query, limit=limit)
        return self.collection.count_documents(query)  # the server refuses a limit of 0


def _notes(below: str) -> Doc:
    """The pending notes with an ``_id`` below ``below``: the partial index ``pending_notes``.

    An equality on the kind and one range on ``_id`` (a range on ``_id`` alone, or with a
    filter on the notes' entries, is answered by reading every event on SecantusDB).
    """
    return {"kind": "pending", "_id": {"$gte": NOTE_PREFIX, "$lt": below}}
