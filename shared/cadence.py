"""Follow-up transitions shared by the actors and the scheduler's reconciler.

Each function is one named, conditional state move (or a small sequence of them); calling it
twice does the work once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.models import Campaign, Contact, FollowUp, FollowUpState, MessageState
from shared.policy import step_due_at
from shared.store import Store, unreachable_as_transient

log = logging.getLogger(__name__)

# Twilio error codes that say the recipient cannot be reached on WhatsApp.
INVALID_RECIPIENT_CODES = {21211, 21614, 63003, 63024}
OPT_OUT_CODES = {21610}


def advance_after_send(
    store: Store, *, followup: FollowUp, campaign: Campaign, contact: Contact, step: int, sent_at: datetime,
    now: datetime,
) -> FollowUpState | None:
    """After step ``step`` went out: schedule the next step, or complete the follow-up."""
    nxt = step + 1
    if nxt < len(campaign.steps):
        due = step_due_at(campaign=campaign, step_index=nxt, contact=contact,
                          enrolled_at=followup.enrolled_at, previous_sent_at=sent_at, now=now)
        moved = store.move_followup(
            followup.id, expected=FollowUpState.AWAITING_SEND, new=FollowUpState.SCHEDULED, now=now,
            step=step, extra={"step": nxt, "next_run_at": due, "last_sent_at": sent_at},
        )
        return FollowUpState.SCHEDULED if moved else None
    moved = store.move_followup(
        followup.id, expected=FollowUpState.AWAITING_SEND, new=FollowUpState.COMPLETED, now=now,
        step=step, extra={"last_sent_at": sent_at, "next_run_at": None},
    )
    return FollowUpState.COMPLETED if moved else None


def stop_followup(
    store: Store, followup_id: str, *, reason: str, now: datetime, needs_human: bool = False,
    detail: str | None = None,
) -> bool:
    """Stop a follow-up that is still running, whatever step it is at."""
    extra: dict[str, object] = {"stop_reason": reason, "next_run_at": None}
    if needs_human:
        extra.update({"needs_human": True, "needs_human_reason": detail or reason})
    return store.move_followup(followup_id, expected=(*_RUNNING, FollowUpState.PAUSED), new=FollowUpState.STOPPED,
                               now=now, extra=extra)


def stop_contact(store: Store, contact_id: str, *, reason: str, now: datetime, needs_human: bool = False,
                 detail: str | None = None) -> int:
    """Stop every running follow-up of a contact and cancel their unsent messages."""
    stopped = 0
    for followup in store.followups_of_contact(contact_id, (*_RUNNING, FollowUpState.PAUSED)):
        if stop_followup(store, followup.id, reason=reason, now=now, needs_human=needs_human, detail=detail):
            stopped += 1
    cancel_ready_steps(store, contact_id, reason=reason, now=now)
    return stopped


def cancel_ready_steps(store: Store, contact_id: str, *, reason: str, now: datetime) -> int:
    """Cancel the contact's drafted step messages that have not gone out yet."""
    cancelled = 0
    for doc in store.messages.find({"contact_id": contact_id, "direction": "outbound", "purpose": {"$ne": "alert"},
                                    "state": MessageState.READY.value}, {"_id": 1}):
        if store.move_message(doc["_id"], expected=MessageState.READY, new=MessageState.CANCELLED, now=now,
                              extra={"cancel_reason": reason}):
            cancelled += 1
    return cancelled


def pause_contact(store: Store, contact_id: str, *, until: datetime | None, reason: str, now: datetime,
                  needs_human: bool = False, detail: str | None = None) -> int:
    """Pause every running follow-up of a contact (until a date, or until a person resumes it)."""
    extra: dict[str, object] = {"paused_until": until, "pause_reason": reason}
    if needs_human:
        extra.update({"needs_human": True, "needs_human_reason": detail or reason})
    paused = 0
    for followup in store.followups_of_contact(contact_id, (*_RUNNING, FollowUpState.PAUSED)):
        if store.move_followup(followup.id, expected=(*_RUNNING, FollowUpState.PAUSED), new=FollowUpState.PAUSED,
                               now=now, extra=extra):
            paused += 1
    cancel_ready_steps(store, contact_id, reason=f"paused_{reason}", now=now)
    return paused


def resume_contact(store: Store, contact_id: str, *, now: datetime) -> list[str]:
    """A person resumes a contact's paused follow-ups; returns their ids.

    Each goes back to ``scheduled``, due now: its current step is drafted again from today's data
    (the draft made before the pause was cancelled) and sent in the send window.
    """
    return [followup.id for followup in store.followups_of_contact(contact_id, (FollowUpState.PAUSED,))
            if store.resume_followup(followup.id, now)]


def clear_hand_over(store: Store, contact_id: str, *, action: str, now: datetime) -> int:
    """A person dealt with the contact: their follow-ups no longer need one; returns how many were flagged.

    The reason stays on the follow-up, with when it was handled and what was decided (``action``).
    """
    with unreachable_as_transient():
        result = store.followups.update_many(
            {"contact_id": contact_id, "needs_human": True},
            {"$set": {"needs_human": False, "handled_at": now, "handled_action": action, "updated_at": now},
             "$unset": {"hand_over_sid": ""}},  # the next hand-over alerts the owner again
        )
    return result.modified_count


def claim_hand_over(store: Store, contact_id: str, *, inbound_sid: str, now: datetime) -> bool:
    """Tie the contact's open hand-over to the inbound message that opened it; True when it is that one.

    The flagged follow-ups no message holds yet take ``inbound_sid`` (conditional, so two
    messages handed over at once do not both win). True when a follow-up holds it afterwards,
    whether this call or an earlier run of the same message set it: that message alerts the
    owner (once: the alert's id comes from it). False when another message opened the hand-over
    that is still open: the owner was told then.
    """
    with unreachable_as_transient():
        store.followups.update_many(
            {"contact_id": contact_id, "needs_human": True, "hand_over_sid": {"$exists": False}},
            {"$set": {"hand_over_sid": inbound_sid, "updated_at": now}},
        )
        return store.followups.count_documents(
            {"contact_id": contact_id, "needs_human": True, "hand_over_sid": inbound_sid}, limit=1) == 1


def open_hand_over(store: Store, contact_id: str) -> str | None:
    """The inbound SID that opened the contact's hand-over, while it is open (not yet ``relance handled``)."""
    with unreachable_as_transient():
        doc = store.followups.find_one({"contact_id": contact_id, "needs_human": True,
                                        "hand_over_sid": {"$exists": True}}, {"hand_over_sid": 1})
    return str(doc["hand_over_sid"]) if doc else None


def promises_made(store: Store, contact_id: str, *, besides: str) -> int:
    """The most promises to pay recorded on one of the contact's follow-ups, ``besides`` (an inbound SID) aside."""
    with unreachable_as_transient():
        docs = store.followups.find({"contact_id": contact_id, "promise_sids": {"$exists": True}},
                                    {"promise_sids": 1})
        return max((len(set(doc["promise_sids"]) - {besides}) for doc in docs), default=0)


def record_promise(store: Store, contact_id: str, *, inbound_sid: str, promised: str, capped_to: str | None,
                   now: datetime) -> int:
    """Note a promise on the follow-ups it paused: the date said, the date it was capped to, and
    the message (a set: a message applied twice counts once). Returns how many were noted."""
    fields: dict[str, object] = {"promised_date": promised, "promise_capped_to": capped_to, "updated_at": now}
    with unreachable_as_transient():
        result = store.followups.update_many(
            {"contact_id": contact_id, "state": FollowUpState.PAUSED.value, "pause_reason": "promise_to_pay"},
            {"$set": fields, "$addToSet": {"promise_sids": inbound_sid}},
        )
    return result.modified_count


def auto_replies_since(store: Store, contact_id: str, since: datetime, *, besides: str) -> int:
    """Automated replies stored for the contact since ``since`` (cancelled ones and ``besides`` aside)."""
    with unreachable_as_transient():
        return store.messages.count_documents(
            {"contact_id": contact_id, "created_at": {"$gte": since}, "purpose": "reply",
             "state": {"$ne": MessageState.CANCELLED.value}, "_id": {"$ne": besides}})


def pause_for_a_person(store: Store, followup_id: str, *, reason: str, now: datetime) -> bool:
    """Pause one running follow-up (until a person resumes it) and flag it; True when it moved.

    Reads nothing but the follow-up's state: for a hand-over made because a record could not
    be read. A follow-up that is not running is flagged all the same.
    """
    flag = {"needs_human": True, "needs_human_reason": reason}
    if store.move_followup(followup_id, expected=(*_RUNNING, FollowUpState.PAUSED), new=FollowUpState.PAUSED,
                           now=now, extra={"paused_until": None, "pause_reason": "needs_human", **flag}):
        return True
    store.followups.update_one({"_id": followup_id}, {"$set": {**flag, "updated_at": now}})
    return False


def keeps_draft(followup: Mapping[str, Any] | None, *, step: int, resend: bool = False) -> bool:
    """Whether a follow-up (its raw document) may still send a ``ready`` message drafted for ``step``.

    A step's draft is kept while its follow-up is at that step and running, or paused with its
    campaign (resuming sends that same draft). It is dead once the follow-up is stopped,
    completed, past that step, or paused for the contact (a promise to pay, a hand-over): the
    step is drafted afresh when that pause ends. A template re-send (``resend``, 63016) outlives
    its step and dies only when the follow-up is stopped or paused, as the sending actor decides.
    """
    if followup is None:
        return False
    state = followup.get("state")
    if resend:
        return state not in (FollowUpState.STOPPED.value, FollowUpState.PAUSED.value)
    if followup.get("step") != step:
        return False
    if state in _HOLDS_DRAFT:
        return True
    return state == FollowUpState.PAUSED.value and followup.get("pause_reason") == "campaign_paused"


# The follow-up fields keeps_draft reads: a projection for whoever fetches them.
DRAFT_KEEPER_FIELDS = {"state": 1, "step": 1, "pause_reason": 1}


def cancel_dead_draft(store: Store, message_id: str, followup: Mapping[str, Any] | None, *, step: int,
                      now: datetime, resend: bool = False) -> bool | None:
    """Cancel a ``ready`` message (conditional ``ready → cancelled``) unless ``followup`` still wants it.

    None when the follow-up keeps it; else whether this call cancelled it.
    """
    if keeps_draft(followup, step=step, resend=resend):
        return None
    state = followup.get("state") if followup else "missing"
    if store.move_message(message_id, expected=MessageState.READY, new=MessageState.CANCELLED, now=now,
                          extra={"cancel_reason": f"followup_{state}"}):
        log.info("message=%s cancelled: its follow-up is %s", message_id, state)
        return True
    return False


def withdraw_dead_draft(store: Store, message_id: str, followup_id: str, *, step: int, now: datetime) -> bool:
    """Cancel a ``ready`` step message if its follow-up will never send it; True when cancelled.

    For a draft stored after its follow-up moved on: a STOP or a pause processed while the step
    was being drafted cancelled the contact's ready messages before this one existed.
    """
    with unreachable_as_transient():
        followup = store.followups.find_one({"_id": followup_id}, DRAFT_KEEPER_FIELDS)
    return bool(cancel_dead_draft(store, message_id, followup, step=step, now=now))


def flag_contact(store: Store, contact_id: str, *, reason: str, now: datetime, finished: bool = False) -> int:
    """Mark a contact's follow-ups as needing a person, without changing their state.

    The open ones (any state but completed); with ``finished``, the completed ones instead (a
    reply came after the last step).
    """
    done = FollowUpState.COMPLETED.value
    with unreachable_as_transient():
        result = store.followups.update_many(
            {"contact_id": contact_id, "state": done if finished else {"$nin": [done]}},
            {"$set": {"needs_human": True, "needs_human_reason": reason, "updated_at": now}},
        )
    return result.modified_count


def flag_finished_followup(store: Store, followup_id: str | None, *, detail: str, now: datetime) -> bool:
    """Flag a completed follow-up for a person: its last message failed after the cadence ended.

    A failure reported once the last step was handed to Twilio (a status callback, a poll) stops
    nothing, but the client never got that reminder: someone should know.
    """
    if not followup_id:
        return False
    with unreachable_as_transient():
        result = store.followups.update_one(
            {"_id": followup_id, "state": FollowUpState.COMPLETED.value},
            {"$set": {"needs_human": True, "needs_human_reason": f"last message failed: {detail}", "updated_at": now}},
        )
    return result.modified_count == 1


def stop_reason_for_error(code: int | None) -> tuple[str, bool]:
    """(stop reason, needs a human) for a permanent Twilio error code."""
    if code in OPT_OUT_CODES:
        return "opt_out", False
    if code in INVALID_RECIPIENT_CODES:
        return "invalid_number", True
    return "send_failed", True


# Follow-up states (values) in which a draft for the current step is still wanted.
_HOLDS_DRAFT = frozenset({FollowUpState.SCHEDULED.value, FollowUpState.QUEUED.value, FollowUpState.DRAFTING.value,
                          FollowUpState.AWAITING_SEND.value})

_RUNNING = (
    FollowUpState.SCHEDULED,
    FollowUpState.QUEUED,
    FollowUpState.DRAFTING,
    FollowUpState.AWAITING_SEND,
)
