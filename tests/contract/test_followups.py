"""Follow-ups: enrolment, the scheduler's scans and claims, named transitions, hand-overs and promises."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.reasons import PauseReason, StopReason
from shared.domain.records import Enrolment
from shared.domain.repositories import Repositories
from shared.domain.states import OPEN, FollowUpState, IllegalMove
from tests.contract.conftest import HOUR, stored

F = FollowUpState


def _enrolled(repos: Repositories, now: datetime, *contacts: str, campaign_id: str = "c1",
              due: datetime | None = None) -> list[str]:
    for contact_id in contacts:
        assert repos.followups.enrol(contact_id=contact_id, campaign_id=campaign_id, next_run_at=due or now, now=now)
    return [f"{campaign_id}:{contact_id}" for contact_id in contacts]


def _state(repos: Repositories, followup_id: str) -> tuple[str, int]:
    followup = repos.followups.get(followup_id)
    assert followup is not None
    return followup.state.value, followup.step


def _awaiting_send(repos: Repositories, now: datetime, contact_id: str = "ct1", step: int = 0) -> str:
    (followup_id,) = _enrolled(repos, now, contact_id)
    assert repos.followups.claim([followup_id], now)
    assert repos.followups.await_send(followup_id, step=step, now=now)
    return followup_id


def test_a_contact_is_enrolled_once_per_campaign(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    assert not repos.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now + HOUR, now=now)
    assert repos.followups.enrol(contact_id="ct1", campaign_id="c2", next_run_at=now, now=now)
    followup = repos.followups.get("c1:ct1")
    assert followup is not None and (followup.state, followup.step, followup.next_run_at) == (F.SCHEDULED, 0, now)
    assert followup.enrolled_at == now and not followup.needs_human
    assert repos.followups.get("c9:ct1") is None
    assert repos.followups.count() == 2 and repos.followups.count("c1") == 1
    assert repos.followups.count_by_state() == {"scheduled": 2}


def test_many_contacts_are_enrolled_in_one_write_idempotently(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.followups.enrol_many([], now=now) == []
    assert repos.followups.enrol(contact_id="ct2", campaign_id="c1", next_run_at=now, now=now)
    batch = [Enrolment("ct1", "c1", now + HOUR), Enrolment("ct2", "c1", now), Enrolment("ct3", "c1", now),
             Enrolment("ct1", "c1", now)]  # ct2 enrolled already, ct1 twice in the batch
    assert repos.followups.enrol_many(batch, now=now) == [True, False, True, False]
    followup = repos.followups.get("c1:ct1")
    assert followup is not None
    assert (followup.state, followup.step, followup.next_run_at) == (F.SCHEDULED, 0, now + HOUR)
    assert repos.followups.count("c1") == 3
    assert repos.followups.enrol_many(batch[:3], now=now + HOUR) == [False, False, False]
    assert repos.followups.count_by_state() == {"scheduled": 3}


def test_follow_ups_come_in_pages_by_id_filtered_by_campaign_and_state(repos: Repositories,
                                                                       clock: FakeClock) -> None:
    now = clock.now()
    _enrolled(repos, now, "ct3", "ct1", "ct2")
    _enrolled(repos, now, "ct1", campaign_id="c2")
    assert repos.followups.pause("c1:ct2", reason=PauseReason.CAMPAIGN_PAUSED, now=now)
    first = repos.followups.page(limit=2)
    assert [f.id for f in first] == ["c1:ct1", "c1:ct2"]
    assert [f.id for f in repos.followups.page(after=first[-1].id, limit=2)] == ["c1:ct3", "c2:ct1"]
    assert repos.followups.page(after="c2:ct1") == []
    assert [f.id for f in repos.followups.page(campaign_id="c1", state=F.SCHEDULED)] == ["c1:ct1", "c1:ct3"]
    assert [f.id for f in repos.followups.page(state=F.PAUSED)] == ["c1:ct2"]


def test_due_follow_ups_come_earliest_first_within_the_limit(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _enrolled(repos, now, "late", due=now - timedelta(minutes=1))
    _enrolled(repos, now, "early", due=now - HOUR)
    _enrolled(repos, now, "future", due=now + HOUR)
    _enrolled(repos, now, "other", campaign_id="c2", due=now - HOUR)
    assert [f.id for f in repos.followups.due(now, ["c1"], 10)] == ["c1:early", "c1:late"]
    assert [f.id for f in repos.followups.due(now, ["c1", "c2"], 2)] in (
        ["c1:early", "c2:other"], ["c2:other", "c1:early"])  # equally due: either first
    assert repos.followups.due(now, [], 10) == []
    assert [(f.id, f.step) for f in repos.followups.due(now + 2 * HOUR, ["c1"], 1)] == [("c1:early", 0)]


def test_a_claim_goes_to_one_caller_and_only_for_what_is_due(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    due, later = _enrolled(repos, now, "ct1"), _enrolled(repos, now, "ct2", due=now + HOUR)
    first = repos.followups.claim([*due, *later, "c1:nobody"], now)
    assert [(f.id, f.step) for f in first] == [("c1:ct1", 0)]
    assert repos.followups.claim(due, now) == []  # the other scheduler: nothing
    assert _state(repos, "c1:ct1") == ("queued", 0) and _state(repos, "c1:ct2") == ("scheduled", 0)
    assert repos.followups.claim([], now) == []
    doc = stored(repos, "followups", "c1:ct1")
    assert doc is not None and [h["state"] for h in doc["history"]] == ["scheduled", "queued"]


def test_drafting_steps_move_only_from_their_states_and_at_their_step(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    (followup_id,) = _enrolled(repos, now, "ct1")
    assert not repos.followups.start_drafting(followup_id, step=0, now=now)  # not claimed yet
    repos.followups.claim([followup_id], now)
    assert not repos.followups.start_drafting(followup_id, step=1, now=now)  # another step
    assert repos.followups.start_drafting(followup_id, step=0, now=now)
    assert not repos.followups.start_drafting(followup_id, step=0, now=now)  # once
    assert repos.followups.await_send(followup_id, step=0, now=now)
    assert not repos.followups.await_send(followup_id, step=0, now=now)
    assert repos.followups.draft_again(followup_id, step=0, now=now)  # its draft was lost
    assert _state(repos, followup_id) == ("queued", 0)
    assert not repos.followups.draft_again(followup_id, step=0, now=now)
    assert repos.followups.await_send(followup_id, step=0, now=now)  # straight from queued too


def test_after_a_send_the_next_step_is_scheduled_or_the_follow_up_completes(repos: Repositories,
                                                                              clock: FakeClock) -> None:
    now = clock.now()
    followup_id = _awaiting_send(repos, now)
    assert not repos.followups.schedule_next(followup_id, step=1, due=now + HOUR, sent_at=now, now=now)
    assert repos.followups.schedule_next(followup_id, step=0, due=now + HOUR, sent_at=now, now=now)
    followup = repos.followups.get(followup_id)
    assert followup is not None and (followup.state, followup.step, followup.next_run_at) == (
        F.SCHEDULED, 1, now + HOUR)
    assert not repos.followups.complete(followup_id, step=1, sent_at=now, now=now)  # not awaiting send
    repos.followups.claim([followup_id], now + HOUR)
    repos.followups.await_send(followup_id, step=1, now=now + HOUR)
    assert repos.followups.complete(followup_id, step=1, sent_at=now + HOUR, now=now + HOUR)
    followup = repos.followups.get(followup_id)
    assert followup is not None and (followup.state, followup.next_run_at) == (F.COMPLETED, None)
    assert not repos.followups.stop(followup_id, reason=StopReason.PAID, now=now)  # completed is final


@pytest.mark.parametrize("state", [s for s in OPEN if s != F.PAUSED])
def test_a_pause_and_a_stop_apply_in_every_open_state(repos: Repositories, clock: FakeClock,
                                                     state: FollowUpState) -> None:
    now = clock.now()
    (followup_id,) = _enrolled(repos, now, "ct1")
    moves = {F.QUEUED: [F.QUEUED], F.DRAFTING: [F.QUEUED, F.DRAFTING],
             F.AWAITING_SEND: [F.QUEUED, F.AWAITING_SEND]}.get(state, [])
    for step in moves:
        {F.QUEUED: lambda: repos.followups.claim([followup_id], now),
         F.DRAFTING: lambda: repos.followups.start_drafting(followup_id, step=0, now=now),
         F.AWAITING_SEND: lambda: repos.followups.await_send(followup_id, step=0, now=now)}[step]()
    assert _state(repos, followup_id)[0] == state.value
    assert repos.followups.pause(followup_id, reason=PauseReason.PROMISE_TO_PAY, until=now + HOUR, now=now)
    followup = repos.followups.get(followup_id)
    assert followup is not None and (followup.state, followup.pause_reason, followup.paused_until) == (
        F.PAUSED, "promise_to_pay", now + HOUR)
    assert not followup.needs_human
    assert repos.followups.pause(followup_id, reason=PauseReason.NEEDS_HUMAN, now=now, needs_human="dispute")
    followup = repos.followups.get(followup_id)
    assert followup is not None and followup.paused_until is None
    assert (followup.needs_human, followup.needs_human_reason) == (True, "dispute")
    assert repos.followups.stop(followup_id, reason=StopReason.OPT_OUT, now=now)
    followup = repos.followups.get(followup_id)
    assert followup is not None and (followup.state, followup.stop_reason, followup.next_run_at) == (
        F.STOPPED, "opt_out", None)
    assert not repos.followups.stop(followup_id, reason=StopReason.OPT_OUT, now=now)  # once
    assert not repos.followups.pause(followup_id, reason=PauseReason.NEEDS_HUMAN, now=now)


def test_a_narrowed_move_applies_only_in_those_states_and_at_that_step(repos: Repositories,
                                                                       clock: FakeClock) -> None:
    now = clock.now()
    followup_id = _awaiting_send(repos, now)
    assert not repos.followups.pause(followup_id, reason=PauseReason.AWAITING_CUSTOMER_WINDOW, now=now,
                                     expected=(F.QUEUED, F.DRAFTING))
    assert not repos.followups.pause(followup_id, reason=PauseReason.CAMPAIGN_PAUSED, now=now,
                                     expected=F.AWAITING_SEND, step=1)
    assert repos.followups.pause(followup_id, reason=PauseReason.CAMPAIGN_PAUSED, now=now,
                                 expected=F.AWAITING_SEND, step=0)
    assert not repos.followups.stop(followup_id, reason=StopReason.MISSING_DATA, now=now, expected=F.SCHEDULED)
    assert repos.followups.stop(followup_id, reason=StopReason.SEND_FAILED, now=now, needs_human="Twilio error 1",
                                expected=OPEN)
    followup = repos.followups.get(followup_id)
    assert followup is not None and followup.needs_human_reason == "Twilio error 1"


def test_an_illegal_move_raises_and_writes_nothing(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    (followup_id,) = _enrolled(repos, now, "ct1")
    repos.followups.stop(followup_id, reason=StopReason.OPT_OUT, now=now)
    before = stored(repos, "followups", followup_id)
    with pytest.raises(IllegalMove, match="a follow-up cannot move from stopped to paused"):
        repos.followups.pause(followup_id, reason=PauseReason.NEEDS_HUMAN, now=now + HOUR, expected=F.STOPPED)
    with pytest.raises(IllegalMove, match="a follow-up cannot move from completed to stopped"):
        repos.followups.stop(followup_id, reason=StopReason.PAID, now=now + HOUR, expected=(F.PAUSED, F.COMPLETED))
    assert stored(repos, "followups", followup_id) == before


def test_resuming_is_once_due_now_and_forgets_the_pause(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    (followup_id,) = _enrolled(repos, now, "ct1")
    assert not repos.followups.resume(followup_id, now=now)  # not paused
    repos.followups.pause(followup_id, reason=PauseReason.PROMISE_TO_PAY, until=now + HOUR, now=now)
    assert repos.followups.resume(followup_id, now=now + 2 * HOUR)
    followup = repos.followups.get(followup_id)
    assert followup is not None and (followup.state, followup.next_run_at) == (F.SCHEDULED, now + 2 * HOUR)
    assert (followup.pause_reason, followup.paused_until) == (None, None)
    assert not repos.followups.resume(followup_id, now=now)


def test_pauses_end_by_themselves_only_once_their_date_has_passed(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    ids = _enrolled(repos, now, "ended", "later", "person", "ended2")
    repos.followups.pause(ids[0], reason=PauseReason.PROMISE_TO_PAY, until=now - HOUR, now=now)
    repos.followups.pause(ids[1], reason=PauseReason.PROMISE_TO_PAY, until=now + HOUR, now=now)
    repos.followups.pause(ids[2], reason=PauseReason.NEEDS_HUMAN, until=None, now=now)
    repos.followups.pause(ids[3], reason=PauseReason.PROMISE_TO_PAY, until=now, now=now)
    first = repos.followups.resume_ended_pauses(now, 1)  # the limit
    assert len(first) == 1 and first[0] in (ids[0], ids[3])
    assert sorted(first + repos.followups.resume_ended_pauses(now, 10)) == sorted([ids[0], ids[3]])
    assert {_state(repos, i)[0] for i in (ids[0], ids[3])} == {"scheduled"}
    assert _state(repos, ids[1])[0] == "paused" and _state(repos, ids[2])[0] == "paused"
    assert repos.followups.resume_ended_pauses(now, 10) == []


def test_the_campaigns_own_pauses_are_found_by_campaign(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    mine, promise = _enrolled(repos, now, "ct1", "ct2")
    (other,) = _enrolled(repos, now, "ct1", campaign_id="c2")
    for followup_id in (mine, other):
        repos.followups.pause(followup_id, reason=PauseReason.CAMPAIGN_PAUSED, now=now)
    repos.followups.pause(promise, reason=PauseReason.PROMISE_TO_PAY, until=now + HOUR, now=now)
    assert repos.followups.paused_with_campaign("c1") == [mine]


def test_a_campaigns_running_follow_ups_are_found_by_campaign(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    scheduled, queued, awaiting, paused, stopped = _enrolled(repos, now, "ct1", "ct2", "ct3", "ct4", "ct5")
    _enrolled(repos, now, "ct1", campaign_id="c2")
    assert repos.followups.claim([queued, awaiting], now)
    assert repos.followups.await_send(awaiting, step=0, now=now)
    assert repos.followups.pause(paused, reason=PauseReason.PROMISE_TO_PAY, until=now + HOUR, now=now)
    assert repos.followups.stop(stopped, reason=StopReason.PAID, now=now)
    assert repos.followups.running_in_campaign("c1") == sorted([scheduled, queued, awaiting])
    assert repos.followups.running_in_campaign("c9") == []


def test_a_contacts_follow_ups_by_state_and_what_keeps_a_draft(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    first, _ = _enrolled(repos, now, "ct1", "ct2")
    (third,) = _enrolled(repos, now, "ct1", campaign_id="c2")
    repos.followups.pause(third, reason=PauseReason.CAMPAIGN_PAUSED, now=now)
    assert sorted(f.id for f in repos.followups.of_contact("ct1", OPEN)) == [first, third]
    assert [f.id for f in repos.followups.of_contact("ct1", [F.PAUSED])] == [third]
    assert repos.followups.of_contact("ct1", [F.COMPLETED]) == []
    keeper = repos.followups.keeper(third)
    assert keeper is not None and (keeper.state, keeper.step, keeper.pause_reason) == ("paused", 0, "campaign_paused")
    assert repos.followups.keeper("c9:nobody") is None
    keepers = repos.followups.keepers([first, third, "c9:nobody", first])
    assert sorted(keepers) == [first, third] and keepers[first].state == "scheduled"
    assert repos.followups.keepers([]) == {}


def test_stale_follow_ups_are_claimed_once_per_change(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    queued, _ = _enrolled(repos, now, "ct1", "ct2")
    repos.followups.claim([queued], now)
    assert repos.followups.stale([F.QUEUED, F.DRAFTING], now, 10) == []  # not before `now`
    (stale,) = repos.followups.stale([F.QUEUED, F.DRAFTING], now + HOUR, 10)
    assert (stale.id, stale.step, stale.state) == (queued, 0, F.QUEUED)
    assert repos.followups.touch_stale(stale.id, state=stale.state, changed_at=stale.changed_at, now=now + HOUR)
    assert not repos.followups.touch_stale(stale.id, state=stale.state, changed_at=stale.changed_at, now=now + HOUR)
    assert repos.followups.stale([F.QUEUED], now + HOUR, 10) == []  # touched: not stale again yet
    assert len(repos.followups.stale([F.QUEUED], now + 2 * HOUR, 10)) == 1
    assert len(repos.followups.stale([F.SCHEDULED, F.QUEUED], now + 2 * HOUR, 1)) == 1  # the limit
    later = repos.followups.stale([F.QUEUED], now + 2 * HOUR, 10)[0]
    assert repos.followups.touch_stale(later.id, state=F.QUEUED, changed_at=later.changed_at, now=now + 2 * HOUR,
                                       requeued=False)
    assert stored(repos, "followups", queued)["requeued"] == 1  # type: ignore[index]


def test_flags_for_a_person(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    running, done = _enrolled(repos, now, "ct1", "ct2")
    (other,) = _enrolled(repos, now, "ct1", campaign_id="c2")
    assert repos.followups.flag_contact("ct1", reason="dispute", now=now) == 2
    assert {f.needs_human_reason for f in repos.followups.of_contact("ct1", OPEN)} == {"dispute"}
    assert repos.followups.flag_contact("ct1", reason="dispute", now=now, finished=True) == 0  # none completed
    assert not repos.followups.flag_completed(done, reason="last message failed: x", now=now)
    repos.followups.claim([done], now)
    repos.followups.await_send(done, step=0, now=now)
    repos.followups.complete(done, step=0, sent_at=now, now=now)
    assert repos.followups.flag_contact("ct2", reason="late reply", now=now) == 0  # completed is not open…
    assert repos.followups.flag_contact("ct2", reason="late reply", now=now, finished=True) == 1  # …but finished
    assert repos.followups.flag_completed(done, reason="last message failed: x", now=now + HOUR)
    assert repos.followups.get(done).needs_human_reason == "last message failed: x"  # type: ignore[union-attr]
    repos.followups.flag(other, reason="the scheduler could not process this follow-up", now=now + HOUR)
    flagged = repos.followups.get(other)
    assert flagged is not None and flagged.state == F.SCHEDULED and flagged.needs_human
    assert running != other


def test_one_message_holds_a_hand_over_until_a_person_closes_it(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _enrolled(repos, now, "ct1")
    _enrolled(repos, now, "ct1", campaign_id="c2")
    assert not repos.followups.claim_hand_over("ct1", inbound_sid="SM1", now=now)  # nothing flagged
    assert repos.followups.open_hand_over("ct1") is None
    repos.followups.flag_contact("ct1", reason="dispute", now=now)
    assert repos.followups.claim_hand_over("ct1", inbound_sid="SM1", now=now)
    assert repos.followups.claim_hand_over("ct1", inbound_sid="SM1", now=now)  # the same message again
    assert not repos.followups.claim_hand_over("ct1", inbound_sid="SM2", now=now)  # another: a person has it
    assert repos.followups.open_hand_over("ct1") == "SM1"
    # The flagged follow-ups carry it too (the inbox reads it from them, not once per client).
    assert {f.hand_over_sid for f in repos.followups.recent_summaries(needs_human=True, limit=10)} == {"SM1"}
    assert repos.followups.clear_hand_over("ct1", action="resume", now=now + HOUR) == 2
    assert repos.followups.clear_hand_over("ct1", action="resume", now=now + HOUR) == 0
    assert repos.followups.open_hand_over("ct1") is None
    (summary, _) = repos.followups.summaries_of_contact("ct1")
    assert summary.hand_over_sid is None
    assert (summary.needs_human, summary.handled_action, summary.handled_at) == (False, "resume", now + HOUR)
    assert summary.needs_human_reason == "dispute"  # kept, with when and how it was handled
    repos.followups.flag_contact("ct1", reason="unclear reply", now=now + HOUR)
    assert repos.followups.claim_hand_over("ct1", inbound_sid="SM2", now=now + HOUR)  # a new hand-over


def test_promises_are_noted_on_the_follow_ups_they_paused_once_per_message(repos: Repositories,
                                                                           clock: FakeClock) -> None:
    now = clock.now()
    paused, other = _enrolled(repos, now, "ct1", "ct2")
    (running,) = _enrolled(repos, now, "ct1", campaign_id="c2")
    repos.followups.pause(paused, reason=PauseReason.PROMISE_TO_PAY, until=now + HOUR, now=now)
    assert repos.followups.promise_sids("ct1") == []
    assert repos.followups.record_promise("ct1", inbound_sid="SM1", promised="2026-03-10", capped_to=None,
                                          now=now) == 1
    assert repos.followups.record_promise("ct1", inbound_sid="SM1", promised="2026-03-10", capped_to=None,
                                          now=now) == 0  # the same message applied twice
    assert repos.followups.record_promise("ct1", inbound_sid="SM2", promised="2026-05-10", capped_to="2026-04-01",
                                          now=now + HOUR) == 1
    assert repos.followups.promise_sids("ct1") == [{"SM1", "SM2"}]
    doc = stored(repos, "followups", paused)
    assert doc is not None and (doc["promised_date"], doc["promise_capped_to"]) == ("2026-05-10", "2026-04-01")
    assert repos.followups.promise_sids("ct2") == [] and running != other


def test_what_a_person_is_shown(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    (b,) = _enrolled(repos, now, "ct1", campaign_id="b")
    (a,) = _enrolled(repos, now, "ct1", campaign_id="a")
    (other,) = _enrolled(repos, now, "ct2", campaign_id="a")
    repos.followups.stop(b, reason=StopReason.DISPUTE, now=now + HOUR, needs_human="dispute")
    repos.followups.pause(other, reason=PauseReason.NEEDS_HUMAN, now=now + 2 * HOUR, needs_human="unclear reply")
    summaries = repos.followups.summaries_of_contact("ct1")
    assert [(s.campaign_id, s.state, s.step, s.stop_reason) for s in summaries] == [
        ("a", "scheduled", 0, None), ("b", "stopped", 0, "dispute")]
    # Several clients in one read: by client, then campaign.
    assert [(s.contact_id, s.campaign_id) for s in repos.followups.summaries_of_contacts(["ct2", "ct1", "nobody"])] == [
        ("ct1", "a"), ("ct1", "b"), ("ct2", "a")]
    assert repos.followups.summaries_of_contacts([]) == []
    assert [s.id for s in repos.followups.recent_summaries(needs_human=True, limit=10)] == [other, b]
    assert [s.id for s in repos.followups.recent_summaries(needs_human=False, limit=2)] == [other, b]
    assert len(repos.followups.recent_summaries(needs_human=False, limit=10)) == 3 and a
    assert repos.followups.count_by_state() == {"scheduled": 1, "stopped": 1, "paused": 1}
    assert repos.followups.count_handovers_waiting() == 2  # ct1 (b) and ct2 (other)
    # Per campaign, counted in the store: campaign "a" has ct1 scheduled and ct2 paused for a person.
    assert repos.followups.campaign_counts("a") == ({"scheduled": 1, "paused": 1}, 1)
    assert repos.followups.campaign_counts("b") == ({"stopped": 1}, 1)
    assert repos.followups.campaign_counts("none") == ({}, 0)
    assert repos.followups.clear_hand_over("ct2", action="resume", now=now + 3 * HOUR) >= 1
    assert repos.followups.count_handovers_waiting() == 1
