"""Per-contact pacing over the real MongoDB-compatible server (and the per-contact lock over Redis)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.reasons import CancelReason
from shared.domain.records import InboundRecord
from shared.domain.states import MessageState
from shared.pacing import contact_pacing_delay, contact_send_lock, recent_sent_times
from shared.usecases.delivery import record_sid

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # Monday, 14:00 in Paris
HOUR = timedelta(hours=1)


def _message(mid: str, *, contact_id: str = "ct_1", purpose: str = "step") -> OutboundMessage:
    return OutboundMessage.model_validate({
        "id": mid, "followup_id": f"c:{contact_id}", "contact_id": contact_id, "campaign_id": "c", "step": 0,
        "purpose": purpose, "state": MessageState.READY, "kind": "freeform", "body": "Bonjour",
        "language": Language.FR,
    })


def _sent(store: MongoRepositories, mid: str, *, created: datetime, sent: datetime, **kw: str) -> None:
    assert store.messages.insert(_message(mid, **kw), created)
    assert store.messages.start_sending(mid, now=sent)
    assert record_sid(store, mid, f"SM{mid:0>32}", sent)


def test_recent_sent_times_counts_step_messages_that_went_out(store: MongoRepositories) -> None:
    _sent(store, "a", created=NOW - 3 * HOUR, sent=NOW - 3 * HOUR)
    _sent(store, "b", created=NOW - 2 * HOUR, sent=NOW - 2 * HOUR)
    store.messages.apply_status("SM" + "b".rjust(32, "0"), "read", None, NOW - HOUR)  # read later: still sent at -2 h
    # Drafted four days ago, held by the send window and holidays, sent 30 minutes ago.
    _sent(store, "held", created=NOW - timedelta(days=4), sent=NOW - timedelta(minutes=30))
    # In flight or lost in flight: they may have reached Twilio.
    assert store.messages.insert(_message("sending"), NOW - 10 * HOUR)
    store.messages.start_sending("sending", now=NOW - timedelta(minutes=5))
    assert store.messages.insert(_message("lost"), NOW - 20 * HOUR)
    store.messages.start_sending("lost", now=NOW - 4 * HOUR)
    store.messages.mark_uncertain("lost", reason="test", now=NOW - 3 * HOUR)
    # An older document written before messages had a purpose counts as a step.
    store.messages.collection.insert_one({"_id": "legacy", "direction": "outbound", "contact_id": "ct_1",
                                          "state": "delivered", "created_at": NOW - 6 * HOUR,
                                          "sent_at": NOW - 6 * HOUR, "state_changed_at": NOW - 5 * HOUR})

    # None of these count: not sent, refused, replies and alerts, inbound, another contact, too old.
    assert store.messages.insert(_message("ready"), NOW - HOUR)
    assert store.messages.insert(_message("cancelled"), NOW - HOUR)
    store.messages.cancel("cancelled", reason=CancelReason.OPT_OUT, now=NOW - HOUR)
    _sent(store, "failed", created=NOW - HOUR, sent=NOW - HOUR)
    store.messages.apply_status("SM" + "failed".rjust(32, "0"), "failed", 63016, NOW - HOUR)
    _sent(store, "reply", created=NOW - HOUR, sent=NOW - HOUR, purpose="reply")
    store.messages.insert_inbound(InboundRecord(id="in1", twilio_sid="SMin1", contact_id="ct_1", body="Merci"),
                                  NOW - HOUR)
    _sent(store, "other", created=NOW - HOUR, sent=NOW - HOUR, contact_id="ct_2")
    _sent(store, "old", created=NOW - 30 * HOUR, sent=NOW - 30 * HOUR)

    times = recent_sent_times(store, "ct_1", NOW - 26 * HOUR)
    assert times == [NOW - 6 * HOUR, NOW - 4 * HOUR, NOW - 3 * HOUR, NOW - 2 * HOUR,
                     NOW - timedelta(minutes=30), NOW - timedelta(minutes=5)]
    assert all(t.tzinfo is not None for t in times)
    assert recent_sent_times(store, "ct_1", NOW - HOUR) == [NOW - timedelta(minutes=30), NOW - timedelta(minutes=5)]
    assert recent_sent_times(store, "nobody", NOW - 26 * HOUR) == []


def test_contact_pacing_delay_reads_the_store(store: MongoRepositories, clock: FakeClock) -> None:
    clock.set(NOW)

    def delay(min_gap: timedelta = HOUR, daily_cap: int = 2) -> datetime | None:
        return contact_pacing_delay(store, contact_id="ct_1", timezone="Europe/Paris", now=clock.now(),
                                    min_gap=min_gap, daily_cap=daily_cap)

    assert delay() is None
    _sent(store, "first", created=NOW - 3 * HOUR, sent=NOW - 3 * HOUR)  # 11:00 in Paris
    assert delay() is None
    # Another campaign's step went out 20 minutes ago; 10 minutes later the gap has 40 minutes to run.
    _sent(store, "second", created=NOW - timedelta(minutes=20), sent=NOW - timedelta(minutes=20))
    clock.advance(timedelta(minutes=10))
    assert delay(daily_cap=3) == NOW + timedelta(minutes=40)
    # Two already today: with a cap of 2 it waits for midnight in Paris.
    assert delay() == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert delay(min_gap=timedelta(0), daily_cap=0) is None


def test_contact_send_lock_is_exclusive_and_released(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with contact_send_lock(client, "ct_1") as first:
        assert first
        with contact_send_lock(client, "ct_1") as second:
            assert not second
        with contact_send_lock(client, "ct_2") as other:
            assert other
        assert client.exists("relance:pace:ct_1")  # a refused caller does not release the holder's lock
        ttl = client.pttl("relance:pace:ct_1")
        assert isinstance(ttl, int) and 0 < ttl <= 30_000
    assert not client.exists("relance:pace:ct_1")
    with contact_send_lock(client, "ct_1") as again:
        assert again
    # A lock whose holder died expires; the late holder then does not delete its successor's.
    with contact_send_lock(client, "ct_3", ttl_seconds=0.05) as slow:
        assert slow
        time.sleep(0.1)
        with contact_send_lock(client, "ct_3") as successor:
            assert successor
        client.set("relance:pace:ct_3", "someone-else")
    assert client.get("relance:pace:ct_3") == b"someone-else"
    client.close()
