"""The scheduler: the clock's side of the pipeline.

Every few seconds it
1. claims due follow-ups (``scheduled → queued``, a conditional update that is the lock, so
   several schedulers never enqueue the same step twice) and enqueues their drafting;
2. resumes follow-ups whose pause has ended;
3. reconciles: work sitting in an intermediate state past its deadline (Redis lost a message,
   a worker died) is enqueued again, and a step message left ``ready`` for a follow-up that will
   never send it (stopped or paused while it was drafted) is cancelled. MongoDB is the truth,
   Redis only the conveyor;
4. polls Twilio for messages still ``sent`` long after they went out (their status callbacks
   were lost: Twilio does not retry them), so a failure is still acted on;
5. once per INBOUND_BACKFILL_SECONDS (one scheduler of several), stores the inbound messages
   Twilio has that the webhook missed (:mod:`services.backfill`).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from shared.cadence import DRAFT_KEEPER_FIELDS, advance_after_send, cancel_dead_draft
from shared.clock import Clock, utc
from shared.errors import TransientError
from shared.models import FollowUpState, MessageState
from shared.ports import TaskQueue
from shared.store import Store, unreachable_as_transient

if TYPE_CHECKING:
    from services.backfill import InboundBackfill

log = logging.getLogger(__name__)
# How often a stale ready step message whose follow-up still wants it is looked at again.
DEAD_DRAFT_RECHECK = timedelta(minutes=10)
# A message still ``sent`` this long after it went out has its status fetched from Twilio…
STATUS_POLL_AFTER = timedelta(minutes=10)
# …at most once per this interval…
STATUS_POLL_EVERY = timedelta(minutes=15)
# …until this old: by then Twilio's status is final, and no longer asked for.
STATUS_POLL_GIVE_UP = timedelta(hours=48)
# Pending notes (shared.store) whose events were all processed are deleted this long after their batch.
FINISHED_NOTES_AFTER = timedelta(seconds=30)


@dataclass
class TickReport:
    """What one scheduler pass did."""

    claimed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    requeued_drafts: list[str] = field(default_factory=list)
    requeued_sends: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    requeued_inbound: list[str] = field(default_factory=list)
    reconciling: list[str] = field(default_factory=list)
    cancelled_drafts: list[str] = field(default_factory=list)
    status_polls: list[str] = field(default_factory=list)
    backfilled: list[str] = field(default_factory=list)

    def total(self) -> int:
        """How many things moved."""
        return sum(len(v) for v in self.__dict__.values())


def claim_due(store: Store, queue: TaskQueue, clock: Clock, batch: int, report: TickReport) -> None:
    """Claim due follow-ups of active campaigns and enqueue their drafting."""
    now = clock.now()
    active = store.active_campaign_ids()
    if not active:
        return
    due = [doc["_id"] for doc in store.due_followups(now, active, batch)]
    for doc in store.claim_followups(due, now):
        queue.draft_followup(doc["_id"], doc["step"])
        report.claimed.append(doc["_id"])


def reconcile(store: Store, queue: TaskQueue, clock: Clock, stale_after: timedelta, batch: int,
              report: TickReport) -> None:
    """Re-enqueue work stuck in an intermediate state for longer than ``stale_after``."""
    now = clock.now()
    before = now - stale_after
    for doc in store.stale_followups([FollowUpState.QUEUED, FollowUpState.DRAFTING], before, batch):
        if store.touch_followup(doc["_id"], FollowUpState(doc["state"]), doc["state_changed_at"], now):
            queue.draft_followup(doc["_id"], doc["step"])
            report.requeued_drafts.append(doc["_id"])
    for doc in store.stale_followups([FollowUpState.AWAITING_SEND], before, batch):
        _reconcile_awaiting_send(store, queue, clock, doc, report)
    _cancel_dead_drafts(store, clock, before, batch, report)
    for doc in store.stale_messages(MessageState.SENDING, before, batch):
        # Twilio may or may not have the message: mark it for reconciliation, never resend blindly.
        if store.move_message(doc["_id"], expected=MessageState.SENDING, new=MessageState.UNCERTAIN, now=now,
                              extra={"uncertain_reason": "stuck in sending"}):
            report.uncertain.append(doc["_id"])
    recheck = now - timedelta(seconds=30)
    for doc in store.messages.find({"state": MessageState.UNCERTAIN.value, "direction": "outbound",
                                    "$or": [{"reconcile_asked_at": None}, {"reconcile_asked_at": {"$lt": recheck}}]},
                                   {"_id": 1}).limit(batch):
        store.messages.update_one({"_id": doc["_id"]}, {"$set": {"reconcile_asked_at": now}})
        queue.reconcile_message(doc["_id"])
        report.reconciling.append(doc["_id"])
    for event in store.sweep_notes(requeue_before=before, drop_before=now - FINISHED_NOTES_AFTER, limit=batch):
        if event.get("kind") == "status":
            queue.process_status(event["_id"])
        else:
            queue.process_inbound(event["_id"])
        report.requeued_inbound.append(event["_id"])
    poll_statuses(store, queue, clock, batch, report)


def poll_statuses(store: Store, queue: TaskQueue, clock: Clock, batch: int, report: TickReport, *,
                  after: timedelta = STATUS_POLL_AFTER, every: timedelta = STATUS_POLL_EVERY,
                  give_up: timedelta = STATUS_POLL_GIVE_UP) -> None:
    """Enqueue a status poll for messages still ``sent`` ``after`` their send, in one bounded batch.

    A message is claimed by a conditional ``status_polled_at`` update (so of several schedulers
    one enqueues it) and asked again only ``every`` later, never once ``give_up`` has passed.
    """
    now = clock.now()
    recheck = now - every
    due = {"$or": [{"status_polled_at": None}, {"status_polled_at": {"$lt": recheck}}]}
    with unreachable_as_transient():
        docs = list(store.messages.find(
            # state_changed_at is set with sent_at and bounds the (state, state_changed_at) index scan.
            {"state": MessageState.SENT.value, "direction": "outbound", "twilio_sid": {"$exists": True},
             "state_changed_at": {"$gte": now - give_up}, "sent_at": {"$lt": now - after, "$gte": now - give_up},
             **due},
            {"_id": 1},
        ).limit(batch))
        for doc in docs:
            claimed = store.messages.update_one(
                {"_id": doc["_id"], "state": MessageState.SENT.value, **due},
                {"$set": {"status_polled_at": now}, "$inc": {"status_polls": 1}},
            )
            if claimed.modified_count == 1:
                queue.poll_status(doc["_id"])
                report.status_polls.append(doc["_id"])


def _cancel_dead_drafts(store: Store, clock: Clock, before: datetime, batch: int, report: TickReport) -> None:
    """Cancel stale ``ready`` step messages that their follow-up will never send (``ready → cancelled``).

    Such a draft was stored after a STOP or a pause had moved its follow-up on and cancelled the
    contact's ready messages (the drafting worker died before it could withdraw it). Messages
    still wanted (held for the send window, a paused campaign) are marked ``dead_check_at`` and
    looked at again only after DEAD_DRAFT_RECHECK, so each pass reads a bounded batch.
    """
    now = clock.now()
    docs = list(store.messages.find(
        {"state": MessageState.READY.value, "direction": "outbound", "followup_id": {"$ne": None},
         "state_changed_at": {"$lt": before},
         "$or": [{"dead_check_at": None}, {"dead_check_at": {"$lt": now - DEAD_DRAFT_RECHECK}}]},
        {"_id": 1, "followup_id": 1, "step": 1, "resend_of": 1},
    ).limit(batch))
    if not docs:
        return
    followups = {doc["_id"]: doc for doc in store.followups.find(
        {"_id": {"$in": sorted({str(d["followup_id"]) for d in docs})}}, DRAFT_KEEPER_FIELDS)}
    for doc in docs:
        cancelled = cancel_dead_draft(store, doc["_id"], followups.get(doc["followup_id"]), step=doc["step"],
                                      now=now, resend=bool(doc.get("resend_of")))
        if cancelled is None:  # still wanted: looked at again after DEAD_DRAFT_RECHECK
            store.messages.update_one({"_id": doc["_id"], "state": MessageState.READY.value},
                                      {"$set": {"dead_check_at": now}})
        elif cancelled:
            report.cancelled_drafts.append(doc["_id"])


def _reconcile_awaiting_send(store: Store, queue: TaskQueue, clock: Clock, doc: dict[str, object],
                             report: TickReport) -> None:
    now = clock.now()
    followup_id, step = str(doc["_id"]), int(doc["step"])  # type: ignore[call-overload]
    message = store.get_message(f"{followup_id}:{step}")
    if message is None:
        # Drafting crashed after moving the follow-up: draft again (the message id is fixed).
        if store.move_followup(followup_id, expected=FollowUpState.AWAITING_SEND, new=FollowUpState.QUEUED,
                               now=now, step=step):
            queue.draft_followup(followup_id, step)
            report.requeued_drafts.append(followup_id)
        return
    if message.state == MessageState.READY:
        if message.not_before and utc(message.not_before) > now:
            return
        changed_at = doc["state_changed_at"]
        if store.touch_followup(followup_id, FollowUpState.AWAITING_SEND, changed_at, now):  # type: ignore[arg-type]
            queue.send_message(message.id)
            report.requeued_sends.append(message.id)
        return
    if message.state == MessageState.CANCELLED:
        # Withdrawn by a run that saw the follow-up elsewhere, after a concurrent run had moved
        # it on with this draft (a race): draft the step again rather than wait forever.
        if store.move_followup(followup_id, expected=FollowUpState.AWAITING_SEND, new=FollowUpState.QUEUED,
                               now=now, step=step):
            queue.draft_followup(followup_id, step)
            report.requeued_drafts.append(followup_id)
        return
    if message.state in (MessageState.SENT, MessageState.DELIVERED, MessageState.READ):
        followup = store.get_followup(followup_id)
        contact = store.get_contact(message.contact_id or "")
        campaign = store.get_campaign(message.campaign_id or "")
        if followup and contact and campaign:
            sent_doc = store.message_doc(message.id) or {}
            sent_at = utc(sent_doc.get("sent_at") or now)
            if advance_after_send(store, followup=followup, campaign=campaign, contact=contact,
                                  step=step, sent_at=sent_at, now=now):
                report.advanced.append(followup_id)


def resume_campaign(store: Store, campaign_id: str, now: datetime) -> int:
    """Follow-ups paused because their campaign was paused go back to scheduled, due now."""
    docs = store.followups.find({"campaign_id": campaign_id, "state": FollowUpState.PAUSED.value,
                                 "pause_reason": "campaign_paused"}, {"_id": 1})
    return sum(1 for doc in docs if store.resume_followup(doc["_id"], now))


def tick(store: Store, queue: TaskQueue, clock: Clock, *, batch: int = 200,
         stale_after: timedelta = timedelta(minutes=5), backfill: InboundBackfill | None = None) -> TickReport:
    """One scheduler pass: claim, resume, reconcile, and the inbound backfill when it is due."""
    report = TickReport()
    claim_due(store, queue, clock, batch, report)
    report.resumed = store.resume_due_pauses(clock.now(), batch)
    reconcile(store, queue, clock, stale_after, batch, report)
    if backfill is not None:
        report.backfilled = backfill.run_in_tick(store, queue, clock)
    return report


def run_forever(store: Store, queue: TaskQueue, clock: Clock, *, interval: float, batch: int,
                stale_after: timedelta, stop: threading.Event | None = None,
                backfill: InboundBackfill | None = None) -> None:
    """Tick every ``interval`` seconds until SIGTERM/SIGINT (or ``stop`` is set)."""
    stop = stop or threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("scheduler stopping (signal %s)", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    log.info("scheduler started: every %.1fs, batch %d", interval, batch)
    while not stop.is_set():
        try:
            report = tick(store, queue, clock, batch=batch, stale_after=stale_after, backfill=backfill)
            if report.total():
                log.info("tick claimed=%d resumed=%d requeued_drafts=%d requeued_sends=%d advanced=%d "
                         "uncertain=%d status_polls=%d", len(report.claimed), len(report.resumed),
                         len(report.requeued_drafts), len(report.requeued_sends), len(report.advanced),
                         len(report.uncertain), len(report.status_polls))
            # A full batch means more is due: go again at once.
            if len(report.claimed) >= batch:
                continue
        except TransientError as exc:
            log.warning("scheduler tick failed, will retry: %s", exc)
        except Exception:
            log.exception("scheduler tick failed unexpectedly")
        stop.wait(interval)
