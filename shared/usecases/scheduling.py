"""The scheduler's tick as a use case: the clock's side of the pipeline.

Every few seconds (the loop is :mod:`services.scheduler`) one tick runs the named steps of
:data:`STEPS`, in order: claim due follow-ups (``scheduled → queued``, a conditional update
that is the lock, so several schedulers never enqueue the same step twice) and enqueue their drafting; resume follow-ups
whose pause has ended; then reconcile, because MongoDB is the truth and Redis only the conveyor:
work sitting in an intermediate state past its deadline is enqueued again, a ready step message
its follow-up will never send is cancelled, a message of any purpose left ``ready`` is enqueued
again, a send stuck in ``sending`` is marked ``uncertain``; finally, messages still ``sent``
long after they went out have their status polled (Twilio does not retry lost callbacks); and once
per INBOUND_BACKFILL_SECONDS (one scheduler of several) the inbound messages Twilio has that the
webhook missed are stored (:mod:`services.backfill`, behind :class:`~shared.usecases.tick_guard.Backfill`).

Each step is guarded: an outage (TransientError, or the queue refusing a message) fails that
step for this tick only, and one record the code cannot handle (a stored document the models
refuse, a date out of range) pauses its follow-up for a person instead of stopping the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from shared.clock import Clock, utc
from shared.domain.records import DraftClaim, DraftKeeper, ReadyMessage, StaleFollowUp
from shared.domain.repositories import Repositories
from shared.domain.states import FollowUpState, MessageState
from shared.ports import TaskQueue
from shared.usecases import approvals, outbound
from shared.usecases.cadence import advance_after_send, cancel_dead_draft, keeps_draft
from shared.usecases.campaigns import enrol_invoice_campaigns
from shared.usecases.tick_guard import Backfill, GuardedQueue, TickContext, TickReport, TickStep, for_each, run_steps

__all__ = ["QUICK_STEPS", "STEPS", "Backfill", "TickContext", "TickReport", "poll_statuses", "reconcile",
           "sweep_period", "tick"]

log = logging.getLogger(__name__)

# How often a stale ready step message whose follow-up still wants it is looked at again.
DEAD_DRAFT_RECHECK = timedelta(minutes=10)
# Why a send stuck in ``sending`` is marked uncertain (its ``uncertain_reason``).
STUCK_IN_SENDING = "stuck in sending"
# How often an uncertain message's reconciliation is asked for again.
RECONCILE_RECHECK = timedelta(seconds=30)
# A message still ``sent`` this long after it went out has its status fetched from Twilio…
STATUS_POLL_AFTER = timedelta(minutes=10)
# …at most once per this interval…
STATUS_POLL_EVERY = timedelta(minutes=15)
# …until this old: by then Twilio's status is final, and no longer asked for.
STATUS_POLL_GIVE_UP = timedelta(hours=48)
# How often the clients of invoice campaigns are looked for (an invoice crossing overdue_days).
INVOICE_ENROLMENT_EVERY = timedelta(hours=1)
INVOICE_ENROLMENT_JOB = "invoice_enrolment"
# Pending notes (shared.adapters.mongo.events) whose events were all processed are deleted this long
# after their batch.
FINISHED_NOTES_AFTER = timedelta(seconds=30)


def _id(item: StaleFollowUp | ReadyMessage) -> str:
    return item.id


def _followup_of_message(message: ReadyMessage) -> str | None:
    return message.followup_id


# ------------------------------------------------------------------ steps
def claim_due(ctx: TickContext) -> None:
    """Claim due follow-ups of active campaigns and enqueue their drafting, with what the claim read
    of each (its contact, campaign and drafted step: drafting then does not read the follow-up)."""
    now = ctx.clock.now()
    active = ctx.store.campaigns.active_ids()
    if not active:
        return
    due = [followup.id for followup in ctx.store.followups.due(now, active, ctx.batch)]
    for followup in ctx.store.followups.claim(due, now):
        claim = None
        if followup.contact_id and followup.campaign_id:
            claim = DraftClaim(contact_id=followup.contact_id, campaign_id=followup.campaign_id,
                               drafted_step=followup.drafted_step, claimed_at=now)
        ctx.queue.draft_followup(followup.id, followup.step, claim)
        ctx.report.claimed.append(followup.id)


def resume_pauses(ctx: TickContext) -> None:
    """Follow-ups whose pause has ended go back to scheduled."""
    ctx.report.resumed.extend(ctx.store.followups.resume_ended_pauses(ctx.clock.now(), ctx.batch))


def requeue_stale_drafts(ctx: TickContext) -> None:
    """Draft again follow-ups stuck in ``queued`` or ``drafting`` (the message was lost, a worker died)."""
    now = ctx.clock.now()
    stale = ctx.store.followups.stale([FollowUpState.QUEUED, FollowUpState.DRAFTING], now - ctx.stale_after,
                                      ctx.batch)

    def requeue(followup: StaleFollowUp) -> None:
        if ctx.store.followups.touch_stale(followup.id, state=followup.state, changed_at=followup.changed_at,
                                           now=now):
            ctx.queue.draft_followup(followup.id, followup.step)
            ctx.report.requeued_drafts.append(followup.id)

    for_each(ctx, stale, requeue, item_id=_id, followup_id=_id)


def reconcile_awaiting_send(ctx: TickContext) -> None:
    """Follow-ups stuck in ``awaiting_send``: draft again, or advance past a step that went out."""
    stale = ctx.store.followups.stale([FollowUpState.AWAITING_SEND], ctx.clock.now() - ctx.stale_after, ctx.batch)
    for_each(ctx, stale, lambda followup: _reconcile_awaiting_send(ctx, followup), item_id=_id, followup_id=_id)


def _reconcile_awaiting_send(ctx: TickContext, stale: StaleFollowUp) -> None:
    store, queue, report, now = ctx.store, ctx.queue, ctx.report, ctx.clock.now()
    followup_id, step = stale.id, stale.step
    message = store.messages.get(f"{followup_id}:{step}")
    if message is not None and message.state == MessageState.CANCELLED and message.rejected_by:
        # Rejected by a person, and the follow-up not moved on (the console died in between): move it on.
        if approvals.move_past_rejected(store, message, now=now):
            report.advanced.append(followup_id)
        return
    if message is None or message.state == MessageState.CANCELLED:
        # No draft (drafting crashed after moving the follow-up), or one withdrawn by a run that saw
        # the follow-up elsewhere after a concurrent run had moved it on with it (a race): draft again.
        if store.followups.draft_again(followup_id, step=step, now=now):
            queue.draft_followup(followup_id, step)
            report.requeued_drafts.append(followup_id)
        return
    if message.state == MessageState.AWAITING_APPROVAL:
        # A person decides (approvals.py); looked at again after another stale period.
        store.followups.touch_stale(followup_id, state=FollowUpState.AWAITING_SEND, changed_at=stale.changed_at,
                                    now=now, requeued=False)
        return
    if message.state == MessageState.READY:
        # Its send is the ready-message sweep's (requeue_ready_messages), once per period; looked
        # at again here only after another stale period, so a long hold fills no batch.
        store.followups.touch_stale(followup_id, state=FollowUpState.AWAITING_SEND, changed_at=stale.changed_at,
                                    now=now, requeued=False)
        return
    sent = None
    if message.state in (MessageState.SENT, MessageState.DELIVERED, MessageState.READ):
        sent = message
    elif message.state in (MessageState.FAILED, MessageState.UNDELIVERED):
        # Refused as freeform (63016) and re-sent as its template: the re-send handles the step,
        # but the worker failed before moving the cadence on (Redis away when it enqueued the re-send).
        sent = store.messages.get(f"{message.id}:t")
    if sent is None:
        # Still in flight (sending, uncertain: the other steps see to it), or a failure that its
        # status event handles: looked at again after another stale period, not at every tick.
        store.followups.touch_stale(followup_id, state=FollowUpState.AWAITING_SEND, changed_at=stale.changed_at,
                                    now=now, requeued=False)
        return
    followup = store.followups.get(followup_id)
    contact = store.contacts.get(message.contact_id or "")
    campaign = store.campaigns.get(message.campaign_id or "")
    if followup and contact and campaign:
        sent_at = utc(sent.sent_at or now)
        if advance_after_send(store, followup_id=followup.id, enrolled_at=followup.enrolled_at, campaign=campaign,
                              contact=contact, step=step, sent_at=sent_at, now=now):
            report.advanced.append(followup_id)


def redraft_closed_windows(ctx: TickContext) -> None:
    """Drafts waiting for approval whose client's 24-hour window closed are drafted again as their
    template (still waiting, same message), or withdrawn when the step has none (approvals.py)."""
    now = ctx.clock.now()

    def redraft(message_id: str) -> None:
        if approvals.redraft_closed_window(ctx.store, message_id, now=now):
            ctx.report.redrafted_approvals.append(message_id)

    for_each(ctx, ctx.store.messages.window_closed_drafts(now, ctx.batch), redraft, item_id=str,
             followup_id=_followup_of_draft)


def _followup_of_draft(message_id: str) -> str:
    """The follow-up of a step's message (its id is ``<follow-up>:<step>``)."""
    return message_id.rsplit(":", 1)[0]


def cancel_dead_drafts(ctx: TickContext) -> None:
    """Cancel stale ``ready`` step messages that their follow-up will never send (``ready → cancelled``).

    Such a draft was stored after a STOP or a pause had moved its follow-up on and cancelled the
    contact's ready messages (the drafting worker died before it could withdraw it). Messages
    still wanted (held for the send window, a paused campaign) are marked ``dead_check_at`` and
    looked at again only after DEAD_DRAFT_RECHECK, so each pass reads a bounded batch.
    """
    store, now = ctx.store, ctx.clock.now()
    drafts = store.messages.unchecked_drafts(before=now - ctx.stale_after, recheck_before=now - DEAD_DRAFT_RECHECK,
                                             limit=ctx.batch)
    followups = _followups_of(store, drafts)

    def check(message: ReadyMessage) -> None:
        cancelled = cancel_dead_draft(store, message.id, followups.get(message.followup_id or ""), step=message.step,
                                      now=now, resend=bool(message.resend_of))
        if cancelled is None:  # still wanted: looked at again after DEAD_DRAFT_RECHECK
            store.messages.mark_checked(message.id, now=now)
        elif cancelled:
            ctx.report.cancelled_drafts.append(message.id)

    for_each(ctx, drafts, check, item_id=_id, followup_id=_followup_of_message)


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
    stranded = store.messages.stranded_ready(before, ctx.batch)
    followups = _followups_of(store, stranded)

    def requeue(message: ReadyMessage) -> None:
        # Claimed even when not sent now, so that a kept draft is read once per period, not every tick.
        if store.messages.claim_requeue(message.id, before=before, now=now) and _sendable(message, followups):
            ctx.queue.send_message(message.id)
            ctx.report.requeued_sends.append(message.id)

    for_each(ctx, stranded, requeue, item_id=_id, followup_id=_followup_of_message)


def _sendable(message: ReadyMessage, followups: dict[str, DraftKeeper]) -> bool:
    """Whether the sending actor would send this ready message rather than cancel it."""
    if not message.followup_id:
        return True  # a reply or an owner alert
    followup = followups.get(message.followup_id)
    if message.resend_of:
        return keeps_draft(followup, step=message.step, resend=True)
    return (followup is not None and followup.state == FollowUpState.AWAITING_SEND.value
            and followup.step == message.step)


def _followups_of(store: Repositories, messages: list[ReadyMessage]) -> dict[str, DraftKeeper]:
    """The follow-ups of these messages (what keeps_draft reads), by id, in one query."""
    return store.followups.keepers(message.followup_id for message in messages if message.followup_id)


def mark_stuck_sending(ctx: TickContext) -> None:
    """A message stuck in ``sending`` becomes ``uncertain``: Twilio may have it, so never resend blindly."""
    now = ctx.clock.now()
    for message_id in ctx.store.messages.stale(MessageState.SENDING, now - ctx.stale_after, ctx.batch):
        if ctx.store.messages.mark_uncertain(message_id, reason=STUCK_IN_SENDING, now=now):
            ctx.report.uncertain.append(message_id)


def ask_reconcile(ctx: TickContext) -> None:
    """Ask a sending actor to reconcile each uncertain message, once per RECONCILE_RECHECK."""
    now = ctx.clock.now()
    asked_before = now - RECONCILE_RECHECK
    for message_id in ctx.store.messages.uncertain_to_reconcile(asked_before, ctx.batch):
        if ctx.store.messages.claim_reconcile(message_id, asked_before=asked_before, now=now):
            ctx.queue.reconcile_message(message_id)
            ctx.report.reconciling.append(message_id)


def sweep_notes(ctx: TickContext) -> None:
    """Enqueue again stored webhook events left waiting (Redis lost them); drop finished pending notes.

    Each event is claimed (``requeued_at``), so that it is enqueued once per stale period, not at
    every tick while the replies workers are down.
    """
    now = ctx.clock.now()
    for event in ctx.store.events.sweep_notes(requeue_before=now - ctx.stale_after,
                                              drop_before=now - FINISHED_NOTES_AFTER, limit=ctx.batch):
        if not ctx.store.events.claim_requeue(event.id, now, ctx.stale_after):
            continue
        if event.kind == "status":
            ctx.queue.process_status(event.id)
        else:
            ctx.queue.process_inbound(event.id)
        ctx.report.requeued_inbound.append(event.id)


def poll_statuses(store: Repositories, queue: TaskQueue, clock: Clock, batch: int, report: TickReport, *,
                  after: timedelta = STATUS_POLL_AFTER, every: timedelta = STATUS_POLL_EVERY,
                  give_up: timedelta = STATUS_POLL_GIVE_UP) -> None:
    """Enqueue a status poll for messages still ``sent`` ``after`` their send, in one bounded batch.

    A message is claimed by a conditional ``status_polled_at`` update (so of several schedulers
    one enqueues it) and asked again only ``every`` later, never once ``give_up`` has passed.
    """
    now = clock.now()
    recheck = now - every
    for message_id in store.messages.awaiting_status(now=now, after=after, recheck_before=recheck, give_up=give_up,
                                                     limit=batch):
        if store.messages.claim_status_poll(message_id, recheck_before=recheck, now=now):
            queue.poll_status(message_id)
            report.status_polls.append(message_id)


def _poll_statuses(ctx: TickContext) -> None:
    poll_statuses(ctx.store, ctx.queue, ctx.clock, ctx.batch, ctx.report)


# The reconciling steps, in order: each one's work is visible to the next.
RECONCILE_STEPS: tuple[tuple[str, TickStep], ...] = (
    ("stale_drafts", requeue_stale_drafts),
    ("awaiting_send", reconcile_awaiting_send),
    ("approval_windows", redraft_closed_windows),
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


def requeue_webhooks(ctx: TickContext) -> None:
    """Enqueue the outbound webhook deliveries that are due and held by no attempt (emitted without a
    queue, or their message lost)."""
    outbound.requeue_due(ctx.store, ctx.queue, ctx.clock.now(), limit=ctx.batch)


def enrol_invoice_clients(ctx: TickContext) -> None:
    """Once per INVOICE_ENROLMENT_EVERY (one scheduler of several): enrol, in each active invoice
    campaign, the clients whose invoices became overdue enough since (idempotent)."""
    now = ctx.clock.now()
    if ctx.store.jobs.claim(INVOICE_ENROLMENT_JOB, now, INVOICE_ENROLMENT_EVERY) is None:
        return
    for campaign_id, report in enrol_invoice_campaigns(ctx.store, now=now).items():
        if report.enrolled:
            log.info("campaign %s: %d client(s) enrolled, their invoices now overdue", campaign_id, report.enrolled)


# Every step of a tick, by name (the names appear in the tick line's failed_steps).
STEPS: tuple[tuple[str, TickStep], ...] = (
    ("claim", claim_due),
    ("resume", resume_pauses),
    *RECONCILE_STEPS,
    ("backfill", backfill_inbound),
    ("invoice_enrolment", enrol_invoice_clients),
    ("webhooks", requeue_webhooks),
)
# The steps of a tick between two sweeps: what is due now (the backfill keeps its own period). A
# pause that ended is resumed by the sweep (STEPS), within SWEEP_EVERY: nobody notices 10 s there.
QUICK_STEPS: tuple[tuple[str, TickStep], ...] = (
    ("claim", claim_due),
    ("backfill", backfill_inbound),
)
# How often the running scheduler sweeps (RECONCILE_STEPS): they look for work stuck for a stale
# period (minutes), so every tick (seconds) would only cost queries; never less often than a
# quarter of the stale period, so that a short one (tests, demos) is kept.
SWEEP_EVERY = timedelta(seconds=10)


def sweep_period(stale_after: timedelta) -> timedelta:
    """How long the running scheduler waits between two sweeps for a stale period of ``stale_after``."""
    return min(SWEEP_EVERY, stale_after / 4)


def reconcile(store: Repositories, queue: TaskQueue, clock: Clock, stale_after: timedelta, batch: int,
              report: TickReport) -> None:
    """The reconciling steps alone: re-enqueue work stuck in an intermediate state longer than ``stale_after``."""
    run_steps(TickContext(store, GuardedQueue(queue), clock, batch, stale_after, report), RECONCILE_STEPS)


def tick(store: Repositories, queue: TaskQueue, clock: Clock, *, batch: int = 200,
         stale_after: timedelta = timedelta(minutes=5), steps: Sequence[tuple[str, TickStep]] = STEPS,
         backfill: Backfill | None = None) -> TickReport:
    """One scheduler pass: every step of ``steps``, each guarded; never raises for a step's failure.

    ``backfill``: the inbound backfill (None: off), run by its step when its period is due.
    """
    report = TickReport()
    run_steps(TickContext(store, GuardedQueue(queue), clock, batch, stale_after, report, backfill), steps)
    return report
