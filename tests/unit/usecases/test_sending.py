"""The sending and reconciling use cases on the in-memory repositories: the checks before a send,
one send per message, and an uncertain send adopted rather than sent again."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from shared.clock import FakeClock
from shared.domain.models import Contact, FollowUp, SendWindow
from shared.domain.reasons import PauseReason, StopReason
from shared.domain.states import FollowUpState, MessageState
from shared.errors import SendDeferred
from shared.fakes import FakeSender, RecordingQueue
from shared.usecases.cadence import pause_contact, pause_for_a_person, stop_contact, stop_followup
from shared.usecases.campaigns import pause_campaign, resume_campaign
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.reconciling import reconcile_message
from shared.usecases.replies import process_inbound
from shared.usecases.scheduling import tick
from shared.usecases.sending import RETRY_SOON_SECONDS, send_message
from tests.unit.usecases.sending_world import (
    ALWAYS,
    FOLLOWUP_ID,
    PHONE,
    fake_twilio,
    followup,
    message,
    recording,
    world,
)

MESSAGE_ID = f"{FOLLOWUP_ID}:0"
AFTERNOONS = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(14), end=time(18))


def drafted(clock: FakeClock, window: SendWindow = ALWAYS) -> tuple[App, FakeSender, RecordingQueue]:
    """The world with step 0 drafted (nothing asked to be sent yet)."""
    app = world(clock, window=window)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    recording(app).sends.clear()
    return app, fake_twilio(app), recording(app)


def test_a_ready_step_goes_out_once_and_the_cadence_moves_on(clock: FakeClock) -> None:
    app, sender, _ = drafted(clock)
    sid = send_message(app, MESSAGE_ID)
    assert sid is not None and sender.sids == [sid] and sender.sent[0].to == PHONE
    sent = message(app, MESSAGE_ID)
    assert (sent.state, sent.twilio_sid) == (MessageState.SENT, sid)
    assert (followup(app).state, followup(app).step) == (FollowUpState.SCHEDULED, 1)


def test_a_second_delivery_of_the_same_send_does_not_reach_twilio_twice(clock: FakeClock) -> None:
    app, sender, queue = drafted(clock)
    assert send_message(app, MESSAGE_ID) is not None
    assert send_message(app, MESSAGE_ID) is None
    assert len(sender.sent) == 1 and queue.sends == []


def test_a_delivery_arriving_while_another_is_sending_does_not_send(clock: FakeClock) -> None:
    app, sender, _ = drafted(clock)
    assert app.store.messages.start_sending(MESSAGE_ID, now=clock.now())  # the other delivery won the move
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == []


def test_a_send_outside_the_window_is_held_until_it_opens(clock: FakeClock) -> None:
    app, sender, queue = drafted(clock, window=AFTERNOONS)  # Monday 11:00 in Paris: the window opens at 14:00
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == []
    held = message(app, MESSAGE_ID)
    opens = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert (held.state, held.not_before) == (MessageState.READY, opens)
    assert queue.sends == [(MESSAGE_ID, (opens - clock.now()).total_seconds())]
    assert followup(app).state == FollowUpState.AWAITING_SEND
    clock.advance(opens - clock.now())
    assert send_message(app, MESSAGE_ID) is not None and len(sender.sent) == 1


def test_a_send_after_stop_is_cancelled(clock: FakeClock) -> None:
    """A STOP stored and not processed yet holds the step; processed, it cancels it."""
    app, sender, queue = drafted(clock)
    sid = "SM" + "5" * 32
    app.store.events.record(f"inbound:{sid}", {"kind": "inbound", "sid": sid, "state": "received",
                                               "from": f"whatsapp:{PHONE}", "body": "STOP"}, clock.now())
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == [] and queue.sends == [(MESSAGE_ID, RETRY_SOON_SECONDS)]
    assert message(app, MESSAGE_ID).state == MessageState.READY
    assert str(process_inbound(app, f"inbound:{sid}")) == "opt_out stopped=1"
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == []
    assert followup(app).state == FollowUpState.STOPPED


def test_a_send_after_an_opt_out_by_any_path_is_cancelled(clock: FakeClock) -> None:
    """An opt-out by any path stops the follow-ups, then cancels the ready messages: the send finds it cancelled."""
    app, sender, queue = drafted(clock)
    app.store.contacts.set_opt_out("ct1", True, clock.now())
    assert stop_contact(app.store, "ct1", reason=StopReason.OPT_OUT, now=clock.now()) == 1
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == [] and queue.sends == []


def test_a_stop_of_one_followup_withdraws_its_draft(clock: FakeClock) -> None:
    """``stop_followup`` (a send refused for good, missing data): its ready messages are cancelled after it."""
    app, sender, _ = drafted(clock)
    assert stop_followup(app.store, FOLLOWUP_ID, reason=StopReason.SEND_FAILED, now=clock.now(), needs_human=True)
    assert followup(app).state == FollowUpState.STOPPED
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert send_message(app, MESSAGE_ID) is None and sender.sent == []


def test_a_followup_paused_for_a_person_withdraws_its_draft(clock: FakeClock) -> None:
    """A quarantine or a delivery failure not handled automatically pauses one follow-up: its draft goes."""
    app, sender, _ = drafted(clock)
    assert pause_for_a_person(app.store, FOLLOWUP_ID, reason="quarantined: test", now=clock.now())
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert send_message(app, MESSAGE_ID) is None and sender.sent == []


def test_a_step_message_needs_no_read_of_the_contact(clock: FakeClock) -> None:
    """The contact's phone and timezone are kept on the drafted step: the send goes out without it."""
    app, sender, _ = drafted(clock)
    drafted_message = message(app, MESSAGE_ID)
    assert (drafted_message.to, drafted_message.timezone) == (PHONE, "Europe/Paris")
    reads = []
    contacts_get = app.store.contacts.get

    def counting_get(contact_id: str) -> Contact | None:
        reads.append(contact_id)
        return contacts_get(contact_id)

    app.store.contacts.get = counting_get  # type: ignore[method-assign]
    assert send_message(app, MESSAGE_ID) is not None
    assert reads == [] and sender.sent[0].to == PHONE


def test_a_promise_pause_withdraws_the_draft(clock: FakeClock) -> None:
    """A promise to pay pauses the contact's follow-ups, then cancels the drafted step: nothing is sent."""
    app, sender, _ = drafted(clock)
    assert pause_contact(app.store, "ct1", until=clock.now() + timedelta(days=3), reason=PauseReason.PROMISE_TO_PAY,
                         now=clock.now()) == 1
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == []


def test_a_campaign_paused_after_the_draft_sends_nothing_and_sends_the_step_once_resumed(clock: FakeClock) -> None:
    app, sender, queue = drafted(clock)
    assert pause_campaign(app.store, "c1", now=clock.now()).paused == 1
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == []
    clock.advance(timedelta(minutes=30))
    assert tick(app.store, queue, clock).claimed == []  # paused: nothing claimed, nothing drafted
    assert resume_campaign(app.store, "c1", now=clock.now()).resumed == 1
    assert tick(app.store, queue, clock).claimed == [FOLLOWUP_ID]
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID  # drafted again: the cancelled draft is replaced
    assert send_message(app, MESSAGE_ID) is not None
    assert send_message(app, MESSAGE_ID) is None
    assert len(sender.sent) == 1 and sender.sent[0].to == PHONE
    assert (followup(app).state, followup(app).step) == (FollowUpState.SCHEDULED, 1)


def test_the_sending_actor_reads_no_followup_for_a_step_anchored_on_the_previous_send(clock: FakeClock) -> None:
    app, sender, _ = drafted(clock)
    reads: list[str] = []
    followups_get = app.store.followups.get

    def counting_get(followup_id: str) -> FollowUp | None:
        reads.append(followup_id)
        return followups_get(followup_id)

    app.store.followups.get = counting_get  # type: ignore[method-assign]
    assert send_message(app, MESSAGE_ID) is not None
    assert reads == [] and len(sender.sent) == 1
    assert (followup(app).state, followup(app).step) == (FollowUpState.SCHEDULED, 1)


def test_an_uncertain_send_found_in_twilios_list_is_recorded_not_resent(clock: FakeClock) -> None:
    app, sender, queue = drafted(clock)
    sender.lose_answer_once, sender.lost_answer_status = True, 502  # Twilio took it; the answer was a gateway's 502
    assert send_message(app, MESSAGE_ID) is None
    assert message(app, MESSAGE_ID).state == MessageState.UNCERTAIN
    clock.advance(timedelta(seconds=30))
    assert reconcile_message(app, MESSAGE_ID) == "adopted"
    adopted = message(app, MESSAGE_ID)
    assert (adopted.state, adopted.twilio_sid) == (MessageState.SENT, sender.sids[0])
    assert len(sender.sent) == 1 and queue.sends == []
    assert reconcile_message(app, MESSAGE_ID) is None  # asked again: nothing to do


def test_an_uncertain_send_twilio_never_got_is_sent_again_after_the_grace(clock: FakeClock) -> None:
    app, sender, queue = drafted(clock)
    sender.fail_with = SendDeferred(None, "read timeout; the message may have been created")
    assert send_message(app, MESSAGE_ID) is None
    assert message(app, MESSAGE_ID).state == MessageState.UNCERTAIN
    assert reconcile_message(app, MESSAGE_ID) == "waiting"
    clock.advance(app.rules.reconcile_grace)
    assert reconcile_message(app, MESSAGE_ID) == "resent"
    assert queue.sends == [(MESSAGE_ID, 0)] and message(app, MESSAGE_ID).state == MessageState.READY



def test_a_template_re_send_waits_for_a_paused_campaign_and_goes_out_once_resumed(clock: FakeClock) -> None:
    """A 63016 re-send outlives its step (the follow-up moved on): a campaign's pause keeps it, the resume sends it."""
    app, sender, queue = drafted(clock)
    assert send_message(app, MESSAGE_ID) is not None  # step 0 went out; the follow-up waits for step 1
    resend = message(app, MESSAGE_ID).model_copy(update={
        "id": f"{MESSAGE_ID}:t", "state": MessageState.READY, "resend_of": MESSAGE_ID, "twilio_sid": None})
    assert app.store.messages.insert(resend, clock.now())
    assert pause_campaign(app.store, "c1", now=clock.now()).paused == 1
    assert message(app, resend.id).state == MessageState.READY  # kept over the pause
    queue.sends.clear()
    assert send_message(app, resend.id) is None and len(sender.sent) == 1
    assert queue.sends == [(resend.id, 60)]  # looked at again later
    assert resume_campaign(app.store, "c1", now=clock.now()).resumed == 1
    assert send_message(app, resend.id) is not None
    assert send_message(app, resend.id) is None
    assert len(sender.sent) == 2


def test_a_stop_processed_after_the_draft_and_before_the_send_sends_nothing(clock: FakeClock) -> None:
    """The STOP's processing stops the follow-up, then withdraws the draft: the sending actor (which reads
    no follow-up) finds the message cancelled."""
    app, sender, _ = drafted(clock)
    sid = "SM" + "7" * 32
    app.store.events.record(f"inbound:{sid}", {"kind": "inbound", "sid": sid, "state": "received",
                                               "from": f"whatsapp:{PHONE}", "body": "STOP"}, clock.now())
    assert str(process_inbound(app, f"inbound:{sid}")) == "opt_out stopped=1"
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == [] and message(app, MESSAGE_ID).state == MessageState.CANCELLED
