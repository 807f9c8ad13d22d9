"""Follow-ups in MongoDB (``followups``: one document per contact, campaign and enrolment generation).

Every state change is a conditional ``update_one`` on (id, expected states[, step]) whose
``modified_count`` says whether this caller made it, recorded in the document's ``history``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.adapters.documents import (
    enrolment_doc,
    followup_from_doc,
    followup_ref,
    followup_summary,
    keeper_from_doc,
)
from shared.adapters.mongo.connection import DUPLICATE_KEY, Doc, MongoRepository, history
from shared.adapters.transitions import FollowUpTransitions, move_values
from shared.domain.models import FollowUp
from shared.domain.reasons import PauseReason
from shared.domain.records import DraftKeeper, Enrolment, FollowUpRef, FollowUpSummary, StaleFollowUp
from shared.domain.repositories import ExpectedFollowUp
from shared.domain.states import FOLLOWUP_TRANSITIONS, RUNNING, FollowUpState, Transition
from shared.errors import TransientError

_F = FollowUpState
# The fields DraftKeeper reads.
KEEPER_FIELDS = {"state": 1, "step": 1, "pause_reason": 1}
# The fields a claim reads back: what drafting needs (shared.domain.records.DraftClaim).
CLAIMED_FIELDS = {"_id": 1, "step": 1, "contact_id": 1, "campaign_id": 1, "drafted_step": 1}


class MongoFollowUps(FollowUpTransitions, MongoRepository):
    """See :class:`shared.domain.repositories.FollowUpRepository`."""

    collection_name = "followups"

    def enrol(self, *, contact_id: str, campaign_id: str, next_run_at: datetime, now: datetime) -> bool:
        """Enrol a contact in a campaign at step 0; False if already enrolled."""
        try:
            self.collection.insert_one(enrolment_doc(contact_id=contact_id, campaign_id=campaign_id,
                                                     next_run_at=next_run_at, now=now))
        except DuplicateKeyError:
            return False
        return True

    def enrol_many(self, enrolments: Sequence[Enrolment], *, now: datetime) -> list[bool]:
        """Enrol many in one unordered ``insert_many``; an existing enrolment is a duplicate (False).

        Any other refused write raises TransientError; what was stored by then stays, and
        enrolling again finds it enrolled.
        """
        if not enrolments:
            return []
        docs = [enrolment_doc(contact_id=e.contact_id, campaign_id=e.campaign_id, next_run_at=e.next_run_at, now=now,
                              generation=e.generation) for e in enrolments]
        try:
            self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise TransientError(f"MongoDB refused {len(errors)} enrolment write(s)") from None
            refused = {error["index"] for error in errors}
            return [i not in refused for i in range(len(docs))]
        return [True] * len(docs)

    def get(self, followup_id: str) -> FollowUp | None:
        """A follow-up by id."""
        doc = self.collection.find_one({"_id": followup_id})
        return followup_from_doc(doc) if doc else None

    def page(self, *, campaign_id: str | None = None, state: FollowUpState | None = None, after: str | None = None,
             limit: int = 50) -> list[FollowUp]:
        """One page of follow-ups by id (the ``_id`` index serves the range)."""
        query: Doc = {}
        if campaign_id is not None:
            query["campaign_id"] = campaign_id
        if state is not None:
            query["state"] = state.value
        if after is not None:
            query["_id"] = {"$gt": after}
        return [followup_from_doc(doc) for doc in self.collection.find(query).sort("_id", 1).limit(limit)]

    def of_contact(self, contact_id: str, states: Iterable[FollowUpState]) -> list[FollowUp]:
        """A contact's follow-ups in the given states."""
        docs = self.collection.find({"contact_id": contact_id, "state": {"$in": [s.value for s in states]}})
        return [followup_from_doc(d) for d in docs]

    def keeper(self, followup_id: str) -> DraftKeeper | None:
        """What decides whether the follow-up still wants a drafted message."""
        doc = self.collection.find_one({"_id": followup_id}, KEEPER_FIELDS)
        return keeper_from_doc(doc) if doc else None

    def keepers(self, followup_ids: Iterable[str]) -> dict[str, DraftKeeper]:
        """The keepers of many follow-ups, by id, in one query."""
        ids = sorted(set(followup_ids))
        if not ids:
            return {}
        return {str(doc["_id"]): keeper_from_doc(doc)
                for doc in self.collection.find({"_id": {"$in": ids}}, KEEPER_FIELDS)}

    # ------------------------------------------------------------ scans
    def due(self, now: datetime, campaign_ids: Sequence[str], limit: int) -> list[FollowUpRef]:
        """Follow-ups of these campaigns whose next run is due, earliest first.

        One query per campaign, each an equality on state and campaign plus one range on
        ``next_run_at`` (index ``due_by_campaign``), so that the follow-ups not yet due are never
        examined; the campaigns' answers are merged by ``next_run_at``.
        """
        found: list[tuple[datetime, FollowUpRef]] = []
        for campaign_id in dict.fromkeys(campaign_ids):
            docs = self.collection.find(
                {"state": _F.SCHEDULED.value, "campaign_id": campaign_id, "next_run_at": {"$lte": now}},
                {"_id": 1, "step": 1, "next_run_at": 1},
            ).sort("next_run_at", ASCENDING).limit(limit)
            found.extend((doc["next_run_at"], followup_ref(doc)) for doc in docs)
        found.sort(key=lambda pair: pair[0])
        return [ref for _at, ref in found[:limit]]

    def claim(self, followup_ids: Sequence[str], now: datetime) -> list[FollowUpRef]:
        """Claim due follow-ups in one conditional ``update_many`` (``scheduled → queued``).

        Each document is updated atomically and only while still scheduled, so of several
        schedulers claiming at once each follow-up goes to exactly one: the one whose claim
        token it carries afterwards. Two round trips per batch instead of one per follow-up.
        """
        if not followup_ids:
            return []
        move = FOLLOWUP_TRANSITIONS["claim"]
        token = secrets.token_hex(8)
        self.collection.update_many(
            {"_id": {"$in": list(followup_ids)}, "state": move.source[0].value, "next_run_at": {"$lte": now}},
            {"$set": {"state": move.target.value, "state_changed_at": now, "updated_at": now, "claim": token},
             "$push": {"history": history(move.target.value, now, claim=token)}},
        )
        docs = self.collection.find({"_id": {"$in": list(followup_ids)}, "claim": token,
                                     "state": move.target.value}, CLAIMED_FIELDS)
        return [followup_ref(doc) for doc in docs]

    def stale(self, states: Sequence[FollowUpState], before: datetime, limit: int) -> list[StaleFollowUp]:
        """Follow-ups sitting in one of ``states`` since before ``before``.

        One query per state (equality on state, one range on ``state_changed_at``: index
        ``state_changed``), never an ``$in`` on the state, which SecantusDB answers by a scan.
        """
        found: list[StaleFollowUp] = []
        for state in states:
            if len(found) >= limit:
                break
            docs = self.collection.find(
                {"state": state.value, "state_changed_at": {"$lt": before}},
                {"_id": 1, "step": 1, "state": 1, "state_changed_at": 1},
            ).limit(limit - len(found))
            found.extend(StaleFollowUp(id=str(d["_id"]), step=int(d.get("step") or 0),
                                       state=FollowUpState(d["state"]), changed_at=d["state_changed_at"])
                         for d in docs)
        return found

    def touch_stale(self, followup_id: str, *, state: FollowUpState, changed_at: datetime, now: datetime,
                    requeued: bool = True) -> bool:
        """Claim a stale follow-up (conditional on its last change time): not stale again for a while.

        ``requeued``: the caller enqueues it again (counted in ``requeued``); else it is only put
        aside until the next stale period.
        """
        update: Doc = {"$set": {"state_changed_at": now, "updated_at": now}}
        if requeued:
            update["$inc"] = {"requeued": 1}
        result = self.collection.update_one(
            {"_id": followup_id, "state": state.value, "state_changed_at": changed_at}, update)
        return result.modified_count == 1

    def resume_ended_pauses(self, now: datetime, limit: int) -> list[str]:
        """Paused follow-ups whose pause has ended go back to scheduled; returns their ids."""
        # A range on a date never matches a missing or null date: pauses without an end are not read
        # (index ``state_paused_until``).
        docs = list(self.collection.find(
            {"state": _F.PAUSED.value, "paused_until": {"$lte": now}}, {"_id": 1}).limit(limit))
        return [str(doc["_id"]) for doc in docs if self.resume(str(doc["_id"]), now=now)]

    def paused_with_campaign(self, campaign_id: str) -> list[str]:
        """Ids of the campaign's follow-ups paused because the campaign was paused."""
        docs = self.collection.find({"campaign_id": campaign_id, "state": _F.PAUSED.value,
                                     "pause_reason": PauseReason.CAMPAIGN_PAUSED.value}, {"_id": 1})
        return [str(doc["_id"]) for doc in docs]

    def running_in_campaign(self, campaign_id: str) -> list[str]:
        """Ids of the campaign's running follow-ups, by id (through the ``campaign`` index)."""
        docs = self.collection.find({"campaign_id": campaign_id, "state": {"$in": [s.value for s in RUNNING]}},
                                    {"_id": 1}).sort("_id", ASCENDING)
        return [str(doc["_id"]) for doc in docs]

    # ------------------------------------------------------------ named transitions
    def _move(self, followup_id: str, move: Transition[FollowUpState], *, now: datetime,
              expected: ExpectedFollowUp = None, step: int | None = None, fields: Doc | None = None) -> bool:
        """Conditional transition; True when this caller made it (IllegalMove outside ``move``)."""
        states = move.expected(expected)
        query: Doc = {"_id": followup_id, "state": {"$in": [s.value for s in states]}}
        if step is not None:
            query["step"] = step
        values = move_values(move, now, fields)
        update = {"$set": values, "$push": {"history": history(move.target.value, now, step=values.get("step", step))}}
        return self.collection.update_one(query, update).modified_count == 1

    # ------------------------------------------------------------ hand-overs and promises
    def flag(self, followup_id: str, *, reason: str, now: datetime) -> None:
        """Flag a follow-up for a person, whatever its state."""
        self.collection.update_one({"_id": followup_id},
                                   {"$set": {"needs_human": True, "needs_human_reason": reason, "updated_at": now}})

    def flag_contact(self, contact_id: str, *, reason: str, now: datetime, finished: bool = False) -> int:
        """Flag the contact's open follow-ups (any state but completed), or with ``finished`` its completed ones."""
        done = _F.COMPLETED.value
        result = self.collection.update_many(
            {"contact_id": contact_id, "state": done if finished else {"$nin": [done]}},
            {"$set": {"needs_human": True, "needs_human_reason": reason, "updated_at": now}},
        )
        return result.modified_count

    def flag_completed(self, followup_id: str, *, reason: str, now: datetime) -> bool:
        """Flag a completed follow-up for a person."""
        result = self.collection.update_one(
            {"_id": followup_id, "state": _F.COMPLETED.value},
            {"$set": {"needs_human": True, "needs_human_reason": reason, "updated_at": now}},
        )
        return result.modified_count == 1

    def claim_hand_over(self, contact_id: str, *, inbound_sid: str, now: datetime) -> bool:
        """The flagged follow-ups no message holds yet take ``inbound_sid`` (conditional); whether one holds it."""
        self.collection.update_many(
            {"contact_id": contact_id, "needs_human": True, "hand_over_sid": {"$exists": False}},
            {"$set": {"hand_over_sid": inbound_sid, "updated_at": now}},
        )
        return self.collection.count_documents(
            {"contact_id": contact_id, "needs_human": True, "hand_over_sid": inbound_sid}, limit=1) == 1

    def open_hand_over(self, contact_id: str) -> str | None:
        """The inbound SID that opened the contact's hand-over, while it is open."""
        doc = self.collection.find_one({"contact_id": contact_id, "needs_human": True,
                                        "hand_over_sid": {"$exists": True}}, {"hand_over_sid": 1})
        return str(doc["hand_over_sid"]) if doc else None

    def clear_hand_over(self, contact_id: str, *, action: str, now: datetime) -> int:
        """Unflag the contact's follow-ups; the reason stays, with when it was handled and how."""
        result = self.collection.update_many(
            {"contact_id": contact_id, "needs_human": True},
            {"$set": {"needs_human": False, "handled_at": now, "handled_action": action, "updated_at": now},
             "$unset": {"hand_over_sid": ""}},  # the next hand-over alerts the owner again
        )
        return result.modified_count

    def promise_sids(self, contact_id: str) -> list[set[str]]:
        """For each of the contact's follow-ups with promises: the inbound SIDs that made them."""
        docs = self.collection.find({"contact_id": contact_id, "promise_sids": {"$exists": True}},
                                    {"promise_sids": 1})
        return [{str(sid) for sid in doc["promise_sids"]} for doc in docs]

    def record_promise(self, contact_id: str, *, inbound_sid: str, promised: str, capped_to: str | None,
                       now: datetime) -> int:
        """Note a promise on the follow-ups paused for it."""
        fields: dict[str, Any] = {"promised_date": promised, "promise_capped_to": capped_to, "updated_at": now}
        result = self.collection.update_many(
            {"contact_id": contact_id, "state": _F.PAUSED.value, "pause_reason": PauseReason.PROMISE_TO_PAY.value},
            {"$set": fields, "$addToSet": {"promise_sids": inbound_sid}},
        )
        return result.modified_count

    # ------------------------------------------------------------ for people
    def summaries_of_contact(self, contact_id: str) -> list[FollowUpSummary]:
        """The contact's follow-ups, by campaign."""
        docs = self.collection.find({"contact_id": contact_id}).sort("campaign_id", ASCENDING)
        return [followup_summary(doc) for doc in docs]

    def summaries_of_contacts(self, contact_ids: Sequence[str]) -> list[FollowUpSummary]:
        """The follow-ups of these contacts, by contact then campaign (one query)."""
        if not contact_ids:
            return []
        docs = self.collection.find({"contact_id": {"$in": list(contact_ids)}})
        return sorted((followup_summary(doc) for doc in docs), key=lambda f: (f.contact_id, f.campaign_id))

    def recent_summaries(self, *, needs_human: bool, limit: int) -> list[FollowUpSummary]:
        """The most recently changed follow-ups (only the flagged ones, with ``needs_human``)."""
        query: Doc = {"needs_human": True} if needs_human else {}
        docs = self.collection.find(query).sort("updated_at", DESCENDING).limit(limit)
        return [followup_summary(doc) for doc in docs]

    def count(self, campaign_id: str | None = None) -> int:
        """How many follow-ups (of one campaign)."""
        return self.collection.count_documents({} if campaign_id is None else {"campaign_id": campaign_id})

    def count_by_state(self) -> dict[str, int]:
        """Follow-ups counted by state."""
        rows = self.collection.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])
        return {row["_id"]: row["n"] for row in rows}

    def campaign_counts(self, campaign_id: str) -> tuple[dict[str, int], int]:
        """One campaign's follow-ups counted by state, and how many are flagged for a person (one aggregation)."""
        rows = self.collection.aggregate([
            {"$match": {"campaign_id": campaign_id}},
            {"$group": {"_id": {"state": "$state", "needs_human": "$needs_human"}, "n": {"$sum": 1}}}])
        by_state: dict[str, int] = {}
        needs_human = 0
        for row in rows:
            state = str(row["_id"]["state"])
            by_state[state] = by_state.get(state, 0) + row["n"]
            needs_human += row["n"] if row["_id"].get("needs_human") is True else 0
        return by_state, needs_human

    def count_handovers_waiting(self) -> int:
        """How many contacts have a follow-up flagged for a person (the partial index ``needs_human``)."""
        rows = self.collection.aggregate([{"$match": {"needs_human": True}}, {"$group": {"_id": "$contact_id"}},
                                          {"$count": "n"}])
        return next((int(row["n"]) for row in rows), 0)
