"""Why a follow-up was paused or stopped, a message cancelled, a conversation handed to a person;
and what became of a reply or a failed delivery. The values are the strings stored in MongoDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class PauseReason(StrEnum):
    """A follow-up's ``pause_reason``."""

    PROMISE_TO_PAY = "promise_to_pay"  # until the promised day (+1)
    NEEDS_HUMAN = "needs_human"  # until a person resumes it
    PAID_CLAIMED = "paid_claimed"  # the client says they paid: until the owner confirms
    AWAITING_CUSTOMER_WINDOW = "awaiting_customer_window"  # no template, and the 24-hour window is closed
    CAMPAIGN_PAUSED = "campaign_paused"  # its campaign is paused: resumed with it, its step drafted again


class StopReason(StrEnum):
    """A follow-up's ``stop_reason``."""

    PAID = "paid"
    OPT_OUT = "opt_out"
    DISPUTE = "dispute"
    WRONG_PERSON = "wrong_person"
    INVALID_NUMBER = "invalid_number"
    SEND_FAILED = "send_failed"
    MISSING_DATA = "missing_data"
    STOPPED_BY_OWNER = "stopped_by_owner"


class CancelReason(StrEnum):
    """A message's ``cancel_reason``: why a drafted message was never sent."""

    # The contact's follow-ups were stopped (the stop reason).
    PAID = "paid"
    OPT_OUT = "opt_out"
    DISPUTE = "dispute"
    WRONG_PERSON = "wrong_person"
    INVALID_NUMBER = "invalid_number"
    SEND_FAILED = "send_failed"
    MISSING_DATA = "missing_data"
    STOPPED_BY_OWNER = "stopped_by_owner"
    # The contact's follow-ups were paused (``paused_`` + the pause reason).
    PAUSED_PROMISE_TO_PAY = "paused_promise_to_pay"
    PAUSED_NEEDS_HUMAN = "paused_needs_human"
    PAUSED_PAID_CLAIMED = "paused_paid_claimed"
    PAUSED_AWAITING_CUSTOMER_WINDOW = "paused_awaiting_customer_window"
    PAUSED_CAMPAIGN_PAUSED = "paused_campaign_paused"
    # Its follow-up will never send it (``followup_`` + the follow-up's state, or missing).
    FOLLOWUP_SCHEDULED = "followup_scheduled"
    FOLLOWUP_QUEUED = "followup_queued"
    FOLLOWUP_DRAFTING = "followup_drafting"
    FOLLOWUP_AWAITING_SEND = "followup_awaiting_send"
    FOLLOWUP_PAUSED = "followup_paused"
    FOLLOWUP_COMPLETED = "followup_completed"
    FOLLOWUP_STOPPED = "followup_stopped"
    FOLLOWUP_MISSING = "followup_missing"
    # A reply the 24-hour window closed on before it could go out.
    OUTSIDE_24H_WINDOW = "outside_24h_window"
    # A reminder about invoices one of which was paid, part-paid, cancelled or added since: drafted again.
    INVOICES_CHANGED = "invoices_changed"
    # A person rejected the draft (campaigns with ``approval: required``); their reason is kept apart.
    REJECTED = "rejected"

    @classmethod
    def after_stop(cls, reason: StopReason) -> CancelReason:
        """The cancel reason of a draft whose follow-up was stopped for ``reason``."""
        return cls(reason.value)

    @classmethod
    def after_pause(cls, reason: PauseReason) -> CancelReason:
        """The cancel reason of a draft whose follow-up was paused for ``reason``."""
        return cls(f"paused_{reason.value}")

    @classmethod
    def followup_is(cls, state: str | None) -> CancelReason:
        """The cancel reason of a draft whose follow-up is in ``state`` (None: it no longer exists)."""
        return cls(f"followup_{state or 'missing'}")


class HandOverReason(StrEnum):
    """Why a conversation needs a person: a :class:`HandOver`'s reason, the start of a follow-up's
    ``needs_human_reason``. The owner reads it in French (``shared.language.texts.OWNER_LABELS``).
    """

    DISPUTE = "dispute"
    WRONG_PERSON = "wrong_person"
    UNANSWERABLE_QUESTION = "question the data cannot answer"
    UNCLEAR_REPLY = "unclear reply"
    LOW_CONFIDENCE = "low confidence"
    PROMISE_WITHOUT_DATE = "promise to pay without a usable date"
    PROMISE_IN_THE_PAST = "promised date in the past"
    CLASSIFIER_FAILED = "classifier failed"
    INVALID_CONFIDENCE = "invalid confidence"
    REPLY_NOT_PROCESSED = "reply not processed automatically"
    PAID_CLAIM = "says the invoice is paid: check the payment"
    PAID_OPT_OUT = "opted out, says the invoice is paid: check the payment"
    THIRD_PROMISE = "third promise to pay"
    REPLY_LIMIT = "automated reply limit reached"
    # Not from a reply: the send or the cadence needs a person.
    REPLY_TOO_LATE = "reply not sent: the 24-hour window closed"
    MISSING_DATA = "contact or campaign step no longer exists"
    LAST_MESSAGE_FAILED = "last message failed"
    QUARANTINED = "the scheduler could not process this follow-up"


# How a reason and its detail are joined in the stored text (the others: ``reason (detail)``).
_DETAIL_AFTER = {
    HandOverReason.CLASSIFIER_FAILED: ": ",
    HandOverReason.LAST_MESSAGE_FAILED: ": ",
    HandOverReason.QUARANTINED: ": ",
    HandOverReason.LOW_CONFIDENCE: " ",  # "low confidence 0.42 for paid (…)"
}


@dataclass(frozen=True)
class HandOver:
    """Why a person must take a conversation over: a reason, and apart from it the details.

    ``str()`` gives the text stored as ``needs_human_reason`` (``unclear reply (other)``,
    ``classifier failed: timeout``…); :meth:`parse` reads such a text back.
    """

    reason: HandOverReason
    detail: str = ""

    def __str__(self) -> str:
        if not self.detail:
            return self.reason.value
        after = _DETAIL_AFTER.get(self.reason)
        return f"{self.reason.value}{after}{self.detail}" if after else f"{self.reason.value} ({self.detail})"

    @classmethod
    def parse(cls, text: str) -> HandOver | None:
        """The hand-over a stored ``needs_human_reason`` says (None for a text no reason starts)."""
        for reason in sorted(HandOverReason, key=lambda member: len(member.value), reverse=True):
            value = reason.value
            if text == value:
                return cls(reason)
            after = _DETAIL_AFTER.get(reason)
            if after and text.startswith(value + after):
                return cls(reason, text[len(value) + len(after):])
            if not after and text.startswith(value + " (") and text.endswith(")"):
                return cls(reason, text[len(value) + 2:-1])
        return None


class HandledAction(StrEnum):
    """What a person decided on closing a hand-over (``relance handled``): a follow-up's ``handled_action``."""

    KEEP = "keep"  # the follow-ups stay as they are
    RESUME = "resume"  # the paused ones go on from their current step
    STOP = "stop"  # the open ones stop (stopped_by_owner)
    PAID = "paid"  # the claimed payment arrived: the open ones stop as paid


class ReplyOutcome(StrEnum):
    """What became of an inbound message: the start of the ``outcome`` stored on it (see :class:`ReplyResult`)."""

    OWNER = "owner"  # from the owner: their 24-hour window opened
    UNKNOWN_SENDER = "unknown_sender"
    OPT_IN = "opt_in"
    OPTED_OUT = "recorded (contact opted out)"
    NO_OPEN_FOLLOWUP = "recorded (no open follow-up)"
    HELD = "recorded (hand-over open)"  # a person has the conversation
    ACKNOWLEDGED = "acknowledged"
    OPT_OUT = "opt_out"  # stopped (paused for the owner when it claims a payment)
    PAID = "paid"  # stopped on the client's word (PAID_CLAIM_ACTION=stop)
    PAID_CLAIMED = "paid_claimed"  # paused while the owner checks
    PROMISE_TO_PAY = "promise_to_pay"
    ANSWERED = "question answered"
    NEEDS_HUMAN = "needs_human"  # handed over to a person
    NOT_PROCESSED = "not processed"  # kept failing, from a number that is no contact


@dataclass(frozen=True)
class ReplyResult:
    """What was done about one inbound message; ``str()`` gives the ``outcome`` stored on it.

    ``stopped``/``paused``: how many follow-ups moved; ``hand_over``: why a person was asked
    to take over; ``until`` and ``promised``: a promise's last day and the day the client said
    (later than ``until`` when capped); ``topic``: the fact a question was answered with;
    ``held``: a hand-over was open; ``error``: the message could not be processed (the error's name).
    """

    outcome: ReplyOutcome
    stopped: int | None = None
    paused: int | None = None
    hand_over: HandOver | None = None
    until: date | None = None
    promised: date | None = None
    topic: str | None = None
    held: bool = False
    error: str | None = None

    @property
    def capped(self) -> bool:
        """A promise further than MAX_PROMISE_DAYS, handled as one for ``until``."""
        return self.until is not None and self.promised is not None and self.promised > self.until

    def __str__(self) -> str:
        outcome = self.outcome
        unprocessed = HandOver(HandOverReason.REPLY_NOT_PROCESSED, self.error) if self.error else None
        if outcome == ReplyOutcome.NEEDS_HUMAN:
            return f"{outcome.value}: {self.hand_over}"
        if outcome == ReplyOutcome.ANSWERED:
            return f"{outcome.value} ({self.topic})"
        if outcome == ReplyOutcome.NOT_PROCESSED:
            return f"{outcome.value}: {self.error}"
        if outcome == ReplyOutcome.HELD and unprocessed:
            return f"{outcome.value}: {unprocessed}"
        parts = [outcome.value]
        if self.until is not None:
            parts.append(f"until={self.until.isoformat()}")
        if self.stopped is not None:
            parts.append(f"stopped={self.stopped}")
        if self.paused is not None:
            parts.append(f"paused={self.paused}")
        if self.hand_over is not None:
            parts.append(f"{ReplyOutcome.NEEDS_HUMAN.value}: {self.hand_over}")
        if self.capped and self.promised is not None:
            parts.append(f"(capped: promised {self.promised.isoformat()})")
        if self.held:
            parts.append("(hand-over open)")
        if unprocessed:
            parts.append(f"({unprocessed})")
        return " ".join(parts)


class StatusAction(StrEnum):
    """What was done about a failed delivery (the status event's ``action``)."""

    OPT_OUT = "opt_out"
    INVALID_NUMBER = "invalid_number"
    TEMPLATE_RESEND = "template_resend"
    AWAITING_WINDOW = "awaiting_window"
    RATE_LIMITED_RESEND = "rate_limited_resend"
    SEND_FAILED = "send_failed"
    OWNER_WINDOW_CLOSED = "owner_window_closed"
    RECORDED = "recorded"
    UNKNOWN_MESSAGE = "unknown_message"
