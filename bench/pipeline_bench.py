#!/usr/bin/env python3
"""Pipeline benchmark: N contacts through scheduler → drafting → sending → status callbacks.

Issue "Delivery guarantees", item "pipeline benchmark". Everything runs as real processes on
loopback, exactly as in production (minus the network): its own Redis and SecantusDB (or
``MONGODB_URI`` / ``REDIS_URL`` when set), the Twilio simulator, an instant fake Gemini, the
webhook, the scheduler (every 0.2 s, one large batch) and the drafting and sending workers
(``--workers`` processes × ``--threads`` threads each).

Method:

1. import N contacts with ``relance contacts import`` and create a one-step campaign (delay 0s,
   a send window open all week, all day) with ``relance campaigns create``; mark every contact
   as having written just now (``last_inbound_at``, directly in MongoDB) so each draft goes
   through the Gemini path (``--template`` leaves the window closed: the template path);
2. measure the idle background (scheduler polling, worker polling and heartbeats) for a few seconds;
3. run ``relance campaigns enrol`` and poll MongoDB until every message is ``delivered`` or
   ``read``: end-to-end messages/s, latency per message from its follow-up's ``enrolled_at``
   to its ``delivered_at`` (``read_at`` if ``read`` came first), and per stage;
4. cost per delivered message: Redis ``INFO commandstats`` and MongoDB ``serverStatus``
   ``opcounters`` before/after (the bench's own polls excluded; the idle background is included,
   and shown apart), server time per collection (``top``), CPU seconds of every process from
   ``/proc``; ``--py-spy`` adds each process's hot spots;
5. the machine's ceiling in the same run: a no-op two-stage dramatiq chain (stage A enqueues
   stage B, stage B increments a counter) on the same Redis, with the same process × thread
   layout; plus the single-thread enqueue rate, and MongoDB alone (the pipeline's typical read
   and conditional update by ``_id``, from as many threads as the workers have).

Usage (from the repository root, in the venv)::

    python bench/pipeline_bench.py --contacts 500
    python bench/pipeline_bench.py --contacts 200 --workers 2 --threads 4 --template
    python bench/pipeline_bench.py --contacts 300 --invoices   # an invoice campaign's reminders

Every process it starts is stopped at the end, on timeout (``--timeout``, partial results are
reported), on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from devtools.embedded import ServerProcess, free_port, start_mongo, start_redis, wait_for_port  # noqa: E402

DEV_ACCOUNT_SID = "AC" + "de" * 16
TOKEN = "bench0123456789abcdef0123456789ab"
TEMPLATE_SID = "HX" + "be0c4000" * 4
CAMPAIGN_ID = "bench"
TAG = "bench"
NAMESPACE = "relance"  # shared.queue.make_broker's namespace
NOOP_NAMESPACE = "relance-bench-noop"
NOOP_QUEUE_A, NOOP_QUEUE_B = "noop_a", "noop_b"
NOOP_DONE_KEY = f"{NOOP_NAMESPACE}:done"
DONE_STATES = ["delivered", "read"]
POLL_SECONDS = 0.5
MACHINE = "(whole machine)"
Doc = dict[str, Any]


class BenchTimeout(Exception):
    """The global --timeout was reached."""


# ------------------------------------------------------------------------------ processes
@dataclass
class Child:
    """A process the bench started."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Processes:
    """Every child process and server of one bench run; ``stop()`` ends them all (reverse order)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.children: list[Child] = []
        self.servers: list[ServerProcess] = []

    def spawn(self, name: str, args: list[str], module: str = "services.cli",
              extra_env: dict[str, str] | None = None) -> Child:
        """``python -m MODULE ARGS`` in the work directory (no stray .env), logging to logs/NAME.log."""
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=self.workdir,
                                    env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT)
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def spawn_raw(self, name: str, command: list[str]) -> Child:
        """Any command (py-spy), logging to logs/NAME.log."""
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(command, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def check_alive(self, names: set[str] | None = None) -> None:
        """Raise if a child (among ``names``) died."""
        for child in self.children:
            if (names is None or child.name in names) and child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}; see {child.log}")

    def stop_children(self, names: set[str] | None = None, timeout: float = 20.0) -> None:
        """SIGTERM the children (those in ``names``), wait, SIGKILL the stubborn ones."""
        chosen = [c for c in self.children if names is None or c.name in names]
        for child in reversed(chosen):
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + timeout
        for child in reversed(chosen):
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=5)
        self.children = [c for c in self.children if c not in chosen]

    def stop(self) -> None:
        """Stop every child, then the servers."""
        self.stop_children()
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()

    def pids(self) -> dict[str, int]:
        """Name → pid of every live child and server."""
        out = {c.name: c.proc.pid for c in self.children if c.proc.poll() is None}
        out.update({s.name: s.proc.pid for s in self.servers if s.proc.poll() is None})
        return out


def wait_for_log(child: Child, text: str, deadline: float, procs: Processes) -> None:
    """Wait until ``text`` appears in the child's log."""
    while time.monotonic() < deadline:
        procs.check_alive({child.name})
        with contextlib.suppress(OSError):
            if text in child.log.read_text(errors="replace"):
                return
        time.sleep(0.1)
    raise BenchTimeout(f"{child.name} did not log {text!r}")


# ------------------------------------------------------------------------------ CPU accounting
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds user+system) for every process (Linux /proc)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else []:
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS)
    return table


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores; /proc/stat), 0 off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS


def cpu_by_name(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its descendants (empty off Linux)."""
    table = _proc_table()
    if not table:
        return {}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for name, root in pids.items():
        if name.startswith("py-spy"):
            continue
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack.extend(children.get(pid, []))
        out[name] = total
    out["bench (this script)"] = table.get(os.getpid(), (0, 0.0))[1]
    out[MACHINE] = machine_busy_seconds()
    return out


# ------------------------------------------------------------------------------ counters
@dataclass
class Snapshot:
    """Counters at one instant."""

    at: float
    redis: dict[str, int]
    mongo: dict[str, int] | None
    mongo_top: dict[str, float]
    cpu: dict[str, float]
    own_redis: Counter[str]  # the bench's own calls since the previous snapshot
    own_mongo: int


def redis_commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started (``INFO commandstats``)."""
    info = client.info("commandstats")
    return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in info.items()
            if isinstance(value, dict) and "calls" in value}


def mongo_opcounters(client: MongoClient[Doc]) -> dict[str, int] | None:
    """``serverStatus().opcounters`` (None when the server does not give them)."""
    try:
        status = client.admin.command("serverStatus")
    except Exception:
        return None
    counters = status.get("opcounters")
    return {k: int(v) for k, v in counters.items() if isinstance(v, int | float)} if counters else None


def mongo_top(client: MongoClient[Doc], db_name: str) -> dict[str, float]:
    """Server time (ms) per collection and operation from the ``top`` command (when supported)."""
    try:
        totals = client.admin.command("top")["totals"]
    except Exception:
        return {}
    out: dict[str, float] = {}
    for ns, by_op in totals.items():
        if not ns.startswith(db_name + ".") or not isinstance(by_op, dict):
            continue
        coll = ns.split(".", 1)[1]
        for op in ("queries", "getmore", "insert", "update", "remove", "commands"):
            entry = by_op.get(op) or {}
            out[f"{coll}.{op}.ms"] = entry.get("time", 0) / 1000.0
            out[f"{coll}.{op}.count"] = entry.get("count", 0)
    return out


class Meter:
    """Takes snapshots; each one carries the Redis/Mongo calls the bench made since the previous one."""

    def __init__(self, rds: redis.Redis, mongo: MongoClient[Doc], db_name: str, procs: Processes) -> None:
        self.rds, self.mongo, self.db_name, self.procs = rds, mongo, db_name, procs
        self.own_mongo = 0  # the bench's own MongoDB commands since the last snapshot (polls, snapshots)
        self.own_redis: Counter[str] = Counter()
        self.top_supported = True

    def snapshot(self) -> Snapshot:
        """Counters now.

        Redis counts a command after running it, so this INFO shows up in the next snapshot;
        MongoDB counts one serverStatus and this ``top`` between two snapshots.
        """
        own_redis, own_mongo = Counter(self.own_redis), self.own_mongo
        cpu = cpu_by_name(self.procs.pids())
        stats = redis_commandstats(self.rds)
        counters = mongo_opcounters(self.mongo)
        top = mongo_top(self.mongo, self.db_name) if self.top_supported else {}
        self.top_supported = bool(top)
        self.own_redis = Counter({"info": 1})
        self.own_mongo = 2 if self.top_supported else 1
        return Snapshot(time.monotonic(), stats, counters, top, cpu, own_redis, own_mongo)


def diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, float]:
    """after − before, key by key."""
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


# ------------------------------------------------------------------------------ results
@dataclass
class Cost:
    """Work done during one measured phase (the bench's own calls excluded), and the idle rates."""

    seconds: float
    redis_calls: float = 0.0
    redis_by_command: dict[str, float] = field(default_factory=dict)
    mongo_ops: float | None = None
    mongo_by_op: dict[str, float] = field(default_factory=dict)
    mongo_top: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    idle_redis_per_s: float = 0.0
    idle_mongo_per_s: float = 0.0


@dataclass
class Results:
    """Everything the report prints (fields stay None when a phase did not finish)."""

    contacts: int
    layout: str
    path: str
    pipeline_delivered: int = 0
    pipeline_seconds: float | None = None
    pipeline_seconds_from_enrolled_at: float | None = None
    pipeline_rate: float | None = None
    pipeline_partial: bool = False
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    draft_sources: dict[str, int] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    pipeline_cost: Cost | None = None
    enqueue_rate: float | None = None
    noop_done: int = 0
    noop_seconds: float | None = None
    noop_rate: float | None = None
    noop_partial: bool = False
    noop_cost: Cost | None = None
    mongo_ceiling: float | None = None  # ops/s
    mongo_ceiling_threads: int = 0
    profile: list[str] = field(default_factory=list)
    scheduler: str = ""
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (0 < q ≤ 100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summarise(values: list[float]) -> dict[str, float]:
    """Count, p50, p90, p99, max and mean of a list of seconds."""
    if not values:
        return {}
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values), "mean": sum(values) / len(values)}


# ------------------------------------------------------------------------------ setup
def mongo_target(explicit: str | None, procs: Processes, storage: str, db_name: str) -> tuple[str, str]:
    """(base URI without database, database name): MONGODB_URI's server, or our own SecantusDB."""
    if explicit:
        parts = urlsplit(explicit)
        base = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
        return base, db_name
    server = start_mongo(procs.workdir / "mongo", in_memory=(storage == "memory"))
    procs.servers.append(server)
    return server.url.rsplit("/", 1)[0], db_name


def with_database(base: str, db_name: str) -> str:
    """``base`` (scheme://host[?query]) with ``/db_name`` as its path."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db_name, parts.query, ""))


def write_inputs(workdir: Path, n: int, *, invoices: bool = False) -> tuple[Path, Path]:
    """The contacts CSV and the one-step campaign JSON (``invoices``: an invoice campaign, its
    reminders drafted from each contact's invoice and re-read before sending)."""
    contacts = workdir / "contacts.csv"
    with contacts.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "phone", "language", "timezone", "invoice_number", "amount", "currency",
                         "due_date", "payment_link", "tags"])
        for i in range(n):
            writer.writerow([f"Client {i}", f"+3361{i:07d}", "fr" if i % 3 else "en", "Europe/Paris",
                             f"FA-2026-{i:05d}", f"{100 + i % 900}.50", "EUR", "2026-11-02",
                             f"https://pay.example.com/i/{i:05d}", TAG])
    campaign = workdir / "campaign.json"
    campaign.write_text(json.dumps({
        "id": CAMPAIGN_ID, "name": "Pipeline benchmark",
        "send_window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                        "start": "00:00", "end": "23:59:59.999999"},
        "enrol": {"tags": [TAG], **({"invoices": {}} if invoices else {})},
        "steps": [{"delay": "0s", "anchor": "enrolment", "tone": "courteous", "template": {
            "content_sid": TEMPLATE_SID, "variables": {"1": "name", "2": "invoice_number", "3": "amount"},
            "preview": {"fr": "Bonjour {{1}}, la facture {{2}} de {{3}} EUR reste à régler.",
                        "en": "Hello {{1}}, invoice {{2}} for {{3}} EUR is still due."}}}],
    }))
    return contacts, campaign


def relance(procs: Processes, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one ``relance`` CLI command; raise with its output when it fails."""
    result = subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=procs.workdir, env=procs.env,
                            capture_output=True, text=True, timeout=max(1.0, timeout), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"relance {' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def heartbeat_count(rds: redis.Redis, namespace: str) -> int:
    """How many dramatiq consumers (broker instances) have a fresh heartbeat on ``namespace``."""
    return int(rds.zcard(f"{namespace}:__heartbeats__"))


# ------------------------------------------------------------------------------ py-spy
class Profiler:
    """``py-spy record --format raw`` on chosen processes while the pipeline runs."""

    def __init__(self, procs: Processes, out_dir: Path) -> None:
        self.procs, self.out_dir = procs, out_dir
        self.recorders: list[tuple[str, Child, Path]] = []

    def start(self, names: list[str]) -> None:
        """Attach py-spy to each named process that is alive."""
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(binary).exists():
            raise RuntimeError("--py-spy needs py-spy (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        pids = self.procs.pids()
        for name in names:
            if name not in pids:
                continue
            target = self.out_dir / f"{name}.txt"
            child = self.procs.spawn_raw(f"py-spy-{name}", [
                binary, "record", "--pid", str(pids[name]), "--rate", "100", "--nonblocking", "--subprocesses",
                "--format", "raw", "--output", str(target)])
            self.recorders.append((name, child, target))

    def stop(self) -> None:
        """SIGINT the recorders (they write their file then) and wait for them."""
        for _, child, _ in self.recorders:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGINT)
        for _, child, _ in self.recorders:
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
        names = {child.name for _, child, _ in self.recorders}
        self.procs.children = [c for c in self.procs.children if c.name not in names]

    def summary(self, top: int = 8) -> list[str]:
        """Per process: the hottest leaf functions and the hottest project functions (inclusive)."""
        lines: list[str] = []
        for name, _, path in self.recorders:
            if not path.exists():
                lines.append(f"{name}: no profile written")
                continue
            leaves: Counter[str] = Counter()
            innermost: Counter[str] = Counter()  # the deepest Relance function on each sampled stack
            total = 0
            for raw in path.read_text(errors="replace").splitlines():
                stack, _, count_text = raw.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                count = int(count_text)
                total += count
                frames = [f for f in stack.split(";") if not f.startswith("process ")]
                if not frames:
                    continue
                leaves[_short(frames[-1])] += count
                ours = [f for f in frames if _is_project(f)]
                if ours:
                    innermost[_short(ours[-1])] += count
            if not total:
                lines.append(f"{name}: no samples (idle)")
                continue
            lines.append(f"{name}: {total} samples at 100 Hz (≈{total / 100:.1f} thread-seconds busy or blocked)")
            lines.append("  self:       " + "; ".join(f"{f} {100 * c / total:.0f}%"
                                                          for f, c in leaves.most_common(top)))
            if innermost:
                lines.append("  in Relance: " + "; ".join(f"{f} {100 * c / total:.0f}%"
                                                          for f, c in innermost.most_common(top)))
        return lines


def _short(frame: str) -> str:
    """``function (path/to/file.py:123)`` → ``function (file.py:123)``."""
    function, _, where = frame.partition(" (")
    return f"{function} ({Path(where.rstrip(')')).name})" if where else frame


def _is_project(frame: str) -> bool:
    """A frame of Relance's own code (py-spy prints paths relative to sys.path entries)."""
    where = frame.partition(" (")[2]
    return where.startswith(("shared/", "services/", "workers/")) or (
        str(REPO) in where and "/.venv/" not in where and "site-packages" not in where)


# ------------------------------------------------------------------------------ phases
class Clock:
    """The global deadline."""

    def __init__(self, timeout: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + timeout

    def left(self) -> float:
        """Seconds left before --timeout."""
        return self.deadline - time.monotonic()

    def check(self, what: str) -> None:
        """Raise BenchTimeout when the deadline has passed."""
        if time.monotonic() >= self.deadline:
            raise BenchTimeout(what)


def _net(after: Snapshot, before: Snapshot) -> tuple[dict[str, float], dict[str, float] | None]:
    """Redis calls by command and Mongo ops by type between two snapshots, minus the bench's own."""
    redis_by = diff(after.redis, before.redis)
    for cmd, calls in after.own_redis.items():
        redis_by[cmd] = redis_by.get(cmd, 0) - calls
    mongo_by = None
    if after.mongo is not None and before.mongo is not None:
        mongo_by = diff(after.mongo, before.mongo)
        mongo_by["command"] = mongo_by.get("command", 0) - after.own_mongo
    return redis_by, mongo_by


def measure_cost(before: Snapshot, after: Snapshot, idle: tuple[Snapshot, Snapshot] | None) -> Cost:
    """The counters' difference minus the bench's own calls; the idle rates are kept alongside.

    Nothing is subtracted for the idle background: under load the scheduler ticks far less often
    than when idle (its claim loop takes seconds), so "idle rate × duration" overcorrects.
    """
    redis_by, mongo_by = _net(after, before)
    cost = Cost(seconds=after.at - before.at)
    if idle is not None:
        idle_seconds = idle[1].at - idle[0].at
        idle_redis, idle_mongo = _net(idle[1], idle[0])
        cost.idle_redis_per_s = max(0.0, sum(idle_redis.values()) / idle_seconds)
        if idle_mongo is not None:
            cost.idle_mongo_per_s = max(0.0, sum(idle_mongo.values()) / idle_seconds)
    cost.redis_by_command = {k: v for k, v in redis_by.items() if v > 0}
    cost.redis_calls = sum(cost.redis_by_command.values())
    if mongo_by is not None:
        cost.mongo_by_op = {k: max(0.0, v) for k, v in mongo_by.items()}
        cost.mongo_ops = sum(cost.mongo_by_op.values())
    cost.mongo_top = diff(after.mongo_top, before.mongo_top)
    cost.cpu = {k: v for k, v in diff(after.cpu, before.cpu).items() if v > 0}
    return cost


def run_pipeline(args: argparse.Namespace, procs: Processes, clock: Clock, results: Results, rds: redis.Redis,
                 mongo: MongoClient[Doc], db_name: str, ports: dict[str, int], out: Callable[[str], None]) -> None:
    """Phase 1: the real pipeline."""
    db = mongo[db_name]
    n = args.contacts
    servers = [
        (procs.spawn("fake_gemini", ["--port", str(ports["gemini"]), "--mode", "good"],
                     module="tests.support.fake_gemini"), ports["gemini"]),
        (procs.spawn("simulator", ["simulator", "--port", str(ports["simulator"]),
                                   "--callback-delay", str(args.callback_delay)]), ports["simulator"]),
        (procs.spawn("webhook", ["webhook", "--host", "127.0.0.1", "--port", str(ports["webhook"])]),
         ports["webhook"]),
    ]
    for child, port in servers:
        try:
            wait_for_port(port, timeout=max(1.0, min(60.0, clock.left())), proc=child.proc)
        except RuntimeError:
            tail = child.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{child.name} exited before listening: {' '.join(tail)} (see {child.log})") from None
    if not args.read:
        import httpx

        httpx.post(f"http://127.0.0.1:{ports['simulator']}/_sim/config", json={"send_read": False}, timeout=10)

    contacts_file, campaign_file = write_inputs(procs.workdir, n, invoices=args.invoices)
    started = time.monotonic()
    out(relance(procs, "contacts", "import", str(contacts_file), timeout=clock.left()).stdout.strip().splitlines()[-1])
    if args.invoices:  # an invoices command first migrates each contact's invoice fields into an invoice
        relance(procs, "invoices", "list", "--status", "paid", timeout=clock.left())
        out(f"  {db.invoices.count_documents({})} invoices (one per contact, from its fields)")
    if not args.invoices:
        out(relance(procs, "campaigns", "create", str(campaign_file), timeout=clock.left()).stdout.strip())
    out(f"  (import + create took {time.monotonic() - started:.1f}s)")
    if not args.template:
        marked = db.contacts.update_many({"tags": TAG}, {"$set": {"last_inbound_at": datetime.now(UTC)}})
        out(f"  {marked.modified_count} contacts marked as having written just now (24-hour window open)")

    workers = []
    for i in range(args.workers):
        workers.append(procs.spawn(f"drafting-{i}", ["worker", "drafting", "--threads", str(args.threads)]))
        workers.append(procs.spawn(f"sending-{i}", ["worker", "sending", "--threads", str(args.threads)]))
    scheduler = procs.spawn("scheduler", ["scheduler"])
    pipeline_names = {"fake_gemini", "simulator", "webhook", "scheduler", *(w.name for w in workers)}
    while heartbeat_count(rds, NAMESPACE) < len(workers):
        procs.check_alive(pipeline_names)
        clock.check("workers did not start")
        time.sleep(0.2)
    if args.log_level.upper() in ("DEBUG", "INFO"):
        wait_for_log(scheduler, "scheduler started", min(clock.deadline, time.monotonic() + 60), procs)
    time.sleep(1.0)  # let the scheduler finish its first ticks (index creation)

    meter = Meter(rds, mongo, db_name, procs)
    idle0 = meter.snapshot()
    time.sleep(args.idle_seconds)
    idle1 = meter.snapshot()
    profiler = None
    if args.py_spy:
        profiler = Profiler(procs, procs.workdir / "py-spy")
        profiler.start(["mongo", "webhook", "scheduler", "simulator", "fake_gemini", *(w.name for w in workers)])
        time.sleep(1.0)  # let py-spy attach
    if args.invoices:
        # Created once the scheduler has run its first sweep: its hourly enrolment of invoice campaigns
        # ran then (nothing to enrol) and waits an hour, so the enrol command below enrols every client.
        out(relance(procs, "campaigns", "create", str(campaign_file), timeout=clock.left()).stdout.strip())
    before = meter.snapshot()
    t_enrol = time.monotonic()
    wall_enrol = datetime.now(UTC)
    enrolled = relance(procs, "campaigns", "enrol", CAMPAIGN_ID, timeout=clock.left())
    out(f"{enrolled.stdout.strip()}  (the enrol command took {time.monotonic() - t_enrol:.1f}s)")
    match = re.search(r"enrolled (\d+)", enrolled.stdout)
    if match and int(match.group(1)) != n:
        results.notes.append(f"only {match.group(1)} of {n} contacts were enrolled: {enrolled.stderr.strip()[:300]}")
        n = int(match.group(1))

    done_filter = {"direction": "outbound", "state": {"$in": DONE_STATES}}
    delivered, last_print = 0, 0.0
    try:
        while True:
            procs.check_alive(pipeline_names)
            delivered = db.messages.count_documents(done_filter)
            meter.own_mongo += 1
            now = time.monotonic()
            if delivered >= n:
                break
            if now - last_print >= 5:
                states = {r["_id"]: r["n"] for r in db.messages.aggregate(
                    [{"$match": {"direction": "outbound"}}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}])}
                meter.own_mongo += 1
                out(f"  [{now - t_enrol:5.1f}s] messages: "
                    + (", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none"))
                last_print = now
            clock.check("pipeline")
            time.sleep(POLL_SECONDS)
        results.pipeline_seconds = time.monotonic() - t_enrol
    except BenchTimeout:
        results.pipeline_partial = True
        results.pipeline_seconds = time.monotonic() - t_enrol
        results.notes.append(f"pipeline stopped by --timeout: {delivered}/{n} delivered after "
                             f"{results.pipeline_seconds:.1f}s")
    except KeyboardInterrupt:
        results.pipeline_partial = True
        results.pipeline_seconds = time.monotonic() - t_enrol
        results.pipeline_delivered = delivered
        collect_latencies(db, results, wall_enrol)
        raise
    results.pipeline_delivered = delivered
    collect_latencies(db, results, wall_enrol)
    results.scheduler = scheduler_ticks(scheduler.log, wall_enrol)

    if not results.pipeline_partial and args.read:
        # Let the trailing `read` callbacks land so the cost counts the whole conversation.
        settle = time.monotonic() + min(10.0, max(0.0, clock.left()))
        while time.monotonic() < settle and db.messages.count_documents(
                {"direction": "outbound", "state": "read"}) < n:
            meter.own_mongo += 1
            time.sleep(0.2)
        meter.own_mongo += 1
    after = meter.snapshot()
    results.pipeline_cost = measure_cost(before, after, (idle0, idle1))
    if profiler is not None:
        profiler.stop()
        results.profile = profiler.summary()
        results.notes.append("py-spy was attached: its sampling slows the processes a little")
    results.states = {r["_id"]: r["n"] for r in db.messages.aggregate(
        [{"$match": {"direction": "outbound"}}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}])}


_TICK_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO services\.scheduler: tick claimed=(\d+)")


def scheduler_ticks(log: Path, since: datetime) -> str:
    """How the scheduler's claiming went: ticks, claims, and the claim rate inside the longest ticks.

    A tick's line is logged when it ends; the next tick starts SCHEDULER_INTERVAL_SECONDS (0.2 s)
    after the previous one ended, so a tick lasted about (its line − the previous line)."""
    start = since.astimezone().replace(tzinfo=None)  # the log's asctime is local time
    previous, ticks = start, []
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            match = _TICK_LINE.match(line)
            if not match:
                continue
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            if at < start:
                continue
            ticks.append(((at - previous).total_seconds(), int(match.group(2))))
            previous = at
    claiming = [(secs, n) for secs, n in ticks if n]
    if not claiming:
        return ""
    total_n = sum(n for _, n in claiming)
    total_s = sum(secs for secs, _ in claiming)
    longest = max(claiming)
    return (f"{len(claiming)} ticks claimed {total_n} follow-ups in about {total_s:.1f} s "
            f"({total_n / total_s if total_s else 0:.1f} claims/s, one conditional update each); the longest "
            f"tick claimed {longest[1]} in about {longest[0]:.1f} s. Sizes: "
            + ", ".join(str(n) for _, n in claiming[:12]) + (" …" if len(claiming) > 12 else ""))


def collect_latencies(db: Any, results: Results, wall_enrol: datetime) -> None:
    """Per-message latencies from the message and follow-up documents."""
    enrolled_at = {d["_id"]: d["enrolled_at"] for d in db.followups.find({"campaign_id": CAMPAIGN_ID},
                                                                          {"enrolled_at": 1})}
    stages: dict[str, list[float]] = {"enrolled → drafted": [], "drafted → sent": [], "sent → delivered": [],
                                      "enrolled → delivered": [], "enrol command start → delivered": []}
    sources: Counter[str] = Counter()
    finished: list[datetime] = []
    for doc in db.messages.find({"direction": "outbound", "state": {"$in": DONE_STATES}},
                                {"followup_id": 1, "created_at": 1, "sent_at": 1, "delivered_at": 1, "read_at": 1,
                                 "draft_source": 1, "kind": 1}):
        sources[f"{doc.get('kind')}/{doc.get('draft_source')}"] += 1
        start = enrolled_at.get(doc.get("followup_id"))
        reached = [t for t in (doc.get("delivered_at"), doc.get("read_at")) if t is not None]
        if start is None or not reached:
            continue
        delivered_at = min(reached)
        finished.append(delivered_at)
        created, sent = doc.get("created_at"), doc.get("sent_at")
        if created is not None:
            stages["enrolled → drafted"].append((created - start).total_seconds())
        if created is not None and sent is not None:
            stages["drafted → sent"].append((sent - created).total_seconds())
        if sent is not None:
            stages["sent → delivered"].append((delivered_at - sent).total_seconds())
        stages["enrolled → delivered"].append((delivered_at - start).total_seconds())
        stages["enrol command start → delivered"].append((delivered_at - wall_enrol).total_seconds())
    results.latency = {k: summarise(v) for k, v in stages.items() if v}
    results.draft_sources = dict(sources)
    if finished and enrolled_at:
        first = min(enrolled_at.values())
        results.pipeline_seconds_from_enrolled_at = (max(finished) - first).total_seconds()
        if not results.pipeline_partial:  # exact, rather than rounded up to the next poll
            results.pipeline_seconds = (max(finished) - wall_enrol).total_seconds()
    if results.pipeline_seconds:
        results.pipeline_rate = len(finished) / results.pipeline_seconds


def run_noop(args: argparse.Namespace, procs: Processes, clock: Clock, results: Results, rds: redis.Redis,
             mongo: MongoClient[Doc], db_name: str, redis_url: str, out: Callable[[str], None]) -> None:
    """Phase 2: the same Redis and process × thread layout, with actors that do nothing."""
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    n = args.contacts
    broker = RedisBroker(url=redis_url, namespace=NOOP_NAMESPACE)
    try:
        # Single-thread enqueue rate, on a queue nobody consumes.
        probe = f"{NOOP_NAMESPACE}-probe"
        started = time.perf_counter()
        for i in range(n):
            broker.enqueue(Message(queue_name=probe, actor_name="noop_probe", args=(i,), kwargs={}, options={}))
        results.enqueue_rate = n / (time.perf_counter() - started)
        for key in rds.scan_iter(f"{NOOP_NAMESPACE}:{probe}*"):
            rds.delete(key)

        rds.delete(NOOP_DONE_KEY)
        names = set()
        for i in range(args.workers):
            for queue in (NOOP_QUEUE_A, NOOP_QUEUE_B):
                child = procs.spawn(f"noop-{queue}-{i}", ["_noop-worker", "--redis-url", redis_url, "--queue", queue,
                                                          "--threads", str(args.threads)],
                                    module="bench.pipeline_bench")
                names.add(child.name)
        while heartbeat_count(rds, NOOP_NAMESPACE) < 2 * args.workers:
            procs.check_alive(names)
            clock.check("no-op workers did not start")
            time.sleep(0.2)
        time.sleep(0.5)
        meter = Meter(rds, mongo, db_name, procs)
        idle0 = meter.snapshot()
        time.sleep(min(args.idle_seconds, 2.0))
        idle1 = meter.snapshot()
        before = meter.snapshot()
        t0 = time.monotonic()
        for i in range(n):
            broker.enqueue(Message(queue_name=NOOP_QUEUE_A, actor_name="noop_a", args=(i,), kwargs={}, options={}))
        done = 0
        try:
            while True:
                done = int(rds.get(NOOP_DONE_KEY) or 0)
                meter.own_redis["get"] += 1
                if done >= n:
                    break
                procs.check_alive(names)
                clock.check("no-op drain")
                time.sleep(0.02)
            results.noop_seconds = time.monotonic() - t0
        except BenchTimeout:
            results.noop_partial = True
            results.noop_seconds = time.monotonic() - t0
            results.notes.append(f"no-op drain stopped early: {done}/{n} after {results.noop_seconds:.1f}s")
        results.noop_done = done
        results.noop_rate = done / results.noop_seconds if results.noop_seconds else None
        after = meter.snapshot()
        # The enqueues (one per message) came from the bench: keep them, they play the scheduler's part.
        results.noop_cost = measure_cost(before, after, (idle0, idle1))
        out(f"no-op chain: {done}/{n} through 2 queues in {results.noop_seconds:.2f}s")
        procs.stop_children(names)
    finally:
        broker.close()
        for key in rds.scan_iter(f"{NOOP_NAMESPACE}*"):
            rds.delete(key)


def run_mongo_ceiling(args: argparse.Namespace, mongo: MongoClient[Doc], db_name: str, results: Results,
                      clock: Clock) -> None:
    """Phase 3: MongoDB alone, the pipeline's typical operation (read by _id, conditional update by _id
    with a capped history ``$push``), from as many threads as the pipeline's workers have."""
    n, threads = args.contacts, 2 * args.workers * args.threads
    coll = mongo[db_name]["bench_ceiling"]
    coll.drop()
    now = datetime.now(UTC)
    ids = [f"m{i}" for i in range(n)]
    coll.insert_many([{"_id": i, "state": "ready", "history": [{"state": "ready", "at": now}]} for i in ids])
    errors: list[BaseException] = []

    def work(chunk: list[str]) -> None:
        try:
            for doc_id in chunk:
                if clock.left() <= 0:
                    return
                coll.find_one({"_id": doc_id})
                coll.update_one({"_id": doc_id, "state": {"$in": ["ready"]}},
                                {"$set": {"state": "sent", "updated_at": now},
                                 "$push": {"history": {"$each": [{"state": "sent", "at": now}], "$slice": -50}}})
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(ids[i::threads],), daemon=True) for i in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    done = coll.count_documents({"state": "sent"})
    coll.drop()
    if errors:
        results.notes.append(f"MongoDB ceiling: {type(errors[0]).__name__}: {errors[0]}")
    results.mongo_ceiling = 2 * done / elapsed if elapsed else None
    results.mongo_ceiling_threads = threads


def noop_worker_main(argv: list[str]) -> int:
    """Hidden subcommand: a dramatiq worker whose actors do nothing (stage A enqueues stage B)."""
    import dramatiq
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    parser = argparse.ArgumentParser(prog="pipeline_bench.py _noop-worker")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", choices=[NOOP_QUEUE_A, NOOP_QUEUE_B], required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    broker = RedisBroker(url=args.redis_url, namespace=NOOP_NAMESPACE)
    counter = redis.Redis.from_url(args.redis_url)

    def noop_a(i: int) -> None:
        broker.enqueue(Message(queue_name=NOOP_QUEUE_B, actor_name="noop_b", args=(i,), kwargs={}, options={}))

    def noop_b(i: int) -> None:
        counter.incr(NOOP_DONE_KEY)

    dramatiq.actor(broker=broker, actor_name="noop_a", queue_name=NOOP_QUEUE_A, max_retries=0)(noop_a)
    dramatiq.actor(broker=broker, actor_name="noop_b", queue_name=NOOP_QUEUE_B, max_retries=0)(noop_b)
    worker = dramatiq.Worker(broker, queues={args.queue}, worker_threads=max(1, args.threads))
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.start()
    stop.wait()
    worker.stop(timeout=10_000)
    broker.close()
    return 0


# ------------------------------------------------------------------------------ report
def _fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def _per(total: float | None, count: int) -> float | None:
    return None if total is None or not count else total / count


def report(results: Results, out: Callable[[str], None]) -> None:
    """The markdown tables."""
    pc, nc = results.pipeline_cost, results.noop_cost
    delivered = results.pipeline_delivered
    e2e = results.latency.get("enrolled → delivered", {})
    ratio = (results.noop_rate / results.pipeline_rate
             if results.noop_rate and results.pipeline_rate else None)
    partial = " (partial)" if results.pipeline_partial else ""
    out("")
    out(f"### Pipeline benchmark: {results.contacts} contacts, {results.path} path, {results.layout}{partial}")
    out("")
    out("| | pipeline | no-op dramatiq chain | pipeline ÷ no-op (cost) |")
    out("| --- | --- | --- | --- |")
    out(f"| messages/s (end to end) | {_fmt(results.pipeline_rate)} | {_fmt(results.noop_rate)} | "
        f"{_fmt(ratio, 1, '× the time')} |")
    out(f"| messages done | {delivered}/{results.contacts} | {results.noop_done}/{results.contacts} | |")
    pm, nm = _per(pc.mongo_ops if pc else None, delivered), _per(nc.mongo_ops if nc else None, results.noop_done)
    out(f"| MongoDB ops / message | {_fmt(pm)} | {_fmt(nm)} | |")
    pr = _per(pc.redis_calls if pc else None, delivered)
    nr = _per(nc.redis_calls if nc else None, results.noop_done)
    out(f"| Redis commands / message | {_fmt(pr)} | {_fmt(nr)} | {_fmt(_ratio(pr, nr), 1, '×')} |")
    pcpu = _per(_process_cpu(pc), delivered)
    ncpu = _per(_process_cpu(nc), results.noop_done)
    out(f"| CPU ms / message (all processes) | {_fmt(_ms(pcpu))} | {_fmt(_ms(ncpu))} | "
        f"{_fmt(_ratio(pcpu, ncpu), 1, '×')} |")
    out(f"| latency p50 / p99 (enrolled → delivered) | {_fmt(e2e.get('p50'), 2, ' s')} / "
        f"{_fmt(e2e.get('p99'), 2, ' s')} | | |")
    out(f"| single-thread enqueue rate | | {_fmt(results.enqueue_rate, 0)} msg/s | |")
    if results.mongo_ceiling:
        bound = results.mongo_ceiling / pm if pm else None
        out(f"| MongoDB alone: find_one + conditional update_one by _id, {results.mongo_ceiling_threads} threads "
            f"| {_fmt(results.mongo_ceiling, 0)} ops/s → at most {_fmt(bound)} messages/s at "
            f"{_fmt(pm)} ops/message | | |")
    out("")
    out(f"Wall time: enrol command start → last delivered {_fmt(results.pipeline_seconds, 2, ' s')}; "
        f"first enrolled_at → last delivered {_fmt(results.pipeline_seconds_from_enrolled_at, 2, ' s')}. "
        f"Draft paths: {', '.join(f'{k} {v}' for k, v in sorted(results.draft_sources.items())) or 'n/a'}. "
        f"Final states: {', '.join(f'{k} {v}' for k, v in sorted(results.states.items())) or 'n/a'}.")
    if results.latency:
        out("")
        out("| latency per message (s) | n | p50 | p90 | p99 | max |")
        out("| --- | --- | --- | --- | --- | --- |")
        for name, s in results.latency.items():
            out(f"| {name} | {int(s['n'])} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.2f} |")
    if pc is not None:
        out("")
        if pc.mongo_ops is None:
            out("MongoDB: the server gives no serverStatus opcounters; no count.")
        else:
            ops = ", ".join(f"{k} {_fmt(_per(v, delivered), 2)}" for k, v in sorted(pc.mongo_by_op.items())
                            if round(v) != 0)
            out(f"MongoDB ops per delivered message (serverStatus opcounters): {ops}. Idle background: "
                f"{pc.idle_mongo_per_s:.1f} ops/s (scheduler polling; included above, as it is a real cost, "
                f"at most {_fmt(_per(pc.idle_mongo_per_s * pc.seconds, delivered), 1)}/message at this rate).")
        top = sorted(((k, v) for k, v in pc.redis_by_command.items()), key=lambda kv: -kv[1])[:10]
        out("Redis commands per delivered message (INFO commandstats): "
            + ", ".join(f"{k} {_fmt(_per(v, delivered), 2)}" for k, v in top)
            + f". Idle background: {pc.idle_redis_per_s:.1f} commands/s (dramatiq consumers polling and "
              f"heartbeats; at most {_fmt(_per(pc.idle_redis_per_s * pc.seconds, delivered), 1)}/message).")
        if nc is not None:
            ntop = sorted(nc.redis_by_command.items(), key=lambda kv: -kv[1])[:8]
            out("No-op chain Redis commands per message: "
                + ", ".join(f"{k} {_fmt(_per(v, results.noop_done), 2)}" for k, v in ntop))
        if pc.cpu:
            out("")
            out(f"| process | CPU s during the pipeline ({pc.seconds:.1f} s wall) | % of one core | CPU ms / message |")
            out("| --- | --- | --- | --- |")
            ours = {k: v for k, v in pc.cpu.items() if k != MACHINE}
            for name, secs in sorted(ours.items(), key=lambda kv: -kv[1]):
                out(f"| {name} | {secs:.2f} | {100 * secs / pc.seconds:.0f}% | {_fmt(_ms(_per(secs, delivered)))} |")
            if MACHINE in pc.cpu:
                others = max(0.0, pc.cpu[MACHINE] - sum(ours.values()))
                out(f"| other processes on the machine (noise) | {others:.2f} | {100 * others / pc.seconds:.0f}% | |")
        coll_ms = {k.removesuffix(".ms"): v for k, v in pc.mongo_top.items() if k.endswith(".ms") and v > 0}
        if coll_ms:
            out("")
            out("| MongoDB `top` (collection.op) | ops | ops / message | server ms (incl. lock waits) | ms / op |")
            out("| --- | --- | --- | --- | --- |")
            for key, ms in sorted(coll_ms.items(), key=lambda kv: -kv[1])[:12]:
                count = pc.mongo_top.get(f"{key}.count", 0)
                out(f"| {key} | {count:.0f} | {_fmt(_per(count, delivered), 2)} | {ms:,.0f} | "
                    f"{_fmt(ms / count if count else None, 1)} |")
    if results.scheduler:
        out("")
        out("Scheduler ticks that claimed follow-ups (from its log): " + results.scheduler)
    if results.profile:
        out("")
        out("py-spy during the pipeline phase (samples include threads blocked in socket reads, i.e. waiting "
            "on MongoDB/Redis/HTTP); 'self' = leaf function, 'in Relance' = innermost Relance function:")
        out("```")
        for line in results.profile:
            out(line)
        out("```")
    for note in results.notes:
        out(f"note: {note}")


def _process_cpu(cost: Cost | None) -> float | None:
    """CPU seconds of the bench's processes (not the whole machine)."""
    return None if cost is None else sum(v for k, v in cost.cpu.items() if k != MACHINE)


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=500, help="messages to push through (default 500)")
    parser.add_argument("--workers", type=int, default=1, help="processes for drafting and for sending (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (default 8)")
    parser.add_argument("--template", action="store_true", help="template path (24-hour window closed)")
    parser.add_argument("--invoices", action="store_true",
                        help="an invoice campaign (one invoice per contact): drafted from it, re-read before sending")
    parser.add_argument("--timeout", type=float, default=300, help="stop everything after this many seconds")
    parser.add_argument("--callback-delay", type=float, default=0.05, help="simulator delay between callbacks")
    parser.add_argument("--no-read", dest="read", action="store_false", help="simulator stops at delivered")
    parser.add_argument("--mongo-storage", choices=["disk", "memory"], default="disk",
                        help="SecantusDB storage (default disk, as `relance dev`)")
    parser.add_argument("--mongo-options", default="",
                        help="URI options for every process, e.g. retryWrites=false")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="idle background measurement")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the processes (default INFO)")
    parser.add_argument("--py-spy", action="store_true",
                        help="profile the pipeline processes with py-spy and print their hot spots")
    parser.add_argument("--skip-noop", action="store_true", help="skip the no-op dramatiq ceiling")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.contacts < 1 or args.workers < 1 or args.threads < 1:
        parser.error("--contacts, --workers and --threads must be at least 1")
    return args


def child_environment(args: argparse.Namespace, mongo_uri: str, redis_url: str,
                      ports: dict[str, int]) -> dict[str, str]:
    """The environment every child runs with."""
    env = dict(os.environ)
    env.update({
        "MONGODB_URI": mongo_uri, "REDIS_URL": redis_url, "BACKEND_PORT": str(ports["webhook"]),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['webhook']}", "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE_URL": f"http://127.0.0.1:{ports['simulator']}",
        "GEMINI_API_KEY": "fake-gemini-key", "GEMINI_API_BASE_URL": f"http://127.0.0.1:{ports['gemini']}",
        "GEMINI_TIMEOUT_SECONDS": "10", "SCHEDULER_INTERVAL_SECONDS": "0.2",
        "SCHEDULER_BATCH_SIZE": str(max(1000, args.contacts)), "STALE_AFTER_SECONDS": "3600",
        "BUSINESS_NAME": "Atelier Dupont", "LOG_LEVEL": args.log_level, "PYTHONUNBUFFERED": "1",
        # The send window is always open: no public holidays either, so the bench runs any day. Pacing
        # (SEND_RATE, MIN_GAP_BETWEEN_MESSAGES, DAILY_CAP_PER_CONTACT) keeps its defaults: one message
        # per contact never hits them, but their checks are part of the cost measured.
        "HOLIDAYS_COUNTRY": "",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    })
    env.pop("OWNER_WHATSAPP_NUMBER", None)
    return env


_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (so the clean-up runs) and are remembered.

    A Ctrl-C in a terminal reaches the children too: a server may die before the bench sees the
    signal, and the error that follows is then reported as the interruption it is.
    """
    def _raise(signum: int, frame: FrameType | None) -> None:
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_noop-worker"]:
        return noop_worker_main(argv[1:])
    args = parse_args(argv)

    def out(line: str) -> None:
        print(line, flush=True)

    clock = Clock(args.timeout)
    workdir = (args.dir or Path(tempfile.mkdtemp(prefix="relance-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_name = f"bench_{int(time.time())}"
    ports = {"webhook": free_port(), "simulator": free_port(), "gemini": free_port()}
    procs = Processes(workdir, {})
    layout = f"{args.workers}×{args.threads} threads drafting + {args.workers}×{args.threads} sending"
    results = Results(contacts=args.contacts, layout=layout, path="template" if args.template else "Gemini")
    mongo: MongoClient[Doc] | None = None
    rds: redis.Redis | None = None
    external_mongo = os.environ.get("MONGODB_URI")
    failed = False
    with interruptible():
        try:
            out(f"pipeline benchmark: {args.contacts} contacts, {layout}; work dir {workdir}")
            load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
            results.notes.append(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at the start")
            redis_url = os.environ.get("REDIS_URL")
            if redis_url:
                rds = redis.Redis.from_url(redis_url)
                if any(True for _ in rds.scan_iter(f"{NAMESPACE}:*", count=1000)):
                    raise RuntimeError(f"REDIS_URL {redis_url} already holds {NAMESPACE}:* keys (a running "
                                       "stack?): use an empty Redis database")
                results.notes.append("REDIS_URL given: INFO commandstats counts every client of that server")
            else:
                server = start_redis(workdir / "redis")
                procs.servers.append(server)
                redis_url = server.url
                rds = redis.Redis.from_url(redis_url)
            base, db_name = mongo_target(external_mongo, procs, args.mongo_storage, db_name)
            mongo_uri = with_database(base, db_name)
            if args.mongo_options:
                mongo_uri += ("&" if "?" in mongo_uri else "?") + args.mongo_options.lstrip("?&")
            out(f"  redis {redis_url}; mongodb {mongo_uri}"
                + ("" if external_mongo else f" (SecantusDB, {args.mongo_storage})"))
            procs.env = child_environment(args, mongo_uri, redis_url, ports)
            mongo = MongoClient(mongo_uri, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=5_000)
            try:
                run_pipeline(args, procs, clock, results, rds, mongo, db_name, ports, out)
            except BenchTimeout as exc:
                results.pipeline_partial = True
                results.notes.append(f"timed out during set-up: {exc}")
            procs.stop_children()
            if not args.skip_noop and not results.pipeline_partial and clock.left() > 5:
                run_noop(args, procs, clock, results, rds, mongo, db_name, redis_url, out)
            elif not args.skip_noop:
                results.notes.append("no-op ceiling skipped (pipeline did not finish, or no time left)")
            if not args.skip_noop and not results.pipeline_partial and clock.left() > 5:
                run_mongo_ceiling(args, mongo, db_name, results, clock)
        except KeyboardInterrupt:
            results.notes.append("interrupted (Ctrl-C / SIGTERM)")
            failed = True
        except Exception as exc:
            if _INTERRUPTED.is_set():
                results.notes.append("interrupted (Ctrl-C / SIGTERM)")
            else:
                results.notes.append(f"error: {type(exc).__name__}: {exc}")
            failed = True
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
                signal.signal(sig, signal.SIG_IGN)
            procs.stop_children()
            mongo_dead = any(s.name == "mongo" and s.proc.poll() is not None for s in procs.servers)
            if mongo is not None and not mongo_dead:  # closing a client whose server died blocks
                if external_mongo:
                    with contextlib.suppress(Exception):
                        mongo.drop_database(db_name)
                with contextlib.suppress(Exception):
                    mongo.close()
            if rds is not None:
                rds.close()
            procs.stop()
    report(results, out)
    if args.json:
        args.json.write_text(json.dumps(results, default=lambda o: o.__dict__, indent=2, ensure_ascii=False))
    if args.keep or failed or results.pipeline_partial:
        out(f"logs and data kept in {workdir}")
    elif args.dir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed or results.pipeline_partial else 0


if __name__ == "__main__":
    sys.exit(main())
