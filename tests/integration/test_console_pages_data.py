"""The clients, invoices and campaigns pages on the real MongoDB-compatible server, through TestClient:
search and filters, imports that change nothing when a line is bad, mark paid / cancel, pause / resume /
enrol, and what goes out in the next 24 hours; every action audited under the user."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.audit import AuditEntry
from shared.domain.models import Campaign, Contact, EnrolRule, Language, OutboundMessage, SendWindow, Step
from shared.domain.rules import Rules
from shared.domain.states import MessageState
from shared.fakes import RecordingQueue
from shared.usecases.audit import recent
from shared.usecases.campaigns import create_campaign, enrol_campaign
from shared.usecases.invoices import import_invoices
from shared.usecases.upcoming import upcoming_sends
from shared.usecases.users import add_user

pytestmark = pytest.mark.integration
EMAIL, PASSWORD = "owner@example.com", "correct horse battery"
HEADER = "phone,name,language,tags,invoice,amount,currency,due_date"
ROWS = ["+33612345601,Marie Dupont,fr,clients,FA-1,250.00,EUR,2026-02-15",
        "+33612345602,Paul Martin,fr,clients,FA-2,99.90,EUR,2026-03-01",
        "+33612345603,Léa Petit,fr,vip,FA-3,10,EUR,2026-03-02"]


@pytest.fixture
def books(store: MongoRepositories, clock: FakeClock, tmp_path: Path) -> MongoRepositories:
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    assert not import_invoices(store, path, now=clock.now()).errors
    create_campaign(store, Campaign(id="relance", name="Relance", steps=[Step(), Step(delay="3d")],
                                    enrol=EnrolRule(tags=["clients"])), now=clock.now())
    assert enrol_campaign(store, "relance", now=clock.now()).enrolled == 2
    add_user(store, EMAIL, PASSWORD, now=clock.now())
    return store


@pytest.fixture
def web(books: MongoRepositories, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(Console(books, clock, queue=RecordingQueue())), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        token = _csrf(client, "/login")
        answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "next": "/", "csrf_token": token})
        assert answer.status_code == 303, answer.text
        yield client


def _csrf(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path, follow_redirects=True).text)
    assert found
    return found.group(1)


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _audited(store: MongoRepositories) -> list[AuditEntry]:
    """The audit log's entries but the log-ins (newest first)."""
    return [e for e in recent(store) if not e.action.startswith("user.")]


def _rows(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [_text(row).strip() for row in re.findall(r"<tr data-[^>]*>(.*?)</tr>", body, flags=re.S)]


# ------------------------------------------------------------------ clients

def test_clients_are_found_by_name_or_phone_and_filtered_by_status(web: TestClient, books: MongoRepositories,
                                                                   clock: FakeClock) -> None:
    everyone = _rows(web.get("/clients").text, "clients")
    assert [row.split(" +33")[0] for row in everyone] == ["Léa Petit", "Marie Dupont", "Paul Martin"]
    assert len(_rows(web.get("/clients", params={"q": "lea"}).text, "clients")) == 1  # accents and case aside
    assert _rows(web.get("/clients", params={"q": "06 12 34 56 02"}).text, "clients")[0].startswith("Paul Martin")
    running = _rows(web.get("/clients", params={"status": "followups"}).text, "clients")
    assert [row.split(" +33")[0] for row in running] == ["Marie Dupont", "Paul Martin"]
    marie = books.contacts.by_phone("+33612345601")
    assert marie is not None
    books.followups.flag(f"relance:{marie.id}", reason="dispute", now=clock.now())
    assert [row.split(" +33")[0] for row in _rows(web.get("/clients", params={"status": "needs_human"}).text,
                                                   "clients")] == ["Marie Dupont"]
    books.contacts.set_opt_out(marie.id, True, clock.now())
    opted = _rows(web.get("/clients", params={"status": "opted_out"}).text, "clients")
    assert len(opted) == 1 and "désinscrit" in opted[0]
    due = _rows(web.get("/clients", params={"status": "invoices_due", "q": "paul"}).text, "clients")
    assert len(due) == 1 and "1 facture(s)" in due[0] and "99,90" in due[0]
    bad = web.get("/clients", params={"status": "owing"})
    assert bad.status_code == 400 and "Le statut « owing » n'existe pas." in _text(bad.text)
    assert "Aucun client ne correspond" in _text(web.get("/clients", params={"q": "zzz"}).text)
    page = web.get("/clients", params={"q": "paul"}).text
    link = re.search(r'href="(/conversations/[^"]+)"', page)
    assert link and web.get(html.unescape(link.group(1))).status_code == 200  # the client's conversation page


def test_clients_come_in_pages_of_fifty_with_plain_links(web: TestClient, books: MongoRepositories,
                                                          clock: FakeClock) -> None:
    for n in range(52):  # 55 clients: a page of 50, then 5
        books.contacts.upsert(Contact(id=f"ct_zz{n:02d}", phone=f"+336990000{n:02d}", name=f"Zoé {n:02d}"),
                              clock.now())
    first = web.get("/clients")
    rows = _rows(first.text, "clients")
    assert len(rows) == 50 and rows[0].startswith("Léa Petit") and rows[-1].startswith("Zoé 46")
    assert "Page 1 sur 2 (55 clients)" in _text(first.text) and 'rel="prev"' not in first.text
    link = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert link, "no link to the next page"
    second = web.get(html.unescape(link.group(1)))
    assert [row.split(" +33")[0] for row in _rows(second.text, "clients")] == [f"Zoé {n}" for n in range(47, 52)]
    assert 'rel="next"' not in second.text and 'rel="prev"' in second.text
    # The search and the filter travel with the links.
    found = web.get("/clients", params={"q": "zoe", "status": "opted_out"})
    assert "Aucun client ne correspond" in _text(found.text)
    searched = web.get("/clients", params={"q": "zoé", "page": "2"})
    assert len(_rows(searched.text, "clients")) == 2 and "Page 2 sur 2 (52 clients)" in _text(searched.text)
    assert 'href="/clients?q=zo%C3%A9&amp;status=&amp;page=1"' in searched.text
    for bad in ("0", "x", "-1"):
        answer = web.get("/clients", params={"page": bad})
        assert answer.status_code == 400 and "n'existe pas (1, 2, …)" in _text(answer.text), bad
    beyond = web.get("/clients", params={"page": "9"})
    assert beyond.status_code == 200 and "Aucun client ne correspond" in _text(beyond.text)


def test_a_contacts_file_with_a_bad_line_changes_nothing_and_says_which(web: TestClient,
                                                                        books: MongoRepositories) -> None:
    token = _csrf(web, "/clients")
    bad = "name,phone,language\nZoé Blanc,+33612345699,fr\nNoé,12,de\n"
    answer = web.post("/clients/import", data={"csrf_token": token},
                      files={"file": ("nouveaux.csv", bad.encode(), "text/csv")})
    assert answer.status_code == 400
    text = _text(answer.text)
    assert "Rien n'a été importé" in text and "ligne 3 :" in text
    assert "la langue 'de' n'est pas prise en charge" in text and "le téléphone" in text and "not supported" not in text
    assert books.contacts.by_phone("+33612345699") is None
    empty = web.post("/clients/import", data={"csrf_token": token}, files={"file": ("vide.csv", b"", "text/csv")})
    assert empty.status_code == 400 and "vide.csv : le fichier est vide" in _text(empty.text)
    assert "empty" not in _text(empty.text)
    good = "name,phone,language\nZoé Blanc,+33612345699,fr\n"
    done = web.post("/clients/import", data={"csrf_token": token},
                    files={"file": ("nouveaux.csv", good.encode(), "text/csv")})
    assert done.status_code == 200 and "Import terminé : 1 nouveau(x)" in _text(done.text)
    assert books.contacts.by_phone("+33612345699") is not None
    assert [(e.by, e.action) for e in _audited(books)] == [(f"user:{EMAIL}", "contacts.import")]
    refused = web.post("/clients/import", files={"file": ("x.csv", good.encode(), "text/csv")})
    assert refused.status_code == 403  # no CSRF token: nothing read
    unreadable = web.post("/clients/import", data={"csrf_token": token},
                          files={"file": ("x.xlsx", b"PK\x03\x04", "application/octet-stream")})
    assert unreadable.status_code == 400
    assert "x.xlsx : ce type de fichier n'est pas pris en charge" in _text(unreadable.text)


def test_a_file_over_the_limit_gets_a_clear_error_without_being_read(web: TestClient, books: MongoRepositories,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    token = _csrf(web, "/clients")
    rows = "name,phone,language\n" + "".join(f"Client {n},+336{n:08d},fr\n" for n in range(200_000))
    assert len(rows.encode()) > 5 * 1024 * 1024
    read: list[int] = []
    real_form = Request.form

    def form(self: Request, **kwargs: Any) -> Any:
        read.append(1)
        return real_form(self, **kwargs)

    monkeypatch.setattr(Request, "form", form)
    answer = web.post("/clients/import", data={"csrf_token": token},
                      files={"file": ("tous.csv", rows.encode(), "text/csv")})
    assert answer.status_code == 400 and "Ce fichier dépasse 5 Mo" in _text(answer.text)
    assert read == []  # refused by its Content-Length: not spooled to disk first
    assert books.contacts.by_phone("+33600000001") is None and _audited(books) == []


def test_the_pages_ask_for_a_log_in(books: MongoRepositories, clock: FakeClock) -> None:
    with TestClient(create_app(Console(books, clock)), follow_redirects=False) as client:
        for path in ("/clients", "/invoices", "/campaigns"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


# ------------------------------------------------------------------ invoices

def test_invoices_are_filtered_paid_and_cancelled_from_the_page(web: TestClient, books: MongoRepositories) -> None:
    assert [row.split(" ")[0] for row in _rows(web.get("/invoices").text, "invoices")] == ["FA-1", "FA-2", "FA-3"]
    assert [row.split(" ")[0] for row in _rows(web.get("/invoices", params={"q": "marie"}).text, "invoices")] == [
        "FA-1"]
    token = _csrf(web, "/invoices")
    paid = web.post("/invoices/FA-1/paid", data={"csrf_token": token, "amount": "50"})
    assert paid.status_code == 303
    page = web.get(paid.headers["location"]).text
    assert "Paiement enregistré pour FA-1." in _text(page)
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 20000 and invoice.status.value == "partially_paid"
    wrong = web.post("/invoices/FA-1/paid", data={"csrf_token": token, "amount": "beaucoup"})
    assert wrong.status_code == 400 and "'beaucoup' n'est pas un montant" in _text(wrong.text)
    assert web.post("/invoices/FA-2/cancel", data={"csrf_token": token}).status_code == 303
    cancelled = _rows(web.get("/invoices", params={"status": "cancelled"}).text, "invoices")
    assert len(cancelled) == 1 and cancelled[0].startswith("FA-2") and "annulée" in cancelled[0]
    again = web.post("/invoices/FA-2/cancel", data={"csrf_token": token})
    assert again.status_code == 400
    assert "La facture FA-2 est annulée : elle ne peut pas être annulée." in _text(again.text)
    assert web.post("/invoices/FA-3/cancel", data={}).status_code == 403
    assert {(e.by, e.action, e.target) for e in _audited(books)} == {
        (f"user:{EMAIL}", "invoice.paid", "FA-1"), (f"user:{EMAIL}", "invoice.cancel", "FA-2")}


def test_a_part_payment_form_sent_twice_records_one_payment(web: TestClient, books: MongoRepositories) -> None:
    # A double click, or the form sent again from the browser's history: the person paid 50 once.
    page = web.get("/invoices").text
    form_html = re.search(r'<form method="post" action="/invoices/FA-1/paid">(.*?)</form>', page, flags=re.S)
    assert form_html
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form_html.group(1)))
    form["amount"] = "50"
    before = books.invoices.get("FA-1")
    assert before is not None
    first, second = web.post("/invoices/FA-1/paid", data=form), web.post("/invoices/FA-1/paid", data=form)
    assert first.status_code == 303
    assert second.status_code == 400 and "rien n'a été enregistré" in _text(second.text)
    after = books.invoices.get("FA-1")
    assert after is not None and after.amount_due_cents == before.amount_due_cents - 5000
    assert [e.action for e in _audited(books)] == ["invoice.paid"]


def test_an_invoices_file_with_a_bad_line_changes_nothing_then_a_good_one_imports(
        web: TestClient, books: MongoRepositories) -> None:
    token = _csrf(web, "/invoices")
    bad = ("phone,invoice,amount,name,due_date\n+33612345601,FA-10,120,Marie Dupont,2026-04-01\n"
           "+33612345604,FA-11,abc,Hugo Roux,2026-04-01\n+33612345602,FA-2,500,Paul Martin,\n")
    answer = web.post("/invoices/import", data={"csrf_token": token},
                      files={"file": ("factures.csv", bad.encode(), "text/csv")})
    assert answer.status_code == 400
    errors = _text(answer.text.split('id="import-errors"', 1)[1].split("</div>", 1)[0])
    assert "ligne 3 : 'abc' n'est pas un montant" in errors
    assert "ligne 4 : la facture « FA-2 » est enregistrée pour 99.90 EUR" in errors and "ligne 2" not in errors
    assert books.invoices.get("FA-10") is None and books.contacts.by_phone("+33612345604") is None
    good = "phone,invoice,amount,name,due_date\n+33612345601,FA-10,120,Marie Dupont,2026-04-01\n"
    done = web.post("/invoices/import", data={"csrf_token": token},
                    files={"file": ("factures.csv", good.encode(), "text/csv")})
    assert done.status_code == 200 and "Import terminé : 1 nouvelle(s)" in _text(done.text)
    assert [r.split(" ")[0] for r in _rows(done.text, "invoices")] == ["FA-1", "FA-10", "FA-2", "FA-3"]
    assert [(e.action, e.target) for e in _audited(books)] == [("invoices.import", "factures.csv")]


# ------------------------------------------------------------------ campaigns

def test_campaigns_show_progress_and_are_paused_resumed_and_enrolled(web: TestClient,
                                                                     books: MongoRepositories) -> None:
    page = web.get("/campaigns").text
    assert "2 client(s) inscrit(s)" in _text(page) and 'data-state="scheduled"' in page
    token = _csrf(web, "/campaigns")
    paused = web.post("/campaigns/relance/pause", data={"csrf_token": token})
    assert "Campagne relance en pause (2 relance(s) suspendue(s))." in _text(paused.text)
    campaign = books.campaigns.get("relance")
    assert campaign is not None and campaign.status == "paused"
    again = web.post("/campaigns/relance/pause", data={"csrf_token": token})
    assert "Campagne relance : déjà en pause." in _text(again.text)
    resumed = web.post("/campaigns/relance/resume", data={"csrf_token": token})
    assert "Campagne relance reprise (2 relance(s) reprogrammée(s))." in _text(resumed.text)
    enrolled = web.post("/campaigns/relance/enrol", data={"csrf_token": token, "tags": "vip"})
    assert "0 inscrit(s), 0 déjà inscrit(s)" in _text(enrolled.text)  # clients AND vip: nobody
    unknown = web.post("/campaigns/nope/pause", data={"csrf_token": token})
    assert unknown.status_code == 400 and "La campagne « nope » n'existe pas." in _text(unknown.text)
    assert [e.action for e in _audited(books)].count("campaign.pause") == 1


def test_the_next_24_hours_are_planned_in_the_window_and_after_pacing(web: TestClient, books: MongoRepositories,
                                                                      clock: FakeClock) -> None:
    marie = books.contacts.by_phone("+33612345601")
    assert marie is not None
    # Marie had a step sent just now: her next one waits for the 1-hour gap.
    message = OutboundMessage(id="other:x:0", followup_id="other:x", contact_id=marie.id, campaign_id="other",
                              step=0, state=MessageState.READY, kind="freeform", body="…", language=Language.FR)
    assert books.messages.insert(message, clock.now())
    assert books.messages.start_sending(message.id, now=clock.now())
    assert books.messages.mark_sent(message.id, sid="SM" + "1" * 32, now=clock.now())
    planned = upcoming_sends(books, Rules(), now=clock.now())
    assert [(p.name, p.step, p.at - clock.now(), p.moved_by) for p in planned] == [
        ("Paul Martin", 1, timedelta(0), None), ("Marie Dupont", 1, timedelta(hours=1), "pacing")]
    page = web.get("/campaigns").text
    rows = _rows(page, "upcoming")
    assert rows[0].startswith("2 mars 2026 à 11:00") and "Paul Martin" in rows[0]
    assert rows[1].startswith("2 mars 2026 à 12:00") and "décalé par l'espacement" in rows[1]
    assert "Heures prévues, pas promises" in _text(page)
    # Nine hours on, the window (09:00 to 19:00 in Paris) has closed: tomorrow 09:00.
    clock.advance(timedelta(hours=9))
    later = upcoming_sends(books, Rules(), now=clock.now())
    assert {(p.name, p.at.isoformat(), p.moved_by) for p in later} == {
        ("Paul Martin", "2026-03-03T08:00:00+00:00", "window"), ("Marie Dupont", "2026-03-03T08:00:00+00:00", "window")}
    # A paused campaign and an opted-out client plan nothing; a step 3 days away is beyond the horizon.
    books.contacts.set_opt_out(marie.id, True, clock.now())
    assert [p.name for p in upcoming_sends(books, Rules(), now=clock.now())] == ["Paul Martin"]
    create_campaign(books, Campaign(id="later", name="Later", steps=[Step(delay="3d")],
                                    enrol=EnrolRule(tags=["vip"]), send_window=SendWindow()), now=clock.now())
    assert enrol_campaign(books, "later", now=clock.now()).enrolled == 1
    assert [p.campaign_id for p in upcoming_sends(books, Rules(), now=clock.now())] == ["relance"]
    books.campaigns.set_status("relance", "paused", clock.now())
    assert upcoming_sends(books, Rules(), now=clock.now()) == []
