"""Messages: stored once, each send step won once, statuses forward only, scans, and what people see."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.reasons import CancelReason
from shared.domain.records import InboundRecord
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState
from shared.errors import StoreError
from tests.contract.conftest import HOUR, outbound, plant, stored

M = MessageState
SID = "SM" + "1" * 32


def _state(repos: Repositories, message_id: str) -> str:
    message = repos.messages.get(message_id)
    assert message is not None
    return message.state.value


def _sent(repos: Repositories, now: datetime, message_id: str = "c1:ct1:0", sid: str = SID, **kw: object) -> str:
    assert repos.messages.insert(outbound(message_id, **kw), now)  # type: ignore[arg-type]
    assert repos.messages.start_sending(message_id, now=now)
    assert repos.messages.mark_sent(message_id, sid=sid, now=now)
    return message_id


def _inbound(message_id: str, *, contact_id: str | None = "ct1", sender: str = "+33612345601",
             **kw: object) -> InboundRecord:
    return InboundRecord(id=message_id, twilio_sid=message_id.removeprefix("in:"), contact_id=contact_id,
                         sender=sender, unknown_sender=contact_id is None, **kw)  # type: ignore[arg-type]


def test_a_message_is_stored_once_and_read_back_as_drafted(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    message = outbound(kind="template", content_sid="HX" + "a" * 32, content_variables={"1": "Marie"})
    assert repos.messages.insert(message, now)
    assert not repos.messages.insert(outbound(body="another draft"), now)
    found = repos.messages.get(message.id)
    assert found is not None and found.body == "Bonjour" and found.content_variables == {"1": "Marie"}
    assert (found.state, found.created_at, found.state_changed_at, found.twilio_sid) == (M.READY, now, now, None)
    assert found.model_copy(update={"created_at": None, "state_changed_at": None}) == message
    assert repos.messages.get("nope") is None


def test_each_step_of_a_send_is_won_once(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(), now)
    assert repos.messages.start_sending("c1:ct1:0", now=now)
    assert not repos.messages.start_sending("c1:ct1:0", now=now)  # a redelivery: no second call to Twilio
    assert repos.messages.get("c1:ct1:0").sending_at == now  # type: ignore[union-attr]
    assert repos.messages.mark_uncertain("c1:ct1:0", reason="no answer from Twilio", error_code=None, now=now)
    assert not repos.messages.mark_uncertain("c1:ct1:0", reason="again", now=now)
    assert repos.messages.mark_sent("c1:ct1:0", sid=SID, now=now + HOUR)  # found at Twilio after all
    assert not repos.messages.mark_sent("c1:ct1:0", sid=SID, now=now + HOUR)
    sent = repos.messages.get("c1:ct1:0")
    assert sent is not None and (sent.state, sent.twilio_sid, sent.sent_at) == (M.SENT, SID, now + HOUR)
    # Nothing leads a message Twilio has back to sending.
    for again in (lambda: repos.messages.send_again("c1:ct1:0", now=now),
                  lambda: repos.messages.retry_later("c1:ct1:0", error_code=None, now=now),
                  lambda: repos.messages.start_sending("c1:ct1:0", now=now),
                  lambda: repos.messages.cancel("c1:ct1:0", reason=CancelReason.OPT_OUT, now=now)):
        assert not again()
    assert _state(repos, "c1:ct1:0") == "sent"


def test_a_refused_or_retried_send_moves_from_sending_only(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    for message_id in ("a", "b", "c"):
        repos.messages.insert(outbound(message_id), now)
    assert not repos.messages.mark_failed("a", error_code=63024, now=now)  # not sending
    repos.messages.start_sending("a", now=now)
    assert repos.messages.mark_failed("a", error_code=63024, now=now)
    assert repos.messages.get("a").error_code == 63024  # type: ignore[union-attr]
    repos.messages.start_sending("b", now=now)
    assert repos.messages.retry_later("b", error_code=63018, now=now)
    assert _state(repos, "b") == "ready" and stored(repos, "messages", "b")["last_error_code"] == 63018  # type: ignore[index]
    assert not repos.messages.send_again("b", now=now)  # not uncertain
    repos.messages.start_sending("c", now=now)
    repos.messages.mark_uncertain("c", reason="HTTP 502 from Twilio", error_code=20500, now=now)
    assert repos.messages.send_again("c", now=now)
    assert _state(repos, "c") == "ready" and stored(repos, "messages", "c")["reconciled"] == "not_found"  # type: ignore[index]


def test_a_twilio_sid_belongs_to_one_message(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _sent(repos, now)
    repos.messages.insert(outbound("other"), now)
    repos.messages.start_sending("other", now=now)
    with pytest.raises(StoreError):
        repos.messages.mark_sent("other", sid=SID, now=now)
    assert _state(repos, "other") == "sending"
    found = repos.messages.by_sid(SID)
    assert found is not None and found.id == "c1:ct1:0" and repos.messages.followup_id_by_sid(SID) == "c1:ct1"
    assert repos.messages.by_sid("SMnone") is None and repos.messages.followup_id_by_sid("SMnone") is None
    assert repos.messages.known_sids([SID, "SMnone"]) == {SID} and repos.messages.known_sids([]) == set()


def test_a_cancelled_draft_is_replaced_once_and_never_one_twilio_has(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(), now)
    assert not repos.messages.redraft(outbound(body="v2"), now)  # not cancelled
    assert repos.messages.cancel("c1:ct1:0", reason=CancelReason.PAUSED_PROMISE_TO_PAY, now=now)
    assert not repos.messages.cancel("c1:ct1:0", reason=CancelReason.OPT_OUT, now=now)
    assert stored(repos, "messages", "c1:ct1:0")["cancel_reason"] == "paused_promise_to_pay"  # type: ignore[index]
    assert repos.messages.redraft(outbound(body="v2"), now + HOUR)
    assert not repos.messages.redraft(outbound(body="v3"), now + HOUR)
    again = repos.messages.get("c1:ct1:0")
    assert again is not None and (again.state, again.body, again.state_changed_at) == (M.READY, "v2", now + HOUR)
    assert stored(repos, "messages", "c1:ct1:0")["cancel_reason"] is None  # type: ignore[index]


def test_a_stop_cancels_the_contacts_drafts_but_owner_alerts(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("step"), now)
    repos.messages.insert(outbound("reply", purpose="reply", followup_id=None, step=-1), now)
    repos.messages.insert(outbound("alert", purpose="alert", followup_id=None, contact_id="ct1", to="+3370", step=-1),
                          now)
    repos.messages.insert(outbound("theirs", contact_id="ct2"), now)
    _sent(repos, now, "gone")
    assert repos.messages.cancel_ready_steps("ct1", reason=CancelReason.OPT_OUT, now=now) == 2
    assert {m: _state(repos, m) for m in ("step", "reply", "alert", "theirs", "gone")} == {
        "step": "cancelled", "reply": "cancelled", "alert": "ready", "theirs": "ready", "gone": "sent"}
    assert repos.messages.cancel_ready_steps("ct1", reason=CancelReason.OPT_OUT, now=now) == 0


def test_a_stopped_followup_withdraws_its_ready_messages_only(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("c1:ct1:1", step=1), now)
    repos.messages.insert(outbound("c1:ct1:0:t", resend_of="c1:ct1:0", kind="template"), now)
    repos.messages.insert(outbound("c2:ct1:0", followup_id="c2:ct1", campaign_id="c2"), now)
    _sent(repos, now, "c1:ct1:0")
    reason = CancelReason.SEND_FAILED
    assert repos.messages.cancel_ready_of_followup("c1:ct1", reason=reason, now=now) == 2
    assert {m: _state(repos, m) for m in ("c1:ct1:1", "c1:ct1:0:t", "c2:ct1:0", "c1:ct1:0")} == {
        "c1:ct1:1": "cancelled", "c1:ct1:0:t": "cancelled", "c2:ct1:0": "ready", "c1:ct1:0": "sent"}
    assert repos.messages.cancel_ready_of_followup("c1:ct1", reason=reason, now=now) == 0


def test_a_campaign_pause_withdraws_its_step_drafts_but_re_sends(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("c1:ct1:0"), now)
    repos.messages.insert(outbound("c1:ct2:0", contact_id="ct2", followup_id="c1:ct2"), now)
    repos.messages.insert(outbound("c1:ct3:0:t", contact_id="ct3", followup_id="c1:ct3", resend_of="c1:ct3:0",
                                   kind="template"), now)
    repos.messages.insert(outbound("c2:ct1:0", followup_id="c2:ct1", campaign_id="c2"), now)
    reason = CancelReason.PAUSED_CAMPAIGN_PAUSED
    assert repos.messages.cancel_ready_drafts_of_campaign("c1", reason=reason, now=now) == 2
    assert {m: _state(repos, m) for m in ("c1:ct1:0", "c1:ct2:0", "c1:ct3:0:t", "c2:ct1:0")} == {
        "c1:ct1:0": "cancelled", "c1:ct2:0": "cancelled", "c1:ct3:0:t": "ready", "c2:ct1:0": "ready"}
    assert stored(repos, "messages", "c1:ct1:0")["cancel_reason"] == "paused_campaign_paused"  # type: ignore[index]
    assert repos.messages.cancel_ready_drafts_of_campaign("c1", reason=reason, now=now) == 0


def test_statuses_move_a_message_forward_only(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _sent(repos, now)
    assert repos.messages.apply_status(SID, "delivered", None, now + HOUR)
    assert not repos.messages.apply_status(SID, "delivered", None, now + HOUR)
    assert not repos.messages.apply_status(SID, "sent", None, now + HOUR)
    assert not repos.messages.apply_status(SID, "whatever", None, now + HOUR)
    assert repos.messages.apply_status(SID, "read", None, now + 2 * HOUR, source="poll")
    assert not repos.messages.apply_status(SID, "delivered", None, now + 2 * HOUR)  # late: ignored
    doc = stored(repos, "messages", "c1:ct1:0")
    assert doc is not None and (doc["state"], doc["delivered_at"], doc["read_at"]) == (
        "read", now + HOUR, now + 2 * HOUR)
    assert doc["history"][-1]["source"] == "poll"
    assert repos.messages.apply_status(SID, "undelivered", 63024, now + 3 * HOUR)  # a late failure still counts
    assert repos.messages.get("c1:ct1:0").error_code == 63024  # type: ignore[union-attr]
    assert not repos.messages.apply_status("SMnobody", "delivered", None, now)
    repos.messages.insert(outbound("ready"), now)  # no SID: nothing to apply to


def test_a_status_by_message_id_moves_forward_only_and_adopts_a_missing_sid(repos: Repositories,
                                                                          clock: FakeClock) -> None:
    """A callback's ``mid``: one update by id; it adopts the SID of a message still sending/uncertain."""
    now = clock.now()
    _sent(repos, now)
    assert repos.messages.apply_status(SID, "delivered", None, now + HOUR, message_id="c1:ct1:0")
    assert not repos.messages.apply_status(SID, "delivered", None, now + HOUR, message_id="c1:ct1:0")
    assert not repos.messages.apply_status(SID, "sent", None, now + HOUR, message_id="c1:ct1:0")  # late
    assert repos.messages.apply_status(SID, "read", None, now + 2 * HOUR, message_id="c1:ct1:0")
    assert not repos.messages.apply_status(SID, "delivered", None, now + 3 * HOUR, message_id="c1:ct1:0")
    doc = stored(repos, "messages", "c1:ct1:0")
    assert doc is not None and (doc["state"], doc["sent_at"], doc["delivered_at"], doc["read_at"]) == (
        "read", now, now + HOUR, now + 2 * HOUR)
    # Before the worker stored the SID: the callback adopts it, with its status; the worker's
    # own write then finds the message moved on.
    repos.messages.insert(outbound("early"), now)
    repos.messages.start_sending("early", now=now)
    assert repos.messages.apply_status("SMearly", "delivered", None, now + HOUR, message_id="early")
    assert not repos.messages.mark_sent("early", sid="SMearly", now=now + 2 * HOUR)
    early = stored(repos, "messages", "early")
    assert early is not None and (early["state"], early["twilio_sid"], early["sent_at"], early["delivered_at"]) == (
        "delivered", "SMearly", now + HOUR, now + HOUR)
    assert repos.messages.by_sid("SMearly") is not None
    # An uncertain send (its answer lost) is adopted the same way, even by a failure.
    repos.messages.insert(outbound("lost"), now)
    repos.messages.start_sending("lost", now=now)
    repos.messages.mark_uncertain("lost", reason="no answer from Twilio", now=now)
    assert repos.messages.apply_status("SMlost", "undelivered", 63016, now + HOUR, message_id="lost")
    lost = repos.messages.get("lost")
    assert lost is not None and (lost.state, lost.twilio_sid, lost.error_code) == (M.UNDELIVERED, "SMlost", 63016)
    # Never a message that holds another SID, nor one Twilio does not have (ready, cancelled).
    assert not repos.messages.apply_status("SMother", "delivered", None, now, message_id="c1:ct1:0")
    repos.messages.insert(outbound("ready"), now)
    assert not repos.messages.apply_status("SMready", "delivered", None, now, message_id="ready")
    assert _state(repos, "ready") == "ready" and repos.messages.by_sid("SMready") is None
    assert not repos.messages.apply_status("SMnobody", "delivered", None, now, message_id="nobody")
    assert not repos.messages.apply_status(SID, "whatever", None, now, message_id="c1:ct1:0")


def test_a_hold_is_kept_only_on_a_ready_message(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(), now)
    assert repos.messages.hold("c1:ct1:0", until=now + HOUR, now=now)
    assert repos.messages.get("c1:ct1:0").not_before == now + HOUR  # type: ignore[union-attr]
    repos.messages.start_sending("c1:ct1:0", now=now)
    assert not repos.messages.hold("c1:ct1:0", until=now + 2 * HOUR, now=now)
    assert not repos.messages.hold("nope", until=now, now=now)


def test_the_scans_of_stuck_and_stranded_messages_and_their_claims(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    for message_id in ("stuck", "ready", "held", "alert"):
        repos.messages.insert(outbound(message_id, purpose="alert" if message_id == "alert" else "step",
                                       followup_id=None if message_id == "alert" else "c1:ct1"), now)
    repos.messages.start_sending("stuck", now=now)
    repos.messages.hold("held", until=now + 2 * HOUR, now=now)
    later = now + HOUR
    assert repos.messages.stale(M.SENDING, now, 10) == []
    assert repos.messages.stale(M.SENDING, later, 10) == ["stuck"]
    assert sorted(m.id for m in repos.messages.stranded_ready(later, 10)) == ["alert", "ready"]
    assert len(repos.messages.stranded_ready(later, 1)) == 1
    (ready,) = [m for m in repos.messages.stranded_ready(later, 10) if m.id == "ready"]
    assert (ready.followup_id, ready.step, ready.resend_of) == ("c1:ct1", 0, None)
    assert repos.messages.claim_requeue("ready", before=later, now=later)
    assert not repos.messages.claim_requeue("ready", before=later, now=later)  # once per period
    assert [m.id for m in repos.messages.stranded_ready(later, 10)] == ["alert"]
    assert repos.messages.claim_requeue("ready", before=later + HOUR, now=later + HOUR)
    assert not repos.messages.claim_requeue("stuck", before=later, now=later)  # not ready
    # Step drafts looked at by the dead-draft check, once per recheck period.
    assert sorted(m.id for m in repos.messages.unchecked_drafts(before=later, recheck_before=later, limit=10)) == [
        "held", "ready"]
    repos.messages.mark_checked("ready", now=later)
    assert [m.id for m in repos.messages.unchecked_drafts(before=later, recheck_before=later, limit=10)] == ["held"]
    assert len(repos.messages.unchecked_drafts(before=later, recheck_before=later + HOUR, limit=10)) == 2
    assert len(repos.messages.unchecked_drafts(before=later, recheck_before=later + HOUR, limit=1)) == 1


def test_the_ready_sweep_counts_from_the_latest_of_ready_hold_and_requeue(repos: Repositories,
                                                                          clock: FakeClock) -> None:
    """What the scan's one date (MongoDB's requeue_from) must follow: every write of one of the three."""
    now = clock.now()
    repos.messages.insert(outbound("m", not_before=now + 2 * HOUR), now)  # held from the start
    assert repos.messages.stranded_ready(now + HOUR, 10) == []
    assert repos.messages.hold("m", until=now + timedelta(minutes=30), now=now)  # a shorter hold
    assert [m.id for m in repos.messages.stranded_ready(now + HOUR, 10)] == ["m"]
    assert repos.messages.claim_requeue("m", before=now + HOUR, now=now + HOUR)
    assert repos.messages.stranded_ready(now + HOUR, 10) == []
    assert repos.messages.start_sending("m", now=now + HOUR)
    assert repos.messages.retry_later("m", error_code=None, now=now + 3 * HOUR)  # ready again
    assert repos.messages.stranded_ready(now + 2 * HOUR, 10) == []
    assert [m.id for m in repos.messages.stranded_ready(now + 4 * HOUR, 10)] == ["m"]


def test_a_message_ready_again_is_checked_again_after_the_stale_delay(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("m"), now)
    repos.messages.mark_checked("m", now=now + HOUR)
    assert repos.messages.unchecked_drafts(before=now + 2 * HOUR, recheck_before=now + HOUR, limit=10) == []
    repos.messages.start_sending("m", now=now + 2 * HOUR)
    repos.messages.retry_later("m", error_code=None, now=now + 2 * HOUR)
    # Not stale yet in its new stay, whatever its last check...
    assert repos.messages.unchecked_drafts(before=now + 2 * HOUR, recheck_before=now + 3 * HOUR, limit=10) == []
    # ...then checked as a new draft: its earlier check forgotten.
    assert [m.id for m in repos.messages.unchecked_drafts(before=now + 3 * HOUR, recheck_before=now,
                                                         limit=10)] == ["m"]
    repos.messages.insert(outbound("reply", purpose="reply", followup_id=None), now)
    assert [m.id for m in repos.messages.unchecked_drafts(before=now + 3 * HOUR, recheck_before=now,
                                                         limit=10)] == ["m"]  # no follow-up: not a draft


def test_ready_messages_stored_before_the_sweeps_date_are_found(repos: Repositories, clock: FakeClock) -> None:
    """A ready message an earlier version stored (no requeue_from) is swept once the processes start."""
    now = clock.now()
    for key, extra in (("old", {}), ("held", {"not_before": now + 2 * HOUR}), ("requeued", {"requeued_at": now})):
        plant(repos, "messages", {"_id": key, "direction": "outbound", "state": "ready", "followup_id": None,
                                  "purpose": "alert", "step": 0, "state_changed_at": now - HOUR, **extra})
    repos.ensure_indexes()
    assert [m.id for m in repos.messages.stranded_ready(now - timedelta(minutes=30), 10)] == ["old"]
    assert sorted(m.id for m in repos.messages.stranded_ready(now + timedelta(minutes=1), 10)) == ["old", "requeued"]
    assert sorted(m.id for m in repos.messages.stranded_ready(now + 3 * HOUR, 10)) == ["held", "old", "requeued"]


def test_a_status_poll_stops_with_its_send_given_up_on(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _sent(repos, now, "late")
    after, give_up, every = timedelta(minutes=10), timedelta(hours=48), timedelta(minutes=15)
    last = now + give_up - timedelta(minutes=1)  # the last poll, just inside the window
    assert repos.messages.claim_status_poll("late", recheck_before=last - every, now=last)
    soon = now + give_up + timedelta(minutes=20)  # due again, but its send is past the give-up
    assert repos.messages.awaiting_status(now=soon, after=after, recheck_before=soon - every, give_up=give_up,
                                          limit=10) == []


def test_uncertain_and_sent_messages_are_asked_about_once_per_period(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("lost"), now)
    repos.messages.start_sending("lost", now=now)
    repos.messages.mark_uncertain("lost", reason="stuck in sending", now=now)
    assert repos.messages.uncertain_to_reconcile(now, 10) == ["lost"]
    assert repos.messages.claim_reconcile("lost", asked_before=now, now=now)
    assert not repos.messages.claim_reconcile("lost", asked_before=now, now=now)
    assert repos.messages.uncertain_to_reconcile(now, 10) == []
    assert repos.messages.uncertain_to_reconcile(now + HOUR, 10) == ["lost"]
    # Sent long enough ago for a poll, and not given up on.
    _sent(repos, now, "quiet", sid="SM" + "2" * 32)
    after, give_up = timedelta(minutes=10), timedelta(hours=48)
    assert repos.messages.awaiting_status(now=now + timedelta(minutes=5), after=after, recheck_before=now,
                                          give_up=give_up, limit=10) == []
    poll = now + timedelta(minutes=11)
    assert repos.messages.awaiting_status(now=poll, after=after, recheck_before=poll, give_up=give_up,
                                          limit=10) == ["quiet"]
    assert repos.messages.claim_status_poll("quiet", recheck_before=poll, now=poll)
    assert not repos.messages.claim_status_poll("quiet", recheck_before=poll, now=poll)
    assert repos.messages.awaiting_status(now=poll, after=after, recheck_before=poll, give_up=give_up, limit=10) == []
    assert repos.messages.awaiting_status(now=now + 49 * HOUR, after=after, recheck_before=now + 49 * HOUR,
                                          give_up=give_up, limit=10) == []  # given up
    assert not repos.messages.claim_status_poll("lost", recheck_before=poll, now=poll)  # not sent


def test_what_counts_for_a_contacts_pacing_and_reply_limit(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _sent(repos, now, "step")
    repos.messages.insert(outbound("ready"), now)
    repos.messages.insert(outbound("old", step=1), now - 40 * 24 * HOUR)
    repos.messages.start_sending("old", now=now - 40 * 24 * HOUR)
    _sent(repos, now, "reply", sid="SM" + "3" * 32, purpose="reply", followup_id=None, step=-1)
    paced = (M.SENDING, M.UNCERTAIN, M.SENT, M.DELIVERED, M.READ)
    assert repos.messages.send_times("ct1", states=paced, created_since=now - HOUR) == [now]  # the step only
    assert len(repos.messages.send_times("ct1", states=paced, created_since=now - 50 * 24 * HOUR)) == 2
    assert repos.messages.send_times("ct2", states=paced, created_since=now - HOUR) == []
    # The message and the contact's send times in one read; a message older than the bound, or
    # another contact's, is still found (by id).
    found, times = repos.messages.get_with_send_times("ready", "ct1", states=paced, created_since=now - HOUR)
    assert found is not None and found.id == "ready" and found.state == M.READY and times == [now]
    found, times = repos.messages.get_with_send_times("old", "ct1", states=paced, created_since=now - HOUR)
    assert found is not None and found.id == "old" and times == [now]
    found, times = repos.messages.get_with_send_times("ready", "ct2", states=paced, created_since=now - HOUR)
    assert found is not None and found.id == "ready" and times == []
    assert repos.messages.get_with_send_times("nope", "ct1", states=paced, created_since=now - HOUR) == (None, [now])
    assert repos.messages.count_replies_since("ct1", now - HOUR, besides="x") == 1
    assert repos.messages.count_replies_since("ct1", now - HOUR, besides="reply") == 0
    assert repos.messages.count_replies_since("ct1", now + HOUR, besides="x") == 0


def test_a_conversation_is_its_latest_messages_with_a_text_oldest_first(repos: Repositories,
                                                                        clock: FakeClock) -> None:
    now = clock.now()
    for n in range(4):
        repos.messages.insert(outbound(f"m{n}", body=f"message {n}"), now + n * HOUR)
    repos.messages.insert_inbound(_inbound("in:SMa", body="réponse"), now + 5 * HOUR)
    repos.messages.insert_inbound(_inbound("in:SMb", body="", num_media=1), now + 6 * HOUR)
    entries = repos.messages.conversation("ct1", limit=3)
    assert [(e.direction, e.body, e.at) for e in entries] == [
        ("outbound", "message 3", now + 3 * HOUR), ("inbound", "réponse", now + 5 * HOUR)]
    assert len(repos.messages.conversation("ct1")) == 5 and repos.messages.conversation("ct2") == []


def test_an_inbound_message_is_stored_once_with_what_was_made_of_it(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    record = _inbound("in:SMa", body="Je paie vendredi", followup_ids=["c1:ct1"])
    assert repos.messages.insert_inbound(record, now)
    assert not repos.messages.insert_inbound(_inbound("in:SMa", body="again", followup_ids=[]), now)
    assert repos.messages.linked_followups("in:SMa") == ["c1:ct1"] and repos.messages.linked_followups("x") == []
    assert repos.messages.get("in:SMa") is None  # not an outbound message
    repos.messages.set_classification("in:SMa", {"intent": "promise_to_pay", "confidence": 0.9, "source": "test"})
    repos.messages.set_outcome("in:SMa", "promise_to_pay until=2026-03-06 paused=1")
    (shown,) = repos.messages.summaries_of_contact("ct1")
    assert (shown.direction, shown.state, shown.body, shown.created_at) == ("inbound", "received", "Je paie vendredi",
                                                                            now)
    assert shown.classification == {"intent": "promise_to_pay", "confidence": 0.9, "source": "test"}
    assert shown.outcome == "promise_to_pay until=2026-03-06 paused=1"
    assert [m.id for m in repos.messages.answered_inbound()] == ["in:SMa"]


def test_messages_from_unknown_numbers_until_a_person_handles_them(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    stranger, other = "+33655555555", "+33666666666"
    repos.messages.insert_inbound(_inbound("in:SM1", contact_id=None, sender=stranger, body="Qui ?"), now)
    repos.messages.insert_inbound(_inbound("in:SM2", contact_id=None, sender=other, body="?"), now + HOUR)
    repos.messages.insert_inbound(_inbound("in:SM3", contact_id=None, sender=stranger, body="Allô"), now + 2 * HOUR)
    repos.messages.insert_inbound(_inbound("in:SM4", body="known"), now)
    assert [m.id for m in repos.messages.from_unknown(stranger)] == ["in:SM1", "in:SM3"]
    assert [m.sender for m in repos.messages.newest_from_unknown(10)] == [stranger, other, stranger]
    assert [m.id for m in repos.messages.newest_from_unknown(1)] == ["in:SM3"]
    assert repos.messages.has_unknown(stranger) and not repos.messages.has_unknown("+33677777777")
    assert sorted(repos.messages.open_unknown_ids(stranger)) == ["in:SM1", "in:SM3"]
    assert repos.messages.mark_handled(repos.messages.open_unknown_ids(stranger), now + 3 * HOUR) == 2
    assert repos.messages.open_unknown_ids(stranger) == [] and repos.messages.has_unknown(stranger)
    assert repos.messages.newest_from_unknown(10)[0].handled_at == now + 3 * HOUR
    assert repos.messages.answered_inbound() == []  # none was read


def test_what_the_demo_and_the_status_command_show(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    _sent(repos, now, "c1:ct1:0")
    repos.messages.apply_status(SID, "delivered", None, now)
    _sent(repos, now + 2 * HOUR, "reply:SMx", sid="SM" + "4" * 32, purpose="reply", followup_id=None, step=-1)
    repos.messages.insert(outbound("c1:ct2:0", contact_id="ct2", followup_id="c1:ct2"), now + HOUR)
    repos.messages.insert_inbound(_inbound("in:SMy", body="STOP"), now)
    repos.messages.set_outcome("in:SMy", "opt_out stopped=1")
    assert [m.id for m in repos.messages.sent_after("ct1", now + HOUR)] == ["reply:SMx"]
    assert [m.id for m in repos.messages.sent_after("ct1", now - HOUR)] == ["c1:ct1:0", "reply:SMx"]
    assert [m.id for m in repos.messages.first_outbound(2)] == ["c1:ct1:0", "c1:ct2:0"]
    assert [m.id for m in repos.messages.answered_inbound()] == ["in:SMy"]  # an opt-out counts as read
    assert repos.messages.count(purpose="step", step=0, states=[M.DELIVERED, M.READ]) == 1
    assert repos.messages.count(purpose="step") == 2 and repos.messages.count() == 4
    assert repos.messages.count_by_state() == {"delivered": 1, "sent": 1, "ready": 1}
    assert repos.messages.count_steps_by_state() == {("delivered", 0): 1, ("ready", 0): 1}  # not the reply


def test_outbound_messages_come_in_pages_by_id_filtered(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    for message_id, campaign, contact in (("c1:ct1:0", "c1", "ct1"), ("c1:ct2:0", "c1", "ct2"),
                                          ("c2:ct1:0", "c2", "ct1")):
        assert repos.messages.insert(outbound(message_id, campaign_id=campaign, contact_id=contact), now)
    _sent(repos, now, "c2:ct2:0", campaign_id="c2", contact_id="ct2")
    assert repos.messages.insert_inbound(_inbound("in:SMx"), now)  # never listed: not outbound
    assert [m.id for m in repos.messages.page(limit=10)] == ["c1:ct1:0", "c1:ct2:0", "c2:ct1:0", "c2:ct2:0"]
    assert [m.id for m in repos.messages.page(after="c1:ct2:0", limit=1)] == ["c2:ct1:0"]
    assert [m.id for m in repos.messages.page(campaign_id="c1", contact_id="ct2")] == ["c1:ct2:0"]
    assert [m.id for m in repos.messages.page(state=M.SENT)] == ["c2:ct2:0"]
    assert [m.id for m in repos.messages.page(contact_id="ct1", state=M.READY)] == ["c1:ct1:0", "c2:ct1:0"]
    assert repos.messages.page(campaign_id="nope") == []
