"""The scheduler's scans read what is due, not the whole book (issue 10, item 9).

A module-wide book of 20,000 follow-ups not yet due (and as many messages and events no scan
wants) holds a few due items of every kind. Each scan runs through the MongoDB repository; the
finds it sends are captured (pymongo's command monitoring) and explained on the server: the
winning plan must be an IXSCAN on the scan's index, and the documents examined about the
documents returned. On SecantusDB (and on a real mongod with MONGODB_URI).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from shared.adapters.mongo import MongoRepositories, mongo_repositories
from shared.clock import FakeClock
from shared.domain.states import FollowUpState, MessageState

pytestmark = pytest.mark.integration

BOOK = 20_000
NOW = FakeClock().now()
STALE = timedelta(minutes=5)
_COMMAND_KEYS = ("find", "filter", "projection", "sort", "limit")


@dataclass
class Finds(monitoring.CommandListener):
    """The find commands sent while ``recording`` (what the repository asked the server)."""

    recording: bool = False
    commands: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # the filters of the updates sent

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording and event.command_name == "find":
            self.commands.append({k: event.command[k] for k in _COMMAND_KEYS if k in event.command})
        if self.recording and event.command_name == "update":
            self.updates.extend(dict(update["q"]) for update in event.command["updates"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Book:
    store: MongoRepositories
    finds: Finds

    def run(self, scan: Callable[[MongoRepositories], Any]) -> tuple[Any, list[dict[str, Any]]]:
        """Run a scan; its result and the finds it sent."""
        self.finds.commands.clear()
        self.finds.updates.clear()
        self.finds.recording = True
        try:
            result = scan(self.store)
        finally:
            self.finds.recording = False
        return result, list(self.finds.commands)

    def explain(self, command: dict[str, Any]) -> dict[str, Any]:
        """The server's executionStats explain of one captured find."""
        return dict(self.store.database.db.command("explain", command, verbosity="executionStats"))


def _f(i: int, state: FollowUpState, campaign: str = "c1", **extra: Any) -> dict[str, Any]:
    return {"_id": f"{campaign}:ct{i}", "contact_id": f"ct{i}", "campaign_id": campaign, "state": state.value,
            "step": 0, "state_changed_at": NOW - timedelta(hours=1), "needs_human": False, **extra}


def _m(key: str, state: MessageState, **extra: Any) -> dict[str, Any]:
    return {"_id": key, "direction": "outbound", "state": state.value, "followup_id": f"c1:{key}", "step": 0,
            "contact_id": key, "state_changed_at": NOW - timedelta(hours=1), **extra}


def _fill(store: MongoRepositories) -> None:
    """20,000 of each no scan wants, and a few that each scan wants (their ids name them)."""
    later = NOW + timedelta(days=1)
    hour_ago, just_now = NOW - timedelta(hours=1), NOW - timedelta(seconds=30)
    followups = [_f(i, FollowUpState.SCHEDULED, f"c{1 + i % 2}", next_run_at=later + timedelta(seconds=i))
                 for i in range(BOOK)]
    followups += [_f(BOOK + i, FollowUpState.SCHEDULED, f"c{1 + i % 2}", next_run_at=NOW - timedelta(minutes=i))
                  for i in range(4)]  # due
    followups += [_f(BOOK + 10, FollowUpState.SCHEDULED, "c3", next_run_at=hour_ago)]  # due, campaign not asked
    followups += [_f(BOOK + 100 + i, FollowUpState.PAUSED, paused_until=None if i % 2 else later)
                  for i in range(1000)]
    followups += [_f(BOOK + 1100 + i, FollowUpState.PAUSED, paused_until=hour_ago) for i in range(3)]  # ended
    for k, state in enumerate((FollowUpState.QUEUED, FollowUpState.DRAFTING, FollowUpState.AWAITING_SEND)):
        followups += [_f(BOOK + 2000 + 1000 * k + i, state, state_changed_at=just_now) for i in range(500)]
        followups += [_f(BOOK + 2900 + 1000 * k + i, state) for i in range(2)]  # stale
    store.followups.collection.insert_many(followups, ordered=False)

    old = NOW - timedelta(days=30)
    messages = [_m(f"done{i}", MessageState.DELIVERED, state_changed_at=old, sent_at=old, twilio_sid=f"SMd{i}")
                for i in range(BOOK)]
    messages += [_m(f"sent{i}", MessageState.SENT, state_changed_at=old, sent_at=old, twilio_sid=f"SMo{i}")
                 for i in range(2000)]  # past the status polls' give-up
    messages += [_m(f"fresh{i}", MessageState.SENT, state_changed_at=just_now, sent_at=just_now,
                    twilio_sid=f"SMf{i}") for i in range(2000)]
    messages += [_m(f"polled{i}", MessageState.SENT, state_changed_at=hour_ago, sent_at=hour_ago,
                    status_polled_at=just_now, twilio_sid=f"SMp{i}") for i in range(500)]
    messages += [_m(f"ready{i}", MessageState.READY, state_changed_at=just_now, requeue_from=just_now)
                 for i in range(500)]
    messages += [_m(f"held{i}", MessageState.READY, not_before=later, requeue_from=later, dead_check_at=just_now)
                 for i in range(500)]
    messages += [_m(f"sending{i}", MessageState.SENDING, state_changed_at=just_now) for i in range(500)]
    messages += [_m(f"asked{i}", MessageState.UNCERTAIN, reconcile_asked_at=just_now) for i in range(500)]
    # What the scans want.
    messages += [_m(f"stranded{i}", MessageState.READY, requeue_from=hour_ago) for i in range(2)]
    messages += [_m("reply0", MessageState.READY, followup_id=None, purpose="reply", requeue_from=hour_ago)]
    messages += [_m(f"stuck{i}", MessageState.SENDING) for i in range(2)]
    messages += [_m("uncertain0", MessageState.UNCERTAIN),
                 _m("uncertain1", MessageState.UNCERTAIN, reconcile_asked_at=hour_ago)]
    messages += [_m("poll0", MessageState.SENT, sent_at=hour_ago, twilio_sid="SMx0"),
                 _m("poll1", MessageState.SENT, sent_at=hour_ago, twilio_sid="SMx1",
                    status_polled_at=NOW - timedelta(minutes=20))]
    store.messages.collection.insert_many(messages, ordered=False)

    events = [{"_id": f"inbound:SM{i}", "kind": "inbound", "state": "processed", "received_at": old}
              for i in range(BOOK)]
    events += [{"_id": "inbound:SMw0", "kind": "inbound", "state": "received", "received_at": hour_ago},
               {"_id": "pending:20260302T090000.000000:aa", "kind": "pending",
                "events": [{"id": "inbound:SMw0", "from": "whatsapp:+33612345601"},
                           {"id": "inbound:SM1", "from": "whatsapp:+33612345602"}]}]
    store.events.collection.insert_many(events, ordered=False)


@pytest.fixture(scope="module")
def book(mongo_uri: str) -> Iterator[Book]:
    """The book, in a database of its own, over a client that records the finds it sends."""
    finds = Finds()
    name = f"t_{secrets.token_hex(6)}"
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True, tzinfo=UTC, event_listeners=[finds])
    store = mongo_repositories(client[name])
    _fill(store)
    store.ensure_indexes()  # after the fill: building an index is faster than growing it 60,000 times
    yield Book(store, finds)
    client.drop_database(name)
    client.close()


def _assert_exact(book: Book, commands: list[dict[str, Any]], index: str, *, slack: int = 2) -> None:
    """Every find used ``index`` (an IXSCAN, no COLLSCAN) and examined about what it returned."""
    assert commands
    for command in commands:
        explained = book.explain(command)
        plan = json.dumps(explained["queryPlanner"]["winningPlan"], default=str)
        stats = explained["executionStats"]
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, (command, plan)
        assert f'"indexName": "{index}"' in plan, (command, plan)
        assert stats["totalDocsExamined"] <= stats["nReturned"] + slack, (command, stats)


def test_the_claim_examines_only_the_due_follow_ups_of_each_campaign(book: Book) -> None:
    due, commands = book.run(lambda s: s.followups.due(NOW, ["c1", "c2"], 200))
    assert [ref.id for ref in due] == [f"c{1 + i % 2}:ct{BOOK + i}" for i in (3, 2, 1, 0)]  # earliest first
    assert len(commands) == 2  # one per campaign, each an equality on it
    _assert_exact(book, commands, "due_by_campaign")
    limited, _ = book.run(lambda s: s.followups.due(NOW, ["c1", "c2"], 3))
    assert [ref.id for ref in limited] == [ref.id for ref in due[:3]]


def test_ended_pauses_are_found_by_their_end(book: Book) -> None:
    ended = {f"c1:ct{BOOK + 1100 + i}" for i in range(3)}
    try:
        resumed, commands = book.run(lambda s: s.followups.resume_ended_pauses(NOW, 200))
        assert set(resumed) == ended  # not the pauses without an end, nor those ending later
        _assert_exact(book, commands, "state_paused_until")
    finally:  # paused again, as the other scans expect
        book.store.followups.collection.update_many(
            {"_id": {"$in": sorted(ended)}},
            {"$set": {"state": "paused", "paused_until": NOW - timedelta(hours=1), "next_run_at": None}})


@pytest.mark.parametrize("state", [FollowUpState.QUEUED, FollowUpState.DRAFTING, FollowUpState.AWAITING_SEND])
def test_stale_follow_ups_are_found_by_state_and_last_change(book: Book, state: FollowUpState) -> None:
    stale, commands = book.run(lambda s: s.followups.stale([state], NOW - STALE, 200))
    assert len(stale) == 2 and {item.state for item in stale} == {state}
    _assert_exact(book, commands, "state_changed")


def test_stale_follow_ups_of_several_states_are_one_query_per_state(book: Book) -> None:
    states = [FollowUpState.QUEUED, FollowUpState.DRAFTING]
    stale, commands = book.run(lambda s: s.followups.stale(states, NOW - STALE, 3))
    assert len(stale) == 3 and len(commands) == 2
    _assert_exact(book, commands, "state_changed")


def test_stranded_ready_messages_are_found_by_requeue_from(book: Book) -> None:
    stranded, commands = book.run(lambda s: s.messages.stranded_ready(NOW - STALE, 200))
    assert {m.id for m in stranded} == {"stranded0", "stranded1", "reply0"}
    _assert_exact(book, commands, "state_requeue_from")


def test_dead_draft_checks_examine_only_stale_unchecked_drafts(book: Book) -> None:
    drafts, commands = book.run(lambda s: s.messages.unchecked_drafts(
        before=NOW - STALE, recheck_before=NOW - timedelta(minutes=10), limit=200))
    assert {m.id for m in drafts} == {"stranded0", "stranded1"}  # the reply has no follow-up
    _assert_exact(book, commands, "state_dead_check")


def test_stuck_sends_and_uncertain_ones_are_found_by_their_dates(book: Book) -> None:
    stuck, commands = book.run(lambda s: s.messages.stale(MessageState.SENDING, NOW - STALE, 200))
    assert set(stuck) == {"stuck0", "stuck1"}
    _assert_exact(book, commands, "state_changed")
    uncertain, commands = book.run(lambda s: s.messages.uncertain_to_reconcile(NOW - timedelta(seconds=30), 200))
    assert set(uncertain) == {"uncertain0", "uncertain1"}
    _assert_exact(book, commands, "state_reconcile_asked")


def test_status_polls_examine_only_the_messages_to_poll(book: Book) -> None:
    due, commands = book.run(lambda s: s.messages.awaiting_status(
        now=NOW, after=timedelta(minutes=10), recheck_before=NOW - timedelta(minutes=15),
        give_up=timedelta(hours=48), limit=200))
    assert set(due) == {"poll0", "poll1"}
    _assert_exact(book, commands, "state_status_polled")


def test_the_notes_sweep_reads_the_notes_and_their_events_by_id(book: Book) -> None:
    waiting, commands = book.run(lambda s: s.events.sweep_notes(
        requeue_before=NOW - STALE, drop_before=NOW - timedelta(seconds=30), limit=200))
    assert [event.id for event in waiting] == ["inbound:SMw0"]
    assert len(commands) == 2
    _assert_exact(book, commands[:1], "pending_notes")
    _assert_exact(book, commands[1:], "_id_")
    unread, commands = book.run(lambda s: s.events.unprocessed_inbound("+33612345601"))
    assert [event.id for event in unread] == ["inbound:SMw0"]
    _assert_exact(book, commands[:1], "pending_notes")


def test_ready_messages_stored_before_requeue_from_are_found_after_start_up(book: Book) -> None:
    messages = book.store.messages.collection
    messages.insert_one(_m("legacy0", MessageState.READY, not_before=NOW - timedelta(minutes=20)))
    messages.insert_one(_m("legacy1", MessageState.READY, requeued_at=NOW - timedelta(minutes=1)))
    try:
        book.store.ensure_indexes()  # start-up: fills requeue_from where it is missing
        book.store.ensure_indexes()
        assert messages.find_one({"_id": "legacy0"}, {"requeue_from": 1}) == {
            "_id": "legacy0", "requeue_from": NOW - timedelta(minutes=20)}
        stranded = {m.id for m in book.store.messages.stranded_ready(NOW - STALE, 200)}
        assert "legacy0" in stranded and "legacy1" not in stranded  # legacy1 was requeued a minute ago
    finally:
        messages.delete_many({"_id": {"$in": ["legacy0", "legacy1"]}})



def test_the_inbound_backfill_looks_up_twilios_sids_by_their_index(book: Book) -> None:
    known, commands = book.run(lambda s: s.messages.known_sids(["SMd1", "SMd2", "SMnew"]))
    assert known == {"SMd1", "SMd2"}
    _assert_exact(book, commands, "twilio_sid_unique")


def test_the_claims_are_updates_by_id_without_a_top_level_or(book: Book) -> None:
    """Beside an ``_id``, a top-level $or makes SecantusDB read the whole collection for each claim."""
    def claims(s: MongoRepositories) -> list[bool]:
        return [s.messages.claim_requeue("stranded0", before=NOW - STALE, now=NOW),
                s.messages.claim_requeue("stranded0", before=NOW - STALE, now=NOW),
                s.messages.claim_reconcile("uncertain0", asked_before=NOW - STALE, now=NOW),
                s.messages.claim_status_poll("poll0", recheck_before=NOW - STALE, now=NOW),
                s.events.claim_requeue("inbound:SMw0", NOW, STALE)]

    won, _ = book.run(claims)
    assert won == [True, False, True, True, True]  # each once
    filters = list(book.finds.updates)
    book.run(lambda s: s.contacts.touch_inbound("ct1", NOW))
    filters += book.finds.updates
    assert filters and all("_id" in q and not any(key.startswith("$") for key in q) for q in filters), filters
    messages = book.store.messages.collection  # as the other tests expect them
    messages.update_one({"_id": "stranded0"},
                        {"$unset": {"requeued_at": ""}, "$set": {"requeue_from": NOW - timedelta(hours=1)}})
    messages.update_one({"_id": "uncertain0"}, {"$unset": {"reconcile_asked_at": ""}})
    messages.update_one({"_id": "poll0"}, {"$unset": {"status_polled_at": ""}})
    book.store.events.collection.update_one({"_id": "inbound:SMw0"}, {"$unset": {"requeued_at": ""}})

