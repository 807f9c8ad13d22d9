"""States of follow-ups, messages, webhook events and invoices, the moves each may make, and their named transitions.

Each document has exactly one ``state`` field. The repositories change it only through the named
transitions below (:class:`Transition`), each a conditional update on the expected states; a
transition the move table does not allow fails when this module is imported, and a caller that
asks for a move outside it gets :class:`IllegalMove` and nothing written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar


class FollowUpState(StrEnum):
    """States of one contact's enrolment in one campaign."""

    SCHEDULED = "scheduled"  # next_run_at set, waiting for the clock
    QUEUED = "queued"  # claimed by a scheduler, draft_followup enqueued
    DRAFTING = "drafting"  # a drafting actor is writing the message
    AWAITING_SEND = "awaiting_send"  # message stored as ready, send_message enqueued
    PAUSED = "paused"  # suspended (until a date, or until the contact writes)
    COMPLETED = "completed"  # every step sent
    STOPPED = "stopped"  # ended early, with a stop_reason


class MessageState(StrEnum):
    """States of a message. Outbound: ready → sending → sent → delivered → read."""

    READY = "ready"
    # A step drafted for a campaign with ``approval: required``: sent only once a person approves it.
    AWAITING_APPROVAL = "awaiting_approval"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    UNCERTAIN = "uncertain"  # crashed between the Twilio call and the write; reconciled
    CANCELLED = "cancelled"  # never sent (opt-out, campaign stopped)
    RECEIVED = "received"  # inbound


class EventState(StrEnum):
    """Processing state of a stored webhook event (an inbound message or a delivery status)."""

    RECEIVED = "received"  # stored, waiting for an actor (inbound messages, failed statuses)
    PROCESSED = "processed"  # acted on (or needing no action: a status that is not a failure)
    FAILED = "failed"  # could not be processed automatically: handed to a person


class InvoiceStatus(StrEnum):
    """Where an invoice stands (its ``status``): what the client still owes on it."""

    OPEN = "open"  # due in full
    PARTIALLY_PAID = "partially_paid"  # a part paid: ``amount_due_cents`` below the amount
    PAID = "paid"
    CANCELLED = "cancelled"  # nothing is owed on it any more (a credit note, an error)
    DISPUTED = "disputed"  # the client contests it: a person decides
    CLAIMED_PAID = "claimed_paid"  # the client says it is paid, not confirmed yet


class ActionState(StrEnum):
    """What became of a failed delivery status's action (``action_state`` of a status event)."""

    PENDING = "pending"  # the replies actor has not acted on it yet
    DONE = "done"
    FAILED = "failed"  # handed to a person


# Follow-up states in which a follow-up still runs (a draft for its current step is wanted).
RUNNING = (FollowUpState.SCHEDULED, FollowUpState.QUEUED, FollowUpState.DRAFTING, FollowUpState.AWAITING_SEND)
# Running or paused: what a STOP, a payment or a hand-over applies to.
OPEN = (*RUNNING, FollowUpState.PAUSED)

# Invoices the client still owes something on: what a reminder is about and what a sync closes.
UNPAID = (InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.DISPUTED, InvoiceStatus.CLAIMED_PAID)

_F, _M, _E, _I = FollowUpState, MessageState, EventState, InvoiceStatus

# The follow-up state machine: every move a follow-up may make. The repositories refuse any
# other, so a code path that would, say, reopen a stopped follow-up fails loudly instead of
# writing it. completed and stopped are final.
FOLLOWUP_MOVES: dict[FollowUpState, frozenset[FollowUpState]] = {
    _F.SCHEDULED: frozenset({_F.QUEUED, _F.PAUSED, _F.STOPPED}),  # claimed by a scheduler
    _F.QUEUED: frozenset({_F.DRAFTING, _F.AWAITING_SEND, _F.PAUSED, _F.STOPPED}),
    _F.DRAFTING: frozenset({_F.AWAITING_SEND, _F.PAUSED, _F.STOPPED}),
    # sent: the next step or the end; a draft lost on the way: drafted again (queued)
    _F.AWAITING_SEND: frozenset({_F.SCHEDULED, _F.COMPLETED, _F.QUEUED, _F.PAUSED, _F.STOPPED}),
    _F.PAUSED: frozenset({_F.PAUSED, _F.SCHEDULED, _F.STOPPED}),  # paused again: a new reason or date
    _F.COMPLETED: frozenset(),
    _F.STOPPED: frozenset(),
}

# The outbound message state machine (inbound messages are stored ``received`` and never move).
# Delivery statuses only move forward (see STATUS_RANK); failed, undelivered are final, and so is
# read unless Twilio reports a late failure.
# What a status callback can move a message to (TWILIO_STATUS_TO_STATE's values).
_REPORTED = (_M.SENT, _M.DELIVERED, _M.READ, _M.FAILED, _M.UNDELIVERED)
MESSAGE_MOVES: dict[MessageState, frozenset[MessageState]] = {
    # sent, or withdrawn; or, approved and then held (pacing, send window) past the client's 24-hour window,
    # drafted again as the step's template for a person to approve (never sent: it has no Twilio SID)
    _M.READY: frozenset({_M.SENDING, _M.CANCELLED, _M.AWAITING_APPROVAL}),
    # approved (then sent as any ready message), or rejected, or withdrawn as any draft
    _M.AWAITING_APPROVAL: frozenset({_M.READY, _M.CANCELLED}),
    # Twilio answered (sent), or a status callback carrying our message id came before the worker
    # stored the SID and adopted it with its status; refused it; no answer (network); a retryable
    # error: ready again
    _M.SENDING: frozenset({*_REPORTED, _M.UNCERTAIN, _M.READY}),
    _M.UNCERTAIN: frozenset({*_REPORTED, _M.READY}),  # found at Twilio after all (or adopted); not found: sent again
    # drafted again (never sent: it has no Twilio SID), waiting for approval again when its campaign wants it
    _M.CANCELLED: frozenset({_M.READY, _M.AWAITING_APPROVAL}),
    _M.SENT: frozenset({_M.DELIVERED, _M.READ, _M.FAILED, _M.UNDELIVERED}),
    _M.DELIVERED: frozenset({_M.READ, _M.FAILED, _M.UNDELIVERED}),
    _M.READ: frozenset({_M.FAILED, _M.UNDELIVERED}),
    _M.FAILED: frozenset(),
    _M.UNDELIVERED: frozenset(),
    _M.RECEIVED: frozenset(),
}

# A webhook event is processed once: received, then processed or (handed to a person) failed.
EVENT_MOVES: dict[EventState, frozenset[EventState]] = {
    _E.RECEIVED: frozenset({_E.PROCESSED, _E.FAILED}),
    _E.PROCESSED: frozenset(),
    _E.FAILED: frozenset(),
}

# An invoice closes (paid, cancelled) from any unpaid status; a closed one only reopens (a refund,
# a cancellation undone). A claim of payment or a dispute waits for a person or a payment; another
# partial payment keeps it partially paid.
_STILL_OWED = frozenset({_I.PAID, _I.PARTIALLY_PAID, _I.CANCELLED})
INVOICE_MOVES: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    _I.OPEN: _STILL_OWED | {_I.DISPUTED, _I.CLAIMED_PAID},
    _I.PARTIALLY_PAID: _STILL_OWED | {_I.OPEN, _I.DISPUTED, _I.CLAIMED_PAID},
    _I.DISPUTED: _STILL_OWED | {_I.OPEN, _I.CLAIMED_PAID},
    _I.CLAIMED_PAID: _STILL_OWED | {_I.OPEN, _I.DISPUTED},
    _I.PAID: frozenset({_I.OPEN}),
    _I.CANCELLED: frozenset({_I.OPEN}),
}

_KINDS: dict[type[StrEnum], str] = {FollowUpState: "a follow-up", MessageState: "a message", EventState: "an event",
                                    InvoiceStatus: "an invoice"}


class IllegalMove(ValueError):
    """A state move the state machine does not allow (a programming error, never user input)."""


def check_move(moves: dict[Any, frozenset[Any]], expected: tuple[StrEnum, ...], new: StrEnum) -> None:
    """Raise :class:`IllegalMove` unless ``new`` may follow each of the ``expected`` states."""
    wrong = [state.value for state in expected if new not in moves[state]]
    if wrong:
        kind = _KINDS.get(type(new), "a document")
        raise IllegalMove(f"{kind} cannot move from {', '.join(wrong)} to {new.value}")


S = TypeVar("S", FollowUpState, MessageState, EventState, InvoiceStatus)


@dataclass(frozen=True)
class Transition(Generic[S]):
    """A named conditional move: from any of ``source`` to ``target``, as a repository method of that name.

    Built only from moves its table allows (checked at construction). A caller may narrow the
    expected states (``expected=``) to some of ``source``, never widen them.
    """

    name: str
    source: tuple[S, ...]
    target: S
    moves: dict[S, frozenset[S]]

    def __post_init__(self) -> None:
        check_move(self.moves, self.source, self.target)

    def expected(self, narrowed: S | Iterable[S] | None = None) -> tuple[S, ...]:
        """The states to expect: ``source``, or the caller's narrower choice (IllegalMove outside it)."""
        if narrowed is None:
            return self.source
        states = (narrowed,) if isinstance(narrowed, StrEnum) else tuple(narrowed)
        check_move(self.moves, states, self.target)
        outside = [state.value for state in states if state not in self.source]
        if outside or not states:
            raise IllegalMove(f"{self.name} does not move from {', '.join(outside) or 'no state'}")
        return states


def _follow_up(name: str, source: tuple[FollowUpState, ...], target: FollowUpState) -> Transition[FollowUpState]:
    return Transition(name, source, target, FOLLOWUP_MOVES)


def _message(name: str, source: tuple[MessageState, ...], target: MessageState) -> Transition[MessageState]:
    return Transition(name, source, target, MESSAGE_MOVES)


def _event(name: str, source: tuple[EventState, ...], target: EventState) -> Transition[EventState]:
    return Transition(name, source, target, EVENT_MOVES)


def _invoice(name: str, source: tuple[InvoiceStatus, ...], target: InvoiceStatus) -> Transition[InvoiceStatus]:
    return Transition(name, source, target, INVOICE_MOVES)


# The named transitions of each repository, by method name. tests/unit/test_state_machines.py
# checks every call written in the code (and its expected= narrowing) against these.
FOLLOWUP_TRANSITIONS: dict[str, Transition[FollowUpState]] = {t.name: t for t in (
    _follow_up("claim", (_F.SCHEDULED,), _F.QUEUED),  # by a scheduler
    _follow_up("start_drafting", (_F.QUEUED,), _F.DRAFTING),
    _follow_up("await_send", (_F.QUEUED, _F.DRAFTING), _F.AWAITING_SEND),
    _follow_up("draft_again", (_F.AWAITING_SEND,), _F.QUEUED),  # its draft was lost
    _follow_up("schedule_next", (_F.AWAITING_SEND,), _F.SCHEDULED),
    _follow_up("complete", (_F.AWAITING_SEND,), _F.COMPLETED),
    _follow_up("pause", OPEN, _F.PAUSED),
    _follow_up("resume", (_F.PAUSED,), _F.SCHEDULED),
    _follow_up("stop", OPEN, _F.STOPPED),
)}
MESSAGE_TRANSITIONS: dict[str, Transition[MessageState]] = {t.name: t for t in (
    _message("start_sending", (_M.READY,), _M.SENDING),
    _message("mark_sent", (_M.SENDING, _M.UNCERTAIN), _M.SENT),
    _message("mark_failed", (_M.SENDING,), _M.FAILED),  # refused by Twilio at send time
    _message("mark_uncertain", (_M.SENDING,), _M.UNCERTAIN),
    _message("retry_later", (_M.SENDING,), _M.READY),  # a retryable refusal
    _message("send_again", (_M.UNCERTAIN,), _M.READY),  # no trace at Twilio
    _message("cancel", (_M.READY, _M.AWAITING_APPROVAL), _M.CANCELLED),
    _message("redraft", (_M.CANCELLED,), _M.READY),
    _message("redraft_for_approval", (_M.CANCELLED,), _M.AWAITING_APPROVAL),
    _message("approve", (_M.AWAITING_APPROVAL,), _M.READY),  # by a person: then sent as any draft
    # an approved freeform draft held past the client's 24-hour window, drafted again as the template
    _message("return_for_approval", (_M.READY,), _M.AWAITING_APPROVAL),
    _message("reject", (_M.AWAITING_APPROVAL,), _M.CANCELLED),  # by a person, with a reason
)}
EVENT_TRANSITIONS: dict[str, Transition[EventState]] = {t.name: t for t in (
    _event("mark_processed", (_E.RECEIVED,), _E.PROCESSED),
    _event("mark_failed", (_E.RECEIVED,), _E.FAILED),
    _event("finish_action", (_E.RECEIVED,), _E.PROCESSED),  # a failed status acted on
    _event("fail_action", (_E.RECEIVED,), _E.FAILED),  # a failed status handed to a person
)}

INVOICE_TRANSITIONS: dict[str, Transition[InvoiceStatus]] = {t.name: t for t in (
    _invoice("mark_paid", UNPAID, _I.PAID),  # nothing left to pay
    _invoice("pay_part", UNPAID, _I.PARTIALLY_PAID),  # a payment below what is due
    _invoice("cancel", UNPAID, _I.CANCELLED),
    _invoice("reopen", (_I.PAID, _I.CANCELLED, _I.DISPUTED, _I.CLAIMED_PAID), _I.OPEN),
    _invoice("dispute", (_I.OPEN, _I.PARTIALLY_PAID, _I.CLAIMED_PAID), _I.DISPUTED),
    _invoice("claim_paid", (_I.OPEN, _I.PARTIALLY_PAID, _I.DISPUTED), _I.CLAIMED_PAID),
)}

# Rank of each delivery status: a status callback only ever moves a message forward.
STATUS_RANK: dict[str, int] = {
    "ready": 0,
    "awaiting_approval": 0,
    "sending": 1,
    "uncertain": 1,
    "queued": 2,
    "accepted": 2,
    "sent": 3,
    "delivered": 4,
    "read": 5,
    "failed": 6,
    "undelivered": 6,
}
TWILIO_STATUS_TO_STATE: dict[str, MessageState] = {
    "queued": MessageState.SENT,
    "accepted": MessageState.SENT,
    "sending": MessageState.SENT,
    "sent": MessageState.SENT,
    "delivered": MessageState.DELIVERED,
    "read": MessageState.READ,
    "failed": MessageState.FAILED,
    "undelivered": MessageState.UNDELIVERED,
}
# Delivery statuses that are failures: their event waits for the replies actor to act on it.
FAILED_STATUSES = frozenset({"failed", "undelivered"})
