"""The approvals pages on the real MongoDB-compatible server, through TestClient: the list, one draft's
page, approve, edit (the facts check's refusal on the form), reject with a reason, bulk, CSRF, FR/EN."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time, timedelta

import pytest
from fastapi.testclient import TestClient

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.fakes import FakeSender, RecordingQueue
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from shared.usecases.users import add_user
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration
EMAIL, PASSWORD = "owner@example.com", "correct horse battery"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
FACTS = {"invoice_number": "FA-2026-001", "amount": "120.00", "currency": "EUR"}


@dataclass
class Site:
    client: TestClient
    store: MongoRepositories
    queue: RecordingQueue

    def csrf(self, path: str) -> str:
        page = self.client.get(path, follow_redirects=True)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    def state(self, message_id: str) -> str:
        message = self.store.messages.get(message_id)
        assert message is not None
        return message.state.value


@pytest.fixture
def site(store: MongoRepositories, clock: FakeClock) -> Iterator[Site]:
    """Three clients' step 0 waiting for approval; a user logged in (French)."""
    rules = load_settings({}).rules()
    queue = RecordingQueue()
    app = App.build(rules, store=store, clock=clock, queue=queue, drafter=EchoDrafter(), sender=FakeSender(clock=clock))
    now = clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, approval="required",
                                    steps=[Step(), Step(delay="2d", anchor="previous")]), now)
    for n in (1, 2, 3):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234560{n}", name=f"Client {n}", language=Language.FR,
                                      fields=FACTS), now)
        store.contacts.touch_inbound(f"ct{n}", now - timedelta(hours=1))
        store.followups.enrol(contact_id=f"ct{n}", campaign_id="c1", next_run_at=now, now=now)
    tick(store, queue, clock)
    drain(app)
    assert queue.sends == []
    add_user(store, EMAIL, PASSWORD, now=now)
    with TestClient(create_app(Console(store, clock, queue=queue, rules=rules)), raise_server_exceptions=False,
                    follow_redirects=False, headers={"Accept-Language": "fr-FR"}) as client:
        s = Site(client, store, queue)
        answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "next": "/approvals",
                                             "csrf_token": s.csrf("/login")})
        assert answer.status_code == 303
        yield s


def test_the_list_shows_who_what_and_since_when(site: Site) -> None:
    page = site.client.get("/approvals")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "<h1>Messages à valider</h1>" in text and text.count('name="ids"') == 3
    assert "Client 1" in text and "Relance" in text and "1 sur 2" in text and "texte libre" in text
    assert "2 mars 2026 à 10:00" in text  # waiting since (the clock's drafting time, UTC)
    english = site.client.get("/approvals", headers={"Accept-Language": "en-GB"})
    assert "<h1>Drafts to approve</h1>" in english.text and "1 of 2" in english.text


def test_approve_from_the_list_then_the_draft_is_sent_and_gone(site: Site) -> None:
    token = site.csrf("/approvals")
    answer = site.client.post("/approvals/c1%3Act1%3A0/approve", data={"csrf_token": token, "one": "c1:ct1:0"})
    assert answer.status_code == 303 and answer.headers["location"] == "/approvals?done=approved"
    assert site.state("c1:ct1:0") == "ready" and [m for m, _ in site.queue.sends] == ["c1:ct1:0"]
    assert site.store.messages.get("c1:ct1:0").approved_by == f"user:{EMAIL}"  # type: ignore[union-attr]
    page = site.client.get(answer.headers["location"])
    assert "Message validé" in page.text and page.text.count('name="ids"') == 2
    again = site.client.post("/approvals/c1%3Act1%3A0/approve", data={"csrf_token": token})
    assert again.status_code == 409 and "attend plus de validation" in html.unescape(again.text)


def test_an_edit_refused_by_the_facts_check_shows_the_form_again_and_changes_nothing(site: Site) -> None:
    before = site.store.messages.get("c1:ct1:0")
    assert before is not None
    token = site.csrf("/approvals/c1%3Act1%3A0")
    bad = "Bonjour, merci de régler 990 EUR."
    answer = site.client.post("/approvals/c1%3Act1%3A0/edit", data={"csrf_token": token, "body": bad, "then": "save"})
    assert answer.status_code == 400
    text = html.unescape(answer.text)
    assert "Le texte ne passe pas la vérification des faits" in text and "990" in text
    assert f">{bad}</textarea>" in text  # the text typed is kept on the form
    assert site.store.messages.get("c1:ct1:0").body == before.body  # type: ignore[union-attr]
    good = "Bonjour Client 1, la facture FA-2026-001 de 120,00 EUR reste à régler."
    saved = site.client.post("/approvals/c1%3Act1%3A0/edit", data={"csrf_token": token, "body": good, "then": "save"})
    assert saved.status_code == 303 and site.state("c1:ct1:0") == "awaiting_approval"
    assert "Texte enregistré" in html.unescape(site.client.get(saved.headers["location"]).text)
    approved = site.client.post("/approvals/c1%3Act1%3A0/edit",
                                data={"csrf_token": token, "body": good, "then": "approve"})
    assert approved.status_code == 303 and site.state("c1:ct1:0") == "ready"
    assert site.store.messages.get("c1:ct1:0").body == good  # type: ignore[union-attr]


def test_reject_needs_a_reason_and_then_moves_the_followup_on(site: Site) -> None:
    token = site.csrf("/approvals/c1%3Act2%3A0")
    missing = site.client.post("/approvals/c1%3Act2%3A0/reject", data={"csrf_token": token, "reason": " "})
    assert missing.status_code == 400 and "Indiquez un motif pour refuser." in html.unescape(missing.text)
    assert site.state("c1:ct2:0") == "awaiting_approval"
    answer = site.client.post("/approvals/c1%3Act2%3A0/reject", data={"csrf_token": token, "reason": "doublon"})
    assert answer.status_code == 303 and site.state("c1:ct2:0") == "cancelled"
    message = site.store.messages.get("c1:ct2:0")
    assert message is not None and (message.rejected_by, message.rejection_reason) == (f"user:{EMAIL}", "doublon")
    followup = site.store.followups.get("c1:ct2")
    assert followup is not None and (followup.state.value, followup.step) == ("scheduled", 1)
    page = html.unescape(site.client.get("/approvals/c1%3Act2%3A0").text)
    assert "n'attend plus de validation (état : annulé)" in page and 'name="reason"' not in page
    entries = site.store.audit.for_contact("ct2", 5)
    assert [(e.by, e.action) for e in entries] == [(f"user:{EMAIL}", "approval.reject")]


def test_bulk_approves_or_rejects_the_ticked_drafts(site: Site) -> None:
    token = site.csrf("/approvals")
    none = site.client.post("/approvals/bulk", data={"csrf_token": token, "action": "approve"})
    assert none.status_code == 400 and "Cochez au moins un message." in html.unescape(none.text)
    no_reason = site.client.post("/approvals/bulk", data={"csrf_token": token, "action": "reject",
                                                          "ids": ["c1:ct1:0"]})
    assert no_reason.status_code == 400 and site.state("c1:ct1:0") == "awaiting_approval"
    rejected = site.client.post("/approvals/bulk", data={"csrf_token": token, "action": "reject", "reason": "non",
                                                         "ids": ["c1:ct1:0"]})
    assert rejected.status_code == 200 and 'data-outcome="done"' in rejected.text
    approved = site.client.post("/approvals/bulk", data={"csrf_token": token, "action": "approve",
                                                         "ids": ["c1:ct1:0", "c1:ct2:0", "c1:ct3:0"]})
    text = html.unescape(approved.text)
    assert re.findall(r'data-id="([^"]+)" data-outcome="([^"]+)"', text) == [
        ("c1:ct1:0", "not_waiting"), ("c1:ct2:0", "done"), ("c1:ct3:0", "done")]
    assert "Aucun message n'attend de validation." in text
    assert [site.state(m) for m in ("c1:ct1:0", "c1:ct2:0", "c1:ct3:0")] == ["cancelled", "ready", "ready"]


def test_a_form_without_its_csrf_token_changes_nothing(site: Site) -> None:
    for path, data in (("/approvals/c1%3Act1%3A0/approve", {}), ("/approvals/bulk", {"action": "approve",
                                                                                      "ids": ["c1:ct1:0"]}),
                       ("/approvals/c1%3Act1%3A0/reject", {"reason": "x", "csrf_token": "forged"})):
        assert site.client.post(path, data=data).status_code == 403
    assert site.state("c1:ct1:0") == "awaiting_approval" and site.queue.sends == []
    site.client.cookies.clear()
    assert site.client.get("/approvals").status_code == 303  # logged out: to the log-in page
