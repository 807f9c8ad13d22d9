"""The guards of the scheduler's tick: each step, and each item in it, fails alone.

An outage (TransientError, or the queue refusing a message: :class:`GuardedQueue`) fails the
step it happens in, for this tick only. Any other error fails that step and is named in the
tick line (:func:`run_steps`); inside a step, an item the code cannot handle (a stored record
the models refuse, a date out of range) is quarantined (:func:`for_each`): its follow-up is
paused for a person, with the reason, and the other items go on. What is logged and stored
describes the problem, never the record's values (phone numbers): tracebacks only at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Protocol, TypeVar

from pydantic import ValidationError

from shared.clock import Clock
from shared.domain.reasons import HandOverReason
from shared.domain.records import DraftClaim
from shared.domain.repositories import Repositories
from shared.errors import TransientError
from shared.ports import TaskQueue
from shared.usecases.cadence import pause_for_a_person

# The scheduler's logger: these lines are the scheduler's, whichever module writes them.
log = logging.getLogger("services.scheduler")

T = TypeVar("T")


@dataclass
class TickReport:
    """What one scheduler pass did: ids per kind of move, then what went wrong."""

    claimed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    requeued_drafts: list[str] = field(default_factory=list)
    requeued_sends: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    requeued_inbound: list[str] = field(default_factory=list)
    reconciling: list[str] = field(default_factory=list)
    cancelled_drafts: list[str] = field(default_factory=list)
    # Drafts waiting for approval drafted again as their template (their 24-hour window closed), or withdrawn.
    redrafted_approvals: list[str] = field(default_factory=list)
    status_polls: list[str] = field(default_factory=list)
    # Inbound events stored late from Twilio's Messages list (the webhook missed them).
    backfilled: list[str] = field(default_factory=list)
    # Follow-ups paused for a person because the scheduler could not process them.
    quarantined: list[str] = field(default_factory=list)
    # Other items (a message or event without a follow-up) skipped this tick for the same reason.
    skipped: list[str] = field(default_factory=list)
    # Names of the steps that failed this tick (an outage, or a bug); the others still ran.
    failed_steps: list[str] = field(default_factory=list)

    def total(self) -> int:
        """How many things moved."""
        problems = ("quarantined", "skipped", "failed_steps")
        return sum(len(getattr(self, f.name)) for f in fields(self) if f.name not in problems)

    def line(self) -> str:
        """The tick's log line: every count, then the failed steps by name."""
        counts = " ".join(f"{f.name}={len(getattr(self, f.name))}" for f in fields(self) if f.name != "failed_steps")
        return f"tick {counts} failed_steps={','.join(self.failed_steps) or '-'}"

    def eventful(self) -> bool:
        """Whether anything moved or went wrong (a quiet tick is not logged)."""
        return any(getattr(self, f.name) for f in fields(self))


class GuardedQueue:
    """The tick's view of the queue: failing to enqueue is an outage (TransientError), never a bad record.

    The broker raises its own errors (redis' ConnectionError…); translated here, a Redis blip
    fails the step for this tick and is retried at the next, and no follow-up is quarantined for it.
    """

    def __init__(self, queue: TaskQueue) -> None:
        self.inner = queue

    @staticmethod
    def _call(what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except TransientError:
            raise
        except Exception as exc:
            raise TransientError(f"could not enqueue {what}: {type(exc).__name__}") from None

    def draft_followup(self, followup_id: str, step: int, claim: DraftClaim | None = None) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("a draft", lambda: self.inner.draft_followup(followup_id, step, claim))

    def send_message(self, message_id: str, delay_seconds: float = 0, contact_id: str | None = None) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("a send", lambda: self.inner.send_message(message_id, delay_seconds, contact_id))

    def process_inbound(self, event_id: str) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("an inbound event", lambda: self.inner.process_inbound(event_id))

    def process_inbound_many(self, event_ids: Sequence[str]) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("inbound events", lambda: self.inner.process_inbound_many(event_ids))

    def process_inbound_each(self, event_ids: Sequence[str]) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("inbound events", lambda: self.inner.process_inbound_each(event_ids))

    def process_status(self, event_id: str) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("a status event", lambda: self.inner.process_status(event_id))

    def reconcile_message(self, message_id: str) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("a reconciliation", lambda: self.inner.reconcile_message(message_id))

    def poll_status(self, message_id: str) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("a status poll", lambda: self.inner.poll_status(message_id))

    def deliver_hook(self, delivery_id: str, delay_seconds: float = 0) -> None:
        """See :class:`shared.ports.TaskQueue`."""
        self._call("a webhook delivery", lambda: self.inner.deliver_hook(delivery_id, delay_seconds))


class Backfill(Protocol):
    """The inbound backfill as the tick sees it (:class:`services.backfill.InboundBackfill`)."""

    def run_in_tick(self, store: Repositories, queue: TaskQueue, clock: Clock) -> list[str]:
        """The inbound event ids stored late when this period's run is due (else none)."""


@dataclass
class TickContext:
    """What every step of a tick receives."""

    store: Repositories
    queue: TaskQueue
    clock: Clock
    batch: int
    stale_after: timedelta
    report: TickReport
    backfill: Backfill | None = None  # the inbound backfill; None: off


TickStep = Callable[[TickContext], None]


# ------------------------------------------------------------------ guards
def describe_problem(exc: BaseException) -> str:
    """What went wrong with a record, in words safe to log and store (never the values it holds)."""
    if isinstance(exc, ValidationError):
        where = sorted({".".join(str(part) for part in error["loc"]) or "(record)" for error in exc.errors()})
        return f"a stored {exc.title} record the code cannot read (invalid: {', '.join(where[:5])})"
    if isinstance(exc, OverflowError):
        return "a date out of range (a campaign delay or a contact's date field too far in the future?)"
    if isinstance(exc, KeyError):
        return f"a stored record without its field {exc.args[0]!r}" if exc.args else "a stored record missing a field"
    return f"an unexpected {type(exc).__name__}"


def quarantine(ctx: TickContext, exc: Exception, *, followup_id: str | None, item_id: str) -> None:
    """Take one item the tick cannot process out of the way, so the others go on.

    Its follow-up, if it has one, is paused for a person (``needs_human`` with the reason):
    no scan picks it up again until someone resumes it. Anything else is skipped this tick.
    """
    problem = describe_problem(exc)
    if followup_id:
        pause_for_a_person(ctx.store, followup_id, now=ctx.clock.now(),
                           reason=f"{HandOverReason.QUARANTINED}: {problem}")
        ctx.report.quarantined.append(followup_id)
        log.error("followup=%s quarantined (paused for a person): %s", followup_id, problem)
    else:
        ctx.report.skipped.append(item_id)
        log.error("%s skipped by the scheduler: %s", item_id, problem)
    # The traceback may quote the record's values (a phone number): only at DEBUG.
    log.debug("item %s failed", item_id, exc_info=exc)


def for_each(ctx: TickContext, items: Iterable[T], handle: Callable[[T], None], *,
             item_id: Callable[[T], str], followup_id: Callable[[T], str | None]) -> None:
    """``handle`` each item; one that raises (other than an outage) is quarantined and the rest go on."""
    for item in items:
        try:
            handle(item)
        except TransientError:
            raise  # an outage: this step stops, the next tick tries again
        except Exception as exc:
            quarantine(ctx, exc, followup_id=followup_id(item), item_id=item_id(item))


def run_steps(ctx: TickContext, steps: Sequence[tuple[str, TickStep]]) -> None:
    """Run each named step; one that fails is logged and named in the report, and the next still runs."""
    for name, step in steps:
        try:
            step(ctx)
        except TransientError as exc:
            ctx.report.failed_steps.append(name)
            log.warning("scheduler step %s failed, retried next tick: %s", name, exc)
        except Exception as exc:
            ctx.report.failed_steps.append(name)
            log.error("scheduler step %s failed: %s; the other steps still ran", name, describe_problem(exc))
            log.debug("scheduler step %s failed", name, exc_info=exc)
