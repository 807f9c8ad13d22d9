"""The conversations waiting for a person (the inbox, GET /api/v1/handovers) and closing them, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.reasons import HandOver, HandOverReason, ReplyOutcome
from shared.domain.states import FollowUpState
from shared.errors import InputError
from shared.ports import Intent
from shared.usecases import audit, inbox
from shared.usecases.conversations import UNKNOWN_REASON
from tests.unit.usecases.replies_world import PHONE, followup, reads, reply, world

STRANGER = "+33699999999"


def test_waiting_conversations_come_oldest_first_with_their_reason_and_since_when(clock: FakeClock) -> None:
    app = world(clock)
    opened = clock.now()
    reads(app, Intent.QUESTION, question_topic="iban")
    result = reply(app, "votre IBAN ?", 1)
    assert result is not None and result.outcome == ReplyOutcome.NEEDS_HUMAN
    clock.advance(timedelta(hours=2))
    reply(app, "une autre question", 2)  # Marie writes again: she still waits since her first message
    reply(app, "bonjour ?", 3, phone=STRANGER)
    marie, stranger = inbox.waiting(app.store)
    assert (marie.phone, marie.contact_id, marie.name, marie.since, marie.campaigns) == (
        PHONE, "ct1", "Marie", opened, ("c1",))
    assert marie.reasons == (str(HandOver(HandOverReason.UNANSWERABLE_QUESTION)),)
    assert (stranger.phone, stranger.contact_id, stranger.reasons, stranger.since, stranger.messages) == (
        STRANGER, None, (UNKNOWN_REASON,), clock.now(), 1)
    first = inbox.waiting_page(app.store, limit=1)
    assert [item.phone for item in first.items] == [PHONE] and first.next_after is not None
    second = inbox.waiting_page(app.store, after=first.next_after, limit=1)
    assert [item.phone for item in second.items] == [STRANGER] and second.next_after is None


def test_closing_applies_the_decision_leaves_the_list_and_is_audited(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.QUESTION, question_topic="iban")
    reply(app, "votre IBAN ?", 1)
    closed = inbox.close(app.store, PHONE, action="resume", by="key:crm", now=clock.now())
    assert (closed.closed, closed.moved, followup(app).state) == (1, 1, FollowUpState.SCHEDULED)
    assert inbox.waiting(app.store) == []
    (entry,) = audit.for_contact(app.store, "ct1")
    assert (entry.by, entry.action, entry.at) == ("key:crm", "handover.resume", clock.now())
    assert PHONE not in f"{entry.target} {entry.detail}"


def test_a_refused_decision_changes_nothing_and_records_nothing(clock: FakeClock) -> None:
    app = world(clock)
    reply(app, "bonjour ?", 3, phone=STRANGER)
    with pytest.raises(InputError, match="no contact"):
        inbox.close(app.store, STRANGER, action="stop", by="key:crm", now=clock.now())
    assert audit.recent(app.store) == [] and len(inbox.waiting(app.store)) == 1
    inbox.close(app.store, STRANGER, action="keep", by="user:ana@example.com", now=clock.now())
    assert inbox.waiting(app.store) == []
    (entry,) = audit.recent(app.store)
    assert (entry.action, entry.contact_id, entry.target) == ("handover.close", None, "unknown number")


def test_the_first_waiting_conversations_are_the_same_when_only_they_are_asked_for(clock: FakeClock) -> None:
    from shared.adapters.memory import memory_repositories
    from shared.domain.models import Contact

    store = memory_repositories()
    start = clock.now()
    # Five clients flagged at 0, 1, 1, 1 and 2 hours (three at once: their phones order them).
    for n, hours in enumerate((2, 1, 1, 0, 1)):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234500{n}", name=f"Client {n}"), start)
        store.followups.enrol(contact_id=f"ct{n}", campaign_id="c1", next_run_at=start, now=start)
        store.followups.flag(f"c1:ct{n}", reason="dispute", now=start + timedelta(hours=hours))
    everyone = inbox.waiting(store)
    assert [item.contact_id for item in everyone] == ["ct3", "ct1", "ct2", "ct4", "ct0"]
    for limit in range(1, 7):
        assert inbox.waiting(store, limit=limit) == everyone[:limit], limit
