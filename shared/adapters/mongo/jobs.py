"""Periodic jobs shared by the schedulers, in MongoDB (``jobs``: one small document per job)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.connection import MongoRepository
from shared.domain.records import JobRun


class MongoJobs(MongoRepository):
    """See :class:`shared.domain.repositories.JobRepository`."""

    collection_name = "jobs"

    def claim(self, job: str, now: datetime, every: timedelta) -> JobRun | None:
        """This run of a periodic job, for one caller per ``every``.

        Several schedulers call it each tick; the conditional update on ``next_run_at`` is the
        lock, so one of them runs the job each period. A run that fails is tried next period.
        """
        doc = self.collection.find_one({"_id": job})
        if doc is None:
            try:
                self.collection.insert_one({"_id": job, "next_run_at": now + every, "claimed_at": now,
                                            "cursor": None, "created_at": now, "updated_at": now})
            except DuplicateKeyError:
                return None  # another scheduler created it first: its run
            return JobRun(id=job, cursor=None, next_run_at=now + every)
        if doc.get("next_run_at") is not None and doc["next_run_at"] > now:
            return None
        claimed = self.collection.update_one(
            {"_id": job, "next_run_at": doc.get("next_run_at")},
            {"$set": {"next_run_at": now + every, "claimed_at": now, "updated_at": now}},
        )
        if claimed.modified_count != 1:
            return None
        return JobRun(id=job, cursor=doc.get("cursor"), next_run_at=now + every)

    def advance_cursor(self, job: str, cursor: datetime, now: datetime, **details: Any) -> bool:
        """Move a job's cursor forward to ``cursor`` (never back); ``details`` are kept as its last run's."""
        self.collection.update_one({"_id": job}, {"$set": {"last_run": {"at": now, **details}, "updated_at": now}})
        result = self.collection.update_one({"_id": job, "$or": [{"cursor": None}, {"cursor": {"$lt": cursor}}]},
                                            {"$set": {"cursor": cursor, "updated_at": now}})
        return result.modified_count == 1
