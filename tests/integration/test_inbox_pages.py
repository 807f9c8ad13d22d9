"""The inbox and conversation pages on the real MongoDB-compatible server (FastAPI's TestClient, a logged-in
user): what waits first, the forms' refusals on the page, the CSRF check, one message per submitted form,
the audit entries as ``user:<email>``, French and English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, Step
from shared.domain.rules import Rules
from shared.domain.states import MessageState
from shared.fakes import RecordingQueue
from shared.usecases import audit
from shared.usecases.users import add_user

pytestmark = pytest.mark.integration
MARIE, PAUL, STRANGER = "+33612345678", "+33612345679", "+33699999999"
MARIE_PAGE = "/conversations/%2B33612345678"
EMAIL = "owner@example.com"


def _token(html: str, name: str = "csrf_token") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def web(store: MongoRepositories, clock: FakeClock, queue: RecordingQueue) -> Iterator[TestClient]:
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=MARIE, name="Marie", language=Language.FR,
                                  fields={"invoice_number": "FA-1"}), now)
    store.contacts.touch_inbound("ct1", now - timedelta(hours=1))
    store.contacts.upsert(Contact(id="ct2", phone=PAUL, name="Paul", language=Language.FR), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", steps=[Step(delay="2d")]), now)
    for contact_id in ("ct1", "ct2"):
        store.followups.enrol(contact_id=contact_id, campaign_id="c1", next_run_at=now + timedelta(days=2), now=now)
    store.followups.flag_contact("ct1", reason="dispute: the client disputes the invoice", now=now)
    add_user(store, EMAIL, "correct horse battery", now=now)
    app = create_app(Console(store, clock, queue=queue, rules=replace(Rules(), business_name="Atelier Dupont")))
    with TestClient(app, follow_redirects=False) as client:
        assert client.post("/login", data={"email": EMAIL, "password": "correct horse battery",
                                           "csrf_token": _token(client.get("/login").text)}).status_code == 303
        yield client


def test_the_inbox_lists_who_waits_first_then_the_recent_ones(web: TestClient) -> None:
    html = web.get("/inbox").text
    waiting = html[html.index('id="waiting"'):html.index('id="recent"')]
    assert MARIE in waiting and "dispute: the client disputes the invoice" in waiting and PAUL not in waiting
    assert PAUL in html[html.index('id="recent"'):]
    english = web.get("/inbox", headers={"Accept-Language": "en"}).text
    assert "Waiting for a person" in english and "Recent conversations" in english


def test_a_page_without_a_session_sends_to_the_log_in(store: MongoRepositories, clock: FakeClock) -> None:
    with TestClient(create_app(Console(store, clock)), follow_redirects=False) as anonymous:
        assert anonymous.get(MARIE_PAGE).headers["location"].startswith("/login?next=")


def test_unknown_and_malformed_numbers_get_a_clear_page(web: TestClient) -> None:
    assert web.get("/conversations/%2B33611111111").status_code == 404
    bad = web.get("/conversations/not-a-number")
    assert bad.status_code == 404 and "pas valide" in bad.text


def test_a_reply_form_sent_twice_is_one_message_audited_as_the_user(web: TestClient, store: MongoRepositories,
                                                                    queue: RecordingQueue) -> None:
    page = web.get(MARIE_PAGE).text
    form = {"csrf_token": _token(page), "form_token": _token(page, "form_token"), "body": "Bien reçu Marie."}
    first, second = web.post(f"{MARIE_PAGE}/reply", data=form), web.post(f"{MARIE_PAGE}/reply", data=form)
    assert (first.status_code, second.status_code) == (303, 303)
    assert "done=reply" in first.headers["location"] and "done=duplicate" in second.headers["location"]
    assert store.messages.count(purpose="manual") == 1
    (entry,) = [e for e in audit.for_contact(store, "ct1") if e.action == "reply.manual"]
    assert entry.by == f"user:{EMAIL}"
    message = store.messages.get(entry.target or "")
    assert message is not None and message.state == MessageState.READY and message.written_by == f"user:{EMAIL}"
    assert [sent[0] for sent in queue.sends] == [message.id, message.id]  # asked twice, sent once (ready → sending)


def test_the_same_form_sent_again_with_another_text_is_not_dropped_as_a_duplicate(
        web: TestClient, store: MongoRepositories) -> None:
    # The browser's Back button brings the form back with its one-time token: the person changes the text
    # and sends it. That is another message, not a retry of the first: it must not be dropped as "duplicate".
    page = web.get(MARIE_PAGE).text
    form = {"csrf_token": _token(page), "form_token": _token(page, "form_token"), "body": "Bien reçu Marie."}
    assert "done=reply" in web.post(f"{MARIE_PAGE}/reply", data=form).headers["location"]
    again = web.post(f"{MARIE_PAGE}/reply", data={**form, "body": "Merci Marie, nous regardons la facture FA-1."})
    assert "done=reply" in again.headers["location"]
    stored = [store.messages.get(e.target or "") for e in audit.for_contact(store, "ct1") if e.action == "reply.manual"]
    bodies = sorted(m.body for m in stored if m is not None)
    assert bodies == ["Bien reçu Marie.", "Merci Marie, nous regardons la facture FA-1."]


def test_refusals_show_on_the_form_with_the_text_kept(web: TestClient, store: MongoRepositories) -> None:
    page = web.get(MARIE_PAGE).text
    refused = web.post(f"{MARIE_PAGE}/reply", data={"csrf_token": _token(page), "form_token": "t1",
                                                    "body": "Remise de 20 % si vous payez demain."})
    assert refused.status_code == 422 and "vérification des faits" in refused.text
    # The facts check's problems in the page's language, not the API's English.
    assert "propose une remise" in refused.text and "not in contact data" not in refused.text
    assert "offers a discount" not in refused.text
    assert "Remise de 20 % si vous payez demain.</textarea>" in refused.text
    paul = web.get("/conversations/%2B33612345679").text
    outside = web.post("/conversations/%2B33612345679/reply", data={"csrf_token": _token(paul), "body": "Bonjour"})
    assert outside.status_code == 409 and "MANUAL_REPLY_TEMPLATE_SID" in outside.text
    assert store.messages.count(purpose="manual") == 0
    assert audit.for_contact(store, "ct1") == [] and audit.for_contact(store, "ct2") == []


def test_a_form_without_its_csrf_token_changes_nothing(web: TestClient, store: MongoRepositories) -> None:
    assert web.post(f"{MARIE_PAGE}/handover", data={"action": "stop"}).status_code == 403
    assert web.post(f"{MARIE_PAGE}/reply", data={"body": "Bonjour"}).status_code == 403
    followup = store.followups.get("c1:ct1")
    assert followup is not None and followup.needs_human
    assert store.messages.count() == 0 and audit.for_contact(store, "ct1") == []


def test_stop_from_the_page_stops_the_follow_ups_and_is_audited(web: TestClient, store: MongoRepositories) -> None:
    page = web.get(MARIE_PAGE).text
    done = web.post(f"{MARIE_PAGE}/handover", data={"csrf_token": _token(page), "action": "stop"})
    assert done.status_code == 303 and done.headers["location"] == f"{MARIE_PAGE}?done=handover.stop"
    followup = store.followups.get("c1:ct1")
    assert followup is not None and followup.state.value == "stopped" and not followup.needs_human
    after = web.get(done.headers["location"]).text
    assert "Intervention close, relances arrêtées." in after and f"user:{EMAIL}" in after
    bogus = web.post(f"{MARIE_PAGE}/handover", data={"csrf_token": _token(page), "action": "explode"})
    assert bogus.status_code == 400 and 'role="alert"' in bogus.text


def test_a_number_that_is_no_contact_can_only_be_closed(web: TestClient, store: MongoRepositories,
                                                        clock: FakeClock, queue: RecordingQueue) -> None:
    from shared.fakes import FakeSender
    from shared.language.drafts import OfflineDrafter
    from shared.usecases.context import App
    from shared.usecases.replies import process_inbound

    app = App.build(Rules(), store=store, clock=clock, queue=queue, drafter=OfflineDrafter(), sender=FakeSender())
    event = {"kind": "inbound", "sid": "SM" + "4" * 32, "state": "received", "from": f"whatsapp:{STRANGER}",
             "body": "Bonjour, qui êtes-vous ?", "num_media": 0}
    store.events.record("inbound:stranger", event, clock.now())
    process_inbound(app, "inbound:stranger")
    assert STRANGER in web.get("/inbox").text.split('id="recent"')[0]
    page = web.get("/conversations/%2B33699999999").text
    assert "Bonjour, qui êtes-vous ?" in page and 'value="resume"' not in page and 'name="body"' not in page
    closed = web.post("/conversations/%2B33699999999/handover", data={"csrf_token": _token(page), "action": "close"})
    assert closed.status_code == 303
    assert STRANGER not in web.get("/inbox").text.split('id="recent"')[0]
    refused = web.post("/conversations/%2B33699999999/handover", data={"csrf_token": _token(page), "action": "stop"})
    assert refused.status_code == 400 and "Ce numéro n&#39;est pas un client" in refused.text
