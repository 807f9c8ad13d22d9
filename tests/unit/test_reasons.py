"""The named reasons: the strings stored in MongoDB stay what they were, and every combination exists."""

from __future__ import annotations

import pytest

from shared.domain.reasons import CancelReason, HandOverReason, PauseReason, StopReason
from shared.domain.states import FollowUpState
from shared.language.texts import OWNER_REASONS, PAID_CLAIM, PAID_OPT_OUT, REPLY_LIMIT, THIRD_PROMISE, owner_reason


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


REPLY_REASONS = [HandOverReason.DISPUTE, HandOverReason.WRONG_PERSON, HandOverReason.UNANSWERABLE_QUESTION,
                 HandOverReason.UNCLEAR_REPLY, HandOverReason.LOW_CONFIDENCE, HandOverReason.PROMISE_WITHOUT_DATE,
                 HandOverReason.PROMISE_IN_THE_PAST, HandOverReason.CLASSIFIER_FAILED,
                 HandOverReason.INVALID_CONFIDENCE, HandOverReason.REPLY_NOT_PROCESSED, HandOverReason.PAID_CLAIM,
                 HandOverReason.PAID_OPT_OUT, HandOverReason.THIRD_PROMISE, HandOverReason.REPLY_LIMIT]


@pytest.mark.parametrize("reason", REPLY_REASONS)
def test_the_owner_reads_every_reply_hand_over_reason_in_french(reason: HandOverReason) -> None:
    assert owner_reason(f"{reason} (details)") != f"{reason} (details)"


def test_the_reply_texts_name_the_same_reasons() -> None:
    assert (PAID_CLAIM, PAID_OPT_OUT, THIRD_PROMISE, REPLY_LIMIT) == (
        HandOverReason.PAID_CLAIM, HandOverReason.PAID_OPT_OUT, HandOverReason.THIRD_PROMISE,
        HandOverReason.REPLY_LIMIT)
    assert {start for start, _ in OWNER_REASONS} == {r.value for r in REPLY_REASONS}
