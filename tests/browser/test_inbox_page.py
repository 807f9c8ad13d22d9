"""In chromium: the inbox lists a client waiting for a person; on her conversation page a person closes the
hand-over (resuming her follow-ups), is refused a reply the facts check catches (the error on the form, the
text kept), then replies by hand, and the reply reaches the Twilio simulator; the audit log shows both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dramatiq
import httpx
import pytest

from services.bootstrap import register_actors
from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import SystemClock
from shared.domain.models import Campaign, Contact, Language, Step
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from tests.browser.conftest import ConsoleSite, log_in
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi, simulator_serving

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "browser-inbox-token"
SENDER = "whatsapp:+14155238886"
MARIE = "+33612345678"


@pytest.fixture
def sim_url() -> Iterator[str]:
    with simulator_serving(ACCOUNT_SID, AUTH_TOKEN) as url:
        yield url


@pytest.fixture
def console(store: MongoRepositories, redis_url: str, sim_url: str) -> Iterator[ConsoleSite]:
    """The console with a queue to real sending workers, which send to the simulator."""
    rules = replace(load_settings({"PUBLIC_BASE_URL": "http://127.0.0.1:9", "TWILIO_WHATSAPP_NUMBER": SENDER,
                                   "HOLIDAYS_COUNTRY": ""}).rules(), business_name="Atelier Dupont")
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url,
                          timeout=5)
    register_actors(broker, App.build(rules, store=store, clock=SystemClock(), queue=queue, drafter=EchoDrafter(),
                                      sender=sender))
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    with serve_asgi(create_app(Console(store, SystemClock(), queue=queue, rules=rules))) as url:
        yield ConsoleSite(url=url.rstrip("/"), store=store)
    worker.stop()
    broker.close()


def _plant(store: MongoRepositories) -> None:
    """Marie wrote an hour ago and disputes her invoice: her follow-up paused and flagged for a person."""
    now = SystemClock().now()
    store.contacts.upsert(Contact(id="ct1", phone=MARIE, name="Marie Dupont", language=Language.FR,
                                  fields={"invoice_number": "FA-1"}), now)
    store.contacts.touch_inbound("ct1", now)
    store.campaigns.create(Campaign(id="relance", name="Relance", steps=[Step(delay="2d")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="relance", next_run_at=now, now=now)
    from shared.domain.reasons import PauseReason
    from shared.usecases.cadence import pause_contact

    pause_contact(store, "ct1", until=None, reason=PauseReason.NEEDS_HUMAN, now=now, needs_human=True,
                  detail="dispute: the client disputes the invoice")
    store.followups.flag_contact("ct1", reason="dispute: the client disputes the invoice", now=now)


def _at_simulator(sim_url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim_url}/_sim/messages", params={"to": MARIE}, timeout=5).json())


def test_close_the_hand_over_and_reply_by_hand(console: ConsoleSite, page: Any, sim_url: str) -> None:
    _plant(console.store)
    email, password = console.user()
    page.goto(f"{console.url}/inbox")
    log_in(page, console.url, email, password)
    page.wait_for_url(f"{console.url}/inbox")
    waiting = page.locator("#waiting tr[data-phone]")
    assert waiting.count() == 1
    assert "dispute: the client disputes the invoice" in waiting.first.inner_text()
    waiting.first.locator("a").click()
    page.wait_for_url("**/conversations/%2B33612345678")
    assert page.locator("h1").inner_text() == "Conversation avec Marie Dupont"
    assert "dispute" in page.locator("#handover #waiting").inner_text()

    page.click("text=Clore et reprendre les relances")
    page.wait_for_url("**/conversations/%2B33612345678?done=handover.resume")
    assert page.locator("#done").inner_text() == "Intervention close, relances reprises."
    assert page.locator("#handover #waiting").inner_text() == "Aucune intervention en attente."
    assert page.locator("#audit tr[data-action='handover.resume'] td.by").inner_text() == f"user:{email}"
    page.goto(f"{console.url}/inbox")
    assert page.locator("#waiting tr[data-phone]").count() == 0
    page.go_back()

    page.fill("#body", "Vous nous devez 990 € d'ici demain.")
    page.click("text=Envoyer")
    assert "vérification des faits" in page.locator("#reply-error").inner_text()
    assert page.locator("#body").input_value() == "Vous nous devez 990 € d'ici demain."
    assert _at_simulator(sim_url) == []

    text = "Bonjour Marie, nous regardons votre facture FA-1 et revenons vers vous aujourd'hui."
    page.fill("#body", text)
    page.click("text=Envoyer")
    page.wait_for_url("**/conversations/%2B33612345678?done=reply*")
    assert page.locator("#done").inner_text() == "Message enregistré : il part dans un instant."
    deadline = time.monotonic() + 20
    while not _at_simulator(sim_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    (sent,) = _at_simulator(sim_url)
    assert sent["body"] == text
    page.reload()
    outbound = page.locator("#timeline li.outbound[data-purpose=manual]")
    assert outbound.count() == 1 and text in outbound.inner_text()
    assert page.locator("#audit tr[data-action='reply.manual'] td.by").inner_text() == f"user:{email}"
    time.sleep(1.0)
    assert len(_at_simulator(sim_url)) == 1
