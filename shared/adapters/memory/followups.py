"""Follow-ups in memory: the same conditional transitions as in MongoDB, on the same documents."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from shared.adapters.documents import (
    enrolment_doc,
    followup_from_doc,
    followup_ref,
    followup_summary,
    keeper_from_doc,
)
from shared.adapters.memory.base import Doc, MemoryRepository, before, by, limited, push_history, set_fields
from shared.adapters.transitions import FollowUpTransitions, move_values
from shared.domain.models import FollowUp
from shared.domain.reasons import PauseReason
from shared.domain.records import DraftKeeper, Enrolment, FollowUpRef, FollowUpSummary, StaleFollowUp
from shared.domain.repositories import ExpectedFollowUp
from shared.domain.states import FOLLOWUP_TRANSITIONS, RUNNING, FollowUpState, Transition

_F = FollowUpState


class MemoryFollowUps(FollowUpTransitions, MemoryRepository):
    """See :class:`shared.domain.repositories.FollowUpRepository`."""

    def enrol(self, *, contact_id: str, campaign_id: str, next_run_at: datetime, now: datetime) -> bool:
        """Enrol at step 0; False if already enrolled (the first follow-up of the contact in the campaign)."""
        return self._insert(enrolment_doc(contact_id=contact_id, campaign_id=campaign_id, next_run_at=next_run_at,
                                          now=now))

    def enrol_many(self, enrolments: Sequence[Enrolment], *, now: datetime) -> list[bool]:
        """Enrol each at step 0; for each, whether this call enrolled it."""
        return [self._insert(enrolment_doc(contact_id=e.contact_id, campaign_id=e.campaign_id,
                                           next_run_at=e.next_run_at, now=now, generation=e.generation))
                for e in enrolments]

    def get(self, followup_id: str) -> FollowUp | None:
        """A follow-up by id."""
        doc = self._get(followup_id)
        return followup_from_doc(doc) if doc else None

    def page(self, *, campaign_id: str | None = None, state: FollowUpState | None = None, after: str | None = None,
             limit: int = 50) -> list[FollowUp]:
        """One page of follow-ups by id."""
        found = sorted((doc for key, doc in self.docs.items()
                        if (campaign_id is None or doc["campaign_id"] == campaign_id)
                        and (state is None or doc["state"] == state.value) and (after is None or key > after)),
                       key=lambda doc: doc["_id"])
        return [followup_from_doc(doc) for doc in found[:limit]]

    def of_contact(self, contact_id: str, states: Iterable[FollowUpState]) -> list[FollowUp]:
        """A contact's follow-ups in the given states."""
        wanted = {s.value for s in states}
        return [followup_from_doc(doc) for doc in self._where(
            lambda doc: doc.get("contact_id") == contact_id and doc.get("state") in wanted)]

    def keeper(self, followup_id: str) -> DraftKeeper | None:
        """What decides whether the follow-up still wants a drafted message."""
        doc = self.docs.get(followup_id)
        return keeper_from_doc(doc) if doc else None

    def keepers(self, followup_ids: Iterable[str]) -> dict[str, DraftKeeper]:
        """The keepers of many follow-ups, by id."""
        return {key: keeper_from_doc(self.docs[key]) for key in sorted(set(followup_ids)) if key in self.docs}

    # ------------------------------------------------------------ scans
    def due(self, now: datetime, campaign_ids: Sequence[str], limit: int) -> list[FollowUpRef]:
        """Scheduled follow-ups of these campaigns due by ``now``, earliest first."""
        campaigns = set(campaign_ids)
        docs = self._where(lambda doc: doc.get("state") == _F.SCHEDULED.value and doc.get("campaign_id") in campaigns
                           and isinstance(doc.get("next_run_at"), datetime) and doc["next_run_at"] <= now)
        return [followup_ref(doc) for doc in limited(by("next_run_at")(docs), limit)]

    def claim(self, followup_ids: Sequence[str], now: datetime) -> list[FollowUpRef]:
        """``scheduled → queued`` for those still scheduled and due; the ones this caller claimed."""
        move = FOLLOWUP_TRANSITIONS["claim"]
        token = secrets.token_hex(8)
        claimed = []
        for key in dict.fromkeys(followup_ids):
            doc = self.docs.get(key)
            if (doc is None or doc.get("state") != move.source[0].value or doc.get("next_run_at") is None
                    or doc["next_run_at"] > now):
                continue
            doc.update({"state": move.target.value, "state_changed_at": now, "updated_at": now, "claim": token})
            push_history(doc, move.target.value, now, claim=token)
            claimed.append(followup_ref(doc))
        return claimed

    def stale(self, states: Sequence[FollowUpState], before_: datetime, limit: int) -> list[StaleFollowUp]:
        """Follow-ups sitting in one of ``states`` since before ``before_``."""
        wanted = {s.value for s in states}
        docs = self._where(lambda doc: doc.get("state") in wanted and before(doc.get("state_changed_at"), before_))
        return [StaleFollowUp(id=str(d["_id"]), step=int(d.get("step") or 0), state=FollowUpState(d["state"]),
                              changed_at=d["state_changed_at"]) for d in limited(docs, limit)]

    def touch_stale(self, followup_id: str, *, state: FollowUpState, changed_at: datetime, now: datetime,
                    requeued: bool = True) -> bool:
        """Claim a stale follow-up (unchanged since ``changed_at``): not stale again for a while."""
        doc = self.docs.get(followup_id)
        if doc is None or doc.get("state") != state.value or doc.get("state_changed_at") != changed_at:
            return False
        changed = set_fields(doc, {"state_changed_at": now, "updated_at": now})
        if requeued:
            doc["requeued"] = doc.get("requeued", 0) + 1
        return changed or requeued

    def resume_ended_pauses(self, now: datetime, limit: int) -> list[str]:
        """Paused follow-ups whose pause has ended go back to scheduled; their ids."""
        docs = limited(self._where(lambda doc: doc.get("state") == _F.PAUSED.value and doc.get("paused_until")
                                   is not None and not before(now, doc["paused_until"])), limit)
        return [str(doc["_id"]) for doc in docs if self.resume(str(doc["_id"]), now=now)]

    def paused_with_campaign(self, campaign_id: str) -> list[str]:
        """Ids of the campaign's follow-ups paused because the campaign was paused."""
        return [key for key, doc in self.docs.items() if doc.get("campaign_id") == campaign_id
                and doc.get("state") == _F.PAUSED.value and doc.get("pause_reason") == PauseReason.CAMPAIGN_PAUSED]

    def running_in_campaign(self, campaign_id: str) -> list[str]:
        """Ids of the campaign's running follow-ups, by id."""
        running = {s.value for s in RUNNING}
        return sorted(key for key, doc in self.docs.items()
                      if doc.get("campaign_id") == campaign_id and doc.get("state") in running)

    # ------------------------------------------------------------ named transitions
    def _move(self, followup_id: str, move: Transition[FollowUpState], *, now: datetime,
              expected: ExpectedFollowUp = None, step: int | None = None, fields: Doc | None = None) -> bool:
        states = {s.value for s in move.expected(expected)}
        doc = self.docs.get(followup_id)
        if doc is None or doc.get("state") not in states or (step is not None and doc.get("step") != step):
            return False
        values = move_values(move, now, fields)
        doc.update(values)
        push_history(doc, move.target.value, now, step=values.get("step", step))
        return True

    # ------------------------------------------------------------ hand-overs and promises
    def _of(self, contact_id: str) -> list[Doc]:
        return [doc for doc in self.docs.values() if doc.get("contact_id") == contact_id]

    def flag(self, followup_id: str, *, reason: str, now: datetime) -> None:
        """Flag a follow-up for a person, whatever its state."""
        doc = self.docs.get(followup_id)
        if doc is not None:
            doc.update({"needs_human": True, "needs_human_reason": reason, "updated_at": now})

    def flag_contact(self, contact_id: str, *, reason: str, now: datetime, finished: bool = False) -> int:
        """Flag the contact's open follow-ups (``finished``: its completed ones instead); how many."""
        done = _F.COMPLETED.value
        fields = {"needs_human": True, "needs_human_reason": reason, "updated_at": now}
        return sum(set_fields(doc, fields) for doc in self._of(contact_id) if (doc.get("state") == done) == finished)

    def flag_completed(self, followup_id: str, *, reason: str, now: datetime) -> bool:
        """Flag a completed follow-up for a person."""
        doc = self.docs.get(followup_id)
        if doc is None or doc.get("state") != _F.COMPLETED.value:
            return False
        return set_fields(doc, {"needs_human": True, "needs_human_reason": reason, "updated_at": now})

    def claim_hand_over(self, contact_id: str, *, inbound_sid: str, now: datetime) -> bool:
        """Tie the contact's open hand-over to ``inbound_sid`` unless another message holds it; whether it does."""
        flagged = [doc for doc in self._of(contact_id) if doc.get("needs_human") is True]
        for doc in flagged:
            if "hand_over_sid" not in doc:
                doc.update({"hand_over_sid": inbound_sid, "updated_at": now})
        return any(doc.get("hand_over_sid") == inbound_sid for doc in flagged)

    def open_hand_over(self, contact_id: str) -> str | None:
        """The inbound SID holding the contact's open hand-over, if any."""
        return next((str(doc["hand_over_sid"]) for doc in self._of(contact_id)
                     if doc.get("needs_human") is True and "hand_over_sid" in doc), None)

    def clear_hand_over(self, contact_id: str, *, action: str, now: datetime) -> int:
        """A person dealt with the contact: unflag its follow-ups, noting ``action``; how many."""
        cleared = 0
        for doc in self._of(contact_id):
            if doc.get("needs_human") is True:
                doc.update({"needs_human": False, "handled_at": now, "handled_action": action, "updated_at": now})
                doc.pop("hand_over_sid", None)
                cleared += 1
        return cleared

    def promise_sids(self, contact_id: str) -> list[set[str]]:
        """For each of the contact's follow-ups with promises to pay: the inbound SIDs that made them."""
        return [{str(sid) for sid in doc["promise_sids"]} for doc in self._of(contact_id) if "promise_sids" in doc]

    def record_promise(self, contact_id: str, *, inbound_sid: str, promised: str, capped_to: str | None,
                       now: datetime) -> int:
        """Note a promise on the follow-ups paused for it (a set: twice counts once)."""
        noted = 0
        fields: dict[str, Any] = {"promised_date": promised, "promise_capped_to": capped_to, "updated_at": now}
        for doc in self._of(contact_id):
            if doc.get("state") == _F.PAUSED.value and doc.get("pause_reason") == PauseReason.PROMISE_TO_PAY:
                sids = list(doc.get("promise_sids", []))
                added = inbound_sid not in sids
                changed = set_fields(doc, {**fields, "promise_sids": [*sids, inbound_sid] if added else sids})
                noted += changed or added
        return noted

    # ------------------------------------------------------------ for people
    def summaries_of_contact(self, contact_id: str) -> list[FollowUpSummary]:
        """The contact's follow-ups, by campaign."""
        return [followup_summary(doc) for doc in by("campaign_id")(self._of(contact_id))]

    def summaries_of_contacts(self, contact_ids: Sequence[str]) -> list[FollowUpSummary]:
        """The follow-ups of these contacts, by contact then campaign."""
        wanted = set(contact_ids)
        found = [followup_summary(doc) for doc in self.docs.values() if doc.get("contact_id") in wanted]
        return sorted(found, key=lambda f: (f.contact_id, f.campaign_id))

    def recent_summaries(self, *, needs_human: bool, limit: int) -> list[FollowUpSummary]:
        """The most recently changed follow-ups (only those flagged, with ``needs_human``)."""
        docs = [doc for doc in self.docs.values() if not needs_human or doc.get("needs_human") is True]
        return [followup_summary(doc) for doc in limited(by("updated_at", reverse=True)(docs), limit)]

    def count_handovers_waiting(self) -> int:
        """How many contacts have a follow-up flagged for a person."""
        return len({doc["contact_id"] for doc in self.docs.values() if doc.get("needs_human") is True})

    def count(self, campaign_id: str | None = None) -> int:
        """How many follow-ups (of one campaign)."""
        return sum(1 for doc in self.docs.values() if campaign_id is None or doc.get("campaign_id") == campaign_id)

    def campaign_counts(self, campaign_id: str) -> tuple[dict[str, int], int]:
        """One campaign's follow-ups counted by state, and how many are flagged for a person."""
        by_state: dict[str, int] = {}
        needs_human = 0
        for doc in self.docs.values():
            if doc.get("campaign_id") == campaign_id:
                by_state[doc["state"]] = by_state.get(doc["state"], 0) + 1
                needs_human += doc.get("needs_human") is True
        return by_state, needs_human

    def count_by_state(self) -> dict[str, int]:
        """Follow-ups counted by state."""
        counts: dict[str, int] = {}
        for doc in self.docs.values():
            counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        return counts
