#!/usr/bin/env python3
"""Webhook benchmark: the real ``POST /whatsapp/webhook`` against a bare Starlette endpoint, in one run.

Issue "webhook, hardened". Both endpoints run on loopback in their own uvicorn process (httptools,
one process, no access log) and get the same load, one after the other:

- **real**: the production composition (``services.bootstrap.build_webhook``, logging configured
  as ``relance webhook`` does): size and form checks, X-Twilio-Signature against
  ``PUBLIC_BASE_URL``, the dedupe insert into MongoDB, the enqueue of each batch's event ids on
  Redis (dramatiq, ``dispatch_inbound``), the empty TwiML answer;
- **bare**: a Starlette route on the same path that reads the body, parses it as the webhook does
  (``parse_qsl``) and answers the same TwiML, nothing else.

Every request is a realistic WhatsApp inbound form with its own ``MessageSid`` and a valid
signature, so the real endpoint inserts each one (``--duplicates 0.3`` replays 30 % of them, to
measure Twilio's retry path). Since the signature covers the form, the signed bodies are
computed beforehand (``--pool`` of them per round, written to files) and cycled through.

Load: ``wrk`` when it is on PATH (a Lua script reads the signed bodies; ``apt-get install wrk``),
else a Python generator (asyncio, keep-alive connections) in its own process so it does not share
a GIL with the servers. Same connections and duration for both endpoints, at each connection
count of ``--connections`` (16, 64 and 256 by default): the group commit shares a batch's fixed
cost among the requests in flight, so the ratio depends on how many there are.

Servers: its own Redis and SecantusDB (``devtools.embedded``), or ``MONGODB_URI`` / ``REDIS_URL``
when set (a database of its own is used and dropped; the bench's messages are removed from the
replies queue afterwards). Reported per endpoint: requests/s, p50 and p99 latency, errors, CPU
per request of each process, what was stored; then the real/bare ratio, as a markdown table.
``--profile`` adds a py-spy run of the real endpoint (needs py-spy on PATH) and prints where its
CPU goes.

``--flood N`` adds, at each connection count, a third run of the real endpoint under a flood: N
more connections sending unsigned requests of ``--flood-fields`` fields each (10,000 by default,
just under the 64 KiB body cap) from a process of their own, as fast as they are answered. The
real requests' req/s and p99 with and without the flood are then reported side by side, with
what the flood got back (issue 9: an unsigned request must cost about what a bare 403 costs).

Usage (repository root, in the venv)::

    python bench/webhook_bench.py                      # 10 s per endpoint and connection count
    python bench/webhook_bench.py --duration 5 --connections 32 --duplicates 0.3 --profile
    python bench/webhook_bench.py --connections 64 --flood 16     # the real load beside a flood

Everything it starts is stopped at the end, on errors and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from twilio.request_validator import RequestValidator  # noqa: E402

from devtools.embedded import ServerProcess, free_port, start_mongo, start_redis, wait_for_port  # noqa: E402

TOKEN = "bench0123456789abcdef0123456789ab"
PUBLIC_BASE_URL = "https://bench.relance.example"  # what Twilio signs; the servers listen on 127.0.0.1
PATH = "/whatsapp/webhook"
FORM = "application/x-www-form-urlencoded"
ACCOUNT_SID = "AC" + "be" * 16
SENDER = "whatsapp:+14155238886"
SID_MARK = "SMbec4be0c"  # the first 10 characters of every MessageSid the bench sends (SM + 32 hex)
# The group commit batches the requests in flight: with few of them, a batch's fixed cost (a
# MongoDB round trip, an enqueue) is shared by few requests. Measured at low and high concurrency.
DEFAULT_CONNECTIONS = [16, 64, 256]
NAMESPACE = "relance"  # shared.queue.make_broker's namespace
REPLIES = "replies"

WRK_SCRIPT = r"""
-- Cycles through pre-signed webhook requests: thread N reads pool.N.txt ("signature<TAB>body" lines).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local dir, host = args[1], args[2]
  reqs = {}
  for line in io.lines(dir .. "/pool." .. id .. ".txt") do
    local tab = line:find("\t", 1, true)
    reqs[#reqs + 1] = wrk.format("POST", "__PATH__", {
      ["Host"] = host,
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = line:sub(1, tab - 1),
    }, line:sub(tab + 1))
  end
  i = 0
  wrapped = 0
end

function request()
  i = i + 1
  if i > #reqs then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do wraps = wraps + t:get("wrapped") end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.6f, "p50_ms": %.4f, "p99_ms": %.4f, "max_ms": %.4f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "wraps": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, wraps))
end
"""


# ------------------------------------------------------------------------------ requests
def inbound_form(sid: str, n: int) -> dict[str, str]:
    """A WhatsApp inbound message as Twilio posts it (fields and sizes of a real one)."""
    return {
        "SmsMessageSid": sid, "NumMedia": "0", "ProfileName": "Marie Dupont", "MessageType": "text",
        "SmsSid": sid, "WaId": "33612345678", "SmsStatus": "received",
        "Body": f"Bonjour, j'ai bien reçu la facture n°{n}, je règle cette semaine. Merci !",
        "To": SENDER, "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
        "AccountSid": ACCOUNT_SID, "From": "whatsapp:+33612345678", "ApiVersion": "2010-04-01",
    }


def bench_sid(label: str, n: int) -> str:
    """A MessageSid of Twilio's shape, marked as the bench's, distinct per pool label and number."""
    return f"{SID_MARK}{zlib.crc32(label.encode()):08x}{n:016x}"


def flood_body(fields: int) -> bytes:
    """A form of ``fields`` distinct empty fields: the flood's body."""
    return b"&".join(b"%x=" % i for i in range(fields))


def build_pool(directory: Path, *, size: int, files: int, label: str, duplicates: float, seed: int) -> int:
    """Write ``size`` signed requests to ``files`` files; a ``duplicates`` share repeats an earlier one."""
    directory.mkdir(parents=True, exist_ok=True)
    validator = RequestValidator(TOKEN)
    url = PUBLIC_BASE_URL + PATH
    rng = random.Random(seed)
    lines: list[str] = []
    for n in range(size):
        if lines and rng.random() < duplicates:
            lines.append(lines[rng.randrange(len(lines))])
            continue
        form = inbound_form(bench_sid(label, n), n)
        lines.append(f"{validator.compute_signature(url, form)}\t{urlencode(form)}\n")
    for index in range(files):
        with (directory / f"pool.{index}.txt").open("w", encoding="utf-8") as out:
            out.writelines(lines[index::files])
    return len({line for line in lines})


def enqueued_events(payloads: list[bytes] | list[bytes | str]) -> int:
    """How many inbound events the replies queue's dramatiq messages ask to process.

    ``process_inbound`` carries one event id; ``dispatch_inbound`` (one per stored batch) a list.
    """
    count = 0
    for payload in payloads:
        first = json.loads(payload)["args"][0]
        count += len(first) if isinstance(first, list) else 1
    return count


def read_pool(directory: Path, host: str) -> list[bytes]:
    """The raw HTTP/1.1 requests of a pool directory (for the Python load generator), interleaved."""
    per_file = [p.read_text(encoding="utf-8").splitlines() for p in sorted(directory.glob("pool.*.txt"))]
    out: list[bytes] = []
    for group in zip(*per_file, strict=False):
        for line in group:
            signature, body = line.split("\t", 1)
            raw = body.encode()
            out.append(
                f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {FORM}\r\n"
                f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw
            )
    return out


# ------------------------------------------------------------------------------ servers (child processes)
def bare_app() -> Any:
    """The baseline: same path, same form parsing, same answer; no signature, no store, no queue."""
    from urllib.parse import parse_qsl

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from services.webhook import EMPTY_TWIML

    async def inbound(request: Request) -> Response:
        body = await request.body()
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
        except (UnicodeDecodeError, ValueError):
            return PlainTextResponse("malformed form body", status_code=400)
        if not form.get("MessageSid"):
            return PlainTextResponse("missing field(s): MessageSid", status_code=400)
        return Response(EMPTY_TWIML, media_type="text/xml")

    return Starlette(routes=[Route(PATH, inbound, methods=["POST"])])


def serve_main(argv: list[str]) -> int:
    """``_serve real|bare --port N``: one uvicorn process (httptools, no access log)."""
    parser = argparse.ArgumentParser(prog="webhook_bench.py _serve")
    parser.add_argument("kind", choices=["real", "bare"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvicorn

    if args.kind == "real":
        from services.bootstrap import build_webhook, configure_logging
        from shared.settings import load_settings

        settings = load_settings(os.environ, env_file=None)
        configure_logging(settings)  # as `relance webhook` does: one INFO line per batch of events
        app = build_webhook(settings)
    else:
        app = bare_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", workers=None, access_log=False,
                log_level="warning", proxy_headers=True)
    return 0


# ------------------------------------------------------------------------------ Python load generator
def load_main(argv: list[str]) -> int:
    """``_load``: keep-alive connections sending the pool's requests until the deadline; JSON on stdout."""
    parser = argparse.ArgumentParser(prog="webhook_bench.py _load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--connections", type=int, required=True)
    args = parser.parse_args(argv)
    host = f"127.0.0.1:{args.port}"
    requests = read_pool(args.pool, host)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = 0

    async def connection(index: int, deadline: float) -> None:
        nonlocal sent
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        except OSError:
            errors["connect"] += 1
            return
        position = index
        try:
            while time.perf_counter() < deadline:
                raw = requests[position % len(requests)]
                position += args.connections
                started = time.perf_counter()
                writer.write(raw)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                sent += 1
                parts = status_line.split()
                if len(parts) < 2 or parts[1] != b"200":
                    errors["status"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors["read"] += 1
        finally:
            writer.close()

    async def run() -> float:
        started = time.perf_counter()
        deadline = started + args.duration
        await asyncio.gather(*(connection(i, deadline) for i in range(args.connections)))
        return time.perf_counter() - started

    try:
        import uvloop

        elapsed = uvloop.run(run())
    except ImportError:
        elapsed = asyncio.run(run())
    ordered = sorted(latencies) or [0.0]
    result = {
        "requests": sent, "duration_s": elapsed,
        "p50_ms": _percentile(ordered, 50) * 1e3, "p99_ms": _percentile(ordered, 99) * 1e3,
        "max_ms": ordered[-1] * 1e3,
        "errors": {k: errors.get(k, 0) for k in ("connect", "read", "write", "status", "timeout")},
        "wraps": max(0, sent - 1) // max(1, len(requests)),
    }
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


def flood_main(argv: list[str]) -> int:
    """``_flood``: unsigned many-field requests on keep-alive connections until SIGTERM; JSON on stdout.

    A connection the server closes is opened again. Prints ``BENCH_FLOOD_STARTED`` once every
    connection has had an answer, so the measure starts with the flood at full strength.
    """
    parser = argparse.ArgumentParser(prog="webhook_bench.py _flood")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--fields", type=int, required=True)
    parser.add_argument("--duration", type=float, default=600.0, help="stop by then at the latest")
    args = parser.parse_args(argv)
    body = flood_body(args.fields)
    raw = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nContent-Type: {FORM}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    answered_once: set[int] = set()

    async def connection(index: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
            except OSError:
                errors["connect"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while not stop.is_set():
                    writer.write(raw)
                    status_line = await reader.readline()
                    if not status_line:
                        break  # closed by the server: open another
                    length, close = 0, False
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                        elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                            close = True
                    await reader.readexactly(length)
                    parts = status_line.split()
                    statuses[parts[1].decode() if len(parts) > 1 else "?"] += 1
                    if index not in answered_once:
                        answered_once.add(index)
                        if len(answered_once) == args.connections:
                            print("BENCH_FLOOD_STARTED", flush=True)
                    if close:
                        break
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors["read"] += 1
            finally:
                writer.close()

    async def run() -> float:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.call_later(args.duration, stop.set)
        started = time.perf_counter()
        tasks = [asyncio.create_task(connection(i, stop)) for i in range(args.connections)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    result = {"requests": sum(statuses.values()), "duration_s": elapsed, "statuses": dict(statuses),
              "errors": dict(errors), "body_bytes": len(body)}
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


def _percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


# ------------------------------------------------------------------------------ orchestration
@dataclass
class Child:
    """A process this bench started."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


@dataclass
class Measure:
    """One endpoint's run."""

    endpoint: str
    tool: str
    connections: int
    requests: int = 0
    duration_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    wraps: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    stored: int | None = None
    enqueued: int | None = None
    other_cores: float = 0.0  # CPU used meanwhile by processes that are not this bench's
    flood: dict[str, Any] | None = None  # what the flood got back, for a run under a flood

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads (from /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all CPUs, from /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Bench:
    """The servers and children of one bench run; ``close()`` stops them all."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.connections: int = args.connections[0]  # what drive() uses; main() sets each count in turn
        self.workdir = workdir
        self.children: list[Child] = []
        self.servers: list[ServerProcess] = []
        self.mongo_base = os.environ.get("MONGODB_URI", "")
        self.redis_url = os.environ.get("REDIS_URL", "")
        self.db_name = f"relance_bench_{os.getpid()}_0"
        self.runs = 0
        self.tool = args.tool if args.tool != "auto" else ("wrk" if shutil.which("wrk") else "python")

    # ---------------------------------------------------------------- infrastructure
    def start_stores(self) -> None:
        if not self.redis_url:
            server = start_redis(self.workdir / "redis")
            self.servers.append(server)
            self.redis_url = server.url
        if not self.mongo_base:
            server = start_mongo(self.workdir / "mongo", in_memory=True)
            self.servers.append(server)
            self.mongo_base = server.url

    @property
    def mongo_uri(self) -> str:
        return urlsplit(self.mongo_base)._replace(path="/" + self.db_name).geturl()

    def pids(self) -> dict[str, int]:
        return {server.name: server.proc.pid for server in self.servers}

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(command, cwd=REPO, env=env or dict(os.environ), stdout=out,
                                    stderr=subprocess.STDOUT)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def start_server(self, kind: str) -> tuple[Child, int]:
        port = free_port()
        env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
               "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_WHATSAPP_NUMBER": SENDER,
               "MONGODB_URI": self.mongo_uri, "REDIS_URL": self.redis_url, "LOG_LEVEL": "INFO"}
        child = self.spawn(f"server-{kind}", [sys.executable, str(Path(__file__).resolve()), "_serve", kind,
                                              "--port", str(port)], env)
        wait_for_port(port, timeout=30, proc=child.proc)
        return child, port

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        with contextlib.suppress(Exception):
            self.cleanup_data()
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()

    def cleanup_data(self) -> None:
        """Drop the bench database; remove the bench's messages from the replies queue."""
        from shared.adapters.mongo import connect

        client = connect(self.mongo_base, timeout_ms=3000)
        try:
            client.drop_database(self.db_name)
        finally:
            client.close()
        if any(s.name == "redis" for s in self.servers):
            return  # our own Redis: it goes away
        import redis

        rds = redis.Redis.from_url(self.redis_url)
        try:
            key = f"{NAMESPACE}:{REPLIES}.msgs"
            for message_id, payload in rds.hscan_iter(key):
                if SID_MARK.encode() in payload:
                    rds.hdel(key, message_id)
                    rds.lrem(f"{NAMESPACE}:{REPLIES}", 0, message_id)
        finally:
            rds.close()

    def prepare_database(self) -> None:
        """A fresh database for each real run (the previous one dropped), indexes created.

        Dropping tens of thousands of events keeps SecantusDB busy for a second or so after the
        command returns: it is done, and the stores are let settle, before the run starts, so that
        work is not counted against the next one.
        """
        from shared.adapters.mongo import connect, mongo_repositories

        self.runs += 1
        client = connect(self.mongo_uri)
        try:
            client.drop_database(self.db_name)
            self.db_name = f"relance_bench_{os.getpid()}_{self.runs}"
            mongo_repositories(client[self.db_name]).ensure_indexes()
        finally:
            client.close()
        self.settle()

    def settle(self, idle_share: float = 0.05, timeout: float = 30.0) -> None:
        """Wait until the bench's own servers use under ``idle_share`` of a CPU for a whole second."""
        deadline = time.monotonic() + timeout
        pids = self.pids()
        while pids and time.monotonic() < deadline:
            before = sum(cpu_seconds(pid) for pid in pids.values())
            time.sleep(1.0)
            if sum(cpu_seconds(pid) for pid in pids.values()) - before < idle_share:
                return

    def stored_and_enqueued(self) -> tuple[int, int]:
        import redis

        from shared.adapters.mongo import open_repositories

        client, store = open_repositories(self.mongo_uri, self.db_name)
        rds = redis.Redis.from_url(self.redis_url)
        try:
            stored = store.events.collection.count_documents({"kind": "inbound"})
            return stored, enqueued_events(rds.hvals(f"{NAMESPACE}:{REPLIES}.msgs"))
        finally:
            client.close()
            rds.close()

    # ---------------------------------------------------------------- load
    def drive(self, port: int, pool: Path, duration: float) -> dict[str, Any]:
        """Run the load tool against 127.0.0.1:port; return its JSON result."""
        host = f"127.0.0.1:{port}"
        if self.tool == "wrk":
            script = self.workdir / "webhook.lua"
            script.write_text(WRK_SCRIPT.replace("__PATH__", PATH))
            command = ["wrk", "-t", str(self.args.threads), "-c", str(self.connections),
                       "-d", f"{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script), f"http://{host}{PATH}",
                       "--", str(pool), host]
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "_load", "--port", str(port),
                       "--pool", str(pool), "--duration", str(duration),
                       "--connections", str(self.connections)]
        times_before = os.times()
        child = self.spawn("load", command)
        try:
            child.proc.wait(timeout=duration + 60)
        finally:
            child.stop()
            self.children.remove(child)
        times_after = os.times()  # the load generator is the only child reaped in between
        load_cpu = (times_after.children_user - times_before.children_user
                    + times_after.children_system - times_before.children_system)
        text = child.log.read_text(encoding="utf-8", errors="replace")
        child.log.unlink()
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
                result["load_cpu_s"] = load_cpu
                return result
        raise RuntimeError(f"the load generator printed no result:\n{text[-2000:]}")

    def measure(self, kind: str, pool: Path, warm_pool: Path, *, flood: bool = False) -> Measure:
        """Start the endpoint, warm it up, drive it for --duration (beside the flood), stop it."""
        if kind == "real":
            self.prepare_database()
        else:
            self.settle()  # nothing left over from the previous run in the bare one's CPU either
        server, port = self.start_server(kind)
        flooder: Child | None = None
        try:
            self.drive(port, warm_pool, self.args.warmup)
            time.sleep(0.5)  # requests in flight when the warm-up stopped settle first
            before_stored = self.stored_and_enqueued() if kind == "real" else (0, 0)
            if flood:
                flooder = self.start_flood(port)
            pids = {"server": server.proc.pid, **self.pids(), **({"flood": flooder.proc.pid} if flooder else {})}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            machine_before = machine_busy_seconds()
            result = self.drive(port, pool, self.args.duration)
            machine_after = machine_busy_seconds()
            after = {name: cpu_seconds(pid) for name, pid in pids.items()}
            flood_result = self.stop_flood(flooder) if flooder else None
            flooder = None
            if server.proc.poll() is not None:
                raise RuntimeError(f"the {kind} server died; see {server.log}")
            measure = Measure(kind + (" + flood" if flood else ""), self.tool, self.connections, **{
                k: result[k] for k in ("requests", "duration_s", "p50_ms", "p99_ms", "max_ms", "errors", "wraps")})
            measure.cpu_s = {name: after[name] - before[name] for name in pids}
            measure.cpu_s["load"] = result["load_cpu_s"]
            measure.flood = flood_result
            ours = sum(measure.cpu_s.values())
            measure.other_cores = max(0.0, machine_after - machine_before - ours) / max(result["duration_s"], 1e-9)
            if kind == "real":
                time.sleep(0.5)
                stored, enqueued = self.stored_and_enqueued()
                measure.stored, measure.enqueued = stored - before_stored[0], enqueued - before_stored[1]
            return measure
        finally:
            if flooder is not None:
                flooder.stop()
                self.children.remove(flooder)
            server.stop()
            self.children.remove(server)

    def start_flood(self, port: int) -> Child:
        """The flood's process, once every one of its connections has had an answer."""
        command = [sys.executable, str(Path(__file__).resolve()), "_flood", "--port", str(port),
                   "--connections", str(self.args.flood), "--fields", str(self.args.flood_fields),
                   "--duration", str(self.args.duration + 120)]
        child = self.spawn("flood", command)
        deadline = time.monotonic() + 60
        while "BENCH_FLOOD_STARTED" not in child.log.read_text(encoding="utf-8", errors="replace"):
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the flood did not start; see {child.log}")
            time.sleep(0.05)
        return child

    def stop_flood(self, child: Child) -> dict[str, Any]:
        """Stop the flood (SIGTERM: it prints what it got back); its JSON result."""
        child.stop(timeout=30)
        self.children.remove(child)
        text = child.log.read_text(encoding="utf-8", errors="replace")
        child.log.unlink()
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
                return result
        raise RuntimeError(f"the flood printed no result:\n{text[-2000:]}")

    def profile(self, pool: Path, warm_pool: Path, out_dir: Path) -> list[str]:
        """One more real run under py-spy (sampling adds overhead: not counted in the table)."""
        self.prepare_database()
        server, port = self.start_server("real")
        try:
            self.drive(port, warm_pool, self.args.warmup)
            raw = out_dir / "webhook.collapsed.txt"
            spy = self.spawn("py-spy", ["py-spy", "record", "--pid", str(server.proc.pid), "--rate", "250",
                                        "--duration", str(int(self.args.duration)), "--format", "raw",
                                        "--output", str(raw), "--nonblocking", "--gil"])
            time.sleep(1.0)
            self.drive(port, pool, self.args.duration)
            spy.proc.wait(timeout=self.args.duration + 30)
            self.children.remove(spy)
            if not raw.exists():
                return [f"py-spy wrote nothing; see {spy.log}"]
            return summarise_profile(raw)
        finally:
            server.stop()
            self.children.remove(server)


def summarise_profile(raw: Path, top: int = 14) -> list[str]:
    """Where the webhook's CPU goes, from py-spy's collapsed stacks.

    Sampled with ``--gil`` (only the thread holding the GIL): py-spy's idle detection counts
    threads blocked in recv() or a condition wait as busy on some kernels, the GIL holder is
    the Python code actually running.
    """
    total = 0
    own: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[_frame(frames[-1])] += count
        buckets[_bucket(frames)] += count
    if not total:
        return ["no samples"]
    lines = [f"py-spy: {total} samples of the webhook process holding the GIL; by activity (innermost match):", ""]
    lines += ["| activity | share of busy samples |", "| --- | ---: |"]
    lines += [f"| {name} | {count / total:.0%} |" for name, count in buckets.most_common()]
    lines += ["", "| function (self) | share |", "| --- | ---: |"]
    lines += [f"| `{name}` | {count / total:.0%} |" for name, count in own.most_common(top)]
    return lines


def _frame(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``module.func``."""
    name, _, where = frame.partition(" (")
    module = Path(where.split(":")[0]).stem if where else "?"
    return f"{module}.{name}"


BUCKETS = [  # first match wins, searched from the innermost frame outwards
    ("MongoDB insert (pymongo)", ("pymongo/",)),
    ("Redis enqueue (dramatiq, redis-py)", ("dramatiq/", "redis/")),
    ("signature (RequestValidator)", ("twilio/request_validator",)),
    ("logging", ("logging/",)),
    ("threadpool hand-off (anyio)", ("anyio/", "concurrent/futures", "threading.py")),
    ("webhook code", ("services/webhook",)),
    ("HTTP parsing and ASGI (uvicorn, starlette)", ("uvicorn/", "starlette/", "httptools")),
    ("event loop", ("uvloop", "asyncio/")),
]


def _bucket(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in BUCKETS:
            if any(n in frame for n in needles):
                return name
    return "other"


# ------------------------------------------------------------------------------ report
def report(measures: list[Measure], args: argparse.Namespace, bench: Bench, unique: dict[str, int]) -> list[str]:
    lines = [
        f"Webhook benchmark: {args.duration:g} s per endpoint, {','.join(map(str, args.connections))} connections, "
        f"load by {bench.tool}" + (f" ({args.threads} threads)" if bench.tool == "wrk" else "")
        + f", {os.cpu_count()} CPUs, MongoDB {'MONGODB_URI' if os.environ.get('MONGODB_URI') else 'SecantusDB'}"
        f", duplicates {args.duplicates:.0%}, {args.rounds} round(s)",
        "",
        "| conns | endpoint | requests | req/s | p50 ms | p99 ms | errors | CPU ms/req: server | mongo | redis "
        "| load | stored | enqueued | other load (cores) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in sorted(measures, key=lambda m: m.connections):  # stable: rounds stay in order
        per = {k: (v * 1e3 / m.requests if m.requests else 0.0) for k, v in m.cpu_s.items()}
        lines.append(
            f"| {m.connections} | {m.endpoint} | {m.requests} | {m.rps:,.0f} | {m.p50_ms:.2f} | {m.p99_ms:.2f} "
            f"| {m.error_count} | {per.get('server', 0):.3f} | {per.get('mongo', 0):.3f} | {per.get('redis', 0):.3f} "
            f"| {per.get('load', 0):.3f} | {'' if m.stored is None else m.stored} "
            f"| {'' if m.enqueued is None else m.enqueued} | {m.other_cores:.2f} |"
        )
    lines.append("")
    met: list[int] = []
    for connections in args.connections:
        bare = statistics.median(m.rps for m in measures if m.connections == connections and m.endpoint == "bare")
        real = statistics.median(m.rps for m in measures if m.connections == connections and m.endpoint == "real")
        ratio = real / bare if bare else 0.0
        if ratio >= 0.5:
            met.append(connections)
        lines.append(f"real/bare throughput at {connections} connections: **{ratio:.2f}** "
                     f"(median req/s {real:,.0f} / {bare:,.0f})")
    lines.append("target ≥ 0.50: " + (f"met at {', '.join(map(str, met))} connections" if met else "NOT met")
                 + ("" if len(met) in (0, len(args.connections))
                    else f"; not at {', '.join(str(c) for c in args.connections if c not in met)}"))
    if len(args.connections) > 1:
        peak = {endpoint: max((statistics.median(m.rps for m in measures
                                                   if m.connections == c and m.endpoint == endpoint), c)
                               for c in args.connections) for endpoint in ("bare", "real")}
        (bare_peak, bare_at), (real_peak, real_at) = peak["bare"], peak["real"]
        lines.append(f"peak throughput (each endpoint's best median over the connection counts): real "
                     f"{real_peak:,.0f} req/s at {real_at} / bare {bare_peak:,.0f} at {bare_at} = "
                     f"**{real_peak / bare_peak if bare_peak else 0.0:.2f}**")
    for m in measures:
        if m.endpoint == "real" and m.stored is not None:
            lines.append(f"real, {m.connections} connections: {m.stored} events stored and {m.enqueued} events "
                         f"enqueued for {m.requests} answers counted by {m.tool} (requests still in flight at the "
                         f"end are stored but not counted); {unique.get('measure', 0)} distinct requests in the "
                         f"pool, wrapped {m.wraps}×")
    lines += flood_report(measures, args)
    for m in measures:
        if m.error_count:
            lines.append(f"{m.endpoint}, {m.connections} connections, errors: {m.errors}")
    if any(m.other_cores > 0.2 for m in measures):
        lines.append("WARNING: other processes used CPU during the run (last column): the numbers are disturbed")
    return lines


def flood_report(measures: list[Measure], args: argparse.Namespace) -> list[str]:
    """The real requests with and without the flood, side by side (medians over the rounds)."""
    flooded = [m for m in measures if m.flood is not None]
    if not flooded:
        return []
    body_bytes = flooded[0].flood["body_bytes"] if flooded[0].flood else 0
    lines = ["", f"Under a flood: {args.flood} more connections sending unsigned requests of {args.flood_fields} "
                 f"fields ({body_bytes:,} bytes) as fast as they are answered, beside the real load:", "",
             "| conns | real req/s | real p99 ms | real req/s, flood | real p99 ms, flood | flood answers/s "
             "| flood answers | server CPU ms per flood answer | flood client (cores) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    for connections in args.connections:
        calm = [m for m in measures if m.connections == connections and m.endpoint == "real"]
        storm = [m for m in flooded if m.connections == connections]
        answers: Counter[str] = Counter()
        for m in storm:
            answers.update((m.flood or {}).get("statuses", {}))
        flood_rate = median([(m.flood or {})["requests"] / max(m.duration_s, 1e-9) for m in storm])
        # Server CPU beyond what the real requests cost without the flood, per flood answer.
        calm_cpu = median([m.cpu_s.get("server", 0.0) / m.requests for m in calm if m.requests])
        extra = median([(m.cpu_s.get("server", 0.0) - calm_cpu * m.requests) * 1e3 / max(1, (m.flood or {})["requests"])
                        for m in storm])
        lines.append(f"| {connections} | {median([m.rps for m in calm]):,.0f} | {median([m.p99_ms for m in calm]):.2f} "
                     f"| {median([m.rps for m in storm]):,.0f} | {median([m.p99_ms for m in storm]):.2f} "
                     f"| {flood_rate:,.0f} | {', '.join(f'{n} × {code}' for code, n in sorted(answers.items()))} "
                     f"| {extra:.3f} | {median([m.cpu_s.get('flood', 0.0) / m.duration_s for m in storm]):.2f} |")
    return lines


def connection_counts(text: str) -> list[int]:
    """``--connections``: ``16`` or ``16,64,256`` (positive, distinct)."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"expected distinct positive numbers, got {text!r}")
    return counts


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per endpoint (2)")
    parser.add_argument("--connections", type=connection_counts, default=DEFAULT_CONNECTIONS,
                        help="concurrent keep-alive connections, one count or several: each is measured for "
                             f"both endpoints ({','.join(map(str, DEFAULT_CONNECTIONS))})")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk when on PATH (auto), or the Python one")
    parser.add_argument("--duplicates", type=float, default=0.0,
                        help="share of requests replaying an earlier MessageSid (Twilio retries), 0..1")
    parser.add_argument("--pool", type=int, default=0,
                        help="signed requests per round (default: 12000 per second of --duration)")
    parser.add_argument("--rounds", type=int, default=1, help="bare/real pairs to run (the ratio uses medians)")
    parser.add_argument("--flood", type=int, default=0,
                        help="also measure the real endpoint beside this many connections of unsigned "
                             "many-field requests (0: no flood run)")
    parser.add_argument("--flood-fields", type=int, default=10_000,
                        help="fields in each flood request (10000: just under the 64 KiB body cap)")
    parser.add_argument("--profile", action="store_true", help="also profile the real endpoint with py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, pools)")
    args = parser.parse_args(argv)
    if not 0 <= args.duplicates < 1:
        parser.error("--duplicates must be in [0, 1)")
    if args.tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH")
    if args.flood < 0 or args.flood_fields < 1:
        parser.error("--flood must be >= 0 and --flood-fields >= 1")
    if args.profile and not shutil.which("py-spy"):
        parser.error("--profile needs py-spy on PATH (pip install py-spy)")
    return args


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_serve"]:
        return serve_main(argv[1:])
    if argv[:1] == ["_load"]:
        return load_main(argv[1:])
    if argv[:1] == ["_flood"]:
        return flood_main(argv[1:])
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    bench = Bench(args, workdir)
    files = args.threads if bench.tool == "wrk" else 1
    pool_size = args.pool or int(12000 * args.duration)
    measures: list[Measure] = []
    unique: dict[str, int] = {}
    try:
        with sigterm_as_interrupt():
            bench.start_stores()
            warm = workdir / "pool-warm"
            build_pool(warm, size=4000, files=files, label="w", duplicates=0.0, seed=0)
            for round_ in range(args.rounds):
                pool = workdir / f"pool-{round_}"
                started = time.perf_counter()
                unique["measure"] = build_pool(pool, size=pool_size, files=files, label=f"r{round_}",
                                               duplicates=args.duplicates, seed=round_ + 1)
                print(f"round {round_ + 1}: {pool_size} signed requests in {time.perf_counter() - started:.1f} s",
                      file=sys.stderr)
                for connections in args.connections:
                    bench.connections = connections
                    runs = [("bare", False), ("real", False)] + ([("real", True)] if args.flood else [])
                    for kind, flood in runs:
                        measure = bench.measure(kind, pool, warm, flood=flood)
                        measures.append(measure)
                        print(f"  {connections} connections, {measure.endpoint}: {measure.rps:,.0f} req/s, "
                              f"p50 {measure.p50_ms:.2f} ms, p99 {measure.p99_ms:.2f} ms, "
                              f"errors {measure.error_count}", file=sys.stderr)
            for line in report(measures, args, bench, unique):
                print(line)
            if args.profile:
                bench.connections = max(args.connections)
                pool = workdir / "pool-profile"
                build_pool(pool, size=pool_size, files=files, label="p", duplicates=args.duplicates, seed=99)
                print()
                for line in bench.profile(pool, warm, workdir):
                    print(line)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        bench.close()
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
