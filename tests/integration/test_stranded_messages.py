"""Nothing stranded: messages stored ``ready`` while Redis was down are enqueued by the scheduler, once.

Owner alerts, replies and template re-sends are enqueued only when they are inserted: a redelivered
actor finds them stored and enqueues nothing. The workers' own functions store them here with
Redis down (a broker on a dead port); the scheduler's tick, Redis back, enqueues each exactly once
per stale period. Real MongoDB-compatible server and Redis; what is checked is what Redis holds.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from datetime import time, timedelta

import pytest
import redis

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, SendWindow, Step, TemplateRef
from shared.domain.reasons import HandOver, HandOverReason
from shared.domain.states import MessageState
from shared.errors import SendRejected
from shared.fakes import FakeSender, RecordingQueue
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.handover import alert_owner
from shared.usecases.reply_plan import queue_reply
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
TEMPLATE = TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"},
                       preview={Language.FR: "Bonjour {{1}}, un rappel.", Language.EN: "Hello {{1}}, a reminder."})
STALE = timedelta(minutes=5)
OWNER = "+33700000001"


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sends_in_redis(redis_url: str) -> Counter[str]:
    """send_message messages waiting on the sending queue, by message id."""
    client = redis.Redis.from_url(redis_url)
    try:
        payloads = [json.loads(raw) for raw in client.hvals("relance:sending.msgs")]
    finally:
        client.close()
    return Counter(p["args"][0] for p in payloads if p["actor_name"] == "send_message")


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "OWNER_WHATSAPP_NUMBER": OWNER,
                              "MIN_GAP_BETWEEN_MESSAGES": "0s"})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender())
    now = clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(delay="0s", template=TEMPLATE), Step(delay="1d", anchor="previous", template=TEMPLATE)]), now)
    for n, phone in ((1, "+33612345678"), (2, "+33698765432")):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=phone, name=f"Client {n}", language=Language.FR), now)
        store.contacts.touch_inbound(f"ct{n}", now - timedelta(hours=1))  # inside the 24 h window: freeform drafts
        store.followups.enrol(contact_id=f"ct{n}", campaign_id="c1", next_run_at=now, now=now)
    tick(store, deps.queue, clock)  # both follow-ups claimed
    return deps


def test_messages_stored_while_redis_was_down_are_enqueued_once_per_period(deps: App, clock: FakeClock,
                                                                           redis_url: str) -> None:
    store = deps.store
    contact = store.contacts.get("ct1")
    assert contact is not None
    # The first follow-up's step is drafted while Redis works; Twilio refuses it as freeform (63016).
    first = draft_followup(deps, "c1:ct1", 0)
    assert first == "c1:ct1:0"
    deps.sender.fail_with = SendRejected(63016, "outside the window", 400)  # type: ignore[attr-defined]

    # Redis goes down: each worker stores its message, then fails to enqueue it.
    down = make_broker(f"redis://127.0.0.1:{_dead_port()}/0")
    deps.queue = DramatiqQueue(down)
    with pytest.raises(redis.ConnectionError):
        send_message(deps, first)  # the template re-send c1:ct1:0:t is stored, not enqueued
    with pytest.raises(redis.ConnectionError):
        draft_followup(deps, "c1:ct2", 0)  # the second follow-up's step
    with pytest.raises(redis.ConnectionError):
        alert_owner(deps, contact, "SM" + "a" * 32, HandOver(HandOverReason.DISPUTE))
    with pytest.raises(redis.ConnectionError):
        queue_reply(deps, contact, "SM" + "b" * 32, "Merci, bien reçu.", source="test")
    down.close()
    stranded = sorted(["c1:ct1:0:t", "c1:ct2:0", "alert:SM" + "a" * 32, "reply:SM" + "b" * 32])
    assert sorted(d["_id"] for d in store.messages.collection.find({"state": MessageState.READY.value})) == stranded
    # The replies actor's retry, Redis back, finds the alert stored and enqueues nothing.
    up = make_broker(redis_url)
    deps.queue = DramatiqQueue(up)
    alert_owner(deps, contact, "SM" + "a" * 32, HandOver(HandOverReason.DISPUTE))
    assert _sends_in_redis(redis_url) == Counter()

    clock.advance(timedelta(minutes=1))
    assert tick(store, deps.queue, clock, stale_after=STALE).requeued_sends == []  # not stale yet
    clock.advance(STALE)
    report = tick(store, deps.queue, clock, stale_after=STALE)
    assert sorted(report.requeued_sends) == stranded and report.failed_steps == []
    assert _sends_in_redis(redis_url) == Counter(dict.fromkeys(stranded, 1))  # each exactly once
    # The refused step is handled by its re-send: the cadence moved on although the worker failed.
    assert report.advanced == ["c1:ct1"]
    followup = store.followups.collection.find_one({"_id": "c1:ct1"})
    assert followup is not None and (followup["state"], followup["step"]) == ("scheduled", 1)

    clock.advance(timedelta(seconds=10))
    assert tick(store, deps.queue, clock, stale_after=STALE).requeued_sends == []  # soon after: nothing again
    assert _sends_in_redis(redis_url) == Counter(dict.fromkeys(stranded, 1))
    # Still not sent a period later (no worker runs here): enqueued once more, each.
    clock.advance(STALE)
    assert sorted(tick(store, deps.queue, clock, stale_after=STALE).requeued_sends) == stranded
    assert _sends_in_redis(redis_url) == Counter(dict.fromkeys(stranded, 2))
    up.close()

    # What a sending worker then does with them: each goes out once, the stale duplicates do nothing.
    deps.sender = FakeSender()
    deps.queue = RecordingQueue()
    for message_id in stranded * 2:
        send_message(deps, message_id)
    sent = deps.sender.sent
    assert sorted(request.to for request in sent) == sorted([OWNER, "+33612345678", "+33612345678", "+33698765432"])
    assert {d["state"] for d in store.messages.collection.find({"_id": {"$in": stranded}})} == {"sent"}


def test_two_schedulers_enqueue_each_stranded_message_once(store: MongoRepositories, clock: FakeClock,
                                                           redis_url: str) -> None:
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone="+33612345678", name="Marie"), now)
    ids = []
    for n in range(30):
        purpose = "alert" if n % 2 else "reply"
        message = OutboundMessage(id=f"{purpose}:SM{n:032x}", followup_id=None,
                                  contact_id=None if purpose == "alert" else "ct1", campaign_id=None, step=-1,
                                  purpose=purpose, to=OWNER if purpose == "alert" else None,
                                  state=MessageState.READY, kind="freeform", body="...", language=Language.FR)
        assert store.messages.insert(message, now)
        ids.append(message.id)
    clock.advance(STALE + timedelta(seconds=1))
    brokers = [make_broker(redis_url), make_broker(redis_url)]
    reports = []

    def run(broker: object) -> None:
        reports.append(tick(store, DramatiqQueue(broker), clock, stale_after=STALE))  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(broker,)) for broker in brokers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for broker in brokers:
        broker.close()
    assert sorted(reports[0].requeued_sends + reports[1].requeued_sends) == sorted(ids)
    assert _sends_in_redis(redis_url) == Counter(dict.fromkeys(ids, 1))
