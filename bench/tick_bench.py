#!/usr/bin/env python3
"""Tick benchmark: one scheduler tick with a small and a large book of follow-ups not yet due.

Issue 10, item 9: a tick must not grow with the book. For each size it fills a fresh database
on its own SecantusDB (or ``MONGODB_URI`` when set) with that many follow-ups not yet due in one
active campaign (and as many delivered messages), plus ``--due`` due ones; creates the indexes
as a process start does; then times ``--ticks`` runs of the scheduler's tick
(:func:`services.scheduler.tick`, every step, a queue that only counts) and counts the MongoDB
operations they cost (``serverStatus`` opcounters). The first tick claims the due follow-ups;
the others find nothing to do, as most ticks do.

Usage (from the repository root, in the venv)::

    python bench/tick_bench.py                       # 1,000 then 100,000
    python bench/tick_bench.py --sizes 1000,20000 --ticks 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from pymongo import MongoClient  # noqa: E402

from devtools.embedded import start_mongo  # noqa: E402
from services.scheduler import tick  # noqa: E402
from shared.adapters.mongo import mongo_repositories  # noqa: E402
from shared.clock import FakeClock  # noqa: E402

CAMPAIGN = "bench"
BATCH = 10_000  # documents per insert_many


class CountingQueue:
    """A task queue that only counts what the tick enqueues."""

    def __init__(self) -> None:
        self.enqueued = 0

    def _count(self, *args: Any, **kwargs: Any) -> None:
        self.enqueued += 1

    draft_followup = send_message = process_inbound = process_status = reconcile_message = poll_status = _count

    def process_inbound_many(self, event_ids: Sequence[str]) -> None:
        self.enqueued += len(event_ids)

    process_inbound_each = process_inbound_many


@dataclass
class Row:
    size: int
    fill_s: float
    first_ms: float
    median_ms: float
    ops_per_tick: float
    claimed: int


def _opcounters(client: MongoClient[dict[str, Any]]) -> int:
    counters = client.admin.command("serverStatus").get("opcounters") or {}
    return sum(int(counters.get(k, 0)) for k in ("query", "insert", "update", "delete", "getmore", "command"))


def _fill(client: MongoClient[dict[str, Any]], name: str, size: int, due: int, clock: FakeClock) -> None:
    db = client[name]
    now = clock.now()
    db["campaigns"].insert_one({"_id": CAMPAIGN, "name": "Bench", "status": "active", "steps": []})
    later = now + timedelta(days=1)
    for start in range(0, size + due, BATCH):
        db["followups"].insert_many([
            {"_id": f"{CAMPAIGN}:ct{i}", "contact_id": f"ct{i}", "campaign_id": CAMPAIGN, "state": "scheduled",
             "step": 0, "next_run_at": later + timedelta(seconds=i) if i < size else now - timedelta(seconds=i),
             "state_changed_at": now - timedelta(days=1), "needs_human": False}
            for i in range(start, min(start + BATCH, size + due))], ordered=False)
        delivered = [
            {"_id": f"m{i}", "direction": "outbound", "state": "delivered", "followup_id": f"{CAMPAIGN}:ct{i}",
             "state_changed_at": now - timedelta(days=3), "sent_at": now - timedelta(days=3), "twilio_sid": f"SM{i}"}
            for i in range(start, min(start + BATCH, size))]
        if delivered:
            db["messages"].insert_many(delivered, ordered=False)


def measure(uri: str, size: int, *, due: int, ticks: int) -> Row:
    """Fill a fresh database with ``size`` follow-ups not yet due (+ ``due``) and time ``ticks`` ticks."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    name = f"tick_bench_{size}"
    client.drop_database(name)
    clock = FakeClock()
    store = mongo_repositories(client[name])
    started = time.perf_counter()
    store.ensure_indexes()
    _fill(client, name, size, due, clock)
    fill_s = time.perf_counter() - started
    queue = CountingQueue()
    times, ops, claimed = [], [], 0
    try:
        for _ in range(ticks):
            before = _opcounters(client)
            started = time.perf_counter()
            report = tick(store, queue, clock)  # type: ignore[arg-type]  # a queue that only counts
            times.append(time.perf_counter() - started)
            ops.append(_opcounters(client) - before - 1)  # the serverStatus read itself
            claimed += len(report.claimed)
            clock.advance(timedelta(seconds=5))
    finally:
        client.drop_database(name)
        client.close()
    return Row(size=size, fill_s=fill_s, first_ms=times[0] * 1000, median_ms=statistics.median(times) * 1000,
               ops_per_tick=statistics.mean(ops), claimed=claimed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,100000", help="follow-ups not yet due, comma-separated")
    parser.add_argument("--due", type=int, default=5, help="due follow-ups among them")
    parser.add_argument("--ticks", type=int, default=5, help="ticks timed per size")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    given = os.environ.get("MONGODB_URI")
    with tempfile.TemporaryDirectory(prefix="tick-bench-") as tmp:
        server = None if given else start_mongo(Path(tmp) / "mongo", in_memory=True)
        uri = given or (server.url if server else "")
        try:
            rows = [measure(uri, size, due=args.due, ticks=args.ticks) for size in sizes]
        finally:
            if server is not None:
                server.stop()
    print(f"Scheduler tick on {'MongoDB at MONGODB_URI' if given else 'SecantusDB'}, "
          f"{args.ticks} ticks per size, {args.due} due follow-ups")
    print("| follow-ups not yet due | fill (s) | first tick (ms) | median tick (ms) | MongoDB ops per tick | claimed |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.size:,} | {row.fill_s:.1f} | {row.first_ms:.1f} | {row.median_ms:.1f} | "
              f"{row.ops_per_tick:.1f} | {row.claimed} |")
    if len(rows) > 1 and rows[0].median_ms > 0:
        print(f"median tick, largest/smallest book: {rows[-1].median_ms / rows[0].median_ms:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
