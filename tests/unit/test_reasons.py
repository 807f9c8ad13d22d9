"""The named reasons: the strings stored in MongoDB stay what they were, and every combination exists."""

from __future__ import annotations

from datetime import date

import pytest

from shared.domain.reasons import (
    CancelReason,
    HandOver,
    HandOverReason,
    PauseReason,
    ReplyOutcome,
    ReplyResult,
    StopReason,
)
from shared.domain.states import FollowUpState
from shared.language.texts import OWNER_LABELS, owner_label


def test_the_stored_values_are_those_of_earlier_versions() -> None:
    """Documents already stored carry these strings: renaming one would orphan them."""
    assert {r.value for r in PauseReason} == {"promise_to_pay", "needs_human", "paid_claimed",
                                              "awaiting_customer_window", "campaign_paused"}
    assert {r.value for r in StopReason} == {"paid", "opt_out", "dispute", "wrong_person", "invalid_number",
                                             "send_failed", "missing_data", "stopped_by_owner"}
    assert {"outside_24h_window", "followup_missing", "paused_promise_to_pay"} <= {r.value for r in CancelReason}


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_cancels_its_drafts_with_its_own_reason(reason: StopReason) -> None:
    assert CancelReason.after_stop(reason).value == reason.value


@pytest.mark.parametrize("reason", list(PauseReason))
def test_every_pause_cancels_its_drafts_with_its_own_reason(reason: PauseReason) -> None:
    assert CancelReason.after_pause(reason).value == f"paused_{reason.value}"


@pytest.mark.parametrize("state", [*FollowUpState, None])
def test_a_draft_its_follow_up_will_never_send_names_the_follow_ups_state(state: FollowUpState | None) -> None:
    assert CancelReason.followup_is(state).value == f"followup_{state.value if state else 'missing'}"


# ------------------------------------------------------------------ hand-overs and their owner labels


@pytest.mark.parametrize("reason", list(HandOverReason))
def test_the_owner_reads_every_hand_over_reason_in_french(reason: HandOverReason) -> None:
    label = OWNER_LABELS[reason]  # a KeyError is a reason added without its label
    assert label and label != reason.value
    assert owner_label(reason) == owner_label(HandOver(reason, "details")) == label


def test_the_labels_table_holds_the_reasons_and_nothing_else() -> None:
    assert set(OWNER_LABELS) == set(HandOverReason)


@pytest.mark.parametrize(("why", "stored"), [
    (HandOver(HandOverReason.DISPUTE), "dispute"),
    (HandOver(HandOverReason.UNCLEAR_REPLY, "other"), "unclear reply (other)"),
    (HandOver(HandOverReason.LOW_CONFIDENCE, "0.42 for paid (mixed)"), "low confidence 0.42 for paid (mixed)"),
    (HandOver(HandOverReason.CLASSIFIER_FAILED, "timeout"), "classifier failed: timeout"),
    (HandOver(HandOverReason.REPLY_NOT_PROCESSED, "KeyError"), "reply not processed automatically (KeyError)"),
    (HandOver(HandOverReason.REPLY_LIMIT, "3 in 24 h"), "automated reply limit reached (3 in 24 h)"),
    (HandOver(HandOverReason.LAST_MESSAGE_FAILED, "Twilio error 30008"), "last message failed: Twilio error 30008"),
    (HandOver(HandOverReason.QUARANTINED, "bad step"), "the scheduler could not process this follow-up: bad step"),
])
def test_a_hand_over_is_stored_as_before_and_read_back(why: HandOver, stored: str) -> None:
    assert str(why) == stored
    assert HandOver.parse(stored) == why


@pytest.mark.parametrize("reason", list(HandOverReason))
@pytest.mark.parametrize("detail", ["", "x", "a (b)"])
def test_every_hand_over_reads_back_as_itself(reason: HandOverReason, detail: str) -> None:
    assert HandOver.parse(str(HandOver(reason, detail))) == HandOver(reason, detail)


def test_a_text_no_reason_starts_is_no_hand_over() -> None:
    assert HandOver.parse("message from an unknown number") is None
    assert HandOver.parse("disputes") is None


# ------------------------------------------------------------------ what became of a reply


def _handed(reason: HandOverReason, detail: str = "") -> HandOver:
    return HandOver(reason, detail)


@pytest.mark.parametrize(("result", "stored"), [
    (ReplyResult(ReplyOutcome.OWNER), "owner"),
    (ReplyResult(ReplyOutcome.HELD), "recorded (hand-over open)"),
    (ReplyResult(ReplyOutcome.ACKNOWLEDGED), "acknowledged"),
    (ReplyResult(ReplyOutcome.OPT_OUT, stopped=1), "opt_out stopped=1"),
    (ReplyResult(ReplyOutcome.OPT_OUT, stopped=2, held=True), "opt_out stopped=2 (hand-over open)"),
    (ReplyResult(ReplyOutcome.OPT_OUT, paused=1, hand_over=_handed(HandOverReason.PAID_OPT_OUT)),
     "opt_out paused=1 needs_human: opted out, says the invoice is paid: check the payment"),
    (ReplyResult(ReplyOutcome.OPT_OUT, stopped=1, error="KeyError"),
     "opt_out stopped=1 (reply not processed automatically (KeyError))"),
    (ReplyResult(ReplyOutcome.PAID, stopped=1), "paid stopped=1"),
    (ReplyResult(ReplyOutcome.PAID_CLAIMED, paused=1, hand_over=_handed(HandOverReason.PAID_CLAIM)),
     "paid_claimed paused=1 needs_human: says the invoice is paid: check the payment"),
    (ReplyResult(ReplyOutcome.PROMISE_TO_PAY, until=date(2026, 3, 13), paused=1, promised=date(2026, 3, 13)),
     "promise_to_pay until=2026-03-13 paused=1"),
    (ReplyResult(ReplyOutcome.PROMISE_TO_PAY, until=date(2026, 4, 1), paused=1, promised=date(2026, 9, 1)),
     "promise_to_pay until=2026-04-01 paused=1 (capped: promised 2026-09-01)"),
    (ReplyResult(ReplyOutcome.ANSWERED, topic="amount"), "question answered (amount)"),
    (ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=_handed(HandOverReason.UNCLEAR_REPLY, "other")),
     "needs_human: unclear reply (other)"),
    (ReplyResult(ReplyOutcome.HELD, error="KeyError"),
     "recorded (hand-over open): reply not processed automatically (KeyError)"),
    (ReplyResult(ReplyOutcome.NOT_PROCESSED, error="KeyError"), "not processed: KeyError"),
])
def test_a_reply_outcome_is_stored_as_before(result: ReplyResult, stored: str) -> None:
    assert str(result) == stored
