"""The real processes of an invoice campaign's end-to-end tests, its clients, and their invoices' history.

:func:`invoice_stack_running` starts the Twilio simulator and the webhook (with
STRIPE_WEBHOOK_SECRET) on a database of their own; a test starts the scheduler and the workers
itself (:meth:`InvoiceStack.start`), so that it can hold one back. :meth:`InvoiceStack.pay` posts a
Stripe payment signed by the stripe SDK's code and keeps when it started and when it was answered.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devtools.devstack import DEV_ACCOUNT_SID, Stack
from devtools.embedded import free_port, wait_for_port
from shared.adapters.mongo import MongoRepositories, connect, mongo_repositories
from shared.domain.invoices import REMINDED, Invoice
from shared.domain.models import Language
from shared.domain.states import InvoiceStatus
from tests.e2e.test_end_to_end import relance
from tests.support.servers import wait_until
from tests.support.stripe_events import checkout_completed, payment_intent_succeeded, post_event

TOKEN = "e2e0123456789abcdef0123456789inv"
SECRET = "whsec_" + "e2einvoices0123456789" * 2
TEMPLATE_SID = "HX" + "facade00" * 4
ALL_DAY = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "23:59"}
# One grouped reminder: the simulator shows a template as its variables' values, one a line.
TEMPLATE = {"content_sid": TEMPLATE_SID, "variables": {"1": "name", "2": "invoice_list", "3": "total_due"}}

@dataclass
class InvoiceStack:
    """The processes of one test (simulator and webhook started; the rest started by the test)."""

    procs: Stack
    env: dict[str, str]
    store: MongoRepositories
    sim: str
    webhook: str
    workdir: Path
    events: int = 0
    # Each invoice's changes, as (when the request started, when it returned): its history entry's
    # time is in between, and once it returned the client's reminders were settled.
    windows: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def start(self, *names: str, **env: str) -> None:
        """Start ``scheduler`` or a worker (``drafting``, ``sending``) as its own process (``env``: more settings)."""
        for name in names:
            args = ["scheduler"] if name == "scheduler" else ["worker", name, "--threads", "4"]
            self.procs.spawn(name, args, {**self.env, **env})

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        wait_until(predicate, timeout, what, self.procs.check_alive)

    def received(self) -> list[dict[str, Any]]:
        """What the simulator received through the API, oldest first."""
        answer: list[dict[str, Any]] = httpx.get(f"{self.sim}/_sim/messages", timeout=10).json()
        return answer

    def pay(self, reference: str, cents: int, *, intent: bool = False) -> str:
        """A Stripe payment of ``cents`` for ``reference``: checkout.session.completed, or
        payment_intent.succeeded (``intent``); the outcome the webhook answered."""
        self.events += 1
        event_id, payment = f"evt_e2e_{self.events:04d}", f"pi_e2e_{self.events:04d}"
        payload = (payment_intent_succeeded(event_id, reference, cents, payment_intent=payment) if intent
                   else checkout_completed(event_id, reference, cents, payment_intent=payment))
        started = datetime.now(UTC)
        outcome = str(post_event(self.webhook, payload, SECRET)["outcome"])
        self.windows.setdefault(reference, []).append((started, datetime.now(UTC)))
        return outcome


@contextlib.contextmanager
def invoice_stack_running(workdir: Path, redis_url: str, mongo_uri: str) -> Iterator[InvoiceStack]:
    """The simulator and the webhook running on a new database (dropped after); Redis flushed first."""
    import redis

    redis.Redis.from_url(redis_url).flushall()
    db_name = f"e2e_inv_{time.time_ns()}"
    base_uri = mongo_uri.rsplit("/", 1)[0] if mongo_uri.count("/") >= 3 else mongo_uri
    uri = f"{base_uri}/{db_name}" + (f"?{mongo_uri.split('?', 1)[1]}" if "?" in mongo_uri else "")
    webhook_port, sim_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("GEMINI_")}
    env.update({"MONGODB_URI": uri, "REDIS_URL": redis_url, "BACKEND_PORT": str(webhook_port),
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{webhook_port}", "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
                "STRIPE_WEBHOOK_SECRET": SECRET, "SCHEDULER_INTERVAL_SECONDS": "0.5", "STALE_AFTER_SECONDS": "60",
                "BUSINESS_NAME": "Atelier Dupont", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
                "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""})
    procs = Stack(workdir)
    client = connect(uri)
    try:
        procs.spawn("simulator", ["simulator", "--port", str(sim_port)], env)
        procs.spawn("webhook", ["webhook", "--host", "127.0.0.1"], env)
        for port in (sim_port, webhook_port):
            wait_for_port(port, timeout=60)
        yield InvoiceStack(procs=procs, env=env, store=mongo_repositories(client[db_name]),
                           sim=f"http://127.0.0.1:{sim_port}", webhook=f"http://127.0.0.1:{webhook_port}",
                           workdir=workdir)
    finally:
        procs.stop()
        client.drop_database(db_name)
        client.close()


# --------------------------------------------------------------------------------------- clients


def phone_of(i: int) -> str:
    """Client ``i``'s phone."""
    return f"+336550{i:05d}"


def reference_of(i: int, j: int) -> str:
    """The reference of client ``i``'s invoice ``j``."""
    return f"FA-2026-{i:02d}{j}"


@dataclass
class Client:
    """A client of the test and what it owes (references → amount in cents)."""

    i: int
    invoices: dict[str, int] = field(default_factory=dict)

    @property
    def phone(self) -> str:
        return phone_of(self.i)

    @property
    def language(self) -> Language:
        return Language.EN if self.i % 3 == 0 else Language.FR


def import_clients(stack: InvoiceStack, counts: dict[int, int], tag: str) -> dict[int, Client]:
    """Import clients ``i`` with ``counts[i]`` invoices each through ``relance invoices import``."""
    clients: dict[int, Client] = {}
    rows = []
    for i, count in counts.items():
        client = clients[i] = Client(i)
        for j in range(count):
            reference, cents = reference_of(i, j), 10_000 + i * 137 + j * 2_550
            client.invoices[reference] = cents
            rows.append({"phone": client.phone, "name": f"Client {i}", "language": client.language.value,
                         "timezone": "Europe/Paris", "tags": tag, "invoice": reference,
                         "amount": f"{cents // 100}.{cents % 100:02d}",
                         "due_date": (date.today() - timedelta(days=5 + 7 * j)).isoformat(),
                         "payment_link": f"https://pay.example.com/{reference}"})
    path = stack.workdir / f"{tag}-invoices.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = relance(stack.env, "invoices", "import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert f"{len(rows)} new" in imported.stdout and f"{len(counts)} new client(s)" in imported.stdout
    return clients


def create_campaign(stack: InvoiceStack, campaign: dict[str, Any]) -> int:
    """Create and enrol ``campaign``; how many clients were enrolled."""
    path = stack.workdir / f"{campaign['id']}.json"
    path.write_text(json.dumps(campaign))
    created = relance(stack.env, "campaigns", "create", str(path))
    assert created.returncode == 0, created.stderr
    enrolled = relance(stack.env, "campaigns", "enrol", campaign["id"])
    assert enrolled.returncode == 0, enrolled.stderr
    return stack.store.followups.collection.count_documents({"campaign_id": campaign["id"]})


def as_of(invoice: Invoice, at: datetime) -> tuple[InvoiceStatus, int] | None:
    """The invoice's status and amount due at ``at``, from its history (None: not created yet)."""
    state: tuple[InvoiceStatus, int] | None = None
    for change in invoice.history:
        if change.at > at:
            break
        due = change.amount_due_cents if change.amount_due_cents is not None else (
            state[1] if state is not None else invoice.amount_cents)
        state = (change.status, due)
    return state


def closed_at(invoice: Invoice) -> datetime | None:
    """When the invoice stopped being reminded of (paid or cancelled), if it did."""
    for change in invoice.history:
        if change.status not in REMINDED:
            return change.at
    return None


def eventually(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate`` became true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
