"""The sending and reconciling use cases on the in-memory repositories: the checks before a send,
one send per message, and an uncertain send adopted rather than sent again."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from shared.clock import FakeClock
from shared.domain.models import Contact, SendWindow
from shared.domain.reasons import PauseReason, StopReason
from shared.domain.states import FollowUpState, MessageState
from shared.errors import SendDeferred
from shared.fakes import FakeSender, RecordingQueue
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.reconciling import reconcile_message
from shared.usecases.replies import process_inbound
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


def test_a_send_for_a_stopped_followup_is_cancelled_before_its_ready_messages_are(clock: FakeClock) -> None:
    """An opt-out by any path stops the follow-ups, then cancels the ready messages: in between, no send."""
    app, sender, queue = drafted(clock)
    app.store.contacts.set_opt_out("ct1", True, clock.now())
    assert app.store.followups.stop(FOLLOWUP_ID, reason=StopReason.OPT_OUT, now=clock.now())
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == [] and queue.sends == []
    assert message(app, MESSAGE_ID).state == MessageState.CANCELLED


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


def test_a_send_for_a_followup_paused_for_the_client_is_cancelled(clock: FakeClock) -> None:
    app, sender, _ = drafted(clock)
    assert app.store.followups.pause(FOLLOWUP_ID, reason=PauseReason.PROMISE_TO_PAY, now=clock.now())
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == [] and message(app, MESSAGE_ID).state == MessageState.CANCELLED


def test_a_send_for_a_followup_paused_with_its_campaign_keeps_the_draft(clock: FakeClock) -> None:
    app, sender, _ = drafted(clock)
    assert app.store.followups.pause(FOLLOWUP_ID, reason=PauseReason.CAMPAIGN_PAUSED, now=clock.now())
    assert send_message(app, MESSAGE_ID) is None
    assert sender.sent == [] and message(app, MESSAGE_ID).state == MessageState.READY


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

