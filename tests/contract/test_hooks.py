"""Outbound-webhook subscriptions, events and deliveries: the same answers from MongoDB and in memory."""

from __future__ import annotations

from datetime import timedelta

from shared.clock import FakeClock
from shared.domain.hooks import DeliveryState, HookEvent, Subscription
from shared.domain.repositories import Repositories

SECOND = timedelta(seconds=1)


def _sub(repos: Repositories, n: int, events: tuple[str, ...], clock: FakeClock) -> Subscription:
    sub = Subscription(id=f"wh_{n}", url=f"https://example.com/{n}", events=events, secret=f"whsec_{n}",
                       created_at=clock.now() + n * SECOND)
    repos.hooks.add_subscription(sub)
    return sub


def test_subscribers_are_the_active_subscriptions_to_an_event(repos: Repositories, clock: FakeClock) -> None:
    first = _sub(repos, 1, ("invoice.paid", "reply.received"), clock)
    second = _sub(repos, 2, ("invoice.paid",), clock)
    _sub(repos, 3, ("message.failed",), clock)
    assert [s.id for s in repos.hooks.subscribers("invoice.paid")] == ["wh_1", "wh_2"]
    assert [s.id for s in repos.hooks.subscribers("reply.received")] == ["wh_1"]
    assert repos.hooks.subscribers("handover.needed") == []
    assert repos.hooks.get_subscription("wh_1") == first
    assert repos.hooks.remove_subscription(second.id)
    assert not repos.hooks.remove_subscription(second.id)  # once
    assert not repos.hooks.remove_subscription("wh_none")
    assert [s.id for s in repos.hooks.subscribers("invoice.paid")] == ["wh_1"]
    assert [s.id for s in repos.hooks.subscriptions()] == ["wh_1", "wh_3"]
    removed = repos.hooks.get_subscription("wh_2")
    assert removed is not None and not removed.active and removed.secret == "whsec_2"
    # An id that exists is not stored again (the API's id derived from an Idempotency-Key): the first stays.
    assert not repos.hooks.add_subscription(Subscription(id="wh_1", url="https://example.com/other",
                                                         events=("message.failed",), secret="whsec_other",
                                                         created_at=clock.now()))
    assert repos.hooks.get_subscription("wh_1") == first


def test_an_event_is_stored_once_with_a_pending_delivery_per_subscription(repos: Repositories,
                                                                          clock: FakeClock) -> None:
    now = clock.now()
    event = HookEvent(id="invoice.paid:FA-1:1", type="invoice.paid", created_at=now, data={"invoice": {"n": 1}})
    assert repos.hooks.record_event(event, ["wh_1", "wh_2", "wh_1"]) == ["invoice.paid:FA-1:1>wh_1",
                                                                          "invoice.paid:FA-1:1>wh_2"]
    assert repos.hooks.record_event(event, ["wh_1", "wh_3"]) == []  # emitted again: nothing
    assert repos.hooks.get_event(event.id) == event
    assert repos.hooks.get_event("invoice.paid:none") is None
    delivery = repos.hooks.get_delivery("invoice.paid:FA-1:1>wh_1")
    assert delivery is not None and (delivery.state, delivery.attempts, delivery.next_attempt_at) == (
        DeliveryState.PENDING, 0, now)
    assert repos.hooks.get_delivery("invoice.paid:FA-1:1>wh_3") is None
    assert repos.hooks.due_deliveries(now) == ["invoice.paid:FA-1:1>wh_1", "invoice.paid:FA-1:1>wh_2"]
    assert repos.hooks.due_deliveries(now, limit=1) == ["invoice.paid:FA-1:1>wh_1"]
    assert repos.hooks.due_deliveries(now - SECOND) == []


def test_an_attempt_is_held_by_one_caller_then_retried_delivered_or_failed(repos: Repositories,
                                                                           clock: FakeClock) -> None:
    now = clock.now()
    repos.hooks.record_event(HookEvent(id="e1", type="reply.received", created_at=now), ["wh_1", "wh_2"])
    held = repos.hooks.claim_attempt("e1>wh_1", now=now, until=now + 60 * SECOND)
    assert held is not None and held.attempts == 0
    assert repos.hooks.claim_attempt("e1>wh_1", now=now, until=now + 60 * SECOND) is None  # held
    assert repos.hooks.due_deliveries(now) == ["e1>wh_2"]
    assert repos.hooks.retry("e1>wh_1", status=500, error=None, at=now + 10 * SECOND, now=now)
    assert repos.hooks.claim_attempt("e1>wh_1", now=now + 9 * SECOND, until=now + 70 * SECOND) is None  # not due
    again = repos.hooks.claim_attempt("e1>wh_1", now=now + 10 * SECOND, until=now + 70 * SECOND)
    assert again is not None and (again.attempts, again.last_status) == (1, 500)
    assert repos.hooks.deliver("e1>wh_1", status=204, now=now + 11 * SECOND)
    assert not repos.hooks.deliver("e1>wh_1", status=200, now=now + 12 * SECOND)  # final
    assert not repos.hooks.retry("e1>wh_1", status=500, error=None, at=now, now=now)
    done = repos.hooks.get_delivery("e1>wh_1")
    assert done is not None and (done.state, done.attempts, done.last_status, done.next_attempt_at) == (
        DeliveryState.DELIVERED, 2, 204, None)
    assert repos.hooks.claim_attempt("e1>wh_1", now=now + 99 * SECOND, until=now) is None
    assert repos.hooks.give_up("e1>wh_2", status=None, error="timed out", now=now + 20 * SECOND)
    assert not repos.hooks.give_up("e1>wh_2", status=None, error="again", now=now + 20 * SECOND)
    failed = repos.hooks.get_delivery("e1>wh_2")
    assert failed is not None and (failed.state, failed.last_error, failed.attempts) == (
        DeliveryState.FAILED, "timed out", 1)
    assert repos.hooks.due_deliveries(now + 99 * SECOND) == []
    assert repos.hooks.claim_attempt("e1>none", now=now, until=now) is None


def test_a_subscriptions_last_delivery_is_the_latest_touched(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.hooks.last_delivery("wh_1") is None
    repos.hooks.record_event(HookEvent(id="e1", type="invoice.paid", created_at=now), ["wh_1"])
    repos.hooks.record_event(HookEvent(id="e2", type="invoice.paid", created_at=now + SECOND), ["wh_1"])
    last = repos.hooks.last_delivery("wh_1")
    assert last is not None and last.event_id == "e2"
    repos.hooks.retry("e1>wh_1", status=503, error=None, at=now + 20 * SECOND, now=now + 5 * SECOND)
    last = repos.hooks.last_delivery("wh_1")
    assert last is not None and (last.event_id, last.last_status, last.attempts) == ("e1", 503, 1)
