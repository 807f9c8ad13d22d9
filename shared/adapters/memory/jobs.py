"""Periodic jobs in memory."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.adapters.memory.base import MemoryRepository, none_or_before
from shared.domain.records import JobRun


class MemoryJobs(MemoryRepository):
    """See :class:`shared.domain.repositories.JobRepository`."""

    def claim(self, job: str, now: datetime, every: timedelta) -> JobRun | None:
        """This period's run for one caller (None for the others)."""
        doc = self.docs.get(job)
        if doc is None:
            self.docs[job] = {"_id": job, "next_run_at": now + every, "claimed_at": now, "cursor": None,
                              "created_at": now, "updated_at": now}
            return JobRun(id=job, cursor=None, next_run_at=now + every)
        if doc.get("next_run_at") is not None and doc["next_run_at"] > now:
            return None
        doc.update({"next_run_at": now + every, "claimed_at": now, "updated_at": now})
        return JobRun(id=job, cursor=doc.get("cursor"), next_run_at=now + every)

    def advance_cursor(self, job: str, cursor: datetime, now: datetime, **details: Any) -> bool:
        """Move the cursor forward to ``cursor`` (never back); ``details`` kept as the last run's."""
        doc = self.docs.get(job)
        if doc is None:
            return False
        doc.update({"last_run": {"at": now, **details}, "updated_at": now})
        if not none_or_before(doc.get("cursor"), cursor):
            return False
        doc.update({"cursor": cursor, "updated_at": now})
        return True
