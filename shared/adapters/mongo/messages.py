"""Messages in MongoDB (``messages``): outbound ones with their delivery state, inbound ones as received.

Every state change is a conditional ``update_one`` on (id, expected states); delivery statuses
move a message forward only (``status_rank``), so callbacks arriving out of order change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from shared.adapters.documents import (
    inbound_doc,
    message_doc,
    message_from_doc,
    message_summary,
    ready_message,
    redraft_fields,
    replaced_draft_fields,
    send_time,
    status_fields,
)
from shared.adapters.mongo.connection import Doc, MongoRepository, history
from shared.adapters.transitions import MessageTransitions, move_values
from shared.domain.models import OutboundMessage
from shared.domain.reasons import CancelReason
from shared.domain.records import ConversationEntry, InboundRecord, MessageSummary, ReadyMessage
from shared.domain.states import (
    MESSAGE_TRANSITIONS,
    STATUS_RANK,
    MessageState,
    Transition,
)

_M = MessageState
# Drafts not sent yet, which a stop or a pause cancels: ready, or waiting for a person's approval
# (one query per state: SecantusDB scans the collection for an $in on the state).
# Read in this order: a draft approved between the two reads (awaiting_approval → ready, never back) is
# found by the second, so a STOP's cancel never leaves it ready to go out.
_UNSENT = (_M.AWAITING_APPROVAL.value, _M.READY.value)


def unknown_query(phone: str | None = None) -> Doc:
    """Messages from a number that was no contact (the owner's own are not).

    Those a person has handled carry ``handled_at``; they are told apart after the query, not
    in it, so that the planner keeps the partial indexes.
    """
    return {"unknown_sender": True, **({"from": phone} if phone is not None else {})}


class MongoMessages(MessageTransitions, MongoRepository):
    """See :class:`shared.domain.repositories.MessageRepository`."""

    collection_name = "messages"

    def insert(self, message: OutboundMessage, now: datetime) -> bool:
        """Store a drafted message once; False when this id already has one."""
        try:
            self.collection.insert_one(message_doc(message, now))
        except DuplicateKeyError:
            return False
        return True

    def get(self, message_id: str) -> OutboundMessage | None:
        """An outbound message by id."""
        doc = self.collection.find_one({"_id": message_id, "direction": "outbound"})
        return message_from_doc(doc) if doc else None

    def page(self, *, state: MessageState | None = None, campaign_id: str | None = None,
             contact_id: str | None = None, after: str | None = None, limit: int = 50) -> list[OutboundMessage]:
        """Outbound messages by id, filtered."""
        query: Doc = {"direction": "outbound"}
        if state is not None:
            query["state"] = MessageState(state).value
        if campaign_id is not None:
            query["campaign_id"] = campaign_id
        if contact_id is not None:
            query["contact_id"] = contact_id
        if after is not None:
            query["_id"] = {"$gt": after}
        return [message_from_doc(doc) for doc in self.collection.find(query).sort("_id", ASCENDING).limit(limit)]

    def by_sid(self, sid: str) -> OutboundMessage | None:
        """The outbound message Twilio knows as ``sid``."""
        doc = self.collection.find_one({"twilio_sid": sid, "direction": "outbound"})
        return message_from_doc(doc) if doc else None

    def followup_id_by_sid(self, sid: str) -> str | None:
        """The follow-up of the message Twilio knows as ``sid`` (raw: whatever else the message holds)."""
        doc = self.collection.find_one({"twilio_sid": sid}, {"followup_id": 1})
        return str(doc["followup_id"]) if doc and doc.get("followup_id") else None

    def known_sids(self, sids: Iterable[str]) -> set[str]:
        """Which of these Twilio SIDs a stored message has."""
        wanted = list(sids)
        if not wanted:
            return set()
        return {d["twilio_sid"] for d in self.collection.find({"twilio_sid": {"$in": wanted}}, {"twilio_sid": 1})}

    # ------------------------------------------------------------ named transitions
    def _move(self, message_id: str, move: Transition[MessageState], *, now: datetime, fields: Doc | None = None
              ) -> bool:
        """Conditional transition; True when this caller made it."""
        values = move_values(move, now, fields)
        result = self.collection.update_one(
            {"_id": message_id, "state": {"$in": [s.value for s in move.source]}},
            # requeue_from = max(entered ready, hold end, last requeue): see stranded_ready.
            {"$set": values, "$max": {"requeue_from": now}, "$push": {"history": history(move.target.value, now)}},
        )
        return result.modified_count == 1

    def redraft(self, message: OutboundMessage, now: datetime) -> bool:
        """Replace a cancelled step message by a new draft (``cancelled → ready``, conditional); one
        waiting for approval: :meth:`redraft_for_approval`."""
        if message.state == _M.AWAITING_APPROVAL:
            return self.redraft_for_approval(message, now)
        return self._redraft(message, MESSAGE_TRANSITIONS["redraft"], now)

    def redraft_for_approval(self, message: OutboundMessage, now: datetime) -> bool:
        """``cancelled → awaiting_approval`` with a new draft (its campaign wants a person's approval)."""
        return self._redraft(message, MESSAGE_TRANSITIONS["redraft_for_approval"], now)

    def _redraft(self, message: OutboundMessage, move: Transition[MessageState], now: datetime) -> bool:
        result = self.collection.update_one(
            {"_id": message.id, "state": move.source[0].value, "twilio_sid": {"$exists": False}},
            {"$set": redraft_fields(message, now), "$push": {"history": history(move.target.value, now, redraft=True)}},
        )
        return result.modified_count == 1

    def cancel_ready_steps(self, contact_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the contact's drafted messages that have not gone out yet (owner alerts aside)."""
        docs = [doc for state in _UNSENT for doc in self.collection.find(
            {"contact_id": contact_id, "direction": "outbound", "purpose": {"$ne": "alert"}, "state": state},
            {"_id": 1})]
        return sum(1 for doc in docs if self.cancel(str(doc["_id"]), reason=reason, now=now))

    # The state first: an index starting with it (state_requeue_from) makes the server examine
    # the ready messages only, a small set, instead of every message of the follow-up or campaign.
    def cancel_ready_of_followup(self, followup_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the follow-up's ready messages (its step's draft, a re-send); how many."""
        docs = [doc for state in _UNSENT for doc in self.collection.find({"state": state, "followup_id": followup_id},
                                                                          {"_id": 1})]
        return sum(1 for doc in docs if self.cancel(str(doc["_id"]), reason=reason, now=now))

    def cancel_ready_drafts_of_campaign(self, campaign_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the campaign's ready step drafts, re-sends (``resend_of``) aside; how many."""
        docs = [doc for state in _UNSENT for doc in self.collection.find(
            {"state": state, "campaign_id": campaign_id, "purpose": "step"}, {"_id": 1, "resend_of": 1})]
        return sum(1 for doc in docs if not doc.get("resend_of") and self.cancel(str(doc["_id"]), reason=reason,
                                                                                   now=now))

    def apply_status(self, sid: str, status: str, error_code: int | None, now: datetime, *,
                     source: str = "callback", message_id: str | None = None) -> bool:
        """Apply a Twilio delivery status to the message with this SID, forward only.

        A status ranked at or below the current one is ignored, so ``delivered`` after ``read``
        changes nothing. ``source`` ("callback" or "poll") is kept in the message's history.
        ``message_id`` (a callback's ``mid``): one update by ``_id``, which also adopts ``sid`` when
        the message has none yet (``sending``/``uncertain``: the callback came before the sending
        worker stored it, or the worker's answer was lost); never a message holding another SID.
        """
        moved = status_fields(status, error_code, now)
        if moved is None:
            return False
        rank, fields = moved
        entry = history(fields["state"], now, source=source)
        query: Doc = {"twilio_sid": sid, "status_rank": {"$lt": rank}}
        update: Doc = {"$set": fields, "$push": {"history": entry}}
        if message_id is not None:
            # No $or (SecantusDB answers a filter with one by scanning the collection): a message
            # without a SID ranked at least ``sending`` is sending or uncertain (ready and cancelled
            # rank 0, a send refused at once is failed, ranked above every status that could move it).
            query = {"_id": message_id, "twilio_sid": {"$in": [sid, None]},
                     "status_rank": {"$gte": STATUS_RANK[_M.SENDING.value], "$lt": rank}}
            # $min sets sent_at only when missing (an adoption): the worker's own is earlier.
            update = {"$set": {**fields, "twilio_sid": sid}, "$min": {"sent_at": now}, "$push": {"history": entry}}
        result = self.collection.update_one(query, update)
        return result.modified_count == 1

    def hold(self, message_id: str, *, until: datetime, now: datetime) -> bool:
        """Keep a ready message for later (``not_before``)."""
        result = self.collection.update_one(
            {"_id": message_id, "state": _M.READY.value},
            [{"$set": {"not_before": until, "updated_at": now, "requeue_from": _requeue_from(until)}}])
        return result.modified_count == 1

    # ------------------------------------------------------------ approvals
    def awaiting_approval(self, *, after: str | None, limit: int) -> list[OutboundMessage]:
        """Drafts waiting for a person's approval, by id, after ``after`` (index ``state_changed``: a
        small set, sorted by the server)."""
        query: Doc = {"state": _M.AWAITING_APPROVAL.value}
        if after is not None:
            query["_id"] = {"$gt": after}
        docs = self.collection.find(query).sort("_id", ASCENDING).limit(limit)
        return [message_from_doc(doc) for doc in docs]

    def window_closed_drafts(self, now: datetime, limit: int) -> list[str]:
        """Freeform drafts waiting for approval whose client's 24-hour window closed before ``now``
        (index ``state_window_closes``)."""
        docs = self.collection.find({"state": _M.AWAITING_APPROVAL.value, "window_closes_at": {"$lt": now}},
                                    {"_id": 1}).limit(limit)
        return [str(doc["_id"]) for doc in docs]

    def edit_draft(self, message_id: str, *, body: str, by: str, now: datetime) -> bool:
        """A new text for a freeform draft waiting for approval; False when it is not one (any more)."""
        result = self.collection.update_one(
            {"_id": message_id, "state": _M.AWAITING_APPROVAL.value, "kind": "freeform"},
            {"$set": {"body": body, "edited_by": by, "edited_at": now, "updated_at": now}})
        return result.matched_count == 1  # the same text again is an edit all the same

    def replace_draft(self, message: OutboundMessage, *, body_was: str, now: datetime) -> bool:
        """Rewrite a freeform draft waiting for approval (still that text, ``body_was``) with ``message``'s draft."""
        result = self.collection.update_one(
            {"_id": message.id, "state": _M.AWAITING_APPROVAL.value, "kind": "freeform", "body": body_was},
            {"$set": replaced_draft_fields(message, now)})
        return result.matched_count == 1

    # ------------------------------------------------------------ the scheduler's scans
    # Each scan is equalities plus ONE range on a "when to look" date, on an index that starts
    # with those fields (see ensure_indexes), so the server examines what it returns: no $or,
    # $ne or $in on the state, which SecantusDB answers by reading the whole collection. Only
    # outbound messages are ever ready, sending, uncertain or sent: no filter on the direction.
    def stale(self, state: MessageState, before: datetime, limit: int) -> list[str]:
        """Outbound messages sitting in ``state`` since before ``before`` (index ``state_changed``)."""
        docs = self.collection.find({"state": state.value, "state_changed_at": {"$lt": before}}, {"_id": 1}
                                    ).limit(limit)
        return [str(doc["_id"]) for doc in docs]

    def stranded_ready(self, before: datetime, limit: int) -> list[ReadyMessage]:
        """Ready messages left since before ``before``, whose hold ended before it, not enqueued again since.

        ``requeue_from`` is the latest of when the message became ready, its hold's end and its
        last requeue, kept by every write of one of them (index ``state_requeue_from``).
        """
        docs = self.collection.find({"state": _M.READY.value, "requeue_from": {"$lt": before}},
                                    {"_id": 1, "followup_id": 1, "step": 1, "resend_of": 1}).limit(limit)
        return [ready_message(doc) for doc in docs]

    def claim_requeue(self, message_id: str, *, before: datetime, now: datetime) -> bool:
        """True for one caller while the message is ready and was not enqueued again since ``before``."""
        result = self.collection.update_one(
            {"_id": message_id, "state": _M.READY.value, "requeued_at": _none_or_before(before)},
            {"$set": {"requeued_at": now, "updated_at": now}, "$max": {"requeue_from": now}, "$inc": {"requeues": 1}},
        )
        return result.modified_count == 1

    def unchecked_drafts(self, *, before: datetime, recheck_before: datetime, limit: int) -> list[ReadyMessage]:
        """Ready step messages stale since ``before`` and not checked since ``recheck_before``.

        Two exact scans of the index ``state_dead_check`` (state, dead_check_at, state_changed_at):
        the never checked ones stale since ``before``, then those checked before ``recheck_before``
        (a check is forgotten when the message becomes ready again). Replies and owner alerts, which
        have no follow-up, are set aside here.
        """
        fields = {"_id": 1, "followup_id": 1, "step": 1, "resend_of": 1, "state_changed_at": 1}
        never = self.collection.find({"state": _M.READY.value, "dead_check_at": None,
                                      "state_changed_at": {"$lt": before}}, fields).limit(limit)
        docs = [doc for doc in never if doc.get("followup_id") is not None]
        if len(docs) < limit:
            again = self.collection.find({"state": _M.READY.value, "dead_check_at": {"$lt": recheck_before}},
                                         fields).limit(limit - len(docs))
            docs.extend(doc for doc in again if doc.get("followup_id") is not None
                        and isinstance(doc.get("state_changed_at"), datetime) and doc["state_changed_at"] < before)
        return [ready_message(doc) for doc in docs]

    def mark_checked(self, message_id: str, *, now: datetime) -> None:
        """A ready step message found still wanted: looked at again later."""
        self.collection.update_one({"_id": message_id, "state": _M.READY.value}, {"$set": {"dead_check_at": now}})

    def uncertain_to_reconcile(self, asked_before: datetime, limit: int) -> list[str]:
        """Uncertain messages whose reconciliation was not asked for since ``asked_before``.

        Never asked first, then asked before ``asked_before``: two exact scans of the index
        ``state_reconcile_asked``.
        """
        ids = [str(doc["_id"]) for doc in self.collection.find(
            {"state": _M.UNCERTAIN.value, "reconcile_asked_at": None}, {"_id": 1}).limit(limit)]
        if len(ids) < limit:
            ids.extend(str(doc["_id"]) for doc in self.collection.find(
                {"state": _M.UNCERTAIN.value, "reconcile_asked_at": {"$lt": asked_before}}, {"_id": 1}
            ).limit(limit - len(ids)))
        return ids

    def claim_reconcile(self, message_id: str, *, asked_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is uncertain and not asked about since ``asked_before``."""
        result = self.collection.update_one(
            {"_id": message_id, "state": _M.UNCERTAIN.value, "reconcile_asked_at": _none_or_before(asked_before)},
            {"$set": {"reconcile_asked_at": now}},
        )
        return result.modified_count == 1

    def awaiting_status(self, *, now: datetime, after: timedelta, recheck_before: datetime, give_up: timedelta,
                        limit: int) -> list[str]:
        """Messages still ``sent`` ``after`` their send (within ``give_up``), not polled since ``recheck_before``.

        Two scans of the index ``state_status_polled`` (state, status_polled_at, sent_at): the
        never polled ones sent between ``give_up`` and ``after`` ago (exact), then those polled
        before ``recheck_before`` but within ``give_up`` (a message is polled only after it was
        sent, so an older poll means an older send); of these, the ones sent before ``give_up``
        (their last poll in the window) are set aside here.
        """
        oldest = now - give_up
        ids = [str(doc["_id"]) for doc in self.collection.find(
            {"state": _M.SENT.value, "status_polled_at": None, "sent_at": {"$lt": now - after, "$gte": oldest}},
            {"_id": 1}).limit(limit)]
        if len(ids) < limit:
            again = self.collection.find(
                {"state": _M.SENT.value, "status_polled_at": {"$lt": recheck_before, "$gte": oldest}},
                {"_id": 1, "sent_at": 1}).limit(limit - len(ids))
            ids.extend(str(doc["_id"]) for doc in again
                       if isinstance(doc.get("sent_at"), datetime) and oldest <= doc["sent_at"] < now - after)
        return ids

    def claim_status_poll(self, message_id: str, *, recheck_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is sent and not polled since ``recheck_before``."""
        result = self.collection.update_one(
            {"_id": message_id, "state": _M.SENT.value, "status_polled_at": _none_or_before(recheck_before)},
            {"$set": {"status_polled_at": now}, "$inc": {"status_polls": 1}},
        )
        return result.modified_count == 1

    # ------------------------------------------------------------ one contact's messages
    def send_times(self, contact_id: str, *, states: Iterable[MessageState], created_since: datetime
                   ) -> list[datetime]:
        """When the contact's step messages went out: ``sent_at``, else ``sending_at``, else the last move."""
        query = {"contact_id": contact_id, "created_at": {"$gte": created_since}, "direction": "outbound",
                 "state": {"$in": [s.value for s in states]}, "purpose": {"$in": ["step", None]}}
        projection = {"sent_at": 1, "sending_at": 1, "state_changed_at": 1, "created_at": 1}
        return [at for at in map(send_time, self.collection.find(query, projection)) if at is not None]

    def get_with_send_times(self, message_id: str, contact_id: str, *, states: Iterable[MessageState],
                            created_since: datetime) -> tuple[OutboundMessage | None, list[datetime]]:
        """One query on the contact's outbound messages created since ``created_since`` (index
        ``contact_time``): the message itself among them, and the send times of its paced ones."""
        wanted = {s.value for s in states}
        found: Doc | None = None
        times: list[datetime] = []
        for doc in self.collection.find({"contact_id": contact_id, "created_at": {"$gte": created_since},
                                         "direction": "outbound"}):
            if doc["_id"] == message_id:
                found = doc
            if doc.get("state") in wanted and doc.get("purpose") in ("step", None):
                at = send_time(doc)
                if at is not None:
                    times.append(at)
        return (message_from_doc(found) if found else self.get(message_id)), times

    def count_replies_since(self, contact_id: str, since: datetime, *, besides: str) -> int:
        """Automated replies stored for the contact since ``since`` (cancelled ones and ``besides`` aside)."""
        return self.collection.count_documents(
            {"contact_id": contact_id, "created_at": {"$gte": since}, "purpose": "reply",
             "state": {"$ne": _M.CANCELLED.value}, "_id": {"$ne": besides}})

    def conversation(self, contact_id: str, limit: int = 20) -> list[ConversationEntry]:
        """The contact's latest messages with a text, oldest first."""
        docs = list(self.collection.find({"contact_id": contact_id}).sort("created_at", DESCENDING).limit(limit))
        return [ConversationEntry(direction=str(doc.get("direction", "outbound")), body=str(doc["body"]),
                                  at=doc["created_at"]) for doc in reversed(docs) if doc.get("body")]

    # ------------------------------------------------------------ inbound
    def insert_inbound(self, record: InboundRecord, at: datetime) -> bool:
        """Store an inbound message once (id derived from its MessageSid)."""
        try:
            self.collection.insert_one(inbound_doc(record, at))
        except DuplicateKeyError:
            return False
        return True

    def linked_followups(self, inbound_id: str) -> list[str]:
        """The follow-ups a stored inbound message answers."""
        doc = self.collection.find_one({"_id": inbound_id}, {"followup_ids": 1}) or {}
        return [str(f) for f in doc.get("followup_ids") or []]

    def set_classification(self, inbound_id: str, classification: Mapping[str, Any]) -> None:
        """Keep how an inbound message was read."""
        self.collection.update_one({"_id": inbound_id}, {"$set": {"classification": dict(classification)}})

    def set_outcome(self, inbound_id: str, outcome: str) -> None:
        """Keep what was done about an inbound message."""
        self.collection.update_one({"_id": inbound_id}, {"$set": {"outcome": outcome}})

    # ------------------------------------------------------------ for people
    def summaries_of_contact(self, contact_id: str) -> list[MessageSummary]:
        """Every message in and out of a contact, oldest first."""
        return [message_summary(d) for d in self.collection.find({"contact_id": contact_id}).sort("created_at", 1)]

    def from_unknown(self, phone: str) -> list[MessageSummary]:
        """Messages from ``phone`` while it was no contact, oldest first."""
        return [message_summary(d) for d in self.collection.find(unknown_query(phone)).sort("created_at", 1)]

    def newest_from_unknown(self, limit: int) -> list[MessageSummary]:
        """The newest messages from numbers that were no contact."""
        docs = self.collection.find(unknown_query(), {"from": 1, "created_at": 1, "handled_at": 1})
        return [message_summary(d) for d in docs.sort("created_at", DESCENDING).limit(limit)]

    def has_unknown(self, phone: str) -> bool:
        """Whether ``phone`` ever wrote while it was no contact."""
        return self.collection.count_documents(unknown_query(phone), limit=1) > 0

    def open_unknown_ids(self, phone: str) -> list[str]:
        """The messages from this unknown number that no person has handled yet."""
        return [str(doc["_id"]) for doc in self.collection.find(unknown_query(phone), {"handled_at": 1})
                if "handled_at" not in doc]

    def mark_handled(self, message_ids: Sequence[str], now: datetime) -> int:
        """A person handled these messages from an unknown number."""
        result = self.collection.update_many({"_id": {"$in": list(message_ids)}}, {"$set": {"handled_at": now}})
        return result.modified_count

    def answered_inbound(self) -> list[MessageSummary]:
        """Inbound messages that were read (classified, or an opt-out), oldest first."""
        docs = self.collection.find({"direction": "inbound", "outcome": {"$exists": True},
                                     "$or": [{"classification": {"$exists": True}},
                                             {"outcome": {"$regex": "^opt_out"}}]})
        return [message_summary(d) for d in docs.sort("created_at", 1)]

    def sent_after(self, contact_id: str, since: datetime) -> list[MessageSummary]:
        """Outbound messages handed to Twilio after ``since``, in that order."""
        docs = self.collection.find({"contact_id": contact_id, "direction": "outbound", "sent_at": {"$gt": since}})
        return [message_summary(d) for d in docs.sort("sent_at", 1)]

    def first_outbound(self, limit: int) -> list[MessageSummary]:
        """The oldest outbound messages."""
        docs = self.collection.find({"direction": "outbound"}).sort("created_at", ASCENDING).limit(limit)
        return [message_summary(d) for d in docs]

    def count(self, *, purpose: str | None = None, step: int | None = None,
              states: Iterable[MessageState] | None = None) -> int:
        """How many messages match."""
        query: Doc = {}
        if purpose is not None:
            query["purpose"] = purpose
        if step is not None:
            query["step"] = step
        if states is not None:
            query["state"] = {"$in": [s.value for s in states]}
        return self.collection.count_documents(query)

    def count_by_state(self) -> dict[str, int]:
        """Outbound messages counted by state."""
        rows = self.collection.aggregate([{"$match": {"direction": "outbound"}},
                                          {"$group": {"_id": "$state", "n": {"$sum": 1}}}])
        return {row["_id"]: row["n"] for row in rows}

    def count_steps_by_state(self) -> dict[tuple[str, int], int]:
        """Follow-up step messages counted by (state, step)."""
        rows = self.collection.aggregate([
            {"$match": {"direction": "outbound", "purpose": {"$in": ["step", None]}}},
            {"$group": {"_id": {"state": "$state", "step": "$step"}, "n": {"$sum": 1}}}])
        return {(row["_id"]["state"], int(row["_id"]["step"])): row["n"] for row in rows
                if row["_id"].get("step") is not None}


def _requeue_from(until: datetime) -> Doc:
    """The pipeline expression of ``requeue_from`` once a hold until ``until`` is set."""
    return {"$max": ["$state_changed_at", until, "$requeued_at"]}


def backfill_requeue_from(collection: Any) -> int:
    """Give ``requeue_from`` to the ready messages stored before it existed (idempotent); how many."""
    result = collection.update_many(
        {"state": _M.READY.value, "requeue_from": None},
        [{"$set": {"requeue_from": {"$max": ["$state_changed_at", "$not_before", "$requeued_at"]}}}])
    return int(result.modified_count)


def _none_or_before(bound: datetime) -> Doc:
    """A date missing, null or before ``bound``, without a top-level ``$or``.

    The claims are updates by ``_id``; a top-level ``$or`` beside it makes SecantusDB read the
    whole collection for each one (measured: 0.5 s per claim with 50,000 messages).
    """
    return {"$not": {"$gte": bound}}
