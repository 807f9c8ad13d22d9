"""Sending a step message enqueued with its contact: the contact's lock first, then the message and the
contact's recent sends in one read; pacing, holds and the lock still apply exactly as without it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any

import pytest

from shared.clock import FakeClock
from shared.domain.states import MessageState
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.sending import RETRY_SOON_SECONDS, send_message
from tests.unit.usecases.sending_world import FOLLOWUP_ID, message, recording, world

MESSAGE_ID = f"{FOLLOWUP_ID}:0"


def _paced(clock: FakeClock, *, min_gap: timedelta = timedelta(minutes=10)) -> App:
    app = world(clock)
    app.rules = dataclasses.replace(app.rules, min_gap=min_gap, daily_cap_per_contact=3)
    return app


def _count_reads(app: App, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    messages = app.store.messages
    for name in ("get", "send_times", "get_with_send_times"):
        real = getattr(messages, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            reads.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(messages, name, spy)
    return reads


def test_drafting_enqueues_the_send_with_its_contact(clock: FakeClock) -> None:
    app = world(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    assert recording(app).send_contacts == {MESSAGE_ID: "ct1"}


def test_with_its_contact_a_step_costs_one_read_of_the_messages(clock: FakeClock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = _paced(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    reads = _count_reads(app, monkeypatch)
    assert send_message(app, MESSAGE_ID, "ct1") is not None
    assert reads == ["get_with_send_times"]
    assert message(app, MESSAGE_ID).state == MessageState.SENT


def test_without_it_the_message_and_the_sends_are_two_reads(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _paced(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    reads = _count_reads(app, monkeypatch)
    assert send_message(app, MESSAGE_ID) is not None
    assert reads == ["get", "send_times"]


def test_pacing_holds_a_step_enqueued_with_its_contact(clock: FakeClock) -> None:
    """A message sent to the contact five minutes ago (another campaign): the step waits for the gap."""
    app = _paced(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    other = message(app, MESSAGE_ID).model_copy(update={"id": "c9:ct1:0", "followup_id": "c9:ct1",
                                                        "campaign_id": "c9"})
    assert app.store.messages.insert(other, clock.now() - timedelta(minutes=5))
    assert app.store.messages.start_sending(other.id, now=clock.now() - timedelta(minutes=5))
    assert send_message(app, MESSAGE_ID, "ct1") is None
    held = message(app, MESSAGE_ID)
    assert held.state == MessageState.READY and held.not_before == clock.now() + timedelta(minutes=5)
    assert recording(app).sends[-1] == (MESSAGE_ID, 300.0)
    assert recording(app).send_contacts[MESSAGE_ID] == "ct1"


class _Busy:
    """Contact locks that another worker always holds."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @contextmanager
    def _refused(self) -> Iterator[bool]:
        yield False

    def hold(self, contact_id: str) -> AbstractContextManager[bool]:
        self.asked.append(contact_id)
        return self._refused()


def test_a_contact_held_by_another_worker_is_retried_with_nothing_read(clock: FakeClock,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    app = _paced(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    app.locks = _Busy()
    reads = _count_reads(app, monkeypatch)
    assert send_message(app, MESSAGE_ID, "ct1") is None
    assert reads == []
    assert recording(app).sends[-1] == (MESSAGE_ID, RETRY_SOON_SECONDS)
    assert recording(app).send_contacts[MESSAGE_ID] == "ct1"
    assert message(app, MESSAGE_ID).state == MessageState.READY


def test_a_wrong_contact_is_harmless(clock: FakeClock) -> None:
    """The message's own contact decides (its lock taken, its sends read), whatever the hint said."""
    app = _paced(clock)
    assert draft_followup(app, FOLLOWUP_ID, 0) == MESSAGE_ID
    assert send_message(app, MESSAGE_ID, "someone-else") is not None
    assert message(app, MESSAGE_ID).state == MessageState.SENT
    assert send_message(app, MESSAGE_ID, "ct1") is None  # sent once
