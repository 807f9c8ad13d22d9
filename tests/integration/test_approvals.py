"""Approvals end to end on the real servers: the scheduler, the real dramatiq actors on Redis, MongoDB,
the Twilio simulator over HTTP, and the console's /api/v1/approvals.

The guarantees, checked on the simulator's side (what Twilio got): a draft nobody approved never
reaches it, whatever the sweeps do; an approved one reaches it exactly once, even approved twice at
the same moment; a rejected one never; a freeform draft whose 24-hour window closed while it waited
is redrafted and sent as the template.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import time as dtime
from datetime import timedelta
from typing import Any

import dramatiq
import httpx
import pytest
from fastapi.testclient import TestClient

from devtools.simulator import create_app as create_simulator
from services.bootstrap import register_actors
from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import (
    Campaign,
    Contact,
    EnrolRule,
    Language,
    OutboundMessage,
    SendWindow,
    Step,
    TemplateRef,
)
from shared.domain.states import MessageState
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from shared.usecases.api_keys import create_key
from shared.usecases.approvals import list_waiting
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi, wait_for

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "approvals-test-token"
SENDER = "whatsapp:+14155238886"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0), end=dtime(23, 59))
TEMPLATE = TemplateRef(content_sid="HX" + "ef" * 16, variables={"1": "name", "2": "invoice_number"},
                       preview={Language.FR: "Bonjour {{1}}, la facture {{2}} reste à régler."})
STALE = timedelta(minutes=5)
FACTS = {"invoice_number": "FA-2026-001", "amount": "120.00", "currency": "EUR"}


@dataclass
class World:
    """The store, the clock, the real workers' queue, the console's client and the simulator's URL."""

    store: MongoRepositories
    clock: FakeClock
    queue: DramatiqQueue
    api: TestClient
    sim_url: str
    admin: dict[str, str]
    other: dict[str, str]
    viewer: dict[str, str]

    def sweep(self, after: timedelta = timedelta(seconds=0)) -> None:
        """Time passes and the scheduler runs a whole tick (claims and every reconciling sweep)."""
        self.clock.advance(after)
        tick(self.store, self.queue, self.clock, stale_after=STALE)

    def twilio_got(self) -> list[dict[str, Any]]:
        """Every message the Twilio simulator received."""
        with httpx.Client(base_url=self.sim_url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5) as http:
            messages: list[dict[str, Any]] = http.get("/_sim/messages").json()
        return messages

    def state(self, message_id: str) -> str | None:
        doc = self.store.messages.collection.find_one({"_id": message_id}, {"state": 1})
        return str(doc["state"]) if doc else None

    def wait(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        wait_for(predicate, timeout)

    def settle(self) -> None:
        """Give the workers time to run whatever a sweep enqueued (a send that should not happen included)."""
        time.sleep(0.8)

    def enrol(self, n: int, *, wrote: timedelta = timedelta(hours=1), campaign: str = "c1") -> str:
        """Client ``n`` (who wrote ``wrote`` ago) enrolled in ``campaign``; their step 0 drafted by the
        real drafting actor; the draft's id."""
        now = self.clock.now()
        contact = Contact(id=f"ct{n}", phone=f"+3361234560{n}", name=f"Client {n}", language=Language.FR,
                          fields=FACTS, tags=["t"])
        self.store.contacts.upsert(contact, now)
        self.store.contacts.touch_inbound(contact.id, now - wrote)
        self.store.followups.enrol(contact_id=contact.id, campaign_id=campaign, next_run_at=now, now=now)
        message_id = f"{campaign}:{contact.id}:0"
        self.sweep()
        self.wait(lambda: self.state(message_id) == "awaiting_approval")
        return message_id


@pytest.fixture
def world(request: pytest.FixtureRequest, store: MongoRepositories, clock: FakeClock, redis_url: str
          ) -> Iterator[World]:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "MIN_GAP_BETWEEN_MESSAGES": "0s",
                              "DAILY_CAP_PER_CONTACT": "0", **getattr(request, "param", {})})
    now = clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, enrol=EnrolRule(tags=["t"]),
                                    approval="required",
                                    steps=[Step(delay="0s", template=TEMPLATE),
                                           Step(delay="2d", anchor="previous", template=TEMPLATE)]), now)
    simulator = create_simulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01,
                                 callback_attempts=1)
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    with serve_asgi(simulator) as sim_url:
        sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER,
                              api_base_url=sim_url)
        deps = App.build(settings.rules(), store=store, clock=clock, queue=queue, drafter=EchoDrafter(),
                         sender=sender)
        register_actors(broker, deps)
        worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
        worker.start()
        console = Console(store, clock, queue=queue, rules=settings.rules())
        keys = {name: {"Authorization": f"Bearer {create_key(store, name, read_only=name == 'viewer', now=now)}"}
                for name in ("admin", "other", "viewer")}
        try:
            with TestClient(create_app(console), raise_server_exceptions=False) as api:
                yield World(store, clock, queue, api, sim_url, keys["admin"], keys["other"], keys["viewer"])
        finally:
            worker.stop()
            broker.close()


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and "Traceback" not in response.text
    return body


# ------------------------------------------------------------------ the guarantees
def test_a_draft_nobody_approved_never_reaches_twilio(world: World) -> None:
    draft = world.enrol(1)
    for _ in range(4):  # past the stale delay, several times: every reconciling sweep runs over it
        world.sweep(STALE + timedelta(seconds=1))
        world.settle()
    assert world.twilio_got() == []
    assert world.state(draft) == "awaiting_approval"
    followup = world.store.followups.get("c1:ct1")
    assert followup is not None and (followup.state.value, followup.step) == ("awaiting_send", 0)
    assert world.store.messages.collection.count_documents({"followup_id": "c1:ct1"}) == 1


def test_an_approved_draft_reaches_twilio_exactly_once_even_approved_twice_at_once(world: World) -> None:
    draft = world.enrol(1)
    body = world.store.messages.get(draft).body  # type: ignore[union-attr]
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def approve(headers: dict[str, str]) -> None:
        barrier.wait()
        answers.append(world.api.post(f"/api/v1/approvals/{draft}/approve", headers=headers).status_code)

    threads = [threading.Thread(target=approve, args=(h,)) for h in (world.admin, world.other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409]
    world.wait(lambda: world.state(draft) == "sent")
    for _ in range(3):
        world.sweep(STALE + timedelta(seconds=1))
        world.settle()
    got = world.twilio_got()
    assert [(m["to"], m["body"]) for m in got] == [("whatsapp:+33612345601", body)]
    followup = world.store.followups.get("c1:ct1")
    assert followup is not None and (followup.state.value, followup.step) == ("scheduled", 1)


def test_a_rejected_draft_never_reaches_twilio_and_the_next_step_waits_too(world: World) -> None:
    draft = world.enrol(1)
    response = world.api.post(f"/api/v1/approvals/{draft}/reject", headers=world.admin, json={"reason": "trop sec"})
    assert response.status_code == 200, response.text
    assert response.json() | {"body": ""} == {
        "id": draft, "state": "cancelled", "kind": "freeform", "body": "", "approved_by": None, "edited_by": None,
        "rejected_by": "key:admin", "rejection_reason": "trop sec", "followup_state": "scheduled"}
    for _ in range(3):
        world.sweep(STALE + timedelta(seconds=1))
        world.settle()
    assert world.twilio_got() == [] and world.state(draft) == "cancelled"
    world.store.contacts.touch_inbound("ct1", world.clock.now())
    world.sweep(timedelta(days=2))  # step 1 due: drafted, and waiting too
    world.wait(lambda: world.state("c1:ct1:1") == "awaiting_approval")
    world.settle()
    assert world.twilio_got() == []


def test_a_window_closing_while_it_waits_sends_the_template_once_approved(world: World) -> None:
    draft = world.enrol(1, wrote=timedelta(hours=23))
    assert world.store.messages.get(draft).kind == "freeform"  # type: ignore[union-attr]
    world.sweep(timedelta(hours=1, minutes=1))  # the 24-hour window has closed
    redrafted = world.store.messages.get(draft)
    assert redrafted is not None and (redrafted.kind, redrafted.state.value, redrafted.body) == (
        "template", "awaiting_approval", "Bonjour Client 1, la facture FA-2026-001 reste à régler.")
    world.settle()
    assert world.twilio_got() == []
    assert world.api.post(f"/api/v1/approvals/{draft}/approve", headers=world.admin).status_code == 200
    world.wait(lambda: world.state(draft) == "sent")
    got = world.twilio_got()
    assert [m["content_sid"] for m in got] == [TEMPLATE.content_sid]


def test_approving_after_the_window_closed_redrafts_and_sends_nothing(world: World) -> None:
    draft = world.enrol(1, wrote=timedelta(hours=23))
    world.clock.advance(timedelta(hours=1, minutes=1))  # no sweep yet: the approval checks the window
    body = _problem(world.api.post(f"/api/v1/approvals/{draft}/approve", headers=world.admin), 409)
    assert "24-hour window" in body["detail"] and "template" in body["detail"]
    assert world.store.messages.get(draft).kind == "template"  # type: ignore[union-attr]
    world.settle()
    assert world.twilio_got() == []


@pytest.mark.parametrize("world", [{"MIN_GAP_BETWEEN_MESSAGES": "2h"}], indirect=True)
def test_an_approved_text_held_by_pacing_past_the_window_goes_back_to_approval_as_the_template(
        world: World) -> None:
    draft = world.enrol(1, wrote=timedelta(hours=23))  # the client's 24-hour window closes in an hour
    # Another campaign's step went to the client a minute ago: pacing holds this one two hours.
    now = world.clock.now()
    world.store.messages.insert(OutboundMessage(
        id="c2:ct1:0", followup_id="c2:ct1", contact_id="ct1", campaign_id="c2", step=0, purpose="step",
        state=MessageState.READY, kind="freeform", body="Autre rappel", language=Language.FR), now)
    world.store.messages.collection.update_one({"_id": "c2:ct1:0"}, {"$set": {
        "state": "sent", "sent_at": now - timedelta(minutes=1), "twilio_sid": "SM" + "9" * 32}})
    assert world.api.post(f"/api/v1/approvals/{draft}/approve", headers=world.admin).status_code == 200
    # The text would go out past the window: back to a person, as the step's template, same id.
    world.wait(lambda: world.state(draft) == "awaiting_approval")
    back = world.store.messages.get(draft)
    assert back is not None and (back.kind, back.content_sid, back.approved_by, back.body) == (
        "template", TEMPLATE.content_sid, None, "Bonjour Client 1, la facture FA-2026-001 reste à régler.")
    assert [w.id for w in list_waiting(world.store).items] == [draft]
    for _ in range(2):  # past the hold and the window: nothing goes out unapproved
        world.sweep(timedelta(hours=1, minutes=30))
        world.settle()
    assert world.twilio_got() == [] and world.state(draft) == "awaiting_approval"
    assert world.api.post(f"/api/v1/approvals/{draft}/approve", headers=world.admin).status_code == 200
    world.wait(lambda: world.state(draft) == "sent")
    assert [m["content_sid"] for m in world.twilio_got()] == [TEMPLATE.content_sid]


# ------------------------------------------------------------------ the API
def test_the_waiting_list_pages_with_a_cursor_and_read_only_keys_read_it(world: World) -> None:
    drafts = [world.enrol(n) for n in (1, 2, 3)]
    first = world.api.get("/api/v1/approvals?limit=2", headers=world.viewer)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["id"] for item in page["items"]] == drafts[:2] and page["next_cursor"]
    item = page["items"][0]
    assert (item["contact_name"], item["campaign_id"], item["campaign_name"], item["step"], item["step_count"],
            item["kind"]) == ("Client 1", "c1", "Relance", 0, 2, "freeform")
    assert item["waiting_since"] and item["body"] and item["window_closes_at"]
    rest = world.api.get(f"/api/v1/approvals?limit=2&cursor={page['next_cursor']}", headers=world.viewer).json()
    assert [item["id"] for item in rest["items"]] == drafts[2:] and rest["next_cursor"] is None
    _problem(world.api.get("/api/v1/approvals?cursor=bogus", headers=world.viewer), 400)
    for action in ("approve", "reject"):
        _problem(world.api.post(f"/api/v1/approvals/{drafts[0]}/{action}", headers=world.viewer,
                                json={"reason": "x"}), 403)
    _problem(world.api.post("/api/v1/approvals/bulk", headers=world.viewer,
                            json={"action": "approve", "ids": drafts}), 403)
    _problem(world.api.get("/api/v1/approvals"), 401)
    assert {world.state(d) for d in drafts} == {"awaiting_approval"}


def test_an_edit_failing_the_facts_check_is_refused_and_changes_nothing(world: World) -> None:
    draft = world.enrol(1)
    before = world.store.messages.get(draft)
    assert before is not None
    body = _problem(world.api.post(f"/api/v1/approvals/{draft}/edit", headers=world.admin,
                                   json={"body": "Bonjour, merci de régler 990 EUR d'ici demain."}), 400)
    assert "facts check" in body["detail"] and "990" in body["detail"]
    after = world.store.messages.get(draft)
    assert after is not None and (after.body, after.edited_by) == (before.body, None)
    text = "Bonjour Client 1, la facture FA-2026-001 de 120,00 EUR reste à régler. Merci !"
    edited = world.api.post(f"/api/v1/approvals/{draft}/edit", headers=world.admin, json={"body": text})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["state"], edited.json()["edited_by"], edited.json()["body"]) == (
        "awaiting_approval", "key:admin", text)
    world.settle()
    assert world.twilio_got() == []
    approved = world.api.post(f"/api/v1/approvals/{draft}/edit", headers=world.admin,
                              json={"body": text + " ", "approve": True})
    assert approved.status_code == 200 and approved.json()["approved_by"] == "key:admin"
    world.wait(lambda: world.state(draft) == "sent")
    assert [m["body"] for m in world.twilio_got()] == [text]


def test_an_idempotency_key_replays_the_approval_and_errors_are_problems(world: World) -> None:
    draft = world.enrol(1)
    headers = {**world.admin, "Idempotency-Key": "approve-1"}
    first = world.api.post(f"/api/v1/approvals/{draft}/approve", headers=headers)
    again = world.api.post(f"/api/v1/approvals/{draft}/approve", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    world.wait(lambda: world.state(draft) == "sent")
    assert len(world.twilio_got()) == 1
    assert "not waiting" in _problem(world.api.post(f"/api/v1/approvals/{draft}/approve", headers=world.admin),
                                     409)["detail"]
    assert _problem(world.api.post("/api/v1/approvals/nope/approve", headers=world.admin), 404)["detail"] == (
        "no draft 'nope'")
    _problem(world.api.post(f"/api/v1/approvals/{draft}/reject", headers=world.admin, json={}), 422)
    _problem(world.api.post(f"/api/v1/approvals/{draft}/reject", headers=world.admin, json={"reason": " "}), 400)


def test_bulk_approves_and_rejects_reporting_each_id(world: World) -> None:
    drafts = [world.enrol(n) for n in (1, 2, 3)]
    _problem(world.api.post("/api/v1/approvals/bulk", headers=world.admin,
                            json={"action": "reject", "ids": drafts[:1]}), 400)  # no reason
    _problem(world.api.post("/api/v1/approvals/bulk", headers=world.admin, json={"action": "send", "ids": drafts}),
             422)
    rejected = world.api.post("/api/v1/approvals/bulk", headers=world.admin,
                              json={"action": "reject", "ids": drafts[:1], "reason": "doublon"})
    assert rejected.json() == {"items": [{"id": drafts[0], "outcome": "done", "detail": None}]}
    approved = world.api.post("/api/v1/approvals/bulk", headers=world.admin,
                              json={"action": "approve", "ids": [*drafts, "nope"]})
    assert approved.status_code == 200, approved.text
    assert [(i["id"], i["outcome"]) for i in approved.json()["items"]] == [
        (drafts[0], "not_waiting"), (drafts[1], "done"), (drafts[2], "done"), ("nope", "unknown")]
    world.wait(lambda: world.state(drafts[1]) == world.state(drafts[2]) == "sent")
    world.settle()
    assert sorted(m["to"] for m in world.twilio_got()) == ["whatsapp:+33612345602", "whatsapp:+33612345603"]
    assert world.store.messages.get(drafts[0]).rejection_reason == "doublon"  # type: ignore[union-attr]


def test_a_campaign_posted_as_json_takes_the_approval_option(world: World) -> None:
    campaign = {"id": "c2", "name": "Validée", "approval": "required", "steps": [{"delay": "0s"}]}
    created = world.api.post("/api/v1/campaigns", headers=world.admin, json=campaign)
    assert created.status_code == 201, created.text
    stored = world.store.campaigns.get("c2")
    assert stored is not None and stored.needs_approval
    body = _problem(world.api.post("/api/v1/campaigns", headers=world.admin,
                                   json={**campaign, "id": "c3", "approval": "maybe"}), 400)
    assert body["detail"] == "campaign: approval: Input should be 'auto' or 'required' (got 'maybe')"
    assert world.store.campaigns.get("c3") is None
