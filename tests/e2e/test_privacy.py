"""No phone number and no secret where it should not be: the logs and Redis of a whole run.

The real processes (webhook, scheduler, workers, Twilio simulator, fake Gemini) run a small
campaign at DEBUG level with every secret set, Redis behind a password and MongoDB with a user:
contacts imported in several phone formats, clients who write (one quoting their own number),
an unknown number, a STOP, a question and a dispute (owner alert), a send Twilio refuses with a
text quoting the number, a send it answers 429 (retried by dramatiq, which stores the
traceback in Redis), a delivery that fails. Then every process's log, every CLI output, and every
key and value of Redis (sampled during the run, and after it) are searched for each number in
its usual forms (+33612345678, 33612345678, 0612345678), for the hash the contact ids used to be
(sha256 of the number), and for each secret. None may appear.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from pymongo.errors import OperationFailure

from devtools.devstack import DEV_ACCOUNT_SID, Stack
from devtools.embedded import ServerProcess, free_port, start_redis, wait_for_port
from shared.adapters.mongo import connect, mongo_repositories
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e

TOKEN = "privacy0e2e0token0123456789abcdef"
SECRETS = {
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_WEBHOOK_SHARED_KEY": "shared-key-privacy-e2e-5551",
    "GEMINI_API_KEY": "AIzaSy-privacy-e2e-gemini-key",
    "NGROK_AUTHTOKEN": "ngrok-privacy-e2e-token-77",
    "STRIPE_WEBHOOK_SECRET": "whsec_privacy-e2e-stripe-secret-8",
}
REDIS_PASSWORD = "redis-e2e-" + secrets.token_hex(8)
MONGO_PASSWORD = "mongo-e2e-" + secrets.token_hex(8)
TEMPLATE_SID = "HX" + "5eed" * 8
OWNER = "+33611220099"
UNKNOWN = "+33612349999"
# Each client's number as written in the contacts file, and its role in the run.
CLIENTS = {
    "joined": ("+33 6 12 34 01 01", "+33612340101"),
    "template": ("06 12 34 01 02", "+33612340102"),
    "stop": ("0033612340103", "+33612340103"),
    "rejected": ("06.12.34.01.04", "+33612340104"),
    "deferred": ("+33612340105", "+33612340105"),
    "undelivered": ("0612340106", "+33612340106"),
}
FINAL = ["delivered", "read", "failed", "undelivered"]
# Our log line: "2026-03-02 10:00:00,123 LEVEL logger.name: message".
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


def phone_forms(e164: str) -> set[str]:
    """A French number as people write it: +33612345678, 33612345678, 0612345678."""
    return {e164, e164[1:], "0" + e164[3:]}


def _needles() -> dict[str, str]:
    """What must appear nowhere, with a label saying what it is."""
    found: dict[str, str] = {}
    for label, e164 in [*((k, v[1]) for k, v in CLIENTS.items()), ("unknown", UNKNOWN), ("owner", OWNER)]:
        for form in phone_forms(e164):
            found[form] = f"{label} phone"
            # What contact ids were made of: ct_ + sha256(phone)[:16].
            found[hashlib.sha256(form.encode()).hexdigest()[:16]] = f"{label} phone hash"
    for name, value in {**SECRETS, "MONGODB password": MONGO_PASSWORD, "REDIS password": REDIS_PASSWORD}.items():
        found[value] = name
    return found


def _zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone whose local time is now ``hour`` o'clock (inside the send window)."""
    offset = (hour - datetime.now(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")  # Etc/GMT-3 is UTC+3


def redis_dump(client: redis.Redis) -> str:
    """Every key and value of the database as text (strings, hashes, lists, sets, sorted sets)."""
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        parts.append(key.decode(errors="replace"))
        try:
            kind = client.type(key).decode()
            if kind == "string":
                values: list[Any] = [client.get(key)]
            elif kind == "hash":
                values = [item for pair in client.hgetall(key).items() for item in pair]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            else:
                values = []
        except redis.ResponseError:  # the key changed type or vanished between two calls
            continue
        parts.extend(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in values)
    return "\n".join(parts)


class Scanner:
    """Collects every text seen during the run and where it came from."""

    def __init__(self, needles: dict[str, str]) -> None:
        self.needles = needles
        self.found: dict[str, set[str]] = {}
        self.saw_retry_traceback = False

    def scan(self, where: str, text: str) -> None:
        if where.startswith("redis") and '"traceback"' in text and "Twilio asked to retry later" in text:
            self.saw_retry_traceback = True
        for needle, label in self.needles.items():
            if needle in text:
                self.found.setdefault(f"{label} ({needle})", set()).add(where)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, mongo_uri: str) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("privacy")
    redis_server: ServerProcess = start_redis(workdir / "redis")
    plain = redis.Redis.from_url(redis_server.url)
    plain.config_set("requirepass", REDIS_PASSWORD)
    plain.close()
    redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_server.port}/0"

    db_name = f"privacy_{int(time.time())}"
    admin = connect(mongo_uri)
    user: str | None = f"relance_{secrets.token_hex(4)}"
    base = mongo_uri.split("//", 1)[1].split("/", 1)[0]
    query = mongo_uri.split("?", 1)[1] if "?" in mongo_uri else ""
    try:  # a user of its own, so that MONGODB_URI carries a password to keep out of the logs
        admin.admin.command("createUser", user, pwd=MONGO_PASSWORD, roles=[{"role": "readWrite", "db": db_name}])
        uri = f"mongodb://{user}:{MONGO_PASSWORD}@{base}/{db_name}?{query + '&' if query else ''}authSource=admin"
    except OperationFailure:  # a MONGODB_URI given without the right to create users: as it is
        user = None
        given = mongo_uri.split("?", 1)[0]
        given = given.rsplit("/", 1)[0] if given.count("/") >= 3 else given
        uri = f"{given}/{db_name}" + (f"?{query}" if query else "")

    webhook_port, sim_port, gemini_port = free_port(), free_port(), free_port()
    env = {**os.environ, **SECRETS,
           "MONGODB_URI": uri, "REDIS_URL": redis_url, "BACKEND_PORT": str(webhook_port),
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{webhook_port}", "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
           "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
           "GEMINI_API_BASE_URL": f"http://127.0.0.1:{gemini_port}", "GEMINI_TIMEOUT_SECONDS": "10",
           "SCHEDULER_INTERVAL_SECONDS": "0.5", "STALE_AFTER_SECONDS": "60", "BUSINESS_NAME": "Atelier Dupont",
           "OWNER_WHATSAPP_NUMBER": OWNER, "LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1",
           "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""}
    procs = Stack(workdir)
    client = connect(uri)
    broker_view = redis.Redis.from_url(redis_url)
    try:
        procs.spawn("fake_gemini", ["--port", str(gemini_port), "--mode", "good"], env,
                    module="tests.support.fake_gemini")
        procs.spawn("simulator", ["simulator", "--port", str(sim_port)], env)
        procs.spawn("webhook", ["webhook", "--host", "127.0.0.1"], env)
        procs.spawn("workers", ["worker", "drafting", "sending", "replies", "--threads", "4"], env)
        procs.spawn("scheduler", ["scheduler"], env)
        for port in (gemini_port, sim_port, webhook_port):
            wait_for_port(port, timeout=60)
        yield {"env": env, "sim": f"http://127.0.0.1:{sim_port}", "store": mongo_repositories(client[db_name]),
               "dir": workdir, "procs": procs, "redis": broker_view}
    finally:
        procs.stop()
        broker_view.close()
        client.drop_database(db_name)
        client.close()
        if user:
            admin.admin.command("dropUser", user)
        admin.close()
        redis_server.stop()


def test_no_phone_number_and_no_secret_in_logs_or_redis(run: dict[str, Any]) -> None:
    env, store, procs, sim, broker = run["env"], run["store"], run["procs"], run["sim"], run["redis"]
    scanner = Scanner(_needles())
    outputs: list[tuple[str, str]] = []

    def relance(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        outputs.append((f"relance {' '.join(args[:2])}", done.stdout + done.stderr))
        assert done.returncode == 0, done.stderr
        return done

    def wait(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
        def sampled() -> bool:  # Redis as it is now: a retried message's traceback leaves with it
            scanner.scan("redis (during the run)", redis_dump(broker))
            return predicate()

        wait_until(sampled, timeout, what, procs.check_alive)

    def sim_post(path: str, payload: dict[str, Any]) -> None:
        httpx.post(f"{sim}{path}", json=payload, timeout=10).raise_for_status()

    zone = _zone_at_local_hour(13)
    contacts_file = run["dir"] / "contacts.csv"
    with contacts_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "phone", "language", "timezone", "invoice_number", "amount", "due_date", "tags"])
        for n, (kind, (written, _)) in enumerate(CLIENTS.items()):
            writer.writerow([f"Client {kind}", written, "fr", zone, f"FA-{n:03d}", "480.00", "2026-11-02", "privacy"])
    assert "6 new" in relance("contacts", "import", str(contacts_file)).stdout

    phone = {kind: e164 for kind, (_, e164) in CLIENTS.items()}
    sim_post("/_sim/inbound", {"from": phone["joined"], "body": f"Bonjour, c'est moi, au {phone['joined']}"})
    sim_post("/_sim/inbound", {"from": phone["stop"], "body": "STOP"})
    sim_post("/_sim/inbound", {"from": UNKNOWN, "body": f"Qui est-ce ? Rappelez-moi au {UNKNOWN}"})
    wait(lambda: store.events.collection.count_documents({"kind": "inbound"}) == 3
         and store.events.collection.count_documents({"kind": "inbound", "state": "received"}) == 0,
         "first messages processed")

    quoted = "The 'To' number whatsapp:{} is not a valid phone number."
    sim_post("/_sim/fail", {"code": 21211, "status": 400, "to": phone["rejected"],
                            "message": quoted.format(phone["rejected"])})
    # 429: "not created, try again later", retried by dramatiq (a 5xx may mean "created": reconciled).
    sim_post("/_sim/fail", {"code": 20429, "status": 429, "to": phone["deferred"], "count": 1,
                            "message": quoted.format(phone["deferred"])})
    sim_post("/_sim/fail_delivery", {"to": phone["undelivered"], "code": 63024, "status": "undelivered"})

    campaign = {"id": "privacy", "name": "Relance", "enrol": {"tags": ["privacy"]},
                "send_window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                "start": "09:00", "end": "18:00"},
                "steps": [{"delay": "1s", "template": {
                    "content_sid": TEMPLATE_SID, "variables": {"1": "name", "2": "invoice_number"},
                    "preview": {"fr": "Bonjour {{1}}, la facture {{2}} reste à régler.",
                                "en": "Hello {{1}}, invoice {{2}} is still due."}}}]}
    campaign_file = run["dir"] / "campaign.json"
    campaign_file.write_text(json.dumps(campaign))
    relance("campaigns", "create", str(campaign_file))
    relance("campaigns", "enrol", "privacy")

    def outbound(kind: str, states: list[str]) -> int:
        contact = store.contacts.by_phone(phone[kind])
        assert contact is not None
        return store.messages.collection.count_documents({"direction": "outbound", "contact_id": contact.id,
                                               "state": {"$in": states}})

    wait(lambda: all(outbound(kind, FINAL) == 1 for kind in CLIENTS if kind != "stop"), "reminders final")
    assert outbound("rejected", ["failed"]) == 1 and outbound("undelivered", ["undelivered"]) == 1
    assert outbound("deferred", ["delivered", "read"]) == 1  # sent on dramatiq's retry

    sim_post("/_sim/inbound", {"from": phone["template"], "body": "Quel est le montant exact svp ?"})
    sim_post("/_sim/inbound", {"from": phone["joined"],
                               "body": f"Je conteste cette facture, appelez le {phone['joined']}"})
    wait(lambda: outbound("template", FINAL) == 2, "the question answered")
    wait(lambda: store.messages.collection.count_documents({"purpose": "alert", "state": {"$in": FINAL}}) >= 1,
         "the owner alerted")
    wait(lambda: store.events.collection.count_documents({"state": "received"}) == 0
         and httpx.get(f"{sim}/_sim/health", timeout=10).json().get("pending_callbacks") == 0, "all settled")
    procs.check_alive()

    procs.stop()  # logs complete; Redis as the run left it
    scanner.scan("redis (after the run)", redis_dump(broker))
    assert broker.dbsize() > 0  # the conveyor's own keys are there: the scan read something
    assert scanner.saw_retry_traceback, "the 429's retry (its traceback stored in Redis) was never sampled"
    logs = {path.name: path.read_text(encoding="utf-8", errors="replace") for path in procs.logs.glob("*.log")}
    assert set(logs) == {"fake_gemini.log", "simulator.log", "webhook.log", "workers.log", "scheduler.log"}
    for name, text in [*logs.items(), *outputs]:
        scanner.scan(name, text)
    assert scanner.found == {}, "found where it should not be: " + "; ".join(
        f"{what} in {', '.join(sorted(where))}" for what, where in sorted(scanner.found.items()))

    # The run was logged, through our handler (uvicorn's loggers included), masked where it says whom.
    assert re.search(r"INFO uvicorn\.error: Uvicorn running on", logs["simulator.log"])
    assert "+33*******01" in logs["workers.log"] or "+33*******01" in logs["webhook.log"]
    for name in ("simulator.log", "webhook.log", "workers.log", "scheduler.log"):
        lines = [line for line in logs[name].splitlines() if line.strip()]
        assert lines and LOG_LINE.match(lines[0]), name
        strays = [line for line in lines if not LOG_LINE.match(line) and not line.startswith((" ", "Traceback"))
                  and not re.match(r"^[\w.]+(Error|Exception|Deferred|Rejected)\b", line)
                  and not line.startswith(("The above exception", "During handling"))]
        assert strays == [], f"{name}: lines not written by the logging setup: {strays[:5]}"
