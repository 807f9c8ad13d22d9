"""The status-callback path on the in-memory repositories: a SID recorded once, callbacks in any
order, and failures acted on once even when their callback beat the sending worker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.events import status_event_doc
from shared.domain.models import Language, OutboundMessage
from shared.domain.reasons import StatusAction, StopReason
from shared.domain.states import ActionState, FollowUpState, MessageState
from shared.errors import TransientError
from shared.usecases.context import App
from shared.usecases.delivery import process_status, record_sid
from tests.unit.usecases.replies_world import FOLLOWUP_ID, followup, world

MID = f"{FOLLOWUP_ID}:0"
SID = "SM" + "d" * 32


def _sending(app: App) -> None:
    message = OutboundMessage(id=MID, followup_id=FOLLOWUP_ID, contact_id="ct1", campaign_id="c1", step=0,
                              state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR)
    assert app.store.messages.insert(message, app.clock.now())
    assert app.store.messages.start_sending(MID, now=app.clock.now())


def _state(app: App) -> MessageState:
    message = app.store.messages.get(MID)
    assert message is not None
    return message.state


def _failure(app: App, code: int, status: str = "undelivered") -> str:
    """A failed status stored as the webhook stores it."""
    event_id, event = status_event_doc(SID, status, code)
    assert app.store.events.record(event_id, event, app.clock.now())
    return event_id


def test_the_worker_records_the_sid_once_and_reads_nothing_back(clock: FakeClock) -> None:
    app = world(clock)
    _sending(app)
    assert record_sid(app.store, MID, SID, clock.now())
    assert not record_sid(app.store, MID, SID, clock.now())  # a redelivery
    assert _state(app) == MessageState.SENT


@pytest.mark.parametrize("order", [("delivered", "read"), ("read", "delivered")])
def test_callbacks_before_the_worker_end_in_the_latest_status(clock: FakeClock, order: tuple[str, str]) -> None:
    """The first callback adopts the SID by our message id; the worker's write then changes nothing."""
    app = world(clock)
    _sending(app)
    for status in order:
        app.store.messages.apply_status(SID, status, None, clock.now(), message_id=MID)
    clock.advance(timedelta(seconds=1))
    assert not record_sid(app.store, MID, SID, clock.now())
    message = app.store.messages.get(MID)
    assert message is not None and (message.state, message.twilio_sid) == (MessageState.READ, SID)


def test_a_failure_whose_callback_came_before_the_sid_is_applied_and_acted_on_once(clock: FakeClock) -> None:
    """Without our message id to adopt it with, the failure waits for the SID, then is applied here."""
    app = world(clock)
    _sending(app)
    event_id = _failure(app, 63024)
    with pytest.raises(TransientError):
        process_status(app, event_id)  # no message with this SID yet: retried shortly
    assert record_sid(app.store, MID, SID, clock.now())
    assert process_status(app, event_id) == StatusAction.INVALID_NUMBER
    message = app.store.messages.get(MID)
    assert message is not None and (message.state, message.error_code) == (MessageState.UNDELIVERED, 63024)
    stopped = followup(app)
    assert (stopped.state, stopped.stop_reason) == (FollowUpState.STOPPED, StopReason.INVALID_NUMBER)
    assert process_status(app, event_id) is None  # acted on once
    assert app.store.events.get(event_id).action_state == ActionState.DONE  # type: ignore[union-attr]


def test_a_failure_adopted_by_its_callback_is_acted_on(clock: FakeClock) -> None:
    app = world(clock)
    _sending(app)
    event_id = _failure(app, 21610, "failed")
    assert app.store.messages.apply_status(SID, "failed", 21610, clock.now(), message_id=MID)
    assert not record_sid(app.store, MID, SID, clock.now())
    assert process_status(app, event_id) == StatusAction.OPT_OUT
    assert _state(app) == MessageState.FAILED
    assert followup(app).stop_reason == StopReason.OPT_OUT
