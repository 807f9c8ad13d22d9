#!/usr/bin/env python3
"""Console benchmark: the median latency of its busiest pages with N clients, beside an empty store.

Issue 12 (wave 2): the console's pages must not read the whole book per request. On its own
SecantusDB (or ``MONGODB_URI`` when set) it fills one database with ``--clients`` clients, each
with an unpaid invoice (an invoices file imported as ``relance invoices import`` does), enrolled
in one campaign (every follow-up scheduled, a tenth flagged for a person); a second database
holds only the user and the API key. Each store gets its own console, served by uvicorn on
loopback as ``relance console`` serves it; a logged-in client then asks each path ``--requests``
times, one after another, and the script prints the median and p90 of each path on both stores
side by side, with ``GET /healthz`` (no store read) as the floor measured in the same run.

Usage (from the repository root, in the venv)::

    python bench/console_bench.py                      # 5,000 clients, 15 requests a path
    python bench/console_bench.py --clients 1000 --requests 30
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from devtools.embedded import free_port, start_mongo, wait_for_port  # noqa: E402
from services.console import Console, create_app  # noqa: E402
from shared.adapters.mongo import open_repositories  # noqa: E402
from shared.clock import Clock, SystemClock  # noqa: E402
from shared.domain.models import Campaign, EnrolRule, Step  # noqa: E402
from shared.domain.repositories import Repositories  # noqa: E402
from shared.fakes import RecordingQueue  # noqa: E402
from shared.usecases.api_keys import create_key  # noqa: E402
from shared.usecases.campaigns import create_campaign, enrol_campaign  # noqa: E402
from shared.usecases.invoices import import_invoices  # noqa: E402
from shared.usecases.users import add_user  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench password, long enough"
PATHS = ("/healthz", "/", "/clients", "/campaigns", "/inbox", "/api/v1/contacts")


@dataclass
class Timing:
    median_ms: float
    p90_ms: float
    status: int


def fill(store: Repositories, clients: int, clock: Clock, workdir: Path) -> float:
    """``clients`` clients with an invoice each, enrolled in campaign ``relance``; seconds it took."""
    started = time.perf_counter()
    if clients:
        path = workdir / "invoices.csv"
        rows = [f"+3361{n:07d},Client {n:05d},fr,clients,FA-{n:05d},{50 + n % 400}.00,EUR,2026-02-15"
                for n in range(clients)]
        path.write_text("phone,name,language,tags,invoice,amount,currency,due_date\n" + "\n".join(rows) + "\n",
                        encoding="utf-8")
        report = import_invoices(store, path, now=clock.now())
        assert not report.errors, report.errors[:3]
        create_campaign(store, Campaign(id="relance", name="Relance", steps=[Step(), Step(delay="3d")],
                                        enrol=EnrolRule(tags=["clients"])), now=clock.now())
        assert enrol_campaign(store, "relance", now=clock.now()).enrolled == clients
        for contact in store.contacts.find(limit=max(1, clients // 10)):
            store.followups.flag(f"relance:{contact.id}", reason="dispute", now=clock.now())
    add_user(store, EMAIL, PASSWORD, now=clock.now())
    return time.perf_counter() - started


@contextmanager
def serve(store: Repositories, clock: Clock) -> Iterator[str]:
    """The console over ``store`` on a loopback port, in a thread; its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(Console(store, clock, queue=RecordingQueue())), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def logged_in(base: str, api_key: str) -> httpx.Client:
    """A client with the user's session cookie (pages) and the API key (the API)."""
    client = httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {api_key}"})
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no CSRF token on /login"
    answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "next": "/",
                                         "csrf_token": token.group(1)})
    assert answer.status_code == 303, (answer.status_code, answer.text[:300])
    return client


def measure(client: httpx.Client, path: str, requests: int) -> Timing:
    """Median and p90 of ``requests`` GETs of ``path``, after one warm-up request."""
    status = client.get(path).status_code
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = answer.status_code if answer.status_code != 200 else status
    times.sort()
    return Timing(statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.9))], status)


def run(clients: int, requests: int, mongo_uri: str, workdir: Path) -> None:
    # The real clock: sessions expire by MongoDB's TTL index, which reads the real time.
    clock = SystemClock()
    stores: dict[str, Any] = {}
    results: dict[str, dict[str, Timing]] = {}
    fill_s = 0.0
    for label, size in (("empty", 0), ("full", clients)):
        database = f"console_bench_{label}_{os.getpid()}"
        mongo, store = open_repositories(mongo_uri, database)
        stores[label] = (mongo, database)
        store.ensure_indexes()
        seconds = fill(store, size, clock, workdir)
        fill_s = seconds if size else fill_s
        key = create_key(store, "bench", read_only=True, now=clock.now())
        with serve(store, clock) as base:
            client = logged_in(base, key)
            try:
                results[label] = {path: measure(client, path, requests) for path in PATHS}
            finally:
                client.close()
    for mongo, database in stores.values():
        mongo.drop_database(database)
        mongo.close()
    print(f"Console pages, {clients:,} clients (filled in {fill_s:.1f} s), {requests} requests a path, "
          f"median and p90 in ms (baseline: the same path on an empty store; GET /healthz reads no store)\n")
    print("| path | empty store: median | p90 | "
          f"{clients:,} clients: median | p90 | full / empty | status |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in PATHS:
        empty, full = results["empty"][path], results["full"][path]
        ratio = full.median_ms / empty.median_ms if empty.median_ms else float("nan")
        print(f"| `{path}` | {empty.median_ms:.1f} | {empty.p90_ms:.1f} | {full.median_ms:.1f} | "
              f"{full.p90_ms:.1f} | {ratio:.1f}x | {full.status} |")
    floor = results["full"]["/healthz"].median_ms
    slowest = max(PATHS[1:], key=lambda path: results["full"][path].median_ms)
    print(f"\nSlowest with {clients:,} clients: {slowest} at {results['full'][slowest].median_ms:.0f} ms "
          f"({results['full'][slowest].median_ms / floor:.0f}x GET /healthz).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=5000, help="clients in the full store (default 5000)")
    parser.add_argument("--requests", type=int, default=15, help="timed requests a path (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        workdir = Path(tmp)
        given = os.environ.get("MONGODB_URI")
        if given:
            run(args.clients, args.requests, given, workdir)
            return 0
        mongo = start_mongo(workdir / "mongo")
        try:
            run(args.clients, args.requests, mongo.url, workdir)
        finally:
            mongo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
