"""Messages in memory: the same conditional transitions and forward-only statuses as in MongoDB.

Twilio SIDs are unique (the sparse unique index): recording a SID another message holds fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

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
from shared.adapters.memory.base import Doc, MemoryRepository, before, by, limited, none_or_before, push_history
from shared.adapters.transitions import MessageTransitions, move_values
from shared.domain.models import OutboundMessage
from shared.domain.reasons import CancelReason
from shared.domain.records import ConversationEntry, InboundRecord, MessageSummary, ReadyMessage
from shared.domain.states import MESSAGE_TRANSITIONS, MessageState, Transition
from shared.errors import StoreError

_M = MessageState
# Drafts not sent yet, which a stop or a pause cancels: ready, or waiting for a person's approval.
# Read in this order: a draft approved between the two reads (awaiting_approval → ready, never back) is
# found by the second, so a STOP's cancel never leaves it ready to go out.
_UNSENT = (_M.AWAITING_APPROVAL.value, _M.READY.value)


def _outbound(doc: Doc) -> bool:
    return doc.get("direction") == "outbound"


class MemoryMessages(MessageTransitions, MemoryRepository):
    """See :class:`shared.domain.repositories.MessageRepository`."""

    def _by_sid(self, sid: str) -> Doc | None:
        return next((doc for doc in self.docs.values() if doc.get("twilio_sid") == sid), None)

    def insert(self, message: OutboundMessage, now: datetime) -> bool:
        """Store a drafted message once; False when its id exists."""
        return self._insert(message_doc(message, now))

    def get(self, message_id: str) -> OutboundMessage | None:
        """An outbound message by id."""
        doc = self._get(message_id)
        return message_from_doc(doc) if doc and _outbound(doc) else None

    def page(self, *, state: MessageState | None = None, campaign_id: str | None = None,
             contact_id: str | None = None, after: str | None = None, limit: int = 50) -> list[OutboundMessage]:
        """Outbound messages by id, filtered."""
        def match(doc: Doc) -> bool:
            return (_outbound(doc) and (state is None or doc.get("state") == MessageState(state).value)
                    and (campaign_id is None or doc.get("campaign_id") == campaign_id)
                    and (contact_id is None or doc.get("contact_id") == contact_id)
                    and (after is None or str(doc["_id"]) > after))
        found = sorted(self._where(match), key=lambda doc: str(doc["_id"]))
        return [message_from_doc(doc) for doc in found[:limit]]

    def by_sid(self, sid: str) -> OutboundMessage | None:
        """The outbound message Twilio knows as ``sid``."""
        doc = self._by_sid(sid)
        return message_from_doc(doc) if doc and _outbound(doc) else None

    def followup_id_by_sid(self, sid: str) -> str | None:
        """The follow-up of the message Twilio knows as ``sid``."""
        doc = self._by_sid(sid)
        return str(doc["followup_id"]) if doc and doc.get("followup_id") else None

    def known_sids(self, sids: Iterable[str]) -> set[str]:
        """Which of these Twilio SIDs a stored message has."""
        wanted = set(sids)
        return {doc["twilio_sid"] for doc in self.docs.values() if doc.get("twilio_sid") in wanted}

    # ------------------------------------------------------------ named transitions
    def _move(self, message_id: str, move: Transition[MessageState], *, now: datetime, fields: Doc | None = None
              ) -> bool:
        doc = self.docs.get(message_id)
        if doc is None or doc.get("state") not in {s.value for s in move.source}:
            return False
        values = move_values(move, now, fields)
        sid = values.get("twilio_sid")
        if sid is not None and any(other.get("twilio_sid") == sid for key, other in self.docs.items()
                                   if key != message_id):
            raise StoreError("MongoDB refused a duplicate the code did not expect")  # the unique index
        doc.update(values)
        push_history(doc, move.target.value, now)
        return True

    def redraft(self, message: OutboundMessage, now: datetime) -> bool:
        """``cancelled → ready`` with a new draft (never for a message Twilio has); one waiting for
        approval: :meth:`redraft_for_approval`."""
        if message.state == _M.AWAITING_APPROVAL:
            return self.redraft_for_approval(message, now)
        return self._redraft(message, MESSAGE_TRANSITIONS["redraft"], now)

    def redraft_for_approval(self, message: OutboundMessage, now: datetime) -> bool:
        """``cancelled → awaiting_approval`` with a new draft (its campaign wants a person's approval)."""
        return self._redraft(message, MESSAGE_TRANSITIONS["redraft_for_approval"], now)

    def _redraft(self, message: OutboundMessage, move: Transition[MessageState], now: datetime) -> bool:
        doc = self.docs.get(message.id)
        if doc is None or doc.get("state") != move.source[0].value or "twilio_sid" in doc:
            return False
        doc.update(redraft_fields(message, now))
        push_history(doc, move.target.value, now, redraft=True)
        return True

    def cancel_ready_steps(self, contact_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the contact's ready messages but owner alerts; how many."""
        ids = [key for key, doc in self.docs.items() if doc.get("contact_id") == contact_id and _outbound(doc)
               and doc.get("purpose") != "alert" and doc.get("state") in _UNSENT]
        return sum(1 for key in ids if self.cancel(key, reason=reason, now=now))

    def cancel_ready_of_followup(self, followup_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the follow-up's ready messages (its step's draft, a re-send); how many."""
        ids = [key for key, doc in self.docs.items()
               if doc.get("followup_id") == followup_id and doc.get("state") in _UNSENT]
        return sum(1 for key in ids if self.cancel(key, reason=reason, now=now))

    def cancel_ready_drafts_of_campaign(self, campaign_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the campaign's ready step drafts, re-sends (``resend_of``) aside; how many."""
        ids = [key for key, doc in self.docs.items()
               if doc.get("campaign_id") == campaign_id and doc.get("purpose") == "step"
               and not doc.get("resend_of") and doc.get("state") in _UNSENT]
        return sum(1 for key in ids if self.cancel(key, reason=reason, now=now))

    def apply_status(self, sid: str, status: str, error_code: int | None, now: datetime, *,
                     source: str = "callback", message_id: str | None = None) -> bool:
        """Apply a Twilio delivery status to the message with this SID (or this id, adopting the SID), forward only."""
        moved = status_fields(status, error_code, now)
        if message_id is None:
            doc = self._by_sid(sid)
        else:
            doc = self.docs.get(message_id)
            if doc is not None and doc.get("twilio_sid") != sid and (
                    "twilio_sid" in doc or doc.get("state") not in (_M.SENDING.value, _M.UNCERTAIN.value)):
                doc = None  # another SID's message, or one that Twilio does not have
        if moved is None or doc is None:
            return False
        rank, fields = moved
        current = doc.get("status_rank")
        if not isinstance(current, int) or current >= rank:  # MongoDB's {"status_rank": {"$lt": rank}}
            return False
        if "twilio_sid" not in doc:  # adopted: as the unique index, and $min on sent_at
            if self._by_sid(sid) is not None:
                raise StoreError("MongoDB refused a duplicate the code did not expect")
            fields = {**fields, "twilio_sid": sid, "sent_at": now}
        doc.update(fields)
        push_history(doc, fields["state"], now, source=source)
        return True

    def hold(self, message_id: str, *, until: datetime, now: datetime) -> bool:
        """Keep a ready message for later (``not_before``)."""
        doc = self.docs.get(message_id)
        if doc is None or doc.get("state") != _M.READY.value:
            return False
        doc.update({"not_before": until, "updated_at": now})
        return True

    # ------------------------------------------------------------ approvals
    def awaiting_approval(self, *, after: str | None, limit: int) -> list[OutboundMessage]:
        """Drafts waiting for a person's approval, by id, after ``after``."""
        docs = by("_id")(self._where(lambda doc: doc.get("state") == _M.AWAITING_APPROVAL.value and _outbound(doc)
                                     and (after is None or str(doc["_id"]) > after)))
        return [message_from_doc(doc) for doc in limited(docs, limit)]

    def window_closed_drafts(self, now: datetime, limit: int) -> list[str]:
        """Freeform drafts waiting for approval whose client's 24-hour window closed before ``now``."""
        docs = self._where(lambda doc: doc.get("state") == _M.AWAITING_APPROVAL.value
                           and before(doc.get("window_closes_at"), now))
        return [str(doc["_id"]) for doc in limited(docs, limit)]

    def edit_draft(self, message_id: str, *, body: str, by: str, now: datetime) -> bool:
        """A new text for a freeform draft waiting for approval; False when it is not one (any more)."""
        doc = self.docs.get(message_id)
        if doc is None or doc.get("state") != _M.AWAITING_APPROVAL.value or doc.get("kind") != "freeform":
            return False
        doc.update({"body": body, "edited_by": by, "edited_at": now, "updated_at": now})
        return True

    def replace_draft(self, message: OutboundMessage, *, body_was: str, now: datetime) -> bool:
        """Rewrite a freeform draft waiting for approval (still that text, ``body_was``) with ``message``'s draft."""
        doc = self.docs.get(message.id)
        if (doc is None or doc.get("state") != _M.AWAITING_APPROVAL.value or doc.get("kind") != "freeform"
                or doc.get("body") != body_was):
            return False
        doc.update(replaced_draft_fields(message, now))
        return True

    # ------------------------------------------------------------ the scheduler's scans
    def stale(self, state: MessageState, before_: datetime, limit: int) -> list[str]:
        """Outbound messages sitting in ``state`` since before ``before_``."""
        docs = self._where(lambda doc: doc.get("state") == state.value and _outbound(doc)
                           and before(doc.get("state_changed_at"), before_))
        return [str(doc["_id"]) for doc in limited(docs, limit)]

    def stranded_ready(self, before_: datetime, limit: int) -> list[ReadyMessage]:
        """Ready messages left since before ``before_``, hold ended, not enqueued again since."""
        docs = self._where(lambda doc: doc.get("state") == _M.READY.value and _outbound(doc)
                           and before(doc.get("state_changed_at"), before_)
                           and none_or_before(doc.get("not_before"), before_)
                           and none_or_before(doc.get("requeued_at"), before_))
        return [ready_message(doc) for doc in limited(docs, limit)]

    def claim_requeue(self, message_id: str, *, before: datetime, now: datetime) -> bool:
        """True for one caller while the message is ready and not enqueued again since ``before``."""
        doc = self.docs.get(message_id)
        if doc is None or doc.get("state") != _M.READY.value or not none_or_before(doc.get("requeued_at"), before):
            return False
        doc.update({"requeued_at": now, "updated_at": now, "requeues": doc.get("requeues", 0) + 1})
        return True

    def unchecked_drafts(self, *, before: datetime, recheck_before: datetime, limit: int) -> list[ReadyMessage]:
        """Ready step messages stale since ``before`` and not checked since ``recheck_before``."""
        bound = before
        docs = self._where(lambda doc: doc.get("state") == _M.READY.value and _outbound(doc)
                           and doc.get("followup_id") is not None
                           and isinstance(doc.get("state_changed_at"), datetime) and doc["state_changed_at"] < bound
                           and none_or_before(doc.get("dead_check_at"), recheck_before))
        return [ready_message(doc) for doc in limited(docs, limit)]

    def mark_checked(self, message_id: str, *, now: datetime) -> None:
        """A ready step message found still wanted: not checked again for a while."""
        doc = self.docs.get(message_id)
        if doc is not None and doc.get("state") == _M.READY.value:
            doc["dead_check_at"] = now

    def uncertain_to_reconcile(self, asked_before: datetime, limit: int) -> list[str]:
        """Uncertain messages whose reconciliation was not asked for since ``asked_before``."""
        docs = self._where(lambda doc: doc.get("state") == _M.UNCERTAIN.value and _outbound(doc)
                           and none_or_before(doc.get("reconcile_asked_at"), asked_before))
        return [str(doc["_id"]) for doc in limited(docs, limit)]

    def claim_reconcile(self, message_id: str, *, asked_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is uncertain and not asked about since ``asked_before``."""
        doc = self.docs.get(message_id)
        if (doc is None or doc.get("state") != _M.UNCERTAIN.value
                or not none_or_before(doc.get("reconcile_asked_at"), asked_before)):
            return False
        doc["reconcile_asked_at"] = now
        return True

    def _awaiting(self, doc: Doc, recheck_before: datetime) -> bool:
        return doc.get("state") == _M.SENT.value and none_or_before(doc.get("status_polled_at"), recheck_before)

    def awaiting_status(self, *, now: datetime, after: timedelta, recheck_before: datetime, give_up: timedelta,
                        limit: int) -> list[str]:
        """Messages still ``sent`` ``after`` their send (within ``give_up``), not polled since ``recheck_before``."""
        def due(doc: Doc) -> bool:
            changed, sent = doc.get("state_changed_at"), doc.get("sent_at")
            return (self._awaiting(doc, recheck_before) and _outbound(doc) and "twilio_sid" in doc
                    and isinstance(changed, datetime) and changed >= now - give_up
                    and isinstance(sent, datetime) and now - give_up <= sent < now - after)
        return [str(doc["_id"]) for doc in limited(self._where(due), limit)]

    def claim_status_poll(self, message_id: str, *, recheck_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is sent and not polled since ``recheck_before``."""
        doc = self.docs.get(message_id)
        if doc is None or not self._awaiting(doc, recheck_before):
            return False
        doc.update({"status_polled_at": now, "status_polls": doc.get("status_polls", 0) + 1})
        return True

    # ------------------------------------------------------------ one contact's messages
    def send_times(self, contact_id: str, *, states: Iterable[MessageState], created_since: datetime
                   ) -> list[datetime]:
        """When the contact's step messages in ``states`` went out, or tried to."""
        return self._send_times(contact_id, states=states, created_since=created_since)

    def _send_times(self, contact_id: str, *, states: Iterable[MessageState], created_since: datetime
                    ) -> list[datetime]:
        wanted = {s.value for s in states}
        docs = self._where(lambda doc: doc.get("contact_id") == contact_id and _outbound(doc)
                           and doc.get("state") in wanted and doc.get("purpose") in ("step", None)
                           and isinstance(doc.get("created_at"), datetime) and doc["created_at"] >= created_since)
        return [at for at in map(send_time, docs) if at is not None]

    def get_with_send_times(self, message_id: str, contact_id: str, *, states: Iterable[MessageState],
                            created_since: datetime) -> tuple[OutboundMessage | None, list[datetime]]:
        """:meth:`get` and :meth:`send_times` (one read in MongoDB)."""
        doc = self._get(message_id)
        found = message_from_doc(doc) if doc and _outbound(doc) else None
        return found, self._send_times(contact_id, states=states, created_since=created_since)

    def count_replies_since(self, contact_id: str, since: datetime, *, besides: str) -> int:
        """Automated replies stored for the contact since ``since`` (cancelled ones and ``besides`` aside)."""
        return sum(1 for key, doc in self.docs.items() if doc.get("contact_id") == contact_id
                   and doc.get("purpose") == "reply" and doc.get("state") != _M.CANCELLED.value and key != besides
                   and isinstance(doc.get("created_at"), datetime) and doc["created_at"] >= since)

    def conversation(self, contact_id: str, limit: int = 20) -> list[ConversationEntry]:
        """The contact's latest messages with a text, oldest first."""
        docs = limited(by("created_at", reverse=True)(self._where(lambda doc: doc.get("contact_id") == contact_id)),
                       limit)
        return [ConversationEntry(direction=str(doc.get("direction", "outbound")), body=str(doc["body"]),
                                  at=doc["created_at"]) for doc in reversed(docs) if doc.get("body")]

    # ------------------------------------------------------------ inbound
    def insert_inbound(self, record: InboundRecord, at: datetime) -> bool:
        """Store an inbound message once."""
        if self._by_sid(record.twilio_sid) is not None and record.id not in self.docs:
            raise StoreError("MongoDB refused a duplicate the code did not expect")  # the unique SID index
        return self._insert(inbound_doc(record, at))

    def linked_followups(self, inbound_id: str) -> list[str]:
        """The follow-ups a stored inbound message answers."""
        doc = self.docs.get(inbound_id) or {}
        return [str(f) for f in doc.get("followup_ids") or []]

    def set_classification(self, inbound_id: str, classification: Mapping[str, Any]) -> None:
        """Keep how an inbound message was read."""
        if inbound_id in self.docs:
            self.docs[inbound_id]["classification"] = dict(classification)

    def set_outcome(self, inbound_id: str, outcome: str) -> None:
        """Keep what was done about an inbound message."""
        if inbound_id in self.docs:
            self.docs[inbound_id]["outcome"] = outcome

    # ------------------------------------------------------------ for people
    def _unknown(self, phone: str | None = None) -> list[Doc]:
        return self._where(lambda doc: doc.get("unknown_sender") is True
                           and (phone is None or doc.get("from") == phone))

    def summaries_of_contact(self, contact_id: str) -> list[MessageSummary]:
        """Every message in and out of a contact, oldest first."""
        return [message_summary(doc) for doc in by("created_at")(
            self._where(lambda doc: doc.get("contact_id") == contact_id))]

    def from_unknown(self, phone: str) -> list[MessageSummary]:
        """Messages from ``phone`` while it was no contact, oldest first."""
        return [message_summary(doc) for doc in by("created_at")(self._unknown(phone))]

    def newest_from_unknown(self, limit: int) -> list[MessageSummary]:
        """The newest messages from numbers that were no contact."""
        return [message_summary(doc) for doc in limited(by("created_at", reverse=True)(self._unknown()), limit)]

    def has_unknown(self, phone: str) -> bool:
        """Whether ``phone`` ever wrote while it was no contact."""
        return bool(self._unknown(phone))

    def open_unknown_ids(self, phone: str) -> list[str]:
        """Messages from this unknown number no person has handled yet."""
        return [str(doc["_id"]) for doc in self._unknown(phone) if "handled_at" not in doc]

    def mark_handled(self, message_ids: Sequence[str], now: datetime) -> int:
        """A person handled these messages from an unknown number; how many."""
        handled = 0
        for key in set(message_ids):
            if key in self.docs and self.docs[key].get("handled_at") != now:
                self.docs[key]["handled_at"] = now
                handled += 1
        return handled

    def answered_inbound(self) -> list[MessageSummary]:
        """Inbound messages that were read (classified, or an opt-out), oldest first."""
        docs = self._where(lambda doc: doc.get("direction") == "inbound" and "outcome" in doc
                           and ("classification" in doc or str(doc["outcome"]).startswith("opt_out")))
        return [message_summary(doc) for doc in by("created_at")(docs)]

    def sent_after(self, contact_id: str, since: datetime) -> list[MessageSummary]:
        """Outbound messages handed to Twilio after ``since``, in that order."""
        docs = self._where(lambda doc: doc.get("contact_id") == contact_id and _outbound(doc)
                           and isinstance(doc.get("sent_at"), datetime) and doc["sent_at"] > since)
        return [message_summary(doc) for doc in by("sent_at")(docs)]

    def first_outbound(self, limit: int) -> list[MessageSummary]:
        """The oldest outbound messages."""
        return [message_summary(doc) for doc in limited(by("created_at")(self._where(_outbound)), limit)]

    def count(self, *, purpose: str | None = None, step: int | None = None,
              states: Iterable[MessageState] | None = None) -> int:
        """How many messages match."""
        wanted = {s.value for s in states} if states is not None else None
        return sum(1 for doc in self.docs.values() if (purpose is None or doc.get("purpose") == purpose)
                   and (step is None or doc.get("step") == step) and (wanted is None or doc.get("state") in wanted))

    def count_by_state(self) -> dict[str, int]:
        """Outbound messages counted by state."""
        counts: dict[str, int] = {}
        for doc in self.docs.values():
            if _outbound(doc):
                counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        return counts

    def count_steps_by_state(self) -> dict[tuple[str, int], int]:
        """Follow-up step messages counted by (state, step)."""
        counts: dict[tuple[str, int], int] = {}
        for doc in self.docs.values():
            if _outbound(doc) and doc.get("purpose") in ("step", None) and doc.get("step") is not None:
                key = (doc["state"], int(doc["step"]))
                counts[key] = counts.get(key, 0) + 1
        return counts
