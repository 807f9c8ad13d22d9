"""The scheduler: the clock's side of the pipeline.

Every few seconds one tick runs the named steps of :data:`STEPS`, in order:
claim due follow-ups (``scheduled → queued``, a conditional update that is the lock, so several
schedulers never enqueue the same step twice) and enqueue their drafting; resume follow-ups
whose pause has ended; then reconcile, because MongoDB is the truth and Redis only the conveyor:
work sitting in an intermediate state past its deadline is enqueued again, a ready step message
its follow-up will never send is cancelled, a message of any purpose left ``ready`` is enqueued
again, a send stuck in ``sending`` is marked ``uncertain``; finally, messages still ``sent``
long after they went out have their status polled (Twilio does not retry lost callbacks); and once
per INBOUND_BACKFILL_SECONDS (one scheduler of several) the inbound messages Twilio has that the
webhook missed are stored (:mod:`services.backfill`).

Each step is guarded: an outage (TransientError, or the queue refusing a message) fails that
step for this tick only, and one record the code cannot handle (a stored document the models
refuse, a date out of range) pauses its follow-up for a person instead of stopping the others.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from services.tick_guard import (
    GuardedQueue,
    TickContext,
    TickReport,
    TickStep,
    describe_problem,
    for_each,
    run_steps,
)
from shared.cadence import DRAFT_KEEPER_FIELDS, advance_after_send, cancel_dead_draft, keeps_draft
from shared.clock import Clock, utc
from shared.models import FollowUpState, MessageState
from shared.ports import TaskQueue
from shared.store import Store, unreachable_as_transient

if TYPE_CHECKING:
    from services.backfill import InboundBackfill

__all__ = ["STEPS", "TickContext", "TickReport", "poll_statuses", "reconcile", "resume_campaign", "run_forever",
           "tick"]

log = logging.getLogger(__name__)
# How often a stale ready step message whose follow-up still wants it is looked at again.
DEAD_DRAFT_RECHECK = timedelta(minutes=10)
# How often an uncertain message's reconciliation is asked for again.
RECONCILE_RECHECK = timedelta(seconds=30)
# A message still ``sent`` this long after it went out has its status fetched from Twilio…
STATUS_POLL_AFTER = timedelta(minutes=10)
# …at most once per this interval…
STATUS_POLL_EVERY = timedelta(minutes=15)
# …until this old: by then Twilio's status is final, and no longer asked for.
STATUS_POLL_GIVE_UP = timedelta(hours=48)
# Pending notes (shared.store) whose events were all processed are deleted this long after their batch.
FINISHED_NOTES_AFTER = timedelta(seconds=30)
Doc = dict[str, Any]


def _doc_id(doc: Doc) -> str:
    return str(doc.get("_id"))


def _followup_of_message(doc: Doc) -> str | None:
    return str(doc["followup_id"]) if doc.get("followup_id") else None


# ------------------------------------------------------------------ steps
def claim_due(ctx: TickContext) -> None:
    """Claim due follow-ups of active campaigns and enqueue their drafting."""
    now = ctx.clock.now()
    active = ctx.store.active_campaign_ids()
    if not active:
        return
    due = [doc["_id"] for doc in ctx.store.due_followups(now, active, ctx.batch)]
    for doc in ctx.store.claim_followups(due, now):
        ctx.queue.draft_followup(doc["_id"], doc["step"])
        ctx.report.claimed.append(doc["_id"])


def resume_pauses(ctx: TickContext) -> None:
    """Follow-ups whose pause has ended go back to scheduled."""
    ctx.report.resumed.extend(ctx.store.resume_due_pauses(ctx.clock.now(), ctx.batch))


def requeue_stale_drafts(ctx: TickContext) -> None:
    """Draft again follow-ups stuck in ``queued`` or ``drafting`` (the message was lost, a worker died)."""
    now = ctx.clock.now()
    docs = ctx.store.stale_followups([FollowUpState.QUEUED, FollowUpState.DRAFTING], now - ctx.stale_after, ctx.batch)

    def requeue(doc: Doc) -> None:
        if ctx.store.touch_followup(doc["_id"], FollowUpState(doc["state"]), doc["state_changed_at"], now):
            ctx.queue.draft_followup(doc["_id"], int(doc["step"]))
            ctx.report.requeued_drafts.append(doc["_id"])

    for_each(ctx, docs, requeue, item_id=_doc_id, followup_id=_doc_id)


def reconcile_awaiting_send(ctx: TickContext) -> None:
    """Follow-ups stuck in ``awaiting_send``: draft again, or advance past a step that went out."""
    docs = ctx.store.stale_followups([FollowUpState.AWAITING_SEND], ctx.clock.now() - ctx.stale_after, ctx.batch)
    for_each(ctx, docs, lambda doc: _reconcile_awaiting_send(ctx, doc), item_id=_doc_id, followup_id=_doc_id)


def _reconcile_awaiting_send(ctx: TickContext, doc: Doc) -> None:
    store, queue, report, now = ctx.store, ctx.queue, ctx.report, ctx.clock.now()
    followup_id, step = str(doc["_id"]), int(doc["step"])
    message = store.get_message(f"{followup_id}:{step}")
    if message is None or message.state == MessageState.CANCELLED:
        # No draft (drafting crashed after moving the follow-up), or one withdrawn by a run that saw
        # the follow-up elsewhere after a concurrent run had moved it on with it (a race): draft again.
        if store.move_followup(followup_id, expected=FollowUpState.AWAITING_SEND, new=FollowUpState.QUEUED,
                               now=now, step=step):
            queue.draft_followup(followup_id, step)
            report.requeued_drafts.append(followup_id)
        return
    if message.state == MessageState.READY:
        # Its send is the ready-message sweep's (requeue_ready_messages), once per period; looked
        # at again here only after another stale period, so a long hold fills no batch.
        store.touch_followup(followup_id, FollowUpState.AWAITING_SEND, doc["state_changed_at"], now, requeued=False)
        return
    sent_doc: Doc | None = None
    if message.state in (MessageState.SENT, MessageState.DELIVERED, MessageState.READ):
        sent_doc = store.message_doc(message.id)
    elif message.state in (MessageState.FAILED, MessageState.UNDELIVERED):
        # Refused as freeform (63016) and re-sent as its template: the re-send handles the step,
        # but the worker failed before moving the cadence on (Redis away when it enqueued the re-send).
        sent_doc = store.message_doc(f"{message.id}:t")
    if sent_doc is None:
        # Still in flight (sending, uncertain: the other steps see to it), or a failure that its
        # status event handles: looked at again after another stale period, not at every tick.
        store.touch_followup(followup_id, FollowUpState.AWAITING_SEND, doc["state_changed_at"], now, requeued=False)
        return
    followup = store.get_followup(followup_id)
    contact = store.get_contact(message.contact_id or "")
    campaign = store.get_campaign(message.campaign_id or "")
    if followup and contact and campaign:
        sent_at = utc(sent_doc.get("sent_at") or now)
        if advance_after_send(store, followup=followup, campaign=campaign, contact=contact,
                              step=step, sent_at=sent_at, now=now):
            report.advanced.append(followup_id)


def cancel_dead_drafts(ctx: TickContext) -> None:
    """Cancel stale ``ready`` step messages that their follow-up will never send (``ready → cancelled``).

    Such a draft was stored after a STOP or a pause had moved its follow-up on and cancelled the
    contact's ready messages (the drafting worker died before it could withdraw it). Messages
    still wanted (held for the send window, a paused campaign) are marked ``dead_check_at`` and
    looked at again only after DEAD_DRAFT_RECHECK, so each pass reads a bounded batch.
    """
    store, now = ctx.store, ctx.clock.now()
    with unreachable_as_transient():
        docs = list(store.messages.find(
            {"state": MessageState.READY.value, "direction": "outbound", "followup_id": {"$ne": None},
             "state_changed_at": {"$lt": now - ctx.stale_after},
             "$or": [{"dead_check_at": None}, {"dead_check_at": {"$lt": now - DEAD_DRAFT_RECHECK}}]},
            {"_id": 1, "followup_id": 1, "step": 1, "resend_of": 1},
        ).limit(ctx.batch))
    followups = _followups_of(store, docs)

    def check(doc: Doc) -> None:
        cancelled = cancel_dead_draft(store, doc["_id"], followups.get(doc["followup_id"]), step=doc["step"],
                                      now=now, resend=bool(doc.get("resend_of")))
        if cancelled is None:  # still wanted: looked at again after DEAD_DRAFT_RECHECK
            with unreachable_as_transient():
                store.messages.update_one({"_id": doc["_id"], "state": MessageState.READY.value},
                                          {"$set": {"dead_check_at": now}})
        elif cancelled:
            ctx.report.cancelled_drafts.append(doc["_id"])

    for_each(ctx, docs, check, item_id=_doc_id, followup_id=_followup_of_message)


def requeue_ready_messages(ctx: TickContext) -> None:
    """Enqueue again messages of any purpose left ``ready`` past the stale delay (Redis lost their send).

    Owner alerts, replies and template re-sends are enqueued once, when stored; a step's send
    when its follow-up reaches ``awaiting_send``. Each stranded message is claimed by a
    conditional update (``requeued_at``), so of several schedulers one enqueues it, once per
    stale period; a hold (``not_before``) is respected. A step message is sent only while its
    follow-up still waits for it (otherwise cancel_dead_drafts decides).
    """
    store, now = ctx.store, ctx.clock.now()
    before = now - ctx.stale_after
    docs = store.stranded_ready_messages(before, ctx.batch)
    followups = _followups_of(store, docs)

    def requeue(doc: Doc) -> None:
        # Claimed even when not sent now, so that a kept draft is read once per period, not every tick.
        if store.claim_message_requeue(doc["_id"], before, now) and _sendable(doc, followups):
            ctx.queue.send_message(doc["_id"])
            ctx.report.requeued_sends.append(doc["_id"])

    for_each(ctx, docs, requeue, item_id=_doc_id, followup_id=_followup_of_message)


def _sendable(doc: Doc, followups: dict[str, Doc]) -> bool:
    """Whether the sending actor would send this ready message rather than cancel it."""
    followup_id = doc.get("followup_id")
    if not followup_id:
        return True  # a reply or an owner alert
    followup = followups.get(str(followup_id))
    if doc.get("resend_of"):
        return keeps_draft(followup, step=int(doc["step"]), resend=True)
    return (followup is not None and followup.get("state") == FollowUpState.AWAITING_SEND.value
            and followup.get("step") == doc.get("step"))


def _followups_of(store: Store, messages: list[Doc]) -> dict[str, Doc]:
    """The follow-ups of these messages (the fields keeps_draft reads), by id, in one query."""
    ids = sorted({str(doc["followup_id"]) for doc in messages if doc.get("followup_id")})
    if not ids:
        return {}
    with unreachable_as_transient():
        return {doc["_id"]: doc for doc in store.followups.find({"_id": {"$in": ids}}, DRAFT_KEEPER_FIELDS)}


def mark_stuck_sending(ctx: TickContext) -> None:
    """A message stuck in ``sending`` becomes ``uncertain``: Twilio may have it, so never resend blindly."""
    now = ctx.clock.now()
    for doc in ctx.store.stale_messages(MessageState.SENDING, now - ctx.stale_after, ctx.batch):
        if ctx.store.move_message(doc["_id"], expected=MessageState.SENDING, new=MessageState.UNCERTAIN, now=now,
                                  extra={"uncertain_reason": "stuck in sending"}):
            ctx.report.uncertain.append(doc["_id"])


def ask_reconcile(ctx: TickContext) -> None:
    """Ask a sending actor to reconcile each uncertain message, once per RECONCILE_RECHECK."""
    now = ctx.clock.now()
    asked_before = now - RECONCILE_RECHECK
    for doc in ctx.store.uncertain_to_reconcile(asked_before, ctx.batch):
        if ctx.store.claim_reconcile(doc["_id"], asked_before, now):
            ctx.queue.reconcile_message(doc["_id"])
            ctx.report.reconciling.append(doc["_id"])


def sweep_notes(ctx: TickContext) -> None:
    """Enqueue again stored webhook events left waiting (Redis lost them); drop finished pending notes.

    Each event is claimed (``requeued_at``), so that it is enqueued once per stale period, not at
    every tick while the replies workers are down.
    """
    now = ctx.clock.now()
    for event in ctx.store.sweep_notes(requeue_before=now - ctx.stale_after, drop_before=now - FINISHED_NOTES_AFTER,
                                       limit=ctx.batch):
        if not ctx.store.claim_event_requeue(event["_id"], now, ctx.stale_after):
            continue
        if event.get("kind") == "status":
            ctx.queue.process_status(event["_id"])
        else:
            ctx.queue.process_inbound(event["_id"])
        ctx.report.requeued_inbound.append(event["_id"])


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


def _poll_statuses(ctx: TickContext) -> None:
    poll_statuses(ctx.store, ctx.queue, ctx.clock, ctx.batch, ctx.report)


# The reconciling steps, in order: each one's work is visible to the next.
RECONCILE_STEPS: tuple[tuple[str, TickStep], ...] = (
    ("stale_drafts", requeue_stale_drafts),
    ("awaiting_send", reconcile_awaiting_send),
    ("dead_drafts", cancel_dead_drafts),
    ("ready_sends", requeue_ready_messages),
    ("stuck_sending", mark_stuck_sending),
    ("uncertain", ask_reconcile),
    ("notes", sweep_notes),
    ("status_polls", _poll_statuses),
)


def backfill_inbound(ctx: TickContext) -> None:
    """Store the inbound messages Twilio has that the webhook missed, when this period's run is due."""
    if ctx.backfill is not None:
        ctx.report.backfilled.extend(ctx.backfill.run_in_tick(ctx.store, ctx.queue, ctx.clock))


# Every step of a tick, by name (the names appear in the tick line's failed_steps).
STEPS: tuple[tuple[str, TickStep], ...] = (
    ("claim", claim_due),
    ("resume", resume_pauses),
    *RECONCILE_STEPS,
    ("backfill", backfill_inbound),
)


def reconcile(store: Store, queue: TaskQueue, clock: Clock, stale_after: timedelta, batch: int,
              report: TickReport) -> None:
    """The reconciling steps alone: re-enqueue work stuck in an intermediate state longer than ``stale_after``."""
    run_steps(TickContext(store, GuardedQueue(queue), clock, batch, stale_after, report), RECONCILE_STEPS)


def resume_campaign(store: Store, campaign_id: str, now: datetime) -> int:
    """Follow-ups paused because their campaign was paused go back to scheduled, due now."""
    docs = store.followups.find({"campaign_id": campaign_id, "state": FollowUpState.PAUSED.value,
                                 "pause_reason": "campaign_paused"}, {"_id": 1})
    return sum(1 for doc in docs if store.resume_followup(doc["_id"], now))


def tick(store: Store, queue: TaskQueue, clock: Clock, *, batch: int = 200,
         stale_after: timedelta = timedelta(minutes=5), steps: Sequence[tuple[str, TickStep]] = STEPS,
         backfill: InboundBackfill | None = None) -> TickReport:
    """One scheduler pass: every step of ``steps``, each guarded; never raises for a step's failure.

    ``backfill``: the inbound backfill (None: off), run by its step when its period is due.
    """
    report = TickReport()
    run_steps(TickContext(store, GuardedQueue(queue), clock, batch, stale_after, report, backfill), steps)
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
            if report.failed_steps or report.quarantined or report.skipped:
                log.warning("%s", report.line())
            elif report.eventful():
                log.info("%s", report.line())
            # A full batch means more is due: go again at once.
            if len(report.claimed) >= batch:
                continue
        except Exception as exc:  # the steps are guarded: only a bug in tick itself lands here
            log.error("scheduler tick failed unexpectedly: %s", describe_problem(exc))
            log.debug("scheduler tick failed", exc_info=exc)
        stop.wait(interval)
