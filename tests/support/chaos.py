"""Fault injection for the end-to-end chaos test: restartable processes and servers, a seeded plan.

- :class:`Processes` runs the product's processes (``python -m services.cli …``) like
  :class:`devtools.devstack.Stack`, but can SIGKILL one and start it again under the same name;
  a process that dies without being killed on purpose is reported by :meth:`Processes.check_alive`.
- :class:`RestartableRedis` and :class:`RestartableMongo` stop their server and start a new one
  on the same port (Redis with no persistence, so it comes back empty; SecantusDB with on-disk
  storage, so it comes back with its data).
- :func:`make_plan` turns a seed into a timed list of faults; :class:`ChaosRunner` plays it and
  counts what it did.
- :class:`SimClient` drives the Twilio simulator's control API.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from devtools.embedded import ServerProcess, start_mongo, start_redis

DEFAULT_SEED = 20251125


def seed_from_env(environ: dict[str, str]) -> int:
    """``CHAOS_SEED`` when set (any integer), else the fixed default."""
    raw = environ.get("CHAOS_SEED", "").strip()
    return int(raw) if raw else DEFAULT_SEED


def zone_at_local_hour(hour: int, now: datetime | None = None) -> str:
    """An ``Etc/GMT±N`` zone whose local time is now ``hour`` o'clock (no DST)."""
    utc_hour = (now or datetime.now(UTC)).hour
    offset = (hour - utc_hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")


# ---------------------------------------------------------------------- processes


@dataclass
class Managed:
    """One product process under a fixed name; ``starts`` counts its (re)starts."""

    name: str
    args: list[str]
    module: str
    proc: subprocess.Popen[bytes]
    starts: int = 1
    killed: bool = False  # killed on purpose, not restarted yet
    started_at: float = field(default_factory=time.monotonic)
    log_offset: int = 0  # size of its log when this run started


class Processes:
    """Child processes that can be killed with SIGKILL and started again."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.items: dict[str, Managed] = {}
        self.kills: Counter[str] = Counter()
        self._lock = threading.Lock()

    def log_path(self, name: str) -> Path:
        """Where a process's output goes (appended over restarts)."""
        return self.logs / f"{name}.log"

    def _popen(self, name: str, args: list[str], module: str) -> subprocess.Popen[bytes]:
        with open(self.log_path(name), "ab") as log:
            log.write(f"\n===== {datetime.now(UTC).isoformat()} start {module} {' '.join(args)}\n".encode())
            log.flush()
            return subprocess.Popen([sys.executable, "-m", module, *args], env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)

    def _offset(self, name: str) -> int:
        path = self.log_path(name)
        return path.stat().st_size if path.exists() else 0

    def spawn(self, name: str, args: list[str], module: str = "services.cli") -> None:
        """Start ``python -m MODULE ARGS`` as ``name``."""
        with self._lock:
            offset = self._offset(name)
            self.items[name] = Managed(name, args, module, self._popen(name, args, module), log_offset=offset)

    def ready(self, name: str, marker: str = "worker started") -> bool:
        """Whether the current run of ``name`` has logged ``marker`` (a worker: its consumers are up)."""
        with self._lock:
            item = self.items[name]
            if item.killed or item.proc.poll() is not None:
                return False
            with open(self.log_path(name), "rb") as log:
                log.seek(item.log_offset)
                return marker.encode() in log.read()

    def wait_ready(self, name: str, timeout: float = 60.0) -> bool:
        """Wait until ``name`` is :meth:`ready`; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready(name):
                return True
            time.sleep(0.1)
        return False

    def kill(self, name: str) -> bool:
        """SIGKILL ``name`` and reap it; True when a live process was killed."""
        with self._lock:
            item = self.items[name]
            if item.proc.poll() is not None:
                return False
            item.proc.send_signal(signal.SIGKILL)
            item.proc.wait(timeout=10)
            item.killed = True
            self.kills[name] += 1
            with open(self.log_path(name), "ab") as log:
                log.write(f"\n===== {datetime.now(UTC).isoformat()} SIGKILL by the chaos test\n".encode())
            return True

    def restart(self, name: str) -> None:
        """Start ``name`` again with the same arguments (killing it first if it still runs)."""
        with self._lock:
            item = self.items[name]
            if item.proc.poll() is None:
                item.proc.send_signal(signal.SIGKILL)
                item.proc.wait(timeout=10)
            item.log_offset = self._offset(name)
            item.proc = self._popen(name, item.args, item.module)
            item.starts += 1
            item.killed = False
            item.started_at = time.monotonic()

    def check_alive(self) -> None:
        """Raise if a process died on its own (not one killed on purpose and awaiting its restart)."""
        with self._lock:
            for item in self.items.values():
                if not item.killed and item.proc.poll() is not None:
                    raise RuntimeError(f"{item.name} exited with code {item.proc.returncode}; "
                                       f"see {self.log_path(item.name)}")

    def supervise(self) -> list[tuple[str, int, float]]:
        """Restart, as a supervisor (compose's ``restart: unless-stopped``) would, every process that
        exited on its own; returns (name, exit code, seconds it had been up) for each."""
        exits: list[tuple[str, int, float]] = []
        with self._lock:
            for item in self.items.values():
                code = item.proc.poll()
                if not item.killed and code is not None:
                    exits.append((item.name, code, round(time.monotonic() - item.started_at, 1)))
                    with open(self.log_path(item.name), "ab") as log:
                        log.write(f"\n===== exited on its own with code {code}\n".encode())
                    item.log_offset = self._offset(item.name)
                    item.proc = self._popen(item.name, item.args, item.module)
                    item.starts += 1
                    item.started_at = time.monotonic()
        return exits

    def restarts(self) -> int:
        """Restarts of every process taken together."""
        return sum(item.starts - 1 for item in self.items.values())

    def stop(self) -> None:
        """SIGTERM everything, SIGKILL what lingers."""
        with self._lock:
            items = list(self.items.values())
        for item in reversed(items):
            if item.proc.poll() is None:
                item.proc.terminate()
        for item in reversed(items):
            try:
                item.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                item.proc.kill()
                item.proc.wait(timeout=10)


# ---------------------------------------------------------------------- servers


class RestartableRedis:
    """A redis-server (no persistence) that can be replaced by an empty one on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server: ServerProcess = start_redis(workdir)
        self.port = self.server.port
        self.url = self.server.url
        self.restarts = 0

    def stop(self) -> None:
        """Kill the server: every queued and delayed dramatiq message is gone."""
        self.server.proc.kill()
        self.server.proc.wait(timeout=10)

    def start(self) -> None:
        """A new, empty server on the same port."""
        self.server = start_redis(self.workdir, port=self.port)
        self.restarts += 1

    def close(self) -> None:
        """Stop for good."""
        self.server.stop()


class RestartableMongo:
    """SecantusDB on disk, stopped and started again on the same port and storage path."""

    def __init__(self, workdir: Path, database: str) -> None:
        self.workdir = workdir
        self.database = database
        self.server: ServerProcess = start_mongo(workdir, database=database, in_memory=False)
        self.port = self.server.port
        self.url = self.server.url
        self.restarts = 0

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM: acknowledged writes are on disk)."""
        self.server.stop(timeout=30)

    def start(self) -> None:
        """Start it again on the same port with the same data."""
        self.server = start_mongo(self.workdir, port=self.port, database=self.database, in_memory=False)
        self.restarts += 1

    def close(self) -> None:
        """Stop for good."""
        self.server.stop()


# ---------------------------------------------------------------------- simulator


class SimClient:
    """The Twilio simulator's control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def fail(self, *, status: int, count: int, code: int | None = None, created: bool = False,
             gateway: bool = False) -> None:
        """The next ``count`` creates fail with HTTP ``status`` (and Twilio ``code``); see /_sim/fail."""
        body: dict[str, Any] = {"status": status, "count": count, "created": created, "gateway": gateway}
        if code is not None:
            body["code"] = code
        self.http.post("/_sim/fail", json=body).raise_for_status()

    def hold(self) -> None:
        """New messages stay ``queued`` at the simulator (no send date, no callback) until :meth:`release`."""
        self.http.post("/_sim/hold", json={}).raise_for_status()

    def release(self) -> None:
        """Held messages go on; nothing is held any more."""
        self.http.post("/_sim/release", json={}).raise_for_status()

    def config(self, **knobs: Any) -> dict[str, Any]:
        """Change callback delay, read receipts or response delay."""
        answer = self.http.post("/_sim/config", json=knobs)
        answer.raise_for_status()
        return dict(answer.json())

    def messages(self) -> list[dict[str, Any]]:
        """Every message created through the API, oldest first."""
        answer = self.http.get("/_sim/messages")
        answer.raise_for_status()
        return list(answer.json())

    def inbound(self, phone: str, body: str, *, attempts: int = 60, pause: float = 0.5) -> tuple[str, int]:
        """A client writes to us; retried until the webhook answers 200 (it says 503 while MongoDB is away).

        Returns the MessageSid the webhook accepted and how many attempts it took.
        """
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                answer = self.http.post("/_sim/inbound", json={"from": phone, "body": body})
                data = answer.json()
                if answer.status_code == 200 and data.get("status_code") == 200:
                    return str(data["sid"]), attempt
                last = json.dumps(data)[:200]
            except (httpx.HTTPError, ValueError) as exc:
                last = type(exc).__name__
            time.sleep(pause)
        raise RuntimeError(f"the webhook never accepted an inbound message ({last})")

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


def message_id_of(sim_message: dict[str, Any]) -> str:
    """Our message id, from the ``mid`` marker of the StatusCallback the message was sent with."""
    url = sim_message.get("status_callback") or ""
    return parse_qs(urlsplit(url).query).get("mid", [""])[0]


# ---------------------------------------------------------------------- the plan


@dataclass(order=True)
class Fault:
    """One timed action of the plan (seconds after the chaos starts)."""

    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        """A short line for the timeline."""
        details = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"+{self.at:6.1f}s {self.kind} {details}".rstrip()


def _spaced_times(rng: random.Random, count: int, start: float, end: float, gap: float) -> list[float]:
    """``count`` sorted random times in [start, end], at least ``gap`` apart."""
    span = end - start - gap * (count - 1)
    if span < 0:
        raise ValueError("not enough room for that many spaced times")
    raw = sorted(rng.uniform(0, span) for _ in range(count))
    return [round(start + t + i * gap, 2) for i, t in enumerate(raw)]


def make_plan(rng: random.Random, *, duration: float, kills: int = 12, lost_answers: bool = True) -> list[Fault]:
    """A seeded fault plan over ``duration`` seconds.

    - ``kills`` SIGKILLs, split between the sending and the drafting worker, each restarted
      after 0.2–2.5 s; sending kills stay in the first 60 % of the run, so that a send killed
      before reaching Twilio has its reconciliation grace over before the end of the test.
      A kill never lands on a worker still booting: it waits until the worker's consumers are
      up, plus ``busy`` seconds (0.3–3 s) of work (so the times given are the earliest);
    - one Redis restart (empty) between 20 % and 45 %, 1–3 s down;
    - one MongoDB outage between 55 % and 75 %, 3–6 s down;
    - Twilio 429 and 5xx bursts and response-delay periods spread over the whole run;
    - with ``lost_answers`` (the default), also two 5xx bursts where Twilio *has* created the
      message before answering 500 or a gateway's 502 (``created: true``), the first while Twilio
      keeps new messages queued for 4–10 s (no send date yet), drawn after the rest so the plan
      is otherwise the same. Every such send must be reconciled, never sent twice.
    """
    faults: list[Fault] = []
    n_send = kills // 2
    n_draft = kills - n_send
    for target, count, end in (("sending", n_send, duration * 0.6), ("drafting", n_draft, duration * 0.9)):
        for at in _spaced_times(rng, count, 2.0, end, 4.0):
            down = round(rng.uniform(0.2, 2.5), 2)
            faults.append(Fault(at, "kill", {"process": target, "busy": round(rng.uniform(0.3, 3.0), 2)}))
            faults.append(Fault(round(at + down, 2), "restart", {"process": target}))
    at = round(rng.uniform(duration * 0.2, duration * 0.45), 2)
    faults.append(Fault(at, "redis_stop"))
    faults.append(Fault(round(at + rng.uniform(1.0, 3.0), 2), "redis_start"))
    at = round(rng.uniform(duration * 0.55, duration * 0.75), 2)
    faults.append(Fault(at, "mongo_stop"))
    faults.append(Fault(round(at + rng.uniform(3.0, 6.0), 2), "mongo_start"))
    for at in _spaced_times(rng, 8, 1.0, duration, 3.0):
        kind = rng.choice(["429", "429", "5xx", "5xx", "delay"])
        if kind == "429":
            # 63018 (channel rate limit) also slows every sending worker down for a while.
            faults.append(Fault(at, "twilio_fail", {"status": 429, "code": rng.choice([20429, 63018]),
                                                    "count": rng.randint(5, 25)}))
        elif kind == "5xx":
            faults.append(Fault(at, "twilio_fail", {"status": rng.choice([500, 502, 503]),
                                                    "count": rng.randint(5, 20)}))
        else:
            faults.append(Fault(at, "twilio_delay", {"ms": rng.randint(200, 1500)}))
            faults.append(Fault(round(at + rng.uniform(2.0, 8.0), 2), "twilio_delay", {"ms": 0}))
    if lost_answers:
        for n, at in enumerate(_spaced_times(rng, 2, 2.0, duration * 0.8, 12.0)):
            status = rng.choice([500, 502])
            faults.append(Fault(at, "twilio_fail", {"status": status, "count": rng.randint(3, 8),
                                                    "created": True, "gateway": status == 502}))
            if n == 0:
                faults.append(Fault(round(at - 0.5, 2), "twilio_hold"))
                faults.append(Fault(round(at + rng.uniform(4.0, 10.0), 2), "twilio_release"))
    return sorted(faults)


@dataclass
class ChaosRunner:
    """Plays a plan against the stack and counts what it did."""

    processes: Processes
    redis: RestartableRedis
    mongo: RestartableMongo
    sim: SimClient
    say: Callable[[str], None] = print
    done: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def apply(self, fault: Fault) -> None:
        """Carry out one fault (errors are kept, the plan goes on)."""
        try:
            if fault.kind == "kill":
                name = fault.params["process"]
                if not self.processes.ready(name):
                    if not self.processes.wait_ready(name, timeout=60):
                        raise RuntimeError(f"{name} did not come up within 60 s")
                    time.sleep(fault.params.get("busy", 0))
                if self.processes.kill(name):
                    self.done[f"kill_{name}"] += 1
            elif fault.kind == "restart":
                self.processes.restart(fault.params["process"])
                self.done["worker_restart"] += 1
            elif fault.kind == "redis_stop":
                self.redis.stop()
            elif fault.kind == "redis_start":
                self.redis.start()
                self.done["redis_restart"] += 1
            elif fault.kind == "mongo_stop":
                self.mongo.stop()
            elif fault.kind == "mongo_start":
                self.mongo.start()
                self.done["mongo_restart"] += 1
            elif fault.kind == "twilio_fail":
                created = bool(fault.params.get("created", False))
                self.sim.fail(status=fault.params["status"], code=fault.params.get("code"),
                              count=fault.params["count"], created=created,
                              gateway=bool(fault.params.get("gateway", False)))
                self.done[f"twilio_{fault.params['status']}_burst" + ("_created" if created else "")] += 1
                self.done["twilio_failures_armed"] += fault.params["count"]
            elif fault.kind == "twilio_hold":
                self.sim.hold()
                self.done["twilio_hold_period"] += 1
            elif fault.kind == "twilio_release":
                self.sim.release()
            elif fault.kind == "twilio_delay":
                self.sim.config(response_delay_ms=fault.params["ms"])
                if fault.params["ms"]:
                    self.done["twilio_delay_period"] += 1
            else:
                raise ValueError(f"unknown fault {fault.kind}")
        except Exception as exc:  # keep going: the final checks tell whether the system coped
            self.errors.append(f"{fault.describe()}: {type(exc).__name__}: {exc}")
            self.say(f"chaos: {fault.describe()} FAILED: {exc}")

    def run(self, plan: list[Fault], *, on_tick: Callable[[], None] | None = None) -> float:
        """Play the plan in real time; ``on_tick`` is called between faults. Returns the time taken.

        Time spent waiting for a worker to come up before killing it shifts the rest of the plan.
        """
        started = time.monotonic()
        lag = 0.0
        for fault in plan:
            while (left := started + fault.at + lag - time.monotonic()) > 0:
                if on_tick is not None:
                    on_tick()
                time.sleep(min(0.2, max(0.0, left)))
            self.say(f"chaos {fault.describe()} (t={time.monotonic() - started:.1f}s)")
            before = time.monotonic()
            self.apply(fault)
            lag += max(0.0, time.monotonic() - before - 0.1)
        return time.monotonic() - started
