"""Fault injection, end to end: every due message goes out exactly once whatever breaks.

Issue "Delivery guarantees", section Proof. The real processes run on real test servers: the
scheduler, the drafting and the sending dramatiq workers (separate processes, 4 threads each),
the replies worker, the webhook, the Twilio simulator and the fake Gemini, over a Redis and a
SecantusDB (on disk) that this test starts and restarts itself.

A campaign of 500 contacts (``CHAOS_CONTACTS``), two steps ("1s", then "3s" after the first),
a 09:00–18:00 window open every day:

- ``closed``: their timezone puts them outside the window now: nothing may reach them;
- ``stop_before``: they send STOP before the enrolment: never enrolled, nothing sent;
- ``stop_mid``: they send STOP once their first message is delivered: nothing after the STOP;
- ``joined``: they wrote first (24-hour window open): freeform drafts through (fake) Gemini;
- ``template``: everyone else, approved templates.

While the campaign runs, a plan drawn from ``random.Random(seed)`` (``CHAOS_SEED``, else a fixed
default, printed) SIGKILLs and restarts the sending and drafting workers (12 kills by default),
restarts Redis empty once (every queued and delayed dramatiq message is lost), takes MongoDB
away for a few seconds once (stopped, then started again on the same port and storage), and
makes the simulator answer 429 and 5xx bursts and slow answers, and answer 500 or a gateway's
502 for creates it did perform (lost answers, some while Twilio keeps messages queued): those
sends are reconciled through Twilio's list, never sent again. Then, once everything is quiet:
on the simulator's side every (recipient, step) due was accepted exactly once, no duplicate at
all, nothing outside the window, nothing after a STOP; in MongoDB nothing is left half-way.

Run alone: ``pytest tests/e2e/test_chaos.py -s`` (``-s`` shows the timeline as it happens);
``CHAOS_SEED=123`` replays another plan (the faults' order and spacing; their exact instants
depend on the machine). About 3 minutes on an idle 2-core machine; SecantusDB's throughput
(~4–5 messages/s here) is what bounds it. Other knobs, for investigating: ``CHAOS_CONTACTS``,
``CHAOS_SECONDS`` (length of the fault plan, default 80), ``CHAOS_KILLS`` (default 12),
``CHAOS_STALE_AFTER`` (STALE_AFTER_SECONDS, default 8), ``CHAOS_LOST_ANSWERS=0`` (leaves out the
lost answers, on by default), ``CHAOS_OFF=1`` (the same run with no fault, to calibrate).
RECONCILE_GRACE_SECONDS is 30 here (10 minutes by default): the simulator's list shows a
message as soon as it is created, and a send Twilio never got must go out before the end.

A process that exits on its own is restarted, as compose's ``restart: unless-stopped`` would;
one that dies within 20 s of its start (a worker booting while MongoDB is away exits on
purpose) is reported but tolerated, one that dies later fails the test.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymongo.errors import PyMongoError

from devtools.devstack import DEV_ACCOUNT_SID
from devtools.embedded import free_port, wait_for_port
from shared.adapters.mongo import MongoRepositories, connect, mongo_repositories
from tests.support.chaos import (
    ChaosRunner,
    Processes,
    RestartableMongo,
    RestartableRedis,
    SimClient,
    make_plan,
    message_id_of,
    seed_from_env,
    zone_at_local_hour,
)
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e

TOKEN = "c4a05c4a05c4a05c4a05c4a05c4a05c4"
TEMPLATE_SIDS = ("HX" + "c4a05001" * 4, "HX" + "c4a05002" * 4)
CAMPAIGN = "chaos"
DATABASE = "relance"
N_CONTACTS = int(os.environ.get("CHAOS_CONTACTS", "500"))
CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "80"))
CHAOS_KILLS = int(os.environ.get("CHAOS_KILLS", "12"))
STALE_AFTER = os.environ.get("CHAOS_STALE_AFTER", "8")
QUIET_TIMEOUT = 240.0  # after the chaos, how long the system may take to settle
TEST_BUDGET = 330.0  # the test's body (servers and processes started): settling is cut short past it
INTERMEDIATE_FOLLOWUP = ("queued", "drafting", "awaiting_send")
INTERMEDIATE_MESSAGE = ("ready", "sending", "uncertain")


def _phone(i: int) -> str:
    return f"+3361235{i:04d}"


def _groups(n: int) -> dict[str, list[int]]:
    sizes = {"closed": n * 8 // 100, "stop_before": n * 5 // 100, "stop_mid": n * 10 // 100,
             "joined": n * 17 // 100}
    groups: dict[str, list[int]] = {}
    start = 0
    for name, size in sizes.items():
        groups[name] = list(range(start, start + size))
        start += size
    groups["template"] = list(range(start, n))
    return groups


def _say(text: str) -> None:
    print(text, flush=True)


def relance(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def chaos_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Its own Redis and SecantusDB (on disk), and every process of the product."""
    redis_server = RestartableRedis(tmp_path / "redis")
    mongo = RestartableMongo(tmp_path / "mongo", DATABASE)
    webhook_port, sim_port, gemini_port = free_port(), free_port(), free_port()
    env = {**os.environ,
           "MONGODB_URI": mongo.url, "REDIS_URL": redis_server.url, "BACKEND_PORT": str(webhook_port),
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{webhook_port}", "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
           "GEMINI_API_KEY": "fake-gemini-key", "GEMINI_API_BASE_URL": f"http://127.0.0.1:{gemini_port}",
           "GEMINI_TIMEOUT_SECONDS": "10", "SCHEDULER_INTERVAL_SECONDS": "0.5", "STALE_AFTER_SECONDS": STALE_AFTER,
           "BUSINESS_NAME": "Atelier Dupont", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
           "RECONCILE_GRACE_SECONDS": "30", "INBOUND_BACKFILL_SECONDS": "10",
           # The cadence plays in seconds, any day: no per-contact pacing, no holidays.
           "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""}
    processes = Processes(tmp_path, env)
    client = None
    sim = SimClient(f"http://127.0.0.1:{sim_port}")
    try:
        processes.spawn("fake_gemini", ["--port", str(gemini_port), "--mode", "good"],
                        module="tests.support.fake_gemini")
        processes.spawn("simulator", ["simulator", "--port", str(sim_port)])
        processes.spawn("webhook", ["webhook", "--host", "127.0.0.1"])
        processes.spawn("drafting", ["worker", "drafting", "--threads", "4"])
        processes.spawn("sending", ["worker", "sending", "--threads", "4"])
        processes.spawn("replies", ["worker", "replies", "--threads", "2"])
        processes.spawn("scheduler", ["scheduler"])
        for port in (gemini_port, sim_port, webhook_port):
            wait_for_port(port, timeout=90)
        client = connect(mongo.url)
        yield {"env": env, "sim": sim, "store": mongo_repositories(client[DATABASE]), "dir": tmp_path,
               "processes": processes, "redis": redis_server, "mongo": mongo}
    finally:
        sim.close()
        if client is not None:
            client.close()
        processes.stop()
        mongo.close()
        redis_server.close()
        _say(f"chaos: logs and data in {tmp_path}")


class StopWatcher(threading.Thread):
    """Watches the simulator; a stop_mid client says STOP as soon as their first message is delivered."""

    def __init__(self, sim_url: str, stop_mid: set[str]) -> None:
        super().__init__(name="stop-watcher", daemon=True)
        self.sim = SimClient(sim_url)
        self.pending = set(stop_mid)
        self.stopped: dict[str, dict[str, Any]] = {}
        self.snapshot: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                received = self.sim.messages()
            except Exception as exc:
                self.errors.append(f"listing: {type(exc).__name__}")
                self.halt.wait(1.0)
                continue
            with self.lock:
                self.snapshot = received
            for message in received:
                phone = message["to"].removeprefix("whatsapp:")
                if phone in self.pending and message["status"] in ("delivered", "read"):
                    self.pending.discard(phone)
                    posted = datetime.now(UTC)
                    try:
                        sid, attempts = self.sim.inbound(phone, "STOP")
                    except Exception as exc:
                        self.errors.append(f"STOP from {phone}: {exc}")
                        continue
                    self.stopped[phone] = {"sid": sid, "posted": posted, "accepted": datetime.now(UTC),
                                           "attempts": attempts, "after": message_id_of(message)}
            self.halt.wait(0.7)
        self.sim.close()

    def latest(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.snapshot)


def _states(store: MongoRepositories) -> dict[str, dict[str, int]]:
    try:
        return {"followups": store.followups.count_by_state(), "messages": store.messages.count_by_state()}
    except (PyMongoError, Exception) as exc:
        return {"error": {type(exc).__name__: 1}}


def test_delivery_guarantees_under_chaos(chaos_stack: dict[str, Any]) -> None:
    test_started = time.monotonic()
    seed = seed_from_env(dict(os.environ))
    rng = random.Random(seed)
    _say(f"\nchaos: CHAOS_SEED={seed} contacts={N_CONTACTS} chaos={CHAOS_SECONDS:.0f}s kills={CHAOS_KILLS} "
         f"(replay: CHAOS_SEED={seed} pytest {__file__} -s)")
    env, store, sim = chaos_stack["env"], chaos_stack["store"], chaos_stack["sim"]
    processes: Processes = chaos_stack["processes"]
    durations: dict[str, float] = {"start": time.monotonic() - test_started}

    # ------------------------------------------------------------------ contacts and first messages
    groups = _groups(N_CONTACTS)
    open_zone, closed_zone = zone_at_local_hour(13), zone_at_local_hour(2)
    group_of = {i: name for name, members in groups.items() for i in members}
    rows = [{"name": f"Client {i}", "phone": _phone(i), "language": "fr" if i % 3 else "en",
             "timezone": closed_zone if group_of[i] == "closed" else open_zone,
             "invoice_number": f"FA-2026-{i:04d}", "amount": f"{100 + i * 7}.50", "currency": "EUR",
             "due_date": "2026-11-02", "payment_link": f"https://pay.example.com/i/{i:04d}", "tags": "chaos"}
            for i in range(N_CONTACTS)]
    contacts_file = chaos_stack["dir"] / "contacts.csv"
    with contacts_file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = relance(env, "contacts", "import", str(contacts_file))
    assert imported.returncode == 0, imported.stderr
    assert f"{N_CONTACTS} new" in imported.stdout, imported.stdout

    before = [(_phone(i), "STOP") for i in groups["stop_before"]] + [(_phone(i), "Bonjour") for i in groups["joined"]]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda item: sim.inbound(*item), before))

    def inbound_done() -> bool:
        return store.events.collection.count_documents({"kind": "inbound", "state": "processed"}) >= len(before)

    _wait(inbound_done, 90, "the first inbound messages to be processed", processes)
    sim.config(send_read=False)  # sent and delivered are enough: one callback less per message
    durations["setup"] = time.monotonic() - test_started

    campaign = {
        "id": CAMPAIGN, "name": "Relance factures",
        "send_window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "18:00"},
        "enrol": {"tags": ["chaos"]},
        "steps": [
            {"delay": "1s", "tone": "courteous", "template": {
                "content_sid": TEMPLATE_SIDS[0], "variables": {"1": "name", "2": "invoice_number", "3": "amount"},
                "preview": {"fr": "Bonjour {{1}}, la facture {{2}} de {{3}} EUR reste à régler.",
                            "en": "Hello {{1}}, invoice {{2}} for {{3}} EUR is still due."}}},
            {"delay": "3s", "anchor": "previous", "tone": "firm", "template": {
                "content_sid": TEMPLATE_SIDS[1], "variables": {"1": "name", "2": "invoice_number", "3": "amount"},
                "preview": {"fr": "{{1}}, dernier rappel : facture {{2}}, {{3}} EUR.",
                            "en": "{{1}}, last reminder: invoice {{2}}, {{3}} EUR."}}},
        ],
    }
    campaign_file = chaos_stack["dir"] / "campaign.json"
    campaign_file.write_text(json.dumps(campaign))
    created = relance(env, "campaigns", "create", str(campaign_file))
    assert created.returncode == 0, created.stderr

    watcher = StopWatcher(sim.base_url, {_phone(i) for i in groups["stop_mid"]})
    watcher.start()
    enrol_started = time.monotonic()
    enrolled = relance(env, "campaigns", "enrol", CAMPAIGN)
    assert enrolled.returncode == 0, enrolled.stderr
    expected_enrolled = N_CONTACTS - len(groups["stop_before"])
    assert f"enrolled {expected_enrolled}," in enrolled.stdout, enrolled.stdout
    durations["enrol"] = time.monotonic() - enrol_started

    # ------------------------------------------------------------------ chaos
    plan = make_plan(rng, duration=CHAOS_SECONDS, kills=CHAOS_KILLS,
                     lost_answers=os.environ.get("CHAOS_LOST_ANSWERS", "1").strip() != "0")
    if os.environ.get("CHAOS_OFF"):  # calibration: the same run without any fault
        plan = []
    _say("chaos plan:\n  " + "\n  ".join(fault.describe() for fault in plan))
    runner = ChaosRunner(processes, chaos_stack["redis"], chaos_stack["mongo"], sim, say=_say)
    own_exits: list[tuple[str, int, float]] = []
    last_progress = [0.0]

    def on_tick() -> None:
        exits = processes.supervise()
        for name, code, uptime in exits:
            _say(f"chaos: {name} EXITED on its own (code {code}, up {uptime}s); restarted")
        own_exits.extend(exits)
        if time.monotonic() - last_progress[0] >= 10:
            last_progress[0] = time.monotonic()
            _progress(watcher, enrol_started)

    chaos_started = time.monotonic()
    runner.run(plan, on_tick=on_tick)
    on_tick()
    durations["chaos"] = time.monotonic() - chaos_started
    sim.config(response_delay_ms=0)
    _say(f"chaos over: {dict(runner.done)}")

    # ------------------------------------------------------------------ quiescence
    reachable = groups["joined"] + groups["template"]
    quiet_started = time.monotonic()
    deadline = min(quiet_started + QUIET_TIMEOUT, test_started + TEST_BUDGET)
    settled = False
    calm = 0
    expected_sends = 2 * len(reachable) + len(groups["stop_mid"])
    while time.monotonic() < deadline:
        on_tick()
        received = watcher.latest()
        delivered = sum(1 for m in received if m["status"] in ("delivered", "read", "failed", "undelivered"))
        done = False
        if not watcher.pending and len(received) >= expected_sends and delivered == len(received):
            # The simulator has it all: now ask MongoDB whether anything is still on its way.
            counts = _states(store)
            fu, msgs = counts.get("followups", {}), counts.get("messages", {})
            busy = (sum(fu.get(s, 0) for s in INTERMEDIATE_FOLLOWUP)
                    + sum(msgs.get(s, 0) for s in INTERMEDIATE_MESSAGE)
                    + abs(fu.get("scheduled", 0) - len(groups["closed"])))
            done = "error" not in counts and busy == 0
        calm = calm + 1 if done else 0
        if calm >= 3:
            settled = True
            break
        time.sleep(1.0)
    durations["settle"] = time.monotonic() - quiet_started
    watcher.halt.set()
    watcher.join(timeout=10)
    _progress(watcher, enrol_started)

    # ------------------------------------------------------------------ what the simulator received
    received = sim.messages()
    problems: list[str] = []
    phone_index = {_phone(i): i for i in range(N_CONTACTS)}
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for message in received:
        phone = message["to"].removeprefix("whatsapp:")
        mid = message_id_of(message)
        step = int(mid.rsplit(":", 1)[1]) if mid.count(":") >= 2 and mid.rsplit(":", 1)[1].isdigit() else -1
        by_key[(phone, step)].append(message)
    duplicates = sum(len(items) - 1 for items in by_key.values() if len(items) > 1)
    for (phone, step), items in sorted(by_key.items()):
        if len(items) > 1:
            problems.append(f"DUPLICATE: {phone} step {step} accepted {len(items)} times: "
                            + ", ".join(f"{m['sid']} at {m['created_at']}" for m in items))
        if phone not in phone_index:
            problems.append(f"message to an unknown number {phone}")
    for message in received:
        phone = message["to"].removeprefix("whatsapp:")
        if phone not in phone_index:
            continue
        i = phone_index[phone]
        local = datetime.fromisoformat(message["created_at"]).astimezone(ZoneInfo(rows[i]["timezone"]))
        if not 9 <= local.hour < 18:
            problems.append(f"OUTSIDE WINDOW: {phone} ({group_of[i]}) at {local.isoformat()}")
        if message["status"] not in ("delivered", "read"):
            problems.append(f"not delivered: {phone} {message['sid']} status {message['status']}")
        expected_sid = TEMPLATE_SIDS[0] if message_id_of(message).endswith(":0") else TEMPLATE_SIDS[1]
        if group_of[i] != "joined" and message.get("content_sid") != expected_sid:
            problems.append(f"wrong template for {phone}: {message.get('content_sid')} ({message_id_of(message)})")
        if group_of[i] == "joined" and (message.get("content_sid") or not message["body"]):
            problems.append(f"joined contact {phone} got no freeform message: {message_id_of(message)}")
    for name in ("closed", "stop_before"):
        for i in groups[name]:
            got = [k for k in by_key if k[0] == _phone(i)]
            if got:
                problems.append(f"{name} contact {_phone(i)} received {len(got)} message(s)")
    for i in reachable:
        for step in (0, 1):
            if len(by_key.get((_phone(i), step), [])) != 1:
                problems.append(f"MISSING: {_phone(i)} ({group_of[i]}) step {step} accepted "
                                f"{len(by_key.get((_phone(i), step), []))} times")

    # STOP mid-campaign: the first message, then nothing once the STOP is stored.
    stop_times: dict[str, datetime] = {}
    for event in store.events.collection.find({"kind": "inbound"}, {"from": 1, "body": 1, "received_at": 1}):
        phone = str(event.get("from", "")).removeprefix("whatsapp:")
        if event.get("body") == "STOP":
            at = event["received_at"]
            stop_times[phone] = min(stop_times.get(phone, at), at)
    for i in groups["stop_mid"]:
        phone = _phone(i)
        if len(by_key.get((phone, 0), [])) != 1:
            problems.append(f"stop_mid contact {phone}: first message accepted {len(by_key.get((phone, 0), []))} "
                            "times")
        if phone not in stop_times:
            problems.append(f"stop_mid contact {phone} never said STOP (watcher: {watcher.stopped.get(phone)})")
            continue
        for message in [m for (p, _), items in by_key.items() if p == phone for m in items]:
            created_at = datetime.fromisoformat(message["created_at"])
            if created_at >= stop_times[phone]:
                mongo_doc = store.messages.collection.find_one({"_id": message_id_of(message)},
                                                               {"sending_at": 1, "history": 1})
                problems.append(f"AFTER STOP: {phone} got {message_id_of(message)} at {created_at.isoformat()}, "
                                f"STOP stored at {stop_times[phone].isoformat()} "
                                f"(send started {mongo_doc and mongo_doc.get('sending_at')})")

    # ------------------------------------------------------------------ what MongoDB says
    contacts = {doc["phone"]: doc for doc in store.contacts.collection.find({}, {"phone": 1, "opted_out": 1})}
    followups = {doc["contact_id"]: doc for doc in store.followups.collection.find({"campaign_id": CAMPAIGN})}
    for doc in store.followups.collection.find({"state": {"$in": list(INTERMEDIATE_FOLLOWUP)}}):
        problems.append(f"follow-up left {doc['state']}: {doc['_id']} step {doc.get('step')}")
    for doc in store.messages.collection.find({"direction": "outbound", "state": {"$in": list(INTERMEDIATE_MESSAGE)}}):
        problems.append(f"message left {doc['state']}: {doc['_id']}")
    for i in range(N_CONTACTS):
        contact = contacts[_phone(i)]
        followup = followups.get(contact["_id"])
        group = group_of[i]
        state = followup["state"] if followup else None
        if group == "stop_before":
            if followup is not None or not contact["opted_out"]:
                problems.append(f"stop_before contact {_phone(i)}: opted_out={contact['opted_out']} follow-up {state}")
        elif group == "closed":
            if state != "scheduled" or followup["next_run_at"] <= datetime.now(UTC):
                problems.append(f"closed contact {_phone(i)}: follow-up {state}")
        elif group == "stop_mid":
            if not contact["opted_out"] or state not in ("stopped", "completed"):
                problems.append(f"stop_mid contact {_phone(i)}: opted_out={contact['opted_out']} follow-up {state}")
        elif state != "completed":
            problems.append(f"{group} contact {_phone(i)}: follow-up {state}, not completed")
    sid_of = {doc["_id"]: doc.get("twilio_sid") for doc in store.messages.collection.find({"direction": "outbound"},
                                                                               {"twilio_sid": 1})}
    for message in received:
        if sid_of.get(message_id_of(message)) != message["sid"]:
            problems.append(f"MongoDB does not know {message['sid']} as {message_id_of(message)} "
                            f"(it has {sid_of.get(message_id_of(message))})")
    outbound = list(store.messages.collection.find({"direction": "outbound"}, {"state": 1, "history": 1}))
    mongo_states = Counter(doc["state"] for doc in outbound)
    # Delivered at Twilio, still "sent" here: every status callback for it was refused (503) while
    # MongoDB was away, and nothing asks Twilio again. Allowed (sent is not an intermediate
    # state of ours), counted for the report.
    sim_status = {m["sid"]: m["status"] for m in received}
    status_lagging = sum(1 for doc in store.messages.collection.find({"direction": "outbound", "state": "sent"},
                                                                     {"twilio_sid": 1})
                         if sim_status.get(doc.get("twilio_sid")) in ("delivered", "read"))
    went_uncertain = sum(1 for doc in outbound if any(h.get("state") == "uncertain" for h in doc.get("history", [])))
    requeued = sum(doc.get("requeued", 0) for doc in store.followups.collection.find({}, {"requeued": 1}))

    # ------------------------------------------------------------------ report
    sim_statuses = Counter(m["status"] for m in received)
    durations["total"] = time.monotonic() - test_started
    kills = sum(processes.kills.values())
    summary = {
        "seed": seed, "contacts": N_CONTACTS, "groups": {k: len(v) for k, v in groups.items()},
        "sent": len(received), "expected": 2 * len(reachable) + len(groups["stop_mid"]),
        "delivered": sim_statuses["delivered"] + sim_statuses["read"], "duplicates": duplicates,
        "kills": dict(processes.kills), "kills_total": kills, "worker_restarts": runner.done["worker_restart"],
        "redis_restarts": chaos_stack["redis"].restarts, "mongo_restarts": chaos_stack["mongo"].restarts,
        "chaos": dict(runner.done), "chaos_errors": runner.errors, "own_exits": own_exits,
        "stops_mid": len(watcher.stopped), "stop_watcher_errors": watcher.errors[:5],
        "mongo_messages": dict(mongo_states), "went_uncertain": went_uncertain, "followups_requeued": requeued,
        "sent_here_delivered_at_twilio": status_lagging,
        "settled": settled, "durations_s": {k: round(v, 1) for k, v in durations.items()},
    }
    _say("chaos summary: " + json.dumps(summary, default=str))
    if problems:
        _say(f"chaos: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:60]))

    assert kills >= 10, f"only {kills} kills happened: {runner.errors}"
    assert chaos_stack["redis"].restarts == 1 and chaos_stack["mongo"].restarts == 1, runner.errors
    assert not runner.errors, runner.errors
    assert duplicates == 0, f"{duplicates} duplicate(s) (seed {seed})"
    assert not problems, f"{len(problems)} problem(s) (seed {seed}):\n" + "\n".join(problems[:60])
    assert settled, f"the system did not settle in {QUIET_TIMEOUT:.0f}s (seed {seed})"
    assert not [e for e in own_exits if e[2] > 20], f"processes died on their own while running: {own_exits}"


def _wait(predicate: Any, timeout: float, what: str, processes: Processes) -> None:
    wait_until(predicate, timeout, what, processes.check_alive)


def _progress(watcher: StopWatcher, since: float) -> None:
    received = watcher.latest()
    statuses = Counter(m["status"] for m in received)
    _say(f"[{time.monotonic() - since:6.1f}s] simulator: {len(received)} accepted, "
         f"{statuses['delivered'] + statuses['read']} delivered | STOPs sent {len(watcher.stopped)}")
