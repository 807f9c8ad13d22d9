"""Prometheus metrics: what each process counts, and the gauges read from the stores at scrape time.

Counters live in the process that does the work (Prometheus adds them up across processes):
sends and Twilio errors by code (:class:`MeteredSender`, the sending workers), reply intents
(:class:`MeteredClassifier`, the replies workers), actor messages and their durations
(:class:`ActorMetrics`, every worker), scheduler ticks (:func:`observe_tick`). The webhook measures its own latency
(:func:`observe_request`). The gauges that describe the whole installation (messages by state
and step, follow-ups by state, hand-overs waiting, queue depths) are read by one process only, the
webhook, when Prometheus scrapes it (:class:`StoreCollector`): one aggregation per collection,
no count kept by hand that could drift.

No label ever holds a phone number, a message body or an id: only states, queues, actors,
intents, Twilio error codes, routes and HTTP status codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from dramatiq import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.domain.repositories import Repositories
from shared.errors import SendDeferred, SendRejected
from shared.ports import (
    Classification,
    Classifier,
    ClassifyRequest,
    DeliveryStatus,
    OutboundRequest,
    Sender,
    SendResult,
)

__all__ = ["CONTENT_TYPE_LATEST", "ActorMetrics", "MeteredClassifier", "MeteredSender", "StoreCollector",
           "exposition", "observe_request", "observe_tick"]

log = logging.getLogger(__name__)

SENDS = Counter("relance_sends_total", "Messages Twilio accepted (a SID came back).")
TWILIO_ERRORS = Counter("relance_twilio_errors_total", "Sends Twilio refused or deferred, by error code.",
                        ["code", "kind"])
REPLY_INTENTS = Counter("relance_reply_intents_total", "Replies read by the classifier, by intent and source.",
                        ["intent", "source"])
ACTOR_MESSAGES = Counter("relance_actor_messages_total", "Actor messages processed, by actor and outcome.",
                         ["queue", "actor", "outcome"])
ACTOR_SECONDS = Histogram("relance_actor_duration_seconds", "Time spent processing one actor message.",
                          ["queue", "actor"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
SCHEDULER_TICKS = Counter("relance_scheduler_ticks_total", "Scheduler ticks, by outcome (ok, warning, failed).",
                          ["outcome"])
SCHEDULER_CLAIMED = Counter("relance_scheduler_claimed_total", "Follow-ups the scheduler claimed for drafting.")
WEBHOOK_SECONDS = Histogram("relance_webhook_request_duration_seconds",
                            "Webhook requests: time from the request to the answer, by route, method and status.",
                            ["route", "method", "status"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15))


CONSOLE_SECONDS = Histogram("relance_console_request_duration_seconds",
                            "Console API requests: time from the request to the answer, by route, method and status.",
                            ["route", "method", "status"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15))


def observe_tick(outcome: str, claimed: int) -> None:
    """Record one scheduler tick (``outcome``: ok, warning or failed) and how many follow-ups it claimed."""
    SCHEDULER_TICKS.labels(outcome).inc()
    SCHEDULER_CLAIMED.inc(claimed)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Record one webhook request (``route``: the route's path template, never the raw URL)."""
    WEBHOOK_SECONDS.labels(route, method, str(status)).observe(seconds)


def observe_console_request(route: str, method: str, status: int, seconds: float) -> None:
    """Record one console request (``route``: the route's path template, never the raw URL)."""
    CONSOLE_SECONDS.labels(route, method, str(status)).observe(seconds)


class MeteredSender:
    """A :class:`~shared.ports.Sender` that counts sends and Twilio's error codes, then passes on."""

    def __init__(self, inner: Sender) -> None:
        self.inner = inner

    def send(self, request: OutboundRequest) -> SendResult:
        """Send through the wrapped sender; count the outcome."""
        try:
            result = self.inner.send(request)
        except SendRejected as exc:
            TWILIO_ERRORS.labels(str(exc.code or "none"), "rejected").inc()
            raise
        except SendDeferred as exc:
            TWILIO_ERRORS.labels(str(exc.code or "none"), "deferred").inc()
            raise
        SENDS.inc()
        return result

    def list_messages(self, *, to: str, from_: str | None = None, date_sent_after: datetime | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """Unchanged: the wrapped sender's list."""
        return self.inner.list_messages(to=to, from_=from_, date_sent_after=date_sent_after, limit=limit)

    def fetch_status(self, sid: str) -> DeliveryStatus | None:
        """Unchanged: the wrapped sender's status."""
        return self.inner.fetch_status(sid)


class MeteredClassifier:
    """A :class:`~shared.ports.Classifier` that counts the intents it reads."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner

    def classify(self, request: ClassifyRequest) -> Classification:
        """Classify through the wrapped classifier; count the intent."""
        reading = self.inner.classify(request)
        REPLY_INTENTS.labels(reading.intent.value, reading.source).inc()
        return reading


class ActorMetrics(Middleware):
    """Dramatiq middleware: messages processed per actor (ok / failed) and their durations.

    Counts into the process's registry, served on METRICS_PORT with the worker's other metrics.
    dramatiq's own Prometheus middleware runs beside it on its own port (shared/dramatiq_metrics.py).
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: Any, message: Any) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        started = self._started.pop(message.message_id, None)
        ACTOR_MESSAGES.labels(message.queue_name, message.actor_name, "failed" if exception else "ok").inc()
        if started is not None:
            ACTOR_SECONDS.labels(message.queue_name, message.actor_name).observe(time.perf_counter() - started)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._started.pop(message.message_id, None)


class StoreCollector(Collector):
    """Gauges read when scraped: messages and follow-ups by state, hand-overs waiting, queue depths.

    ``queue_depths`` returns ``{(queue, kind): n}`` (kind ``ready``, ``delayed`` or ``dead``);
    a store or Redis that does not answer leaves its gauges out of that scrape (logged), and
    ``relance_store_up`` says so.
    """

    def __init__(self, store: Repositories, queue_depths: Callable[[], dict[tuple[str, str], int]]) -> None:
        self.store = store
        self.queue_depths = queue_depths

    def describe(self) -> Iterable[Any]:
        return []  # read only when scraped: nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("relance_store_up", "1 when the last scrape could read the store and Redis.")
        ok = True
        try:
            yield from self._store_gauges()
        except Exception as exc:  # a scrape must answer even when MongoDB does not
            log.warning("metrics: the store could not be read: %s", type(exc).__name__)
            ok = False
        try:
            depth = GaugeMetricFamily("relance_queue_depth", "Messages in a dramatiq queue, by queue and kind.",
                                      labels=["queue", "kind"])
            for (queue, kind), n in sorted(self.queue_depths().items()):
                depth.add_metric([queue, kind], n)
            yield depth
        except Exception as exc:
            log.warning("metrics: Redis could not be read: %s", type(exc).__name__)
            ok = False
        up.add_metric([], 1 if ok else 0)
        yield up

    def _store_gauges(self) -> Iterator[GaugeMetricFamily]:
        messages = GaugeMetricFamily("relance_messages", "Outbound messages, by state.", labels=["state"])
        for state, n in sorted(self.store.messages.count_by_state().items()):
            messages.add_metric([str(state)], n)
        steps = GaugeMetricFamily("relance_step_messages", "Follow-up step messages, by state and step.",
                                  labels=["state", "step"])
        for (state, step), n in sorted(self.store.messages.count_steps_by_state().items()):
            steps.add_metric([str(state), str(step)], n)
        followups = GaugeMetricFamily("relance_followups", "Follow-ups, by state.", labels=["state"])
        for state, n in sorted(self.store.followups.count_by_state().items()):
            followups.add_metric([str(state)], n)
        handovers = GaugeMetricFamily("relance_handovers_waiting", "Clients handed to a person, not handled yet.")
        handovers.add_metric([], self.store.followups.count_handovers_waiting())
        yield from (messages, steps, followups, handovers)


def redis_queue_depths(client: Any, namespace: str, queues: Iterable[str]) -> dict[tuple[str, str], int]:
    """Depths of dramatiq's Redis queues: ids waiting (``ready``), delayed (``.DQ``), dead-lettered (``.XQ``)."""
    with client.pipeline(transaction=False) as pipe:
        names = list(queues)
        for queue in names:
            pipe.llen(f"{namespace}:{queue}")
            pipe.llen(f"{namespace}:{queue}.DQ")
            pipe.zcard(f"{namespace}:{queue}.XQ")
        counts = pipe.execute()
    depths: dict[tuple[str, str], int] = {}
    for i, queue in enumerate(names):
        ready, delayed, dead = counts[3 * i:3 * i + 3]
        depths.update({(queue, "ready"): int(ready), (queue, "delayed"): int(delayed), (queue, "dead"): int(dead)})
    return depths


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of the process's default registry followed by ``registries``."""
    return b"".join(generate_latest(registry) for registry in (REGISTRY, *registries))
