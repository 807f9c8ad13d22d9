"""Drafts waiting for approval: approved or rejected once, edited only while waiting, cancelled as any
draft, scanned for a closed 24-hour window, listed by id; never seen by the sending scans."""

from __future__ import annotations

from datetime import timedelta

from shared.clock import FakeClock
from shared.domain.reasons import CancelReason
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState
from tests.contract.conftest import HOUR, outbound, stored

M = MessageState
WAITING = {"state": MessageState.AWAITING_APPROVAL}


def _state(repos: Repositories, message_id: str) -> str:
    message = repos.messages.get(message_id)
    assert message is not None
    return message.state.value


def test_a_waiting_draft_is_approved_once_and_only_while_waiting(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.messages.insert(outbound(**WAITING), now)
    assert not repos.messages.start_sending("c1:ct1:0", now=now)  # never sent before its approval
    assert repos.messages.approve("c1:ct1:0", by="key:ops", now=now + HOUR)
    assert not repos.messages.approve("c1:ct1:0", by="user:b@example.com", now=now + HOUR)  # the second loses
    approved = repos.messages.get("c1:ct1:0")
    assert approved is not None and (approved.state, approved.approved_by, approved.approved_at) == (
        M.READY, "key:ops", now + HOUR)
    assert not repos.messages.reject("c1:ct1:0", by="key:ops", reason="late", now=now)  # approved: not rejected
    assert repos.messages.start_sending("c1:ct1:0", now=now + HOUR)
    repos.messages.insert(outbound("plain"), now)
    assert not repos.messages.approve("plain", by="key:ops", now=now)  # a ready draft needs no approval
    assert not repos.messages.approve("nope", by="key:ops", now=now)


def test_a_rejected_draft_keeps_who_and_why(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(**WAITING), now)
    assert repos.messages.reject("c1:ct1:0", by="user:a@example.com", reason="wrong tone", now=now)
    assert not repos.messages.reject("c1:ct1:0", by="user:a@example.com", reason="again", now=now)
    assert not repos.messages.approve("c1:ct1:0", by="key:ops", now=now)
    rejected = repos.messages.get("c1:ct1:0")
    assert rejected is not None and (rejected.state, rejected.rejected_by, rejected.rejection_reason) == (
        M.CANCELLED, "user:a@example.com", "wrong tone")
    assert stored(repos, "messages", "c1:ct1:0")["cancel_reason"] == "rejected"  # type: ignore[index]


def test_a_cancelled_draft_is_drafted_again_for_approval(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(**WAITING), now)
    assert repos.messages.cancel("c1:ct1:0", reason=CancelReason.PAUSED_PROMISE_TO_PAY, now=now)
    assert repos.messages.redraft(outbound(body="v2", **WAITING), now + HOUR)
    assert not repos.messages.redraft(outbound(body="v3", **WAITING), now + HOUR)
    again = repos.messages.get("c1:ct1:0")
    assert again is not None and (again.state, again.body, again.approved_by) == (M.AWAITING_APPROVAL, "v2", None)


def test_a_stop_or_a_pause_cancels_waiting_drafts_as_ready_ones(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("c1:ct1:0", **WAITING), now)
    repos.messages.insert(outbound("c2:ct1:0", followup_id="c2:ct1", campaign_id="c2", **WAITING), now)
    repos.messages.insert(outbound("c1:ct2:0", contact_id="ct2", followup_id="c1:ct2", **WAITING), now)
    repos.messages.insert(outbound("c3:ct3:0", contact_id="ct3", followup_id="c3:ct3", campaign_id="c3",
                                   **WAITING), now)
    assert repos.messages.cancel_ready_of_followup("c1:ct1", reason=CancelReason.SEND_FAILED, now=now) == 1
    assert repos.messages.cancel_ready_steps("ct1", reason=CancelReason.OPT_OUT, now=now) == 1
    assert repos.messages.cancel_ready_drafts_of_campaign("c1", reason=CancelReason.PAUSED_CAMPAIGN_PAUSED,
                                                          now=now) == 1
    assert {m: _state(repos, m) for m in ("c1:ct1:0", "c2:ct1:0", "c1:ct2:0", "c3:ct3:0")} == {
        "c1:ct1:0": "cancelled", "c2:ct1:0": "cancelled", "c1:ct2:0": "cancelled", "c3:ct3:0": "awaiting_approval"}


def test_the_sending_scans_never_see_a_waiting_draft(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(**WAITING), now)
    later = now + timedelta(days=3)
    assert repos.messages.stranded_ready(later, 10) == []
    assert repos.messages.unchecked_drafts(before=later, recheck_before=later, limit=10) == []
    assert not repos.messages.claim_requeue("c1:ct1:0", before=later, now=later)


def test_waiting_drafts_are_listed_by_id(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    for n in (3, 1, 2):
        repos.messages.insert(outbound(f"c1:ct{n}:0", contact_id=f"ct{n}", followup_id=f"c1:ct{n}", **WAITING), now)
    repos.messages.insert(outbound("c1:ct0:0", contact_id="ct0", followup_id="c1:ct0"), now)  # ready: not listed
    first = repos.messages.awaiting_approval(after=None, limit=2)
    assert [m.id for m in first] == ["c1:ct1:0", "c1:ct2:0"] and first[0].state == M.AWAITING_APPROVAL
    assert [m.id for m in repos.messages.awaiting_approval(after="c1:ct2:0", limit=2)] == ["c1:ct3:0"]


def test_an_edit_changes_only_a_waiting_freeform_draft(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(**WAITING), now)
    repos.messages.insert(outbound("tpl", kind="template", content_sid="HX" + "a" * 32, **WAITING), now)
    assert repos.messages.edit_draft("c1:ct1:0", body="Bonjour Marie", by="key:ops", now=now + HOUR)
    edited = repos.messages.get("c1:ct1:0")
    assert edited is not None and (edited.body, edited.edited_by, edited.edited_at, edited.state) == (
        "Bonjour Marie", "key:ops", now + HOUR, M.AWAITING_APPROVAL)
    assert not repos.messages.edit_draft("tpl", body="x", by="key:ops", now=now)
    repos.messages.approve("c1:ct1:0", by="key:ops", now=now)
    assert not repos.messages.edit_draft("c1:ct1:0", body="after", by="key:ops", now=now)
    assert repos.messages.get("c1:ct1:0").body == "Bonjour Marie"  # type: ignore[union-attr]


def test_a_closed_window_is_found_and_its_draft_replaced_in_place(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound("old", window_closes_at=now - HOUR, **WAITING), now - 2 * HOUR)
    repos.messages.insert(outbound("open", window_closes_at=now + HOUR, **WAITING), now)
    repos.messages.insert(outbound("tpl", kind="template", **WAITING), now)
    repos.messages.insert(outbound("ready", window_closes_at=now - HOUR), now)
    assert repos.messages.window_closed_drafts(now, 10) == ["old"]
    template = outbound("old", kind="template", body="Rappel", content_sid="HX" + "b" * 32,
                        content_variables={"1": "Marie"}, draft_source="template", **WAITING)
    assert not repos.messages.replace_draft(template, body_was="something else", now=now)  # edited meanwhile
    assert repos.messages.replace_draft(template, body_was="Bonjour", now=now)
    assert not repos.messages.replace_draft(template, body_was="Rappel", now=now)  # a template now
    replaced = repos.messages.get("old")
    assert replaced is not None and (replaced.kind, replaced.body, replaced.content_sid, replaced.window_closes_at,
                                     replaced.state) == ("template", "Rappel", "HX" + "b" * 32, None,
                                                         M.AWAITING_APPROVAL)
    assert repos.messages.window_closed_drafts(now, 10) == []


def test_an_approved_draft_held_past_its_window_goes_back_to_approval_as_the_template(
        repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.messages.insert(outbound(window_closes_at=now + HOUR, **WAITING), now)
    template = outbound(kind="template", body="Rappel", content_sid="HX" + "b" * 32, content_variables={"1": "Marie"},
                        draft_source="template")
    assert not repos.messages.return_for_approval(template, now=now)  # waiting, not approved: nothing to return
    assert repos.messages.approve("c1:ct1:0", by="key:ops", now=now)
    assert repos.messages.hold("c1:ct1:0", until=now + 2 * HOUR, now=now)
    assert repos.messages.return_for_approval(template, now=now + HOUR)
    assert not repos.messages.return_for_approval(template, now=now + HOUR)  # once
    back = repos.messages.get("c1:ct1:0")
    assert back is not None and (back.state, back.kind, back.body, back.content_sid, back.content_variables,
                                 back.window_closes_at, back.approved_by, back.approved_at, back.not_before) == (
        M.AWAITING_APPROVAL, "template", "Rappel", "HX" + "b" * 32, {"1": "Marie"}, None, None, None, None)
    assert not repos.messages.start_sending("c1:ct1:0", now=now + HOUR)  # sent only once approved again
    assert [w.id for w in repos.messages.awaiting_approval(after=None, limit=10)] == ["c1:ct1:0"]
    repos.messages.insert(outbound("sending"), now)
    assert repos.messages.start_sending("sending", now=now)
    assert not repos.messages.return_for_approval(outbound("sending", kind="template"), now=now)  # maybe at Twilio
