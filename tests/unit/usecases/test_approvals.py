"""Approvals on the in-memory repositories: a draft of a campaign with ``approval: required`` waits for
a person, goes out once approved (once, however often approved), never when rejected; edits pass the
facts check; a window closing while it waits redrafts it as the template; a STOP or a pause cancels it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from shared.campaign_files import load_campaign
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import (
    Campaign,
    EnrolRule,
    FollowUp,
    InvoiceSelector,
    Language,
    OutboundMessage,
    SendWindow,
    Step,
    TemplateRef,
)
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.states import FollowUpState, MessageState
from shared.errors import InputError, NotFound
from shared.fakes import FakeSender, RecordingQueue
from shared.usecases import approvals
from shared.usecases.approvals import NotWaiting, WindowClosed
from shared.usecases.campaigns import enrol_campaign, pause_campaign, resume_campaign
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.invoices import record_payment
from shared.usecases.replies import process_inbound
from shared.usecases.scheduling import tick
from tests.support.actors import drain
from tests.unit.usecases.sending_world import ALWAYS, FOLLOWUP_ID, PHONE, with_marie

DRAFT = "c1:ct1:0"
TEMPLATE = TemplateRef(content_sid="HX" + "a" * 32, variables={"1": "name", "2": "invoice_number"},
                       preview={Language.FR: "Bonjour {{1}}, la facture {{2}} reste à régler."})
BY = "key:ops"


def world(clock: FakeClock, *, approval: str = "required", steps: list[Step] | None = None,
          wrote: timedelta = timedelta(hours=1), window: SendWindow = ALWAYS, min_gap: timedelta = timedelta(0)
          ) -> App:
    """Marie (she wrote an hour ago: freeform drafts), enrolled in a two-step campaign that wants approval;
    step 0 has a template, step 1 none."""
    app = with_marie(clock, min_gap=min_gap, wrote=wrote)
    store, now = app.store, clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=window, approval=approval,  # type: ignore[arg-type]
                                    steps=steps or [Step(delay="0s", template=TEMPLATE),
                                                    Step(delay="2d", anchor="previous")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    return app


def queue(app: App) -> RecordingQueue:
    assert isinstance(app.queue, RecordingQueue)
    return app.queue


def twilio(app: App) -> FakeSender:
    assert isinstance(app.sender, FakeSender)
    return app.sender


def followup(app: App) -> FollowUp:
    found = app.store.followups.get(FOLLOWUP_ID)
    assert found is not None
    return found


def message(app: App, message_id: str = DRAFT) -> OutboundMessage:
    found = app.store.messages.get(message_id)
    assert found is not None, message_id
    return found


def drafted(app: App) -> OutboundMessage:
    """Step 0 claimed by the scheduler and drafted, as the workers would."""
    tick(app.store, app.queue, app.clock)
    drain(app)
    return message(app)


def sweep(app: App, clock: FakeClock, after: timedelta) -> None:
    """Time passes; the scheduler sweeps (stale delay 5 minutes) and the workers run what it enqueued."""
    clock.advance(after)
    tick(app.store, app.queue, clock, stale_after=timedelta(minutes=5))
    drain(app)


# ------------------------------------------------------------------ waiting
def test_a_draft_waits_for_approval_and_no_sweep_sends_redrafts_or_loses_it(clock: FakeClock) -> None:
    app = world(clock)
    draft = drafted(app)
    assert (draft.state, draft.kind, draft.window_closes_at) == (
        MessageState.AWAITING_APPROVAL, "freeform", clock.now() - timedelta(hours=1) + timedelta(hours=24))
    assert followup(app).state == FollowUpState.AWAITING_SEND
    assert queue(app).sends == [] and twilio(app).sent == []
    for _ in range(6):  # an hour of sweeps: every reconciling step runs
        sweep(app, clock, timedelta(minutes=10))
    assert message(app).state == MessageState.AWAITING_APPROVAL and message(app).body == draft.body
    assert twilio(app).sent == [] and followup(app).state == FollowUpState.AWAITING_SEND
    assert app.store.messages.count(purpose="step") == 1
    # A send asked for by mistake (a stale dramatiq message) sends nothing either.
    from shared.usecases.sending import send_message
    assert send_message(app, DRAFT) is None and twilio(app).sent == []


def test_an_auto_campaign_sends_at_once_as_before(clock: FakeClock) -> None:
    app = world(clock, approval="auto")
    assert drafted(app).state == MessageState.SENT
    assert len(twilio(app).sent) == 1


def test_a_draft_drafted_again_for_a_redelivery_still_waits(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    assert app.store.followups.draft_again(FOLLOWUP_ID, step=0, now=clock.now())  # as the scheduler's healing
    assert draft_followup(app, FOLLOWUP_ID, 0) == DRAFT
    drain(app)
    assert message(app).state == MessageState.AWAITING_APPROVAL and twilio(app).sent == []


# ------------------------------------------------------------------ approving
def test_an_approved_draft_goes_out_once_and_the_followup_moves_on(clock: FakeClock) -> None:
    app = world(clock)
    draft = drafted(app)
    decision = approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    assert (decision.message.state, decision.message.approved_by) == (MessageState.READY, BY)
    assert queue(app).sends == [(DRAFT, 0)] and queue(app).send_contacts[DRAFT] == "ct1"
    with pytest.raises(NotWaiting):
        approvals.approve(app.store, app.queue, DRAFT, by="user:b@example.com", now=clock.now())
    drain(app)
    assert [request.body for request in twilio(app).sent] == [draft.body]
    assert message(app).state == MessageState.SENT
    assert (followup(app).state, followup(app).step) == (FollowUpState.SCHEDULED, 1)


def test_two_approvals_at_once_send_once(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    # Both read it waiting; only one conditional update wins.
    first = app.store.messages.approve(DRAFT, by="user:a@example.com", now=clock.now())
    with pytest.raises(NotWaiting):
        approvals.approve(app.store, app.queue, DRAFT, by="user:b@example.com", now=clock.now())
    assert first
    app.queue.send_message(DRAFT, contact_id="ct1")
    app.queue.send_message(DRAFT, contact_id="ct1")  # even asked twice
    drain(app)
    assert len(twilio(app).sent) == 1 and message(app).approved_by == "user:a@example.com"


def test_approval_of_unknown_or_settled_drafts_is_a_clear_error(clock: FakeClock) -> None:
    app = world(clock)
    with pytest.raises(NotFound, match="no draft 'nope'"):
        approvals.approve(app.store, app.queue, "nope", by=BY, now=clock.now())
    drafted(app)
    approvals.reject(app.store, DRAFT, reason="tone", by=BY, now=clock.now())
    with pytest.raises(NotWaiting, match="not waiting for approval \\(it is cancelled\\)"):
        approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    with pytest.raises(InputError, match="who acts"):
        approvals.approve(app.store, app.queue, DRAFT, by=" ", now=clock.now())


# ------------------------------------------------------------------ editing
def test_an_edit_passes_the_facts_check_or_changes_nothing(clock: FakeClock) -> None:
    app = world(clock)
    draft = drafted(app)
    with pytest.raises(InputError, match=r"facts check.*990"):
        approvals.edit(app.store, app.rules, DRAFT, "Bonjour Marie, merci de régler 990 EUR.", by=BY,
                       now=clock.now())
    with pytest.raises(InputError, match="facts check"):
        approvals.edit(app.store, app.rules, DRAFT, "Bonjour Marie, nous vous accordons une remise de 10 %.",
                       by=BY, now=clock.now())
    assert message(app).body == draft.body and message(app).edited_by is None
    text = "Bonjour Marie, la facture FA-2026-001 de 1250,50 EUR reste à régler : https://pay.example.com/i/1"
    decision = approvals.edit(app.store, app.rules, DRAFT, text, by="user:a@example.com", now=clock.now())
    assert (decision.message.body, decision.message.edited_by, decision.message.state) == (
        text, "user:a@example.com", MessageState.AWAITING_APPROVAL)
    assert queue(app).sends == []
    approvals.edit(app.store, app.rules, DRAFT, text + " Merci.", by=BY, now=clock.now(), then_approve=True,
                   queue=app.queue)
    drain(app)
    assert [request.body for request in twilio(app).sent] == [text + " Merci."]


def test_an_empty_long_or_template_edit_is_refused(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    with pytest.raises(InputError, match="empty"):
        approvals.edit(app.store, app.rules, DRAFT, "  ", by=BY, now=clock.now())
    with pytest.raises(InputError, match="at most 700"):
        approvals.edit(app.store, app.rules, DRAFT, "a" * 701, by=BY, now=clock.now())
    app = world(clock, wrote=timedelta(days=2))  # no window: the template
    assert drafted(app).kind == "template"
    with pytest.raises(InputError, match="template"):
        approvals.edit(app.store, app.rules, DRAFT, "Bonjour", by=BY, now=clock.now())


# ------------------------------------------------------------------ rejecting
def test_a_rejected_draft_never_goes_out_and_the_followup_moves_to_its_next_step(clock: FakeClock) -> None:
    app = world(clock, steps=[Step(delay="0s", template=TEMPLATE), Step(delay="2d", anchor="previous",
                                                                         template=TEMPLATE)])
    drafted(app)
    with pytest.raises(InputError, match="reason"):
        approvals.reject(app.store, DRAFT, reason="  ", by=BY, now=clock.now())
    decision = approvals.reject(app.store, DRAFT, reason="  wrong   tone ", by="user:a@example.com", now=clock.now())
    assert decision.followup_state == FollowUpState.SCHEDULED
    rejected = message(app)
    assert (rejected.state, rejected.rejected_by, rejected.rejection_reason) == (
        MessageState.CANCELLED, "user:a@example.com", "wrong tone")
    assert (followup(app).step, followup(app).next_run_at) == (1, clock.now() + timedelta(days=2))
    for _ in range(3):
        sweep(app, clock, timedelta(minutes=10))
    assert twilio(app).sent == [] and message(app).state == MessageState.CANCELLED
    # Step 1 is drafted when due, and waits too.
    sweep(app, clock, timedelta(days=2))
    assert message(app, "c1:ct1:1").state == MessageState.AWAITING_APPROVAL and twilio(app).sent == []
    last = approvals.reject(app.store, "c1:ct1:1", reason="no", by=BY, now=clock.now())
    assert last.followup_state == FollowUpState.COMPLETED and followup(app).state == FollowUpState.COMPLETED


def test_a_rejection_whose_followup_was_not_moved_is_moved_by_the_scheduler(clock: FakeClock) -> None:
    """The console died between the rejection and the follow-up's move: the rejected step is not drafted again."""
    app = world(clock)
    drafted(app)
    assert app.store.messages.reject(DRAFT, by=BY, reason="no", now=clock.now())
    sweep(app, clock, timedelta(minutes=10))
    assert (followup(app).state, followup(app).step) == (FollowUpState.SCHEDULED, 1)
    assert message(app).state == MessageState.CANCELLED and message(app).rejection_reason == "no"
    assert draft_followup(app, FOLLOWUP_ID, 0) is None and message(app).state == MessageState.CANCELLED


# ------------------------------------------------------------------ in bulk
def test_bulk_reports_each_id(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    with pytest.raises(InputError, match="reason"):
        approvals.bulk(app.store, app.queue, "reject", [DRAFT], by=BY, now=clock.now())
    with pytest.raises(InputError, match="no draft ids"):
        approvals.bulk(app.store, app.queue, "approve", [" "], by=BY, now=clock.now())
    done = approvals.bulk(app.store, app.queue, "approve", [DRAFT, "nope", DRAFT], by=BY, now=clock.now())
    assert [(item.id, item.outcome) for item in done] == [(DRAFT, "done"), ("nope", "unknown")]
    again = approvals.bulk(app.store, app.queue, "reject", [DRAFT], by=BY, now=clock.now(), reason="late")
    assert [(item.id, item.outcome) for item in again] == [(DRAFT, "not_waiting")]
    drain(app)
    assert len(twilio(app).sent) == 1


# ------------------------------------------------------------------ the 24-hour window
def test_a_window_closing_while_it_waits_redrafts_it_as_the_template(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    sweep(app, clock, timedelta(hours=22))
    assert message(app).kind == "freeform"  # still inside the window
    sweep(app, clock, timedelta(hours=1, minutes=1))
    template = message(app)
    assert (template.kind, template.state, template.content_sid, template.body) == (
        "template", MessageState.AWAITING_APPROVAL, TEMPLATE.content_sid,
        "Bonjour Marie, la facture FA-2026-001 reste à régler.")
    assert twilio(app).sent == [] and app.store.messages.count(purpose="step") == 1
    approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    drain(app)
    sent = twilio(app).sent
    assert len(sent) == 1 and (sent[0].body, sent[0].content_sid) == (None, TEMPLATE.content_sid)


def _sent_a_minute_ago(app: App, clock: FakeClock) -> None:
    """Another campaign's step went to Marie a minute ago (pacing counts it)."""
    now = clock.now()
    app.store.messages.insert(OutboundMessage(id="c2:ct1:0", followup_id="c2:ct1", contact_id="ct1", campaign_id="c2",
                                              step=0, purpose="step", state=MessageState.READY, kind="freeform",
                                              body="Autre rappel", language=Language.FR), now - timedelta(minutes=1))
    assert app.store.messages.start_sending("c2:ct1:0", now=now - timedelta(minutes=1))
    assert app.store.messages.mark_sent("c2:ct1:0", sid="SM" + "9" * 32, now=now - timedelta(minutes=1))


def test_an_approved_text_held_by_pacing_past_the_window_goes_back_to_approval_as_the_template(
        clock: FakeClock) -> None:
    app = world(clock, wrote=timedelta(hours=23), min_gap=timedelta(hours=2))  # the window closes in an hour
    assert drafted(app).kind == "freeform"
    _sent_a_minute_ago(app, clock)
    approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    drain(app)  # the sending actor: pacing would hold it two hours, past the window
    back = message(app)
    assert (back.state, back.kind, back.content_sid, back.approved_by, back.body) == (
        MessageState.AWAITING_APPROVAL, "template", TEMPLATE.content_sid, None,
        "Bonjour Marie, la facture FA-2026-001 reste à régler.")
    assert followup(app).state == FollowUpState.AWAITING_SEND
    assert [request.to for request in twilio(app).sent] == []
    sweep(app, clock, timedelta(hours=3))
    assert message(app).state == MessageState.AWAITING_APPROVAL and twilio(app).sent == []
    approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    drain(app)
    assert [(r.body, r.content_sid) for r in twilio(app).sent] == [(None, TEMPLATE.content_sid)]


def test_an_approved_text_held_past_the_window_without_template_is_withdrawn(clock: FakeClock) -> None:
    app = world(clock, wrote=timedelta(hours=23), min_gap=timedelta(hours=2), steps=[Step(delay="0s")])
    drafted(app)
    _sent_a_minute_ago(app, clock)
    approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    drain(app)
    assert message(app).state == MessageState.CANCELLED and twilio(app).sent == []
    assert (followup(app).state, followup(app).pause_reason, followup(app).needs_human) == (
        FollowUpState.PAUSED, PauseReason.AWAITING_CUSTOMER_WINDOW, True)


def test_an_approved_text_held_inside_the_window_or_an_auto_campaign_is_held_as_before(clock: FakeClock) -> None:
    for approval, wrote in (("required", timedelta(hours=1)), ("auto", timedelta(hours=23))):
        app = world(clock, approval=approval, wrote=wrote, min_gap=timedelta(hours=2))
        _sent_a_minute_ago(app, clock)
        tick(app.store, app.queue, app.clock)
        drain(app)
        if approval == "required":
            approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
            drain(app)
        held = message(app)
        assert (held.state, held.kind, held.not_before) == (
            MessageState.READY, "freeform", clock.now() + timedelta(hours=2) - timedelta(minutes=1)), approval


def test_a_client_writing_again_keeps_the_freeform_draft(clock: FakeClock) -> None:
    app = world(clock)
    draft = drafted(app)
    clock.advance(timedelta(hours=20))
    app.store.contacts.touch_inbound("ct1", clock.now())
    sweep(app, clock, timedelta(hours=4))
    kept = message(app)
    assert (kept.kind, kept.body, kept.window_closes_at) == ("freeform", draft.body,
                                                             clock.now() - timedelta(hours=4) + timedelta(hours=24))


def test_approval_after_the_window_closed_redrafts_instead_of_sending(clock: FakeClock) -> None:
    """The scheduler has not swept yet: the approval checks the window itself."""
    app = world(clock)
    drafted(app)
    clock.advance(timedelta(hours=24))
    with pytest.raises(WindowClosed, match="template"):
        approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    assert (message(app).kind, message(app).state) == ("template", MessageState.AWAITING_APPROVAL)
    assert queue(app).sends == []


def test_a_step_without_template_is_withdrawn_and_its_followup_paused(clock: FakeClock) -> None:
    app = world(clock, steps=[Step(delay="0s")])
    drafted(app)
    sweep(app, clock, timedelta(hours=24))
    assert message(app).state == MessageState.CANCELLED
    assert (followup(app).state, followup(app).pause_reason, followup(app).needs_human) == (
        FollowUpState.PAUSED, PauseReason.AWAITING_CUSTOMER_WINDOW, True)
    assert twilio(app).sent == []


# ------------------------------------------------------------------ what cancels any draft
def test_a_stop_while_it_waits_cancels_it(clock: FakeClock) -> None:
    app = world(clock)
    draft = drafted(app)
    app.store.events.record("inbound:SMstop", {"kind": "inbound", "sid": "SM" + "5" * 32, "state": "received",
                                               "from": f"whatsapp:{PHONE}", "body": "STOP", "num_media": 0},
                            clock.now())
    process_inbound(app, "inbound:SMstop")
    assert message(app).state == MessageState.CANCELLED
    with pytest.raises(NotWaiting):
        approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    drain(app)
    assert [request for request in twilio(app).sent if request.body == draft.body] == []


def test_a_paused_campaign_cancels_it_and_the_resume_drafts_it_for_approval_again(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    pause_campaign(app.store, "c1", now=clock.now())
    assert message(app).state == MessageState.CANCELLED
    resume_campaign(app.store, "c1", now=clock.now())
    sweep(app, clock, timedelta(seconds=1))
    assert message(app).state == MessageState.AWAITING_APPROVAL and twilio(app).sent == []


def test_an_invoice_change_drafts_a_waiting_reminder_again_not_send_it(clock: FakeClock) -> None:
    """The cancel reason of a withdrawn waiting draft is that of any draft."""
    app = world(clock)
    drafted(app)
    assert app.store.messages.cancel(DRAFT, reason=CancelReason.INVOICES_CHANGED, now=clock.now())
    assert app.store.followups.draft_again(FOLLOWUP_ID, step=0, now=clock.now())
    assert draft_followup(app, FOLLOWUP_ID, 0) == DRAFT
    drain(app)
    assert message(app).state == MessageState.AWAITING_APPROVAL and twilio(app).sent == []


# ------------------------------------------------------------------ listing, campaign files
def test_the_waiting_list_says_who_what_and_since_when(clock: FakeClock) -> None:
    app = world(clock)
    since = clock.now()
    drafted(app)
    page = approvals.list_waiting(app.store)
    assert page.next_after is None and len(page.items) == 1
    item = page.items[0]
    assert (item.id, item.contact_name, item.campaign_name, item.step, item.step_count, item.kind,
            item.waiting_since) == (DRAFT, "Marie", "Relance", 0, 2, "freeform", since)
    approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    assert approvals.list_waiting(app.store).items == []


def test_a_campaign_file_says_approval_required_or_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("id: c\nname: C\napproval: required\nsteps:\n  - delay: 0s\n", encoding="utf-8")
    assert load_campaign(path).needs_approval
    path.write_text("id: c\nname: C\nsteps:\n  - delay: 0s\n", encoding="utf-8")
    assert load_campaign(path).approval == "auto"
    path.write_text("id: c\nname: C\napproval: maybe\nsteps:\n  - delay: 0s\n", encoding="utf-8")
    clear = "c.yaml: approval: Input should be 'auto' or 'required' (got 'maybe')"
    with pytest.raises(InputError, match=re.escape(clear)):
        load_campaign(path)


def _says(app: App, text: str, n: int) -> None:
    """Marie writes ``text``; the replies actor processes it."""
    sid = f"SMfeed{n:028d}"
    app.store.events.record(f"inbound:{sid}", {"kind": "inbound", "sid": sid, "state": "received",
                                               "from": f"whatsapp:{PHONE}", "body": text, "num_media": 0},
                            app.clock.now())
    process_inbound(app, f"inbound:{sid}")


@pytest.mark.parametrize("text", ["Je conteste cette facture, je ne vous dois rien", "J'ai payé hier"])
def test_a_dispute_or_a_claimed_payment_while_it_waits_cancels_it(clock: FakeClock, text: str) -> None:
    """A hand-over (a dispute) or a claim of payment pauses or stops the follow-up, and the waiting draft goes."""
    app = world(clock)
    draft = drafted(app)
    _says(app, text, 1)
    assert message(app).state == MessageState.CANCELLED
    assert followup(app).state in (FollowUpState.PAUSED, FollowUpState.STOPPED)
    with pytest.raises(NotWaiting):
        approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now())
    drain(app)
    assert [request for request in twilio(app).sent if request.body == draft.body] == []


def test_a_payment_while_it_waits_cancels_the_invoice_reminder(clock: FakeClock) -> None:
    app = world(clock)
    now = clock.now()
    app.store.campaigns.create(Campaign(id="inv", name="Factures", send_window=ALWAYS, approval="required",
                                        enrol=EnrolRule(invoices=InvoiceSelector()), steps=[Step(), Step()]), now)
    assert app.store.invoices.add(Invoice(id="in_FA-1", reference="FA-1", contact_id="ct1", amount_cents=12_000,
                                          amount_due_cents=12_000, due_date=now.date() - timedelta(days=5)),
                                  source=InvoiceSource.IMPORT, now=now)
    app.store.followups.stop(FOLLOWUP_ID, reason=StopReason.STOPPED_BY_OWNER, now=now)  # only the invoice campaign
    assert enrol_campaign(app.store, "inv", now=now).enrolled == 1
    tick(app.store, app.queue, clock)
    drain(app)
    assert message(app, "inv:ct1:0").state == MessageState.AWAITING_APPROVAL
    record_payment(app.store, "FA-1", now=clock.now(), queue=app.queue)
    assert message(app, "inv:ct1:0").state == MessageState.CANCELLED
    inv = app.store.followups.get("inv:ct1")
    assert inv is not None and (inv.state, inv.stop_reason) == (FollowUpState.STOPPED, "paid")
    drain(app)
    assert twilio(app).sent == []


def test_each_decision_is_in_the_audit_log_without_the_text(clock: FakeClock) -> None:
    app = world(clock)
    draft = drafted(app)
    text = "Bonjour Marie, la facture FA-2026-001 reste à régler."
    approvals.edit(app.store, app.rules, DRAFT, text, by="user:a@example.com", now=clock.now())
    clock.advance(timedelta(seconds=1))
    approvals.reject(app.store, DRAFT, reason="appeler plutôt le +33612345678", by="key:ops", now=clock.now())
    entries = app.store.audit.for_contact("ct1", 10)
    assert [(e.by, e.action, e.target) for e in entries] == [
        ("key:ops", "approval.reject", DRAFT), ("user:a@example.com", "approval.edit", DRAFT)]
    assert entries[0].detail is not None and "+33612345678" not in entries[0].detail
    assert all(text not in (e.detail or "") and draft.body not in (e.detail or "") for e in entries)


@pytest.mark.parametrize(("wrote_hours_ago", "approved"), [(11.5, False), (10, True)])
def test_a_window_closing_before_the_send_window_opens_redrafts_at_approval(wrote_hours_ago: float,
                                                                            approved: bool) -> None:
    """Approved at 20:00 in Paris, sent at 9:00 the next morning: the client's window must still be open then."""
    clock = FakeClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))  # Monday 20:00 in Paris
    office = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(9), end=time(18))
    app = world(clock, wrote=timedelta(hours=wrote_hours_ago), window=office)
    assert drafted(app).kind == "freeform"
    if approved:  # she wrote at 09:00 UTC: her window is open until Tuesday 10:00 in Paris
        assert approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now(),
                                 rules=app.rules).message.state == MessageState.READY
        return
    with pytest.raises(WindowClosed, match="send window"):  # it closes at 08:30 in Paris, before 09:00
        approvals.approve(app.store, app.queue, DRAFT, by=BY, now=clock.now(), rules=app.rules)
    assert (message(app).kind, message(app).state) == ("template", MessageState.AWAITING_APPROVAL)
    assert queue(app).sends == []


def test_a_record_the_window_sweep_cannot_read_is_quarantined_and_the_others_redrafted(clock: FakeClock) -> None:
    app = world(clock)
    drafted(app)
    docs = app.store.messages.docs  # type: ignore[attr-defined]
    broken = {**docs[DRAFT], "_id": "c1:ct9:0", "followup_id": "c1:ct9", "language": "xx"}  # a record gone bad
    docs["c1:ct9:0"] = broken
    clock.advance(timedelta(hours=24))
    report = tick(app.store, app.queue, clock, stale_after=timedelta(minutes=5))
    assert report.redrafted_approvals == [DRAFT] and "approval_windows" not in report.failed_steps
    assert report.quarantined == ["c1:ct9"]
    assert message(app).kind == "template"
