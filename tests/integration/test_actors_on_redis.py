"""The three actors running in a real dramatiq worker over the real Redis test server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import time as dtime

import pytest
import redis

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, SendWindow, Step
from shared.fakes import FakeSender
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from tests.support.actors import workers_running
from tests.support.drafters import EchoDrafter
from tests.support.servers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def running(store: MongoRepositories, clock: FakeClock, redis_url: str) -> Iterator[tuple[App, DramatiqQueue]]:
    broker = make_broker(redis_url)
    queue = DramatiqQueue(broker)
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com",
                              "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0"})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=queue, drafter=EchoDrafter(),
                     sender=FakeSender())
    with workers_running(broker, deps):
        yield deps, queue


def test_messages_on_redis_carry_ids_only(redis_url: str) -> None:
    broker = make_broker(redis_url)
    DramatiqQueue(broker).draft_followup("c1:ct_1", 0)
    client = redis.Redis.from_url(redis_url)
    payloads = client.hgetall("relance:drafting.msgs")
    (raw,) = payloads.values()
    message = json.loads(raw)
    assert message["args"] == ["c1:ct_1", 0] and message["kwargs"] == {}
    assert message["actor_name"] == "draft_followup" and message["message_id"]
    broker.close()


def test_thirty_followups_flow_through_real_workers(running: tuple[App, DramatiqQueue], clock: FakeClock) -> None:
    deps, queue = running
    now = clock.now()
    window = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=dtime(0), end=dtime(23, 59))
    steps = [Step(), Step(delay="0s", anchor="previous")]
    deps.store.campaigns.create(Campaign(id="c1", name="c", send_window=window, steps=steps), now)
    for i in range(30):
        contact = Contact(id=f"ct{i}", phone=f"+336123456{i:02d}", name=f"Client {i}",
                          fields={"invoice_number": f"F-{i}"})
        deps.store.contacts.upsert(contact, now)
        deps.store.contacts.touch_inbound(contact.id, now)
        deps.store.followups.enrol(contact_id=contact.id, campaign_id="c1", next_run_at=now, now=now)

    def all_completed() -> bool:
        tick(deps.store, queue, clock)
        return deps.store.followups.collection.count_documents({"state": "completed"}) == 30

    wait_for(all_completed, timeout=60)
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    assert len(sender.sent) == 60
    per_contact = {}
    for request in sender.sent:
        per_contact[request.to] = per_contact.get(request.to, 0) + 1
    assert set(per_contact.values()) == {2} and len(per_contact) == 30
