"""In chromium: approve one draft from the list and edit another then approve it, and see both reach the
Twilio simulator (the real console, the real dramatiq workers on Redis, MongoDB and the simulator over HTTP)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import time as dtime
from datetime import timedelta
from typing import Any

import dramatiq
import httpx
import pytest

from devtools.simulator import create_app as create_simulator
from services.bootstrap import register_actors
from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import SystemClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from shared.usecases.users import add_user
from tests.browser.conftest import PASSWORD, ConsoleSite, log_in
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi

ACCOUNT_SID = "AC" + "4" * 32
AUTH_TOKEN = "browser-approvals-token"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0), end=dtime(23, 59))
FACTS = {"invoice_number": "FA-2026-001", "amount": "120.00", "currency": "EUR"}
EDITED = "Bonjour Client 2, la facture FA-2026-001 de 120,00 EUR reste à régler. Merci !"


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
def site(store: MongoRepositories, redis_url: str) -> Iterator[tuple[ConsoleSite, str]]:
    """Two clients' step 0 drafted by the real workers and waiting for approval; the console and the simulator."""
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "MIN_GAP_BETWEEN_MESSAGES": "0s",
                              "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""})
    clock = SystemClock()
    now = clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, approval="required",
                                    steps=[Step(), Step(delay="2d", anchor="previous")]), now)
    for n in (1, 2):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234560{n}", name=f"Client {n}", language=Language.FR,
                                      fields=FACTS), now)
        store.contacts.touch_inbound(f"ct{n}", now - timedelta(hours=1))
        store.followups.enrol(contact_id=f"ct{n}", campaign_id="c1", next_run_at=now, now=now)
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    simulator = create_simulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01,
                                 callback_attempts=1)
    with serve_asgi(simulator) as sim_url:
        sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="whatsapp:+14155238886",
                              api_base_url=sim_url)
        register_actors(broker, App.build(settings.rules(), store=store, clock=clock, queue=queue,
                                          drafter=EchoDrafter(), sender=sender))
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
        worker.start()
        try:
            tick(store, queue, clock)
            _wait(lambda: store.messages.collection.count_documents({"state": "awaiting_approval"}) == 2)
            console = Console(store, clock, queue=queue, rules=settings.rules())
            with serve_asgi(create_app(console)) as url:
                yield ConsoleSite(url=url.rstrip("/"), store=store), sim_url
        finally:
            worker.stop()
            broker.close()


def _twilio_got(sim_url: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=sim_url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5) as http:
        got: list[dict[str, Any]] = http.get("/_sim/messages").json()
    return got


def test_approve_one_and_edit_another_and_both_reach_the_simulator(site: tuple[ConsoleSite, str], page: Any) -> None:
    console, sim_url = site
    add_user(console.store, "owner@example.com", PASSWORD, now=SystemClock().now())
    first = console.store.messages.get("c1:ct1:0")
    assert first is not None
    page.goto(f"{console.url}/approvals")
    log_in(page, console.url, "owner@example.com", PASSWORD)
    page.wait_for_url(f"{console.url}/approvals")
    assert page.locator("h1").inner_text() == "Messages à valider"
    assert page.locator("tr[data-id]").count() == 2
    time.sleep(1.0)
    assert _twilio_got(sim_url) == []  # nothing goes out before a person approves

    # Approve the first from the list.
    page.locator("tr[data-id='c1:ct1:0'] button", has_text="Valider").click()
    page.wait_for_url(f"{console.url}/approvals?done=approved")
    assert "Message validé" in page.locator("[role=status]").inner_text()
    assert page.locator("tr[data-id]").count() == 1

    # Open the second, try a text the facts check refuses, then a good one, saved and approved.
    page.locator("tr[data-id='c1:ct2:0'] a", has_text="Modifier ou refuser").click()
    page.fill("textarea[name=body]", "Bonjour, merci de régler 990 EUR.")
    page.locator("button", has_text="Enregistrer et valider").click()
    assert "vérification des faits" in page.locator("[role=alert]").inner_text()
    assert page.locator("textarea[name=body]").input_value() == "Bonjour, merci de régler 990 EUR."
    page.fill("textarea[name=body]", EDITED)
    page.locator("button", has_text="Enregistrer et valider").click()
    page.wait_for_url(f"{console.url}/approvals?done=approved")
    assert page.locator("#no-drafts").inner_text().startswith("Aucun message n'attend de validation.")

    _wait(lambda: len(_twilio_got(sim_url)) == 2)
    time.sleep(0.5)
    got = sorted((m["to"], m["body"]) for m in _twilio_got(sim_url))
    assert got == [("whatsapp:+33612345601", first.body), ("whatsapp:+33612345602", EDITED)]
