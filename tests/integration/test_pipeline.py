"""The actors and the scheduler on the real MongoDB-compatible server, with fakes at the edges.

Each test walks a follow-up through its states with the functions the actors call, and
checks what a user would: what was sent to whom, and the states stored in MongoDB.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, EnrolRule, Language, SendWindow, Step, TemplateRef
from shared.errors import SendDeferred, SendRejected, TransientError
from shared.fakes import FakeSender, RecordingQueue
from shared.settings import load_settings
from shared.usecases.campaigns import pause_campaign, resume_campaign
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.replies import process_inbound
from shared.usecases.scheduling import TickReport, reconcile, tick
from shared.usecases.sending import send_message
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
TEMPLATE = TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name", "2": "invoice_number"},
                       preview={Language.FR: "Bonjour {{1}}, la facture {{2}} reste à régler.",
                                Language.EN: "Hello {{1}}, invoice {{2}} is still due."})


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "TWILIO_AUTH_TOKEN": "t" * 32})
    return App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender(clock=clock))


def _setup(deps: App, *, steps: int = 2, template: bool = True, window: SendWindow = ALWAYS,
           inside_24h: bool = True, phone: str = "+33612345678") -> str:
    now = deps.clock.now()
    contact = Contact(id=f"ct{phone[-4:]}", phone=phone, name="Marie", language=Language.FR,
                      fields={"invoice_number": "FA-2026-001", "amount": "120.00"}, tags=["t"])
    deps.store.contacts.upsert(contact, now)
    if inside_24h:
        deps.store.contacts.touch_inbound(contact.id, now - timedelta(hours=1))
    campaign = Campaign(id="c1", name="Relance", send_window=window, enrol=EnrolRule(tags=["t"]),
                        steps=[Step(delay="0s", template=TEMPLATE if template else None),
                               Step(delay="1h", anchor="previous", tone="firm",
                                    template=TEMPLATE if template else None)][:steps])
    deps.store.campaigns.create(campaign, now)
    deps.store.followups.enrol(contact_id=contact.id, campaign_id="c1", next_run_at=now, now=now)
    return f"c1:{contact.id}"


def _state(deps: App, followup_id: str) -> str:
    doc = deps.store.followups.collection.find_one({"_id": followup_id})
    assert doc is not None
    return str(doc["state"])


def test_two_steps_are_sent_once_each_then_completed(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps)
    tick(deps.store, deps.queue, clock)
    drain(deps)
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    assert len(sender.sent) == 1 and sender.sent[0].body and "FA-2026-001" in sender.sent[0].body
    assert sender.sent[0].status_callback.startswith("https://relance.example.com/whatsapp/status?mid=")
    assert _state(deps, fid) == "scheduled"
    tick(deps.store, deps.queue, clock)  # step 2 not due yet
    assert deps.queue.drafts == []  # type: ignore[attr-defined]
    clock.advance(timedelta(hours=1, seconds=1))
    tick(deps.store, deps.queue, clock)
    drain(deps)
    assert len(sender.sent) == 2
    assert _state(deps, fid) == "completed"
    messages = list(deps.store.messages.collection.find({"followup_id": fid}).sort("step", 1))
    assert [m["state"] for m in messages] == ["sent", "sent"]
    assert all(m["twilio_sid"].startswith("SM") for m in messages)
    history = [h["state"] for h in deps.store.followups.collection.find_one({"_id": fid})["history"]]  # type: ignore[index]
    # No ``drafting`` move: the conditional insert of the step's message is what makes it once.
    assert history == ["scheduled", "queued", "awaiting_send", "scheduled", "queued", "awaiting_send", "completed"]


def test_redelivered_messages_never_send_twice(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    (followup_id, step), = deps.queue.drafts  # type: ignore[attr-defined]
    first = draft_followup(deps, followup_id, step)
    again = draft_followup(deps, followup_id, step)  # redelivery after success: nothing to do
    assert first == f"{fid}:0" and again is None
    assert deps.store.messages.collection.count_documents({"followup_id": fid}) == 1
    send_message(deps, first)
    send_message(deps, first)
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]
    assert _state(deps, fid) == "completed"


def test_concurrent_sends_of_the_same_message_reach_twilio_once(deps: App, clock: FakeClock) -> None:
    _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts[0])  # type: ignore[attr-defined]
    assert message_id
    threads = [threading.Thread(target=send_message, args=(deps, message_id)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]


def test_two_schedulers_never_claim_the_same_step(deps: App, clock: FakeClock) -> None:
    now = clock.now()
    deps.store.campaigns.create(Campaign(id="c1", name="c", send_window=ALWAYS, steps=[Step()]), now)
    for i in range(40):
        deps.store.contacts.upsert(Contact(id=f"ct{i}", phone=f"+336123456{i:02d}", name="X"), now)
        deps.store.followups.enrol(contact_id=f"ct{i}", campaign_id="c1", next_run_at=now, now=now)
    queues = [RecordingQueue(), RecordingQueue()]
    threads = [threading.Thread(target=tick, args=(deps.store, q, clock)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = queues[0].drafts + queues[1].drafts
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_outside_the_24h_window_the_template_is_used(deps: App, clock: FakeClock) -> None:
    _setup(deps, steps=1, inside_24h=False)
    tick(deps.store, deps.queue, clock)
    drain(deps)
    (sent,) = deps.sender.sent  # type: ignore[attr-defined]
    assert sent.body is None and sent.content_sid == TEMPLATE.content_sid
    assert sent.content_variables == {"1": "Marie", "2": "FA-2026-001"}
    assert deps.drafter.requests == []  # type: ignore[attr-defined]


def test_outside_the_window_without_template_nothing_is_sent(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1, inside_24h=False, template=False)
    tick(deps.store, deps.queue, clock)
    drain(deps)
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    doc = deps.store.followups.collection.find_one({"_id": fid})
    assert doc is not None and doc["state"] == "paused" and doc["needs_human"] is True


def test_send_window_is_checked_again_before_sending(deps: App, clock: FakeClock) -> None:
    office = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(9), end=time(18))
    fid = _setup(deps, steps=1, window=office)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]
    assert message_id
    clock.set(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))  # 20:00 in Paris: closed
    drain(deps)  # the send drafting queued: held for the window, and kept queued for later
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    (held, delay), = deps.queue.sends  # type: ignore[attr-defined]
    assert held == message_id
    assert delay == (datetime(2026, 3, 3, 8, 0, tzinfo=UTC) - clock.now()).total_seconds()
    clock.set(datetime(2026, 3, 3, 8, 0, 1, tzinfo=UTC))
    assert send_message(deps, message_id)
    assert _state(deps, fid) == "completed"


def test_opt_out_is_honoured_for_an_already_drafted_message(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]
    deps.store.events.record("inbound:SMx", {"kind": "inbound", "sid": "SMx", "state": "received",
                                            "from": "whatsapp:+33612345678", "body": "STOP"}, clock.now())
    assert str(process_inbound(deps, "inbound:SMx")) == "opt_out stopped=1"
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    assert _state(deps, fid) == "stopped"
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "cancelled"  # type: ignore[arg-type,index]


def test_a_stop_stored_while_redis_was_away_holds_the_reminder(deps: App, clock: FakeClock) -> None:
    """The webhook stored a STOP but could not enqueue it: no reminder goes out over it."""
    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]
    deps.queue.sends.clear()  # type: ignore[attr-defined]
    deps.store.events.record("inbound:SMstop", {"kind": "inbound", "sid": "SMstop", "state": "received",
                                               "from": "whatsapp:+33612345678", "body": "STOP"}, clock.now())
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert deps.queue.sends == [(message_id, 2.0)]  # type: ignore[attr-defined]  # tried again shortly
    assert deps.queue.inbound == []  # type: ignore[attr-defined]  # just stored: its own message is on the way
    clock.advance(timedelta(seconds=6))
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert deps.queue.inbound == ["inbound:SMstop"]  # type: ignore[attr-defined]  # asked for again, once
    clock.advance(timedelta(minutes=2))  # the replies workers are down: held, looked at once a minute
    deps.queue.sends.clear()  # type: ignore[attr-defined]
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert deps.queue.sends == [(message_id, 60.0)]  # type: ignore[attr-defined]
    assert str(process_inbound(deps, "inbound:SMstop")) == "opt_out stopped=1"
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    assert _state(deps, fid) == "stopped"
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "cancelled"  # type: ignore[arg-type,index]


@pytest.mark.parametrize(("code", "reason"), [(63024, "not a reachable WhatsApp number"),
                                              (30008, "Twilio error 30008")])
def test_a_failure_reported_after_the_last_step_flags_the_finished_followup(deps: App, clock: FakeClock, code: int,
                                                                           reason: str) -> None:
    from services.webhook_events import status_event
    from shared.usecases.delivery import process_status

    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    drain(deps)
    assert _state(deps, fid) == "completed"
    sid = deps.store.messages.collection.find_one({"_id": f"{fid}:0"})["twilio_sid"]  # type: ignore[index]
    event_id, event = status_event({"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": str(code)})
    deps.store.events.record(event_id, event, clock.now())
    deps.store.messages.apply_status(sid, "undelivered", code, clock.now())
    process_status(deps, event_id)
    doc = deps.store.followups.collection.find_one({"_id": fid})
    assert doc is not None and doc["state"] == "completed"  # nothing left to stop
    assert doc["needs_human"] is True and reason in doc["needs_human_reason"]


def test_permanent_twilio_error_stops_and_flags(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1)
    deps.sender.fail_with = SendRejected(63024, "invalid recipient", 400)  # type: ignore[attr-defined]
    tick(deps.store, deps.queue, clock)
    drain(deps)
    doc = deps.store.followups.collection.find_one({"_id": fid})
    assert doc is not None and doc["state"] == "stopped" and doc["stop_reason"] == "invalid_number"
    assert deps.store.messages.collection.find_one({"_id": f"{fid}:0"})["error_code"] == 63024  # type: ignore[index]


def test_transient_twilio_error_retries_later_without_duplicates(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]
    deps.sender.fail_with = SendDeferred(20429, "too many requests", 429)  # type: ignore[attr-defined]
    with pytest.raises(TransientError):
        send_message(deps, message_id)  # type: ignore[arg-type]
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "ready"  # type: ignore[arg-type,index]
    assert send_message(deps, message_id)  # type: ignore[arg-type]
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]
    assert _state(deps, fid) == "completed"


def test_reconciler_requeues_work_lost_by_redis(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    deps.queue.drafts.clear()  # type: ignore[attr-defined]  # Redis lost the message
    clock.advance(timedelta(minutes=6))
    report = TickReport()
    reconcile(deps.store, deps.queue, clock, timedelta(minutes=5), 100, report)
    assert report.requeued_drafts == [fid]
    drain(deps)
    deps.queue.sends.clear()  # type: ignore[attr-defined]
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]


def test_stuck_sending_becomes_uncertain_not_resent(deps: App, clock: FakeClock) -> None:
    _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]

    assert message_id
    deps.queue.sends.clear()  # type: ignore[attr-defined]  # taken by a worker, which died calling Twilio
    deps.store.messages.start_sending(message_id, now=clock.now())
    clock.advance(timedelta(minutes=6))
    report = tick(deps.store, deps.queue, clock)
    assert report.uncertain == [message_id]
    # Uncertain, to be looked up at Twilio: nothing is queued to send.
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "uncertain"  # type: ignore[index]
    assert deps.queue.sends == [] and deps.queue.reconciles == [message_id]  # type: ignore[attr-defined]
    drain(deps)  # the lookup finds nothing yet: it waits
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "uncertain"  # type: ignore[index]
    clock.advance(timedelta(minutes=5))  # ten minutes after the send began: never reached Twilio
    tick(deps.store, deps.queue, clock)
    drain(deps)
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "sent"  # type: ignore[index]


def test_paused_campaign_sends_nothing_and_resumes(deps: App, clock: FakeClock) -> None:
    fid = _setup(deps, steps=1)
    assert pause_campaign(deps.store, "c1", now=clock.now()).paused == 1
    assert tick(deps.store, deps.queue, clock).claimed == []
    assert resume_campaign(deps.store, "c1", now=clock.now()).resumed == 1
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]
    # Paused between drafting and sending: the follow-up carries the pause, the draft is withdrawn.
    assert pause_campaign(deps.store, "c1", now=clock.now()).paused == 1
    assert send_message(deps, message_id) is None  # type: ignore[arg-type]
    assert _state(deps, fid) == "paused"
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "cancelled"  # type: ignore[index]
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    assert resume_campaign(deps.store, "c1", now=clock.now()).resumed == 1
    deps.queue.sends.clear()  # type: ignore[attr-defined]
    tick(deps.store, deps.queue, clock)
    drain(deps)
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]
    assert _state(deps, fid) == "completed"


@pytest.mark.parametrize("status", [None, 502])
def test_lost_answer_is_reconciled_not_resent(deps: App, clock: FakeClock, status: int | None) -> None:
    from shared.usecases.reconciling import reconcile_message

    fid = _setup(deps, steps=1)
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    sender.lose_answer_once = True  # Twilio took it, but the answer never came back (or came back 502)
    sender.lost_answer_status = status
    tick(deps.store, deps.queue, clock)
    drain(deps)
    message_id = f"{fid}:0"
    assert deps.store.messages.collection.find_one({"_id": message_id})["state"] == "uncertain"  # type: ignore[index]
    clock.advance(timedelta(minutes=6))
    report = tick(deps.store, deps.queue, clock)
    assert report.reconciling == [message_id]
    assert reconcile_message(deps, message_id) == "adopted"
    doc = deps.store.messages.collection.find_one({"_id": message_id})
    assert doc is not None and doc["state"] == "sent" and doc["twilio_sid"] == sender.sids[0]
    assert len(sender.sent) == 1
    clock.advance(timedelta(minutes=6))
    tick(deps.store, deps.queue, clock)  # the reconciler advances the follow-up
    assert _state(deps, fid) == "completed"


def test_uncertain_with_no_trace_is_sent_again_after_the_grace(deps: App, clock: FakeClock) -> None:
    from shared.usecases.reconciling import reconcile_message

    fid = _setup(deps, steps=1)
    tick(deps.store, deps.queue, clock)
    message_id = draft_followup(deps, *deps.queue.drafts.pop())  # type: ignore[attr-defined]
    assert message_id
    deps.queue.sends.clear()  # type: ignore[attr-defined]
    # Died before reaching Twilio: the scheduler found it stuck in sending.
    assert deps.store.messages.start_sending(message_id, now=clock.now())
    assert deps.store.messages.mark_uncertain(message_id, reason="test", now=clock.now())
    assert reconcile_message(deps, message_id) == "waiting"
    clock.advance(timedelta(minutes=9, seconds=59))  # RECONCILE_GRACE_SECONDS: 10 minutes
    assert reconcile_message(deps, message_id) == "waiting"
    clock.advance(timedelta(seconds=1))
    assert reconcile_message(deps, message_id) == "resent"
    drain(deps)
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]
    assert _state(deps, fid) == "completed"
