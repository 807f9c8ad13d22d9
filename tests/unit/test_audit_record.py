"""Writing the audit log: who, what, when, and never a full phone number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.adapters.memory import memory_repositories
from shared.domain.audit import DETAIL_MAX_CHARS
from shared.usecases import audit

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_an_action_is_recorded_with_who_what_and_when() -> None:
    store = memory_repositories()
    entry = audit.record(store, by="user:ana@example.com", action="handover.close", contact_id="ct1",
                         target="FA-1", detail="resume", now=NOW)
    assert audit.for_contact(store, "ct1") == [entry]
    assert (entry.by, entry.action, entry.target, entry.detail, entry.at) == (
        "user:ana@example.com", "handover.close", "FA-1", "resume", NOW)


def test_phone_numbers_are_masked_and_a_long_detail_is_capped() -> None:
    store = memory_repositories()
    entry = audit.record(store, by="key:ci", action="reply.manual", target="+33612345678",
                         detail="to +33612345678 " + "x" * 500, now=NOW)
    assert "+33612345678" not in (entry.target or "") and "+33612345678" not in (entry.detail or "")
    assert entry.detail is not None and len(entry.detail) == DETAIL_MAX_CHARS
    assert audit.recent(store) == [entry]


def test_entries_of_the_same_instant_are_all_kept_in_time_order() -> None:
    store = memory_repositories()
    first = [audit.record(store, by="key:ci", action="a", now=NOW) for _ in range(3)]
    later = audit.record(store, by="key:ci", action="b", now=NOW + timedelta(microseconds=1))
    recent = audit.recent(store)
    assert len(recent) == 4 and recent[0] == later and {e.id for e in recent[1:]} == {e.id for e in first}
    assert audit.recent(store, before=later.id, limit=10)[0].id in {e.id for e in first}
