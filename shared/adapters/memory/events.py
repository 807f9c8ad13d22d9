"""Webhook events in memory, each stored once, with the same pending notes as in MongoDB."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from shared.adapters.documents import NOTE_END, NOTE_PREFIX, event_docs, event_from_doc, note_bound
from shared.adapters.memory.base import Doc, MemoryRepository, by, none_or_before
from shared.domain.records import StoredEvent, WaitingEvent
from shared.domain.repositories import EventDoc
from shared.domain.states import EVENT_TRANSITIONS, ActionState, EventState, Transition

NOTES_PER_SWEEP = 1000  # as the MongoDB adapter
_RECEIVED = EventState.RECEIVED.value


def _is_note(key: str) -> bool:
    return NOTE_PREFIX <= key < NOTE_END


class MemoryEvents(MemoryRepository):
    """See :class:`shared.domain.repositories.EventRepository`."""

    def record(self, event_id: str, doc: EventDoc, now: datetime) -> bool:
        """Store an event once; False if already stored."""
        return self.record_many([(event_id, doc)], now)[0]

    def record_many(self, events: Sequence[tuple[str, EventDoc]], now: datetime) -> list[bool]:
        """Store many at once, each once (a pending note for those that wait); for each, whether stored now."""
        if not events:
            return []
        docs = event_docs(events, now)
        stored = [self._insert(doc) for doc in docs]
        return stored[1:] if _is_note(str(docs[0]["_id"])) else stored

    def get(self, event_id: str) -> StoredEvent | None:
        """A stored event."""
        doc = self._get(event_id)
        return event_from_doc(doc) if doc else None

    def known_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these event ids are stored."""
        return {key for key in event_ids if key in self.docs}

    def _waiting(self, ids: Iterable[str]) -> list[Doc]:
        return [self.docs[key] for key in ids if key in self.docs and self.docs[key].get("state") == _RECEIVED]

    def unprocessed_inbound(self, phone: str, limit: int = 10) -> list[WaitingEvent]:
        """Inbound events from ``phone`` stored but not processed yet, oldest first (through the notes)."""
        senders = {f"whatsapp:{phone}", phone}
        ids = [event["id"] for key, note in self.docs.items() if _is_note(key)
               for event in note["events"] if event["from"] in senders and event["id"].startswith("inbound:")]
        docs = [doc for doc in self._waiting(dict.fromkeys(ids)) if doc.get("kind") == "inbound"]
        return [WaitingEvent(id=str(doc["_id"]), kind="inbound", received_at=doc.get("received_at"))
                for doc in by("received_at")(docs)[:limit]]

    def sweep_notes(self, *, requeue_before: datetime, drop_before: datetime, limit: int) -> list[WaitingEvent]:
        """Drop finished pending notes; the events still waiting in notes written before ``requeue_before``."""
        requeue_bound, drop_bound = note_bound(requeue_before), note_bound(drop_before)
        found: list[WaitingEvent] = []
        notes = sorted(key for key in self.docs if NOTE_PREFIX <= key < max(requeue_bound, drop_bound))
        for key in notes[:NOTES_PER_SWEEP]:
            still = self._waiting(event["id"] for event in self.docs[key]["events"])
            if not still:
                if key < drop_bound:
                    del self.docs[key]
            elif key < requeue_bound and len(found) < limit:
                found.extend(WaitingEvent(id=str(doc["_id"]), kind=str(doc.get("kind", "")))
                             for doc in still[:limit - len(found)])
        return found

    def claim_requeue(self, event_id: str, now: datetime, every: timedelta) -> bool:
        """True for one caller per ``every`` while the event waits."""
        doc = self.docs.get(event_id)
        if doc is None or doc.get("state") != _RECEIVED or not none_or_before(doc.get("requeued_at"), now - every):
            return False
        doc.update({"requeued_at": now, "updated_at": now})
        return True

    def count_failure(self, event_id: str, error: str, now: datetime) -> int:
        """Count one failed processing of a waiting event; its failures so far (0: it no longer waits)."""
        doc = self.docs.get(event_id)
        if doc is None or doc.get("state") != _RECEIVED:
            return 0
        doc.update({"failures": int(doc.get("failures") or 0) + 1, "last_error": error, "failed_at": now,
                    "updated_at": now})
        return int(doc["failures"])

    # ------------------------------------------------------------ named transitions
    def _move(self, event_id: str, move: Transition[EventState], *, now: datetime, action_pending: bool = False,
              fields: Doc | None = None) -> bool:
        doc = self.docs.get(event_id)
        if doc is None or doc.get("state") not in {s.value for s in move.source}:
            return False
        if action_pending and doc.get("action_state") != ActionState.PENDING.value:
            return False
        doc.update({"state": move.target.value, "processed_at": now, "updated_at": now, **(fields or {})})
        return True

    def mark_processed(self, event_id: str, now: datetime) -> bool:
        """``received → processed``."""
        return self._move(event_id, EVENT_TRANSITIONS["mark_processed"], now=now)

    def mark_failed(self, event_id: str, now: datetime) -> bool:
        """``received → failed``."""
        return self._move(event_id, EVENT_TRANSITIONS["mark_failed"], now=now)

    def finish_action(self, event_id: str, *, action: str, now: datetime) -> bool:
        """A failed status acted on (once)."""
        return self._move(event_id, EVENT_TRANSITIONS["finish_action"], now=now, action_pending=True,
                          fields={"action_state": ActionState.DONE.value, "action": action})

    def fail_action(self, event_id: str, *, action: str, now: datetime) -> bool:
        """A failed status handed to a person (once)."""
        return self._move(event_id, EVENT_TRANSITIONS["fail_action"], now=now, action_pending=True,
                          fields={"action_state": ActionState.FAILED.value, "action": action})

    def count_waiting(self, kinds: Iterable[str], limit: int = 0) -> int:
        """Events of these kinds still waiting (at most ``limit``; 0: all)."""
        wanted = set(kinds)
        count = sum(1 for doc in self.docs.values() if doc.get("kind") in wanted and doc.get("state") == _RECEIVED)
        return min(count, limit) if limit > 0 else count
