"""The sending actor's pace: holidays, per-contact pacing across campaigns, the sender's rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import redis

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, EnrolRule, Language, SendWindow, Step
from shared.fakes import FakeSender, RecordingQueue
from shared.pacing import RedisContactLocks
from shared.ratelimit import SendRateLimiter
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))


def _deps(store: MongoRepositories, clock: FakeClock, **kw: object) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "TWILIO_AUTH_TOKEN": "t" * 32})
    return App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender(), **kw)  # type: ignore[arg-type]


def _contact(deps: App, phone: str) -> str:
    now = deps.clock.now()
    contact = Contact(id=f"ct{phone[-4:]}", phone=phone, name="Marie", language=Language.FR,
                      fields={"invoice_number": "FA-1"}, tags=["t"])
    deps.store.contacts.upsert(contact, now)
    deps.store.contacts.touch_inbound(contact.id, now - timedelta(hours=1))
    return contact.id


def _campaign(deps: App, cid: str, window: SendWindow = ALWAYS) -> None:
    deps.store.campaigns.create(Campaign(id=cid, name=cid, send_window=window, enrol=EnrolRule(tags=["t"]),
                                        steps=[Step()]), deps.clock.now())


def _drafted(deps: App) -> list[str]:
    tick(deps.store, deps.queue, deps.clock)
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    ids = [draft_followup(deps, *d) for d in queue.drafts]
    queue.drafts.clear()
    queue.sends.clear()
    return [i for i in ids if i]


def test_a_second_campaign_waits_for_the_gap(store: MongoRepositories, clock: FakeClock) -> None:
    deps = _deps(store, clock)
    ct = _contact(deps, "+33612345678")
    for cid in ("c1", "c2"):
        _campaign(deps, cid)
        store.followups.enrol(contact_id=ct, campaign_id=cid, next_run_at=clock.now(), now=clock.now())
    first, second = sorted(_drafted(deps))
    assert send_message(deps, first)
    assert send_message(deps, second) is None
    assert deps.queue.sends == [(second, 3600.0)]  # type: ignore[attr-defined]
    doc = store.messages.collection.find_one({"_id": second})
    assert doc is not None and doc["state"] == "ready" and doc["not_before"] == clock.now() + timedelta(hours=1)
    clock.advance(timedelta(hours=1))
    assert send_message(deps, second)
    assert len(deps.sender.sent) == 2  # type: ignore[attr-defined]


def test_bastille_day_holds_until_the_next_morning(store: MongoRepositories) -> None:
    clock = FakeClock(datetime(2026, 7, 14, 8, 0, tzinfo=UTC))
    deps = _deps(store, clock)
    ct = _contact(deps, "+33612345678")
    _campaign(deps, "c1", SendWindow())
    store.followups.enrol(contact_id=ct, campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    (mid,) = _drafted(deps)
    assert send_message(deps, mid) is None
    doc = store.messages.collection.find_one({"_id": mid})
    assert doc is not None and doc["not_before"] == datetime(2026, 7, 15, 7, 0, tzinfo=UTC)


def test_the_sender_rate_limit_puts_the_message_back(store: MongoRepositories, clock: FakeClock,
                                                     redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SendRateLimiter(client=client, sender="whatsapp:+14155238886", rate="1/1m")
    deps = _deps(store, clock, limiter=limiter, locks=RedisContactLocks(client))
    _campaign(deps, "c1")
    for phone in ("+33612345678", "+33612345679"):
        store.followups.enrol(contact_id=_contact(deps, phone), campaign_id="c1", next_run_at=clock.now(),
                              now=clock.now())
    first, second = sorted(_drafted(deps))
    assert send_message(deps, first)
    assert send_message(deps, second) is None
    assert deps.queue.sends == [(second, 2.0)]  # type: ignore[attr-defined]
    assert store.messages.collection.find_one({"_id": second})["state"] == "ready"  # type: ignore[index]
    assert len(deps.sender.sent) == 1  # type: ignore[attr-defined]
    client.close()


def test_another_worker_holding_the_contact_means_later(store: MongoRepositories, clock: FakeClock,
                                                        redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    deps = _deps(store, clock, locks=RedisContactLocks(client))
    ct = _contact(deps, "+33612345678")
    _campaign(deps, "c1")
    store.followups.enrol(contact_id=ct, campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    (mid,) = _drafted(deps)
    client.set(f"relance:pace:{ct}", "other-worker")
    assert send_message(deps, mid) is None
    assert deps.queue.sends == [(mid, 2.0)]  # type: ignore[attr-defined]
    client.delete(f"relance:pace:{ct}")
    assert send_message(deps, mid)
    assert not client.exists(f"relance:pace:{ct}")
    client.close()
