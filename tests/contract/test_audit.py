"""The audit log: both implementations alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain.audit import AuditEntry
from shared.domain.repositories import Repositories

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _entry(n: int, contact_id: str | None = "ct1", **changes: object) -> AuditEntry:
    at = NOW + timedelta(minutes=n)
    data = {"id": f"{at:%Y%m%dT%H%M%S.%fZ}-{n:08x}", "by": "key:ci", "action": "handover.close",
            "contact_id": contact_id, "target": None, "detail": None, "at": at}
    return AuditEntry.model_validate({**data, **changes})


def test_an_entry_is_added_once_and_read_back_as_written(repos: Repositories) -> None:
    entry = _entry(1, target="FA-1", detail="resume", by="user:ana@example.com")
    assert repos.audit.add(entry)
    assert not repos.audit.add(_entry(1, action="other"))
    assert repos.audit.for_contact("ct1", 10) == [entry]
    assert repos.audit.recent(10) == [entry]


def test_a_contacts_entries_come_newest_first_and_only_theirs(repos: Repositories) -> None:
    for n, contact_id in [(1, "ct1"), (2, "ct2"), (3, "ct1"), (4, None), (5, "ct1")]:
        repos.audit.add(_entry(n, contact_id))
    assert [entry.at for entry in repos.audit.for_contact("ct1", 10)] == [NOW + timedelta(minutes=n) for n in (5, 3, 1)]
    assert [entry.at for entry in repos.audit.for_contact("ct1", 2)] == [NOW + timedelta(minutes=n) for n in (5, 3)]
    assert repos.audit.for_contact("ct9", 10) == []


def test_recent_entries_are_paged_newest_first_before_a_cursor(repos: Repositories) -> None:
    entries = [_entry(n, f"ct{n % 2}") for n in range(1, 6)]
    for entry in reversed(entries):
        repos.audit.add(entry)
    first = repos.audit.recent(2)
    assert [entry.id for entry in first] == [entries[4].id, entries[3].id]
    second = repos.audit.recent(2, before=first[-1].id)
    assert [entry.id for entry in second] == [entries[2].id, entries[1].id]
    assert [entry.id for entry in repos.audit.recent(10, before=second[-1].id)] == [entries[0].id]
    assert repos.audit.recent(10, before=entries[0].id) == []
