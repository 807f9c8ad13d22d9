"""The cadence's decision rules, without any I/O: which drafts live on, what a Twilio error stops."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.models import Campaign, Step
from shared.domain.records import DraftKeeper
from shared.domain.states import FollowUpState
from shared.usecases.cadence import keeps_draft, needs_enrolment, stop_reason_for_error

S = FollowUpState


@pytest.mark.parametrize(("followup", "step", "resend", "kept"), [
    # A step's draft lives while its follow-up is at that step and running…
    ({"state": S.SCHEDULED, "step": 1}, 1, False, True),
    ({"state": S.QUEUED, "step": 1}, 1, False, True),
    ({"state": S.DRAFTING, "step": 1}, 1, False, True),
    ({"state": S.AWAITING_SEND, "step": 1}, 1, False, True),
    # …and dies once paused (with its whole campaign: the resume drafts the step again; for the contact:
    # a promise, a hand-over), stopped, done or past that step.
    ({"state": S.PAUSED, "step": 1, "pause_reason": "campaign_paused"}, 1, False, False),
    ({"state": S.PAUSED, "step": 1, "pause_reason": "promise_to_pay"}, 1, False, False),
    ({"state": S.PAUSED, "step": 1, "pause_reason": "needs_human"}, 1, False, False),
    ({"state": S.STOPPED, "step": 1}, 1, False, False),
    ({"state": S.COMPLETED, "step": 2}, 1, False, False),
    ({"state": S.SCHEDULED, "step": 2}, 1, False, False),
    (None, 1, False, False),
    # A template re-send (63016) outlives its step; stopped or paused for the contact ends it…
    ({"state": S.SCHEDULED, "step": 2}, 1, True, True),
    ({"state": S.COMPLETED, "step": 2}, 1, True, True),
    ({"state": S.PAUSED, "step": 1, "pause_reason": "promise_to_pay"}, 1, True, False),
    ({"state": S.STOPPED, "step": 1}, 1, True, False),
    # …while a campaign pause only delays it (the sending actor sends it once the campaign resumes).
    ({"state": S.PAUSED, "step": 1, "pause_reason": "campaign_paused"}, 1, True, True),
])
def test_which_drafts_may_still_be_sent(followup: dict[str, Any] | None, step: int, resend: bool, kept: bool) -> None:
    keeper = DraftKeeper(state=followup["state"].value, step=followup["step"],
                         pause_reason=followup.get("pause_reason")) if followup else None
    assert keeps_draft(keeper, step=step, resend=resend) is kept


@pytest.mark.parametrize(("code", "outcome"), [
    (21610, ("opt_out", False)),  # the client blocked us (STOP to Twilio): nobody to call
    (21211, ("invalid_number", True)), (21614, ("invalid_number", True)),
    (63003, ("invalid_number", True)), (63024, ("invalid_number", True)),
    (30008, ("send_failed", True)), (None, ("send_failed", True)),  # unknown: a person looks
])
def test_what_a_permanent_twilio_error_stops_and_who_is_told(code: int | None, outcome: tuple[str, bool]) -> None:
    assert stop_reason_for_error(code) == outcome


def test_the_sending_actor_reads_the_enrolment_date_only_when_the_next_step_may_use_it() -> None:
    campaign = Campaign(id="c1", name="Relance", steps=[
        Step(delay="0s"), Step(delay="2d", anchor="previous"), Step(delay="10d", anchor="enrolment"),
        Step(delay="1d", anchor="due_date"), Step(delay="1d", anchor="previous")])
    assert [needs_enrolment(campaign, step) for step in range(5)] == [False, True, True, False, False]
