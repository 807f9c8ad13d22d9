"""Why a follow-up was paused or stopped, a message cancelled, a conversation handed to a person;
and what became of a reply or a failed delivery. The values are the strings stored in MongoDB.
"""

from __future__ import annotations

from enum import StrEnum


class PauseReason(StrEnum):
    """A follow-up's ``pause_reason``."""

    PROMISE_TO_PAY = "promise_to_pay"  # until the promised day (+1)
    NEEDS_HUMAN = "needs_human"  # until a person resumes it
    PAID_CLAIMED = "paid_claimed"  # the client says they paid: until the owner confirms
    AWAITING_CUSTOMER_WINDOW = "awaiting_customer_window"  # no template, and the 24-hour window is closed
    CAMPAIGN_PAUSED = "campaign_paused"  # its campaign is paused: resumed with it, its draft kept


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
    """Why a conversation needs a person: a follow-up's ``needs_human_reason`` starts with one of these.

    Some are followed by details, e.g. ``unclear reply (other)``; the owner's alert names the
    reason in French (see the owner reason labels of the reply texts).
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


class ReplyOutcome(StrEnum):
    """The fixed outcomes of an inbound message (others carry counts: ``opt_out stopped=1``…)."""

    OWNER = "owner"  # from the owner: their 24-hour window opened
    UNKNOWN_SENDER = "unknown_sender"
    OPT_IN = "opt_in"
    OPTED_OUT = "recorded (contact opted out)"
    NO_OPEN_FOLLOWUP = "recorded (no open follow-up)"
    HELD = "recorded (hand-over open)"  # a person has the conversation
    ACKNOWLEDGED = "acknowledged"


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
