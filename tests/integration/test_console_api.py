"""The console's /api/v1 on the real MongoDB-compatible server, through FastAPI's TestClient: API keys,
problem documents, cursor pages, Idempotency-Key replays, and each endpoint over the use cases."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console import Console, create_app
from services.console.schemas import PaymentIn
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.api_keys import KeptResponse
from shared.domain.models import Campaign, EnrolRule, Step
from shared.fakes import RecordingQueue
from shared.usecases.api_keys import create_key, revoke_key
from shared.usecases.campaigns import create_campaign, enrol_campaign
from shared.usecases.invoices import import_invoices
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
HEADER = "phone,name,language,tags,invoice,amount,currency,due_date"
ROWS = ["+33612345601,Marie Dupont,fr,clients,FA-1,250.00,EUR,2026-02-15",
        "+33612345601,Marie Dupont,fr,clients,FA-2,300,EUR,2026-02-20",
        "+33612345602,Paul Martin,fr,clients,FA-3,99.90,EUR,2026-03-01",
        "+33612345603,Léa Petit,fr,clients,FA-4,10,EUR,2026-03-02",
        "+33612345604,Hugo Roux,fr,clients,FA-5,20,EUR,2026-03-03"]


@pytest.fixture
def books(store: MongoRepositories, clock: FakeClock, tmp_path: Path) -> MongoRepositories:
    """Five invoices of four clients, and a campaign enrolling them."""
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    assert not import_invoices(store, path, now=clock.now()).errors
    create_campaign(store, Campaign(id="relance", name="Relance", steps=[Step()], enrol=EnrolRule(tags=["clients"])),
                    now=clock.now())
    assert enrol_campaign(store, "relance", now=clock.now()).enrolled == 4
    return store


@pytest.fixture
def api(books: MongoRepositories, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(Console(books, clock, queue=RecordingQueue())), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def key(store: MongoRepositories, clock: FakeClock) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(store, 'admin', now=clock.now())}"}


@pytest.fixture
def reader(store: MongoRepositories, clock: FakeClock) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(store, 'viewer', read_only=True, now=clock.now())}"}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    assert "Traceback" not in response.text
    return body


# ------------------------------------------------------------------ keys

def test_nothing_answers_without_a_valid_key(api: TestClient, store: MongoRepositories, clock: FakeClock,
                                             key: dict[str, str]) -> None:
    assert "Bearer <key>" in _problem(api.get("/api/v1/invoices"), 401)["detail"]
    assert api.get("/api/v1/invoices").headers["www-authenticate"].startswith("Bearer")
    assert _problem(api.get("/api/v1/stats", headers={"Authorization": "Bearer rl_made-up"}), 401)["detail"] == (
        "this API key is unknown or revoked")
    assert _problem(api.post("/api/v1/invoices/FA-1/paid"), 401)
    assert _problem(api.get("/api/v1/nothing-here"), 401)  # not even which paths exist
    assert api.get("/api/v1/stats", headers=key).status_code == 200
    revoke_key(store, "admin", now=clock.now())
    assert _problem(api.get("/api/v1/stats", headers=key), 401)
    # Open without a key: the OpenAPI document, the docs page and the health check.
    document = api.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1") and "/api/v1/invoices/{reference}/paid" in document["paths"]
    assert api.get("/api/docs").status_code == 200 and api.get("/healthz").json() == {"status": "ok"}


def test_a_read_only_key_reads_but_may_not_write(api: TestClient, books: MongoRepositories,
                                                 reader: dict[str, str]) -> None:
    assert api.get("/api/v1/invoices/FA-1", headers=reader).json()["status"] == "open"
    assert "read-only" in _problem(api.post("/api/v1/invoices/FA-1/paid", headers=reader), 403)["detail"]
    assert _problem(api.post("/api/v1/campaigns/relance/pause", headers=reader), 403)
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.status.value == "open"
    campaign = books.campaigns.get("relance")
    assert campaign is not None and campaign.status == "active"


def test_a_key_records_its_last_use(api: TestClient, store: MongoRepositories, clock: FakeClock,
                                    key: dict[str, str]) -> None:
    before = store.api_keys.get("admin")
    assert before is not None and before.last_used_at is None and before.key_hash not in key["Authorization"]
    clock.advance(timedelta(minutes=3))
    api.get("/api/v1/stats", headers=key)
    after = store.api_keys.get("admin")
    assert after is not None and after.last_used_at == clock.now()


# ------------------------------------------------------------------ errors, pages

def test_user_mistakes_are_problems_with_the_clis_messages(api: TestClient, key: dict[str, str]) -> None:
    assert _problem(api.get("/api/v1/invoices/FA-404", headers=key), 404)["detail"] == (
        "no invoice 'FA-404' (relance invoices list shows them)")
    assert _problem(api.post("/api/v1/invoices/FA-404/paid", headers=key), 404)
    assert _problem(api.post("/api/v1/campaigns/nope/pause", headers=key), 404)["detail"] == (
        "no campaign 'nope': see `relance campaigns list`")
    assert _problem(api.get("/api/v1/contacts/ct-unknown", headers=key), 404)
    owed = _problem(api.get("/api/v1/invoices?status=owed", headers=key), 400)
    assert "status 'owed' is not one of" in owed["detail"]
    assert "amount" in _problem(api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": "lots"}),
                                400)["detail"]
    problem = _problem(api.get("/api/v1/invoices?limit=0", headers=key), 422)
    assert problem["detail"].startswith("query.limit") and problem["errors"]
    assert _problem(api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": 12}), 422)
    assert _problem(api.get("/api/v1/invoices?cursor=bm9wZQ", headers=key), 400)["detail"].startswith("cursor")
    assert _problem(api.get("/api/v1/unknown", headers=key), 404)


def test_lists_come_in_pages_with_an_opaque_cursor(api: TestClient, key: dict[str, str]) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/api/v1/invoices", headers=key, params=params).json()
        seen += [invoice["reference"] for invoice in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert "FA-" not in cursor
    assert (seen, pages) == (["FA-1", "FA-2", "FA-3", "FA-4", "FA-5"], 3)
    first = api.get("/api/v1/followups", headers=key, params={"limit": 3}).json()
    rest = api.get("/api/v1/followups", headers=key, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 3 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    # A cursor belongs to its list.
    assert _problem(api.get("/api/v1/contacts", headers=key, params={"cursor": first["next_cursor"]}), 400)
    contacts = api.get("/api/v1/contacts", headers=key, params={"limit": 3}).json()
    more = api.get("/api/v1/contacts", headers=key, params={"cursor": contacts["next_cursor"]}).json()
    assert len(contacts["items"]) + len(more["items"]) == 4 and more["next_cursor"] is None


# ------------------------------------------------------------------ idempotency

def test_a_retried_payment_is_recorded_once_and_answered_the_same(api: TestClient, books: MongoRepositories,
                                                                 key: dict[str, str]) -> None:
    headers = {**key, "Idempotency-Key": "pay-FA-1-a"}
    first = api.post("/api/v1/invoices/FA-1/paid", headers=headers, json={"amount": "100"})
    assert first.status_code == 200 and first.json()["amount_due_cents"] == 15000
    again = api.post("/api/v1/invoices/FA-1/paid", headers=headers, json={"amount": "100"})
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 15000
    assert [change.what for change in invoice.history].count("pay_part") == 1
    # The same key for another request is refused, and changes nothing.
    other = api.post("/api/v1/invoices/FA-1/paid", headers=headers, json={"amount": "50"})
    assert "Idempotency-Key 'pay-FA-1-a' was used for another request" in _problem(other, 422)["detail"]
    assert _problem(api.post("/api/v1/invoices/FA-2/paid", headers=headers, json={"amount": "100"}), 422)
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 15000
    # Without the header, each POST is its own request.
    api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": "50"})
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 10000


def test_a_payment_whose_process_died_before_answering_is_not_recorded_again_by_the_retry(
        api: TestClient, books: MongoRepositories, key: dict[str, str], clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The console is killed after the payment is stored and before its answer is kept: the client retries
    # with the same key once the claim is abandoned, and that retry runs the request again.
    headers = {**key, "Idempotency-Key": "pay-FA-1-killed"}

    def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process is killed here")

    with monkeypatch.context() as patched:
        patched.setattr(books.idempotency, "finish", killed)
        assert api.post("/api/v1/invoices/FA-1/paid", headers=headers, json={"amount": "100"}).status_code == 500
    clock.advance(timedelta(minutes=3))
    retried = api.post("/api/v1/invoices/FA-1/paid", headers=headers, json={"amount": "100"})
    assert retried.status_code == 200 and retried.json()["amount_due_cents"] == 15000
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 15000  # paid 100 once
    assert [change.what for change in invoice.history].count("pay_part") == 1


def test_a_hook_whose_process_died_before_answering_is_not_created_again_by_the_retry(
        api: TestClient, books: MongoRepositories, key: dict[str, str], clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Killed after the subscription is stored, before its answer (and secret) is kept: the retry with the same
    # key gets that subscription and its secret, not a second subscription with another secret.
    headers = {**key, "Idempotency-Key": "hook-killed"}
    wanted = {"url": "https://erp.example.com/in", "events": ["invoice.paid"]}

    def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process is killed here")

    with monkeypatch.context() as patched:
        patched.setattr(books.idempotency, "finish", killed)
        assert api.post("/api/v1/hooks", headers=headers, json=wanted).status_code == 500
    clock.advance(timedelta(minutes=3))
    retried = api.post("/api/v1/hooks", headers=headers, json=wanted)
    assert retried.status_code == 201, retried.text
    (stored,) = books.hooks.subscriptions()
    assert (retried.json()["id"], retried.json()["secret"]) == (stored.id, stored.secret)
    another = api.post("/api/v1/hooks", headers={**key, "Idempotency-Key": "hook-another"}, json=wanted)
    assert another.status_code == 201 and another.json()["id"] != stored.id
    assert len(books.hooks.subscriptions()) == 2
    # Removed, then the same request with the same key once its kept answer expired: not brought back.
    assert api.delete(f"/api/v1/hooks/{stored.id}", headers=key).status_code == 204
    books.idempotency.collection.delete_many({})
    again = api.post("/api/v1/hooks", headers=headers, json=wanted)
    assert "new Idempotency-Key" in _problem(again, 409)["detail"]
    assert [sub.id for sub in books.hooks.subscriptions()] == [another.json()["id"]]


def test_a_part_payment_sent_twice_with_the_amount_due_seen_is_recorded_once(
        api: TestClient, books: MongoRepositories, key: dict[str, str]) -> None:
    # No Idempotency-Key: the amount due the caller saw makes the second send a 409 that records nothing.
    seen = api.get("/api/v1/invoices/FA-1", headers=key).json()["amount_due_cents"]
    first = api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": "100", "amount_due_was": seen})
    assert first.status_code == 200 and first.json()["amount_due_cents"] == 15000
    again = api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": "100", "amount_due_was": seen})
    assert "changed since it was shown" in _problem(again, 409)["detail"]
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 15000
    assert [change.what for change in invoice.history].count("pay_part") == 1
    rest = api.post("/api/v1/invoices/FA-1/paid", headers=key, json={"amount": "150", "amount_due_was": 15000})
    assert rest.status_code == 200 and rest.json()["status"] == "paid"


def test_a_refused_post_is_replayed_as_refused(api: TestClient, key: dict[str, str]) -> None:
    headers = {**key, "Idempotency-Key": "cancel-twice"}
    assert api.post("/api/v1/invoices/FA-3/cancel", headers=headers).json()["status"] == "cancelled"
    refused = api.post("/api/v1/invoices/FA-3/cancel", headers={**key, "Idempotency-Key": "cancel-again"})
    assert _problem(refused, 400)["detail"] == "invoice 'FA-3' is cancelled: it cannot be cancelled"
    replay = api.post("/api/v1/invoices/FA-3/cancel", headers={**key, "Idempotency-Key": "cancel-again"})
    assert _problem(replay, 400) == refused.json()


# ------------------------------------------------------------------ endpoints

def test_contacts_and_invoices_read_as_the_cli_lists_them(api: TestClient, books: MongoRepositories,
                                                          key: dict[str, str]) -> None:
    contacts = api.get("/api/v1/contacts", headers=key).json()["items"]
    assert sorted(c["name"] for c in contacts) == ["Hugo Roux", "Léa Petit", "Marie Dupont", "Paul Martin"]
    marie = next(c for c in contacts if c["name"] == "Marie Dupont")
    assert api.get(f"/api/v1/contacts/{marie['id']}", headers=key).json() == marie
    theirs = api.get("/api/v1/invoices", headers=key, params={"phone": "06 12 34 56 01"}).json()["items"]
    assert [(i["reference"], i["amount_cents"], i["contact_id"]) for i in theirs] == [
        ("FA-1", 25000, marie["id"]), ("FA-2", 30000, marie["id"])]
    assert api.get("/api/v1/invoices/FA-3", headers=key).json()["due_date"] == "2026-03-01"
    api.post("/api/v1/invoices/FA-5/paid", headers=key)
    assert [i["reference"] for i in api.get("/api/v1/invoices", headers=key,
                                            params={"status": "paid"}).json()["items"]] == ["FA-5"]
    assert _problem(api.get("/api/v1/invoices", headers=key, params={"phone": "+33699999999"}), 400)


def test_paying_everything_closes_the_invoice(api: TestClient, books: MongoRepositories, key: dict[str, str]) -> None:
    body = api.post("/api/v1/invoices/FA-4/paid", headers=key).json()
    assert (body["status"], body["amount_due_cents"]) == ("paid", 0)
    invoice = books.invoices.get("FA-4")
    assert invoice is not None and invoice.status.value == "paid"


def test_campaigns_pause_and_resume_with_their_follow_ups(api: TestClient, key: dict[str, str]) -> None:
    assert api.get("/api/v1/campaigns", headers=key).json() == {"items": [
        {"id": "relance", "name": "Relance", "status": "active", "steps": 1, "enrolled": 4}], "next_cursor": None}
    paused = api.post("/api/v1/campaigns/relance/pause", headers=key).json()
    assert (paused["status"], paused["changed"], paused["paused"]) == ("paused", True, 4)
    followups = api.get("/api/v1/followups", headers=key, params={"campaign": "relance", "state": "paused"}).json()
    assert len(followups["items"]) == 4 and {f["pause_reason"] for f in followups["items"]} == {"campaign_paused"}
    assert api.get("/api/v1/stats", headers=key).json()["followups"] == {"paused": 4}
    resumed = api.post("/api/v1/campaigns/relance/resume", headers=key).json()
    assert (resumed["status"], resumed["resumed"]) == ("active", 4)
    assert api.get("/api/v1/followups", headers=key, params={"state": "paused"}).json()["items"] == []
    assert _problem(api.get("/api/v1/followups", headers=key, params={"state": "asleep"}), 400)
    assert _problem(api.get("/api/v1/followups", headers=key, params={"campaign": "nope"}), 404)


def test_stats_count_as_relance_status(api: TestClient, key: dict[str, str]) -> None:
    assert api.get("/api/v1/stats", headers=key).json() == {"followups": {"scheduled": 4}, "messages": {}}


# ------------------------------------------------------------------ a real server, retries at once

def test_retries_sent_at_once_to_a_real_server_record_one_payment(books: MongoRepositories, clock: FakeClock,
                                                                  key: dict[str, str]) -> None:
    app = create_app(Console(books, clock, queue=RecordingQueue()))
    headers = {**key, "Idempotency-Key": "burst"}
    with serve_asgi(app) as base, ThreadPoolExecutor(max_workers=8) as pool:
        def post(_: int) -> httpx.Response:
            return httpx.post(f"{base}/api/v1/invoices/FA-2/paid", headers=headers, json={"amount": "10"}, timeout=20)

        answers = list(pool.map(post, range(8)))
        settled = httpx.post(f"{base}/api/v1/invoices/FA-2/paid", headers=headers, json={"amount": "10"}, timeout=20)
    # Each answer is the payment's (first or replayed) or "still running" (409): never a second payment.
    assert {a.status_code for a in answers} <= {200, 409} and 200 in {a.status_code for a in answers}
    assert {a.json()["amount_due_cents"] for a in answers if a.status_code == 200} == {29000}
    assert settled.status_code == 200 and settled.json()["amount_due_cents"] == 29000
    invoice = books.invoices.get("FA-2")
    assert invoice is not None and invoice.amount_due_cents == 29000


def test_a_request_whose_process_died_is_run_by_a_retry_after_a_while(api: TestClient, books: MongoRepositories,
                                                                      clock: FakeClock, key: dict[str, str]) -> None:
    body = PaymentIn(amount="100").model_dump(mode="json")
    claim = KeptResponse(id="admin:died", method_path="POST /api/v1/invoices/FA-1/paid",
                         body_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
                         status=None, body=None)
    assert books.idempotency.begin(claim, clock.now())  # claimed, then the process was killed
    headers = {**key, "Idempotency-Key": "died"}
    assert "still running" in _problem(api.post("/api/v1/invoices/FA-1/paid", headers=headers, json=body),
                                       409)["detail"]
    clock.advance(timedelta(minutes=3))
    assert api.post("/api/v1/invoices/FA-1/paid", headers=headers, json=body).json()["amount_due_cents"] == 15000
    replay = api.post("/api/v1/invoices/FA-1/paid", headers=headers, json=body)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["amount_due_cents"] == 15000
    invoice = books.invoices.get("FA-1")
    assert invoice is not None and invoice.amount_due_cents == 15000


def _console_count(text: str, route: str, status: str) -> float:
    """The request count of ``route`` answered ``status`` in a /metrics exposition."""
    prefix = f'relance_console_request_duration_seconds_count{{method="GET",route="{route}",status="{status}"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def test_metrics_count_each_request_by_route_template_and_ask_for_the_metrics_token(
        books: MongoRepositories, clock: FakeClock, key: dict[str, str]) -> None:
    console = Console(books, clock, queue=RecordingQueue(), metrics_token="s3cret-metrics")
    with TestClient(create_app(console), raise_server_exceptions=False) as client:
        assert client.get("/metrics").status_code == 401
        auth = {"Authorization": "Bearer s3cret-metrics"}
        before = client.get("/metrics", headers=auth).text
        assert client.get("/api/v1/invoices/FA-1", headers=key).status_code == 200
        assert client.get("/api/v1/invoices/FA-404", headers=key).status_code == 404
        after = client.get("/metrics", headers=auth).text
    route = "/api/v1/invoices/{reference}"  # the template: never the raw URL with the reference in it
    assert _console_count(after, route, "200") == _console_count(before, route, "200") + 1
    assert _console_count(after, route, "404") == _console_count(before, route, "404") + 1
    assert "FA-1" not in after and "relance_messages" not in after  # the installation's gauges: the webhook's
