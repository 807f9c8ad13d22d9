"""dramatiq's own Prometheus middleware as ``relance worker`` runs it: counted in memory, in its own registry."""

from __future__ import annotations

import os

from dramatiq import Message
from prometheus_client import generate_latest

from services.bootstrap import build_worker_deps
from shared.dramatiq_metrics import DramatiqPrometheus
from shared.settings import load_settings


def _message(actor: str = "deliver_hook") -> Message[object]:
    return Message(queue_name="outbound", actor_name=actor, args=("d1",), kwargs={}, options={})


def test_messages_are_counted_without_the_dramatiq_command_nor_multiprocess_files() -> None:
    middleware = DramatiqPrometheus()
    assert middleware.forks == []  # no exposition process forked: relance worker serves it
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ and "prometheus_multiproc_dir" not in os.environ
    ok, failed = _message(), _message()
    for message, exception in ((ok, None), (failed, ValueError("boom"))):
        middleware.before_process_message(None, message)  # type: ignore[arg-type]
        middleware.after_process_message(None, message, exception=exception)  # type: ignore[arg-type]
    middleware.after_process_boot(None)  # the dramatiq command's call again: nothing registered twice
    registry = middleware.registry
    labels = {"queue_name": "outbound", "actor_name": "deliver_hook"}
    assert registry.get_sample_value("dramatiq_messages_total", labels) == 2
    assert registry.get_sample_value("dramatiq_message_errors_total", labels) == 1
    assert registry.get_sample_value("dramatiq_messages_inprogress", labels) == 0
    assert registry.get_sample_value("dramatiq_message_duration_milliseconds_count", labels) == 2
    # Its own registry: the process's default one (served on METRICS_PORT) does not repeat it.
    from prometheus_client import REGISTRY
    assert b"dramatiq_messages_total" not in generate_latest(REGISTRY)


def test_the_middleware_is_on_the_worker_broker_only_when_metrics_are_on() -> None:
    def added(**env: str) -> bool:
        settings = load_settings({"REDIS_URL": "redis://127.0.0.1:1/0", **env})
        _deps, broker, client = build_worker_deps(settings, queues=["outbound"])
        try:
            return any(isinstance(m, DramatiqPrometheus) for m in broker.middleware)
        finally:
            broker.close()
            client.close()

    assert not added()  # METRICS_PORT=0 by default
    assert added(METRICS_PORT="9100")
    assert not added(METRICS_PORT="9100", DRAMATIQ_PROM_PORT="0")
