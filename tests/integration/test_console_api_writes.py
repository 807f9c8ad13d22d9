"""The console's /api/v1 writes and the reads added with them, on the real MongoDB-compatible server:
contacts and invoices created and changed as their importers check rows, campaigns from a campaign
file's JSON, enrolment, messages, conversations (a client's timeline) and outbound webhooks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.console.guard import encode_cursor
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.records import InboundRecord
from shared.domain.states import MessageState
from tests.integration import test_console_api as base

pytestmark = pytest.mark.integration
# The fixtures of the reads' tests: four clients, five invoices, a campaign enrolling them, and keys.
books, api, key, reader = base.books, base.api, base.key, base.reader
_problem = base._problem
MARIE = "+33612345601"
CAMPAIGN = {"id": "vip", "name": "VIP", "steps": [{"delay": "2d"}], "enrol": {"tags": ["vip"]}}


def _marie(store: MongoRepositories) -> str:
    contact = store.contacts.by_phone(MARIE)
    assert contact is not None
    return contact.id


# ------------------------------------------------------------------ contacts

def test_a_contact_is_created_as_an_import_row_would_be(api: TestClient, books: MongoRepositories,
                                                        key: dict[str, str]) -> None:
    made = api.post("/api/v1/contacts", headers=key, json={
        "name": "  Zoé   Blanc ", "phone": "06 12 34 56 99", "tags": ["vip", "vip"],
        "fields": {"Due Date": "15/03/2026", "amount": "1 250,50"}})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["name"], body["phone"], body["language"], body["timezone"], body["tags"]) == (
        "Zoé Blanc", "+33612345699", "fr", "Europe/Paris", ["vip"])
    assert body["fields"] == {"due_date": "2026-03-15", "amount": "1250.50", "currency": "EUR"}
    assert api.get(f"/api/v1/contacts/{body['id']}", headers=key).json() == body
    stored = books.contacts.by_phone("+33612345699")
    assert stored is not None and stored.id == body["id"]


def test_a_bad_contact_is_refused_with_the_importers_reasons_and_nothing_stored(
        api: TestClient, books: MongoRepositories, key: dict[str, str], reader: dict[str, str]) -> None:
    bad = _problem(api.post("/api/v1/contacts", headers=key, json={
        "name": "X", "phone": "+33612345698", "language": "de", "timezone": "Mars/Olympus"}), 400)["detail"]
    assert "language 'de' is not supported (use fr or en)" in bad
    assert "timezone 'Mars/Olympus' is not an IANA timezone" in bad
    assert "phone" in _problem(api.post("/api/v1/contacts", headers=key, json={"name": "X", "phone": "12"}),
                               400)["detail"]
    assert "name is empty" in _problem(api.post("/api/v1/contacts", headers=key,
                                                json={"name": " ", "phone": "+33612345698"}), 400)["detail"]
    taken = _problem(api.post("/api/v1/contacts", headers=key, json={"name": "Marie", "phone": "0612345601"}), 409)
    assert f"contact {_marie(books)} has phone" in taken["detail"] and "345601" not in taken["detail"]
    assert _problem(api.post("/api/v1/contacts", headers=key, json={"phone": "+33612345698"}), 422)
    assert _problem(api.post("/api/v1/contacts", headers=key, json={"name": "X", "phone": "+33612345698",
                                                                    "colour": "red"}), 422)
    assert _problem(api.post("/api/v1/contacts", headers=reader, json={"name": "X", "phone": "+33612345698"}), 403)
    assert books.contacts.by_phone("+33612345698") is None and books.contacts.count() == 4


def test_a_retried_contact_creation_creates_one_contact(api: TestClient, books: MongoRepositories,
                                                        key: dict[str, str]) -> None:
    headers = {**key, "Idempotency-Key": "new-zoe"}
    first = api.post("/api/v1/contacts", headers=headers, json={"name": "Zoé", "phone": "+33612345699"})
    again = api.post("/api/v1/contacts", headers=headers, json={"name": "Zoé", "phone": "+33612345699"})
    assert (first.status_code, again.status_code, again.json()) == (201, 201, first.json())
    assert again.headers["idempotent-replayed"] == "true" and books.contacts.count() == 5


def test_a_contact_changes_field_by_field_and_an_opt_out_stops_its_follow_ups(
        api: TestClient, books: MongoRepositories, key: dict[str, str]) -> None:
    marie = _marie(books)
    books.contacts.upsert(books.contacts.get(marie).model_copy(  # type: ignore[union-attr]
        update={"fields": {"invoice_number": "FA-1", "note": "x"}}), books_now(api))
    changed = api.patch(f"/api/v1/contacts/{marie}", headers=key, json={
        "name": "Marie Dupont-Roux", "language": "en", "timezone": "america/new_york",
        "fields": {"note": None, "Client Code": "C42"}})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["language"], body["timezone"], body["phone"], body["tags"]) == (
        "Marie Dupont-Roux", "en", "America/New_York", MARIE, ["clients"])
    assert body["fields"] == {"invoice_number": "FA-1", "client_code": "C42"}
    bad = api.patch(f"/api/v1/contacts/{marie}", headers=key, json={"timezone": "Nowhere", "name": "Other"})
    assert "timezone 'Nowhere'" in _problem(bad, 400)["detail"]
    assert _problem(api.patch(f"/api/v1/contacts/{marie}", headers=key, json={"phone": "+33600000000"}), 422)
    assert _problem(api.patch("/api/v1/contacts/ct_nope", headers=key, json={"name": "X"}), 404)
    stored = books.contacts.get(marie)
    assert stored is not None and stored.name == "Marie Dupont-Roux"
    out = api.patch(f"/api/v1/contacts/{marie}", headers=key, json={"opted_out": True})
    assert out.json()["opted_out"] is True
    followup = books.followups.get(f"relance:{marie}")
    assert followup is not None and (followup.state.value, followup.stop_reason) == ("stopped", "opt_out")
    undo = _problem(api.patch(f"/api/v1/contacts/{marie}", headers=key, json={"opted_out": False}), 400)
    assert "only the client can undo it" in undo["detail"]
    assert books.contacts.get(marie).opted_out  # type: ignore[union-attr]


def books_now(api: TestClient) -> Any:
    return api.app.state.console.clock.now()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ invoices

def test_an_invoice_is_created_as_an_import_row_would_be(api: TestClient, books: MongoRepositories,
                                                         key: dict[str, str]) -> None:
    made = api.post("/api/v1/invoices", headers={**key, "Idempotency-Key": "fa-9"}, json={
        "phone": "06 12 34 56 01", "invoice": " FA-9 ", "amount": "1 250,50 €", "due_date": "31/03/2026"})
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("reference", "contact_id", "amount_cents", "currency", "due_date",
                                        "status")} == {"reference": "FA-9", "contact_id": _marie(books),
                                                       "amount_cents": 125050, "currency": "EUR",
                                                       "due_date": "2026-03-31", "status": "open"}
    replay = api.post("/api/v1/invoices", headers={**key, "Idempotency-Key": "fa-9"}, json={
        "phone": "06 12 34 56 01", "invoice": " FA-9 ", "amount": "1 250,50 €", "due_date": "31/03/2026"})
    assert replay.status_code == 201 and replay.json() == made.json()
    again = api.post("/api/v1/invoices", headers=key, json={"phone": MARIE, "invoice": "FA-9", "amount": "1"})
    assert _problem(again, 409)["detail"].startswith("invoice 'FA-9' exists already")
    # A new client, described by the row.
    new = api.post("/api/v1/invoices", headers=key, json={"phone": "+33612345677", "invoice": "FA-10",
                                                          "amount": "80", "name": "Nina Gros", "tags": ["clients"]})
    assert new.status_code == 201, new.text
    nina = books.contacts.by_phone("+33612345677")
    assert nina is not None and nina.name == "Nina Gros" and new.json()["contact_id"] == nina.id


def test_a_bad_invoice_is_refused_with_the_importers_reasons(api: TestClient, books: MongoRepositories,
                                                             key: dict[str, str]) -> None:
    bad = _problem(api.post("/api/v1/invoices", headers=key, json={
        "phone": MARIE, "invoice": "FA-11", "amount": "lots", "due_date": "tomorrow",
        "payment_link": "ftp://x"}), 400)["detail"]
    assert "amount 'lots' is not an amount" in bad and "due_date 'tomorrow' is not a date" in bad
    assert "payment_link 'ftp://x' is not an http(s) URL" in bad
    unknown = _problem(api.post("/api/v1/invoices", headers=key, json={
        "phone": "+33612345676", "invoice": "FA-12", "amount": "10"}), 400)["detail"]
    assert "no client has phone" in unknown and "name is empty" in unknown
    assert _problem(api.post("/api/v1/invoices", headers=key, json={"phone": MARIE, "invoice": "FA-12",
                                                                    "amount": 10}), 422)
    assert books.invoices.get("FA-11") is None and books.invoices.get("FA-12") is None


def test_an_invoice_changes_and_its_amount_moves_what_is_due(api: TestClient, books: MongoRepositories,
                                                            key: dict[str, str], reader: dict[str, str]) -> None:
    api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": "50"})  # 250 → 200 due
    changed = api.patch("/api/v1/invoices/FA-1", headers=key, json={
        "amount": "300", "due_date": "2026-04-30", "payment_link": "https://pay.example.com/FA-1"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["amount_cents"], body["amount_due_cents"], body["status"], body["due_date"], body["payment_link"]) == (
        30000, 25000, "partially_paid", "2026-04-30", "https://pay.example.com/FA-1")
    cleared = api.patch("/api/v1/invoices/FA-1", headers=key, json={"payment_link": None}).json()
    assert cleared["payment_link"] is None and cleared["due_date"] == "2026-04-30"
    too_low = _problem(api.patch("/api/v1/invoices/FA-1", headers=key, json={"amount": "50"}), 400)["detail"]
    assert "50.00 EUR is paid already" in too_low
    assert "not an amount" in _problem(api.patch("/api/v1/invoices/FA-1", headers=key, json={"amount": "x"}),
                                       400)["detail"]
    assert "not a date" in _problem(api.patch("/api/v1/invoices/FA-1", headers=key, json={"due_date": "32/01/2026"}),
                                    400)["detail"]
    api.post("/api/v1/invoices/FA-3/cancel", headers=key)
    assert "cancelled: its amount cannot change" in _problem(api.patch(
        "/api/v1/invoices/FA-3", headers=key, json={"amount": "1"}), 400)["detail"]
    assert _problem(api.patch("/api/v1/invoices/FA-404", headers=key, json={"amount": "1"}), 404)
    assert _problem(api.patch("/api/v1/invoices/FA-1", headers=reader, json={"amount": "1"}), 403)
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and (invoice.amount_cents, invoice.amount_due_cents) == (30000, 25000)
    assert [change.what for change in invoice.history][-3:] == ["updated", "amount_changed", "updated"]


def test_an_invoice_campaign_made_by_the_api_enrols_the_overdue_and_a_payment_settles(
        api: TestClient, books: MongoRepositories, key: dict[str, str]) -> None:
    """An invoice campaign's follow-up stops once its client owes nothing: the settle an import runs."""
    made = api.post("/api/v1/campaigns", headers=key, json={
        "id": "factures", "name": "Factures", "steps": [{"delay": "1d"}], "enrol": {"invoices": {}}})
    assert made.status_code == 201, made.text
    clock: FakeClock = api.app.state.console.clock  # type: ignore[attr-defined]
    clock.advance(timedelta(days=60))
    enrolled = api.post("/api/v1/campaigns/factures/enrol", headers=key).json()
    assert enrolled["enrolled"] == 4
    paul = books.contacts.by_phone("+33612345602")
    assert paul is not None
    api.post("/api/v1/invoices/FA-3/paid", headers=key)
    followup = books.followups.get(f"factures:{paul.id}")
    assert followup is not None and (followup.state.value, followup.stop_reason) == ("stopped", "paid")


# ------------------------------------------------------------------ campaigns

def test_a_campaign_is_created_from_the_campaign_files_json_and_shows_its_progress(
        api: TestClient, books: MongoRepositories, key: dict[str, str]) -> None:
    made = api.post("/api/v1/campaigns", headers={**key, "Idempotency-Key": "vip"}, json=CAMPAIGN)
    assert made.status_code == 201, made.text
    assert made.json() == {"id": "vip", "name": "VIP", "status": "active", "steps": 1, "about_invoices": False,
                           "enrolled": 0, "by_state": {}, "needs_human": 0}
    assert api.post("/api/v1/campaigns", headers={**key, "Idempotency-Key": "vip"}, json=CAMPAIGN).json() == (
        made.json())
    assert "campaign 'vip' already exists" in _problem(api.post("/api/v1/campaigns", headers=key, json=CAMPAIGN),
                                                       409)["detail"]
    progress = api.get("/api/v1/campaigns/relance", headers=key).json()
    assert (progress["enrolled"], progress["by_state"], progress["needs_human"]) == (4, {"scheduled": 4}, 0)
    assert _problem(api.get("/api/v1/campaigns/nope", headers=key), 404)["detail"] == (
        "no campaign 'nope': see `relance campaigns list`")


def test_a_bad_campaign_gets_the_campaign_files_messages(api: TestClient, books: MongoRepositories,
                                                         key: dict[str, str]) -> None:
    bad = _problem(api.post("/api/v1/campaigns", headers=key, json={
        "id": "x", "name": "X", "steps": [{"delay": "3x"}, {"dealy": "1d"}]}), 400)["detail"]
    assert "campaign: steps[0].delay: invalid duration '3x'" in bad
    assert "campaign: steps[1].dealy: unknown key (did you mean 'delay'?)" in bad
    unfit = _problem(api.post("/api/v1/campaigns", headers=key, json={
        "id": "x", "name": "X", "steps": [{"delay": "1d", "anchor": "due_date"}],
        "enrol": {"tags": ["clients"]}}), 400)["detail"]
    assert "does not fit the contacts it enrols" in unfit and "nothing was created" in unfit
    assert _problem(api.post("/api/v1/campaigns", headers=key, json=[1, 2]), 422)
    assert books.campaigns.get("x") is None


def test_enrol_follows_the_campaigns_rule_plus_tags_and_counts(api: TestClient, books: MongoRepositories,
                                                               key: dict[str, str], reader: dict[str, str]) -> None:
    api.post("/api/v1/contacts", headers=key, json={"name": "Zoé", "phone": "+33612345699", "tags": ["vip", "b"]})
    api.post("/api/v1/contacts", headers=key, json={"name": "Léo", "phone": "+33612345698", "tags": ["vip"]})
    api.post("/api/v1/campaigns", headers=key, json=CAMPAIGN)
    assert _problem(api.post("/api/v1/campaigns/vip/enrol", headers=reader), 403)
    only_b = api.post("/api/v1/campaigns/vip/enrol", headers=key, json={"tags": ["b"]}).json()
    assert only_b == {"campaign_id": "vip", "enrolled": 1, "already_enrolled": 0, "skipped": []}
    everyone = api.post("/api/v1/campaigns/vip/enrol", headers=key).json()
    assert (everyone["enrolled"], everyone["already_enrolled"]) == (1, 1)
    assert api.get("/api/v1/campaigns/vip", headers=key).json()["by_state"] == {"scheduled": 2}
    assert _problem(api.post("/api/v1/campaigns/nope/enrol", headers=key), 404)


# ------------------------------------------------------------------ messages, conversations

def _message(store: MongoRepositories, clock: FakeClock, contact_id: str, step: int, state: MessageState,
             body: str) -> str:
    message = OutboundMessage(id=f"relance:{contact_id}:{step}", followup_id=f"relance:{contact_id}",
                              contact_id=contact_id, campaign_id="relance", step=step, state=MessageState.READY,
                              kind="freeform", body=body, language=Language.FR, to=MARIE)
    assert store.messages.insert(message, clock.now())
    if state != MessageState.READY:
        assert store.messages.start_sending(message.id, now=clock.now())
        assert store.messages.mark_sent(message.id, sid=f"SM{step:032d}", now=clock.now())
    return message.id


def test_messages_list_by_state_campaign_and_contact_with_their_text(
        api: TestClient, books: MongoRepositories, clock: FakeClock, key: dict[str, str]) -> None:
    marie = _marie(books)
    first = _message(books, clock, marie, 0, MessageState.SENT, "Bonjour Marie, la facture FA-1…")
    second = _message(books, clock, marie, 1, MessageState.READY, "Petit rappel")
    paul = books.contacts.by_phone("+33612345602")
    assert paul is not None
    other = _message(books, clock, paul.id, 0, MessageState.READY, "Bonjour Paul")
    listed = api.get("/api/v1/messages", headers=key, params={"limit": 2}).json()
    rest = api.get("/api/v1/messages", headers=key, params={"limit": 2, "cursor": listed["next_cursor"]}).json()
    assert [m["id"] for m in listed["items"] + rest["items"]] == sorted([first, second, other])
    assert rest["next_cursor"] is None
    sent = api.get("/api/v1/messages", headers=key, params={"state": "sent"}).json()["items"]
    assert [(m["id"], m["body"], m["twilio_sid"]) for m in sent] == [(first, "Bonjour Marie, la facture FA-1…",
                                                                       "SM" + "0" * 32)]
    theirs = api.get("/api/v1/messages", headers=key, params={"contact": marie, "campaign": "relance"}).json()
    assert [m["id"] for m in theirs["items"]] == [first, second]
    one = api.get(f"/api/v1/messages/{second}", headers=key).json()
    assert (one["state"], one["step"], one["body"]) == ("ready", 1, "Petit rappel")
    assert "to" not in one and "content_variables" not in one
    assert _problem(api.get("/api/v1/messages/nope", headers=key), 404)
    assert "state 'lost' is not one of" in _problem(api.get("/api/v1/messages", headers=key,
                                                            params={"state": "lost"}), 400)["detail"]
    assert _problem(api.get("/api/v1/messages", headers=key, params={"campaign": "nope"}), 404)
    assert _problem(api.get("/api/v1/messages", headers=key, params={"cursor": "bm9wZQ"}), 400)


def test_conversations_put_hand_overs_first_and_a_timeline_has_everything(
        api: TestClient, books: MongoRepositories, clock: FakeClock, key: dict[str, str]) -> None:
    marie = _marie(books)
    _message(books, clock, marie, 0, MessageState.SENT, "Bonjour Marie")
    clock.advance(timedelta(minutes=5))
    assert books.messages.insert_inbound(InboundRecord(id="in:SM1", twilio_sid="SM1", contact_id=marie,
                                                       sender=MARIE, body="Je conteste"), clock.now())
    books.followups.flag(f"relance:{marie}", reason="dispute", now=clock.now())
    waiting = api.get("/api/v1/conversations", headers=key, params={"needs_human": "true"}).json()["items"]
    assert [(c["contact_id"], c["needs_human"], c["needs_human_reasons"]) for c in waiting] == [
        (marie, True, ["dispute"])]
    everyone = api.get("/api/v1/conversations", headers=key).json()["items"]
    assert len(everyone) == 4 and everyone[0]["contact_id"] == marie  # the newest activity first
    by_phone = api.get("/api/v1/conversations/06 12 34 56 01", headers=key).json()
    by_id = api.get(f"/api/v1/conversations/{marie}", headers=key).json()
    assert by_phone == by_id
    assert by_id["contact"]["name"] == "Marie Dupont" and by_id["phone"] == MARIE
    assert [(m["direction"], m["state"], m["body"]) for m in by_id["messages"]] == [
        ("outbound", "sent", "Bonjour Marie"), ("inbound", "received", "Je conteste")]
    assert [f["needs_human_reason"] for f in by_id["followups"]] == ["dispute"]
    assert [i["reference"] for i in by_id["invoices"]] == ["FA-1", "FA-2"]
    assert _problem(api.get("/api/v1/conversations/+33699999999", headers=key), 404)["detail"].startswith(
        "no contact with phone")
    assert _problem(api.get("/api/v1/conversations/not-a-phone", headers=key), 400)


def _walk(api: TestClient, key: dict[str, str], path: str, limit: int, **params: Any) -> tuple[list[Any], int]:
    """Every item of a paged list, following next_cursor; and how many pages it took."""
    seen: list[Any] = []
    cursor, pages = None, 0
    while True:
        body = api.get(path, headers=key, params={"limit": limit, **params, **({"cursor": cursor} if cursor else {})})
        assert body.status_code == 200, body.text
        seen += body.json()["items"]
        pages += 1
        cursor = body.json()["next_cursor"]
        if cursor is None:
            return seen, pages


def test_conversations_come_in_pages_newest_activity_first(
        api: TestClient, books: MongoRepositories, clock: FakeClock, key: dict[str, str]) -> None:
    marie = _marie(books)
    clock.advance(timedelta(minutes=5))
    # An unknown number wrote: listed among the contacts, by its activity.
    assert books.messages.insert_inbound(InboundRecord(id="in:SM9", twilio_sid="SM9", contact_id=None,
                                                       unknown_sender=True, sender="+33699999999", body="Allô ?"),
                                         clock.now())
    clock.advance(timedelta(minutes=5))
    books.followups.flag(f"relance:{marie}", reason="dispute", now=clock.now())
    whole = api.get("/api/v1/conversations", headers=key).json()
    assert whole["next_cursor"] is None and len(whole["items"]) == 5
    assert whole["items"][0]["contact_id"] == marie and whole["items"][1]["phone"] == "+33699999999"
    for limit in (1, 2, 4):
        seen, pages = _walk(api, key, "/api/v1/conversations", limit)
        assert seen == whole["items"] and pages == -(-5 // limit), limit
    first = api.get("/api/v1/conversations", headers=key, params={"limit": 2}).json()
    assert "+3369" not in first["next_cursor"] and marie not in first["next_cursor"]
    # Marie is active again: she moves to the top, and the next page still lists each one once.
    clock.advance(timedelta(minutes=5))
    books.followups.flag(f"relance:{marie}", reason="dispute again", now=clock.now())
    rest, _ = _walk(api, key, "/api/v1/conversations", 2, cursor=first["next_cursor"])
    assert [row["contact_id"] or row["phone"] for row in rest] == [
        row["contact_id"] or row["phone"] for row in whole["items"][2:]]
    waiting, pages = _walk(api, key, "/api/v1/conversations", 1, needs_human="true")
    assert [row["contact_id"] or row["phone"] for row in waiting] == [marie, "+33699999999"] and pages == 2
    # A cursor of another list, or one made up, is refused.
    contacts = api.get("/api/v1/contacts", headers=key, params={"limit": 1}).json()
    assert _problem(api.get("/api/v1/conversations", headers=key, params={"cursor": contacts["next_cursor"]}), 400)
    assert _problem(api.get("/api/v1/conversations", headers=key,
                            params={"cursor": encode_cursor("conversations", "yesterday|x")}), 400)


# ------------------------------------------------------------------ outbound webhooks

def test_hooks_come_in_pages_oldest_first(api: TestClient, clock: FakeClock, key: dict[str, str]) -> None:
    made = []
    for n in range(5):
        clock.advance(timedelta(seconds=1))
        made.append(api.post("/api/v1/hooks", headers=key, json={"url": f"https://erp{n}.example.com/in",
                                                                 "events": ["invoice.paid"]}).json()["id"])
    seen, pages = _walk(api, key, "/api/v1/hooks", 2)
    assert [hook["id"] for hook in seen] == made and pages == 3
    first = api.get("/api/v1/hooks", headers=key, params={"limit": 2}).json()
    # The subscription the cursor stands after is removed: the next page is the same.
    assert api.delete(f"/api/v1/hooks/{made[1]}", headers=key).status_code == 204
    rest, _ = _walk(api, key, "/api/v1/hooks", 2, cursor=first["next_cursor"])
    assert [hook["id"] for hook in rest] == made[2:]
    assert _problem(api.get("/api/v1/hooks", headers=key, params={"cursor": encode_cursor("hooks", "nope")}), 400)
    assert _problem(api.get("/api/v1/hooks", headers=key, params={"limit": 0}), 422)


def test_hooks_are_added_with_their_secret_once_listed_without_it_and_removed(
        api: TestClient, books: MongoRepositories, key: dict[str, str], reader: dict[str, str]) -> None:
    made = api.post("/api/v1/hooks", headers=key, json={"url": "https://erp.example.com/in",
                                                        "events": ["invoice.paid", "invoice.paid"]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["invoice.paid"]
    listed = api.get("/api/v1/hooks", headers=reader)
    assert [(h["id"], h["url"], h["last_delivery"]) for h in listed.json()["items"]] == [
        (body["id"], "https://erp.example.com/in", None)]
    assert "whsec_" not in listed.text
    api.post("/api/v1/invoices/FA-5/paid", headers=key)  # an invoice.paid event, one delivery waiting
    (hook,) = api.get("/api/v1/hooks", headers=key).json()["items"]
    assert hook["last_delivery"]["state"] == "pending" and hook["last_delivery"]["event_id"] == "invoice.paid:FA-5:1"
    assert "plain http" in _problem(api.post("/api/v1/hooks", headers=key, json={
        "url": "http://erp.example.com/in", "events": ["invoice.paid"]}), 400)["detail"]
    assert "unknown event 'invoice.payed'" in _problem(api.post("/api/v1/hooks", headers=key, json={
        "url": "https://erp.example.com/in", "events": ["invoice.payed"]}), 400)["detail"]
    assert _problem(api.post("/api/v1/hooks", headers=key, json={"url": "http://[", "events": ["invoice.paid"]}),
                    400)
    assert _problem(api.delete(f"/api/v1/hooks/{body['id']}", headers=reader), 403)
    assert api.delete(f"/api/v1/hooks/{body['id']}", headers=key).status_code == 204
    assert api.get("/api/v1/hooks", headers=key).json() == {"items": [], "next_cursor": None}
    assert _problem(api.delete(f"/api/v1/hooks/{body['id']}", headers=key), 404)["detail"].startswith(
        f"no webhook subscription '{body['id']}'")


def test_every_write_refuses_a_read_only_key_and_changes_nothing(api: TestClient, books: MongoRepositories,
                                                                 reader: dict[str, str]) -> None:
    document = api.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    writes = [(method, path) for path, item in document["paths"].items() for method in item
              if method in ("post", "patch", "put", "delete")]
    assert len(writes) >= 12
    for method, path in writes:
        url = path.replace("{reference}", "FA-1").replace("{campaign_id}", "relance").replace(
            "{contact_id}", _marie(books)).replace("{hook_id}", "wh_x")
        answer = api.request(method.upper(), url, headers=reader, json={})
        assert "read-only" in _problem(answer, 403)["detail"], (method, path)
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.status.value == "open" and books.contacts.count() == 4


def test_each_write_is_in_the_audit_log_under_its_key(api: TestClient, books: MongoRepositories,
                                                      key: dict[str, str]) -> None:
    from shared.usecases.audit import recent

    made = api.post("/api/v1/contacts", headers=key, json={"name": "Zoé", "phone": "+33612345699"}).json()
    api.patch(f"/api/v1/contacts/{made['id']}", headers=key, json={"name": "Zoé Blanc"})
    api.post("/api/v1/invoices", headers=key, json={"phone": "+33612345699", "invoice": "FA-20", "amount": "12"})
    api.patch("/api/v1/invoices/FA-20", headers=key, json={"due_date": "2026-05-01"})
    api.post("/api/v1/invoices/FA-20/paid", headers=key, json={"amount": "2"})
    api.post("/api/v1/invoices/FA-20/cancel", headers=key)
    api.post("/api/v1/campaigns", headers=key, json=CAMPAIGN)
    api.post("/api/v1/campaigns/vip/enrol", headers=key)
    api.post("/api/v1/campaigns/vip/pause", headers=key)
    api.post("/api/v1/campaigns/vip/resume", headers=key)
    hook = api.post("/api/v1/hooks", headers=key, json={"url": "https://erp.example.com/in",
                                                        "events": ["invoice.paid"]}).json()
    api.delete(f"/api/v1/hooks/{hook['id']}", headers=key)
    entries = recent(books, limit=50)  # one instant (the clock stands still): compared in any order
    assert sorted((e.by, e.action, e.target) for e in entries) == sorted([
        ("key:admin", "contact.create", made["id"]), ("key:admin", "contact.update", made["id"]),
        ("key:admin", "invoice.create", "FA-20"), ("key:admin", "invoice.update", "FA-20"),
        ("key:admin", "invoice.paid", "FA-20"), ("key:admin", "invoice.cancel", "FA-20"),
        ("key:admin", "campaign.create", "vip"), ("key:admin", "campaign.enrol", "vip"),
        ("key:admin", "campaign.pause", "vip"), ("key:admin", "campaign.resume", "vip"),
        ("key:admin", "hook.add", hook["id"]), ("key:admin", "hook.remove", hook["id"])])
    details = {e.action: (e.detail, e.contact_id) for e in entries}
    assert details["invoice.paid"] == ("amount 2", made["id"]) and details["contact.create"][1] == made["id"]
