"""dramatiq's own Prometheus middleware in a real ``relance worker`` process (issue 12).

The worker runs as operators run it (``relance worker outbound``, on the test Redis and MongoDB);
a message goes through it; its exposition port then answers ``dramatiq_messages_total`` for that
actor, next to the worker's own ``relance_actor_messages_total`` on METRICS_PORT. With metrics
off (the default) neither port is served.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.embedded import ServerProcess, free_port
from shared.queue import ACTOR_DELIVER_HOOK, QUEUE_OUTBOUND, DramatiqQueue, make_broker
from tests.support.servers import stop_process, wait_until

pytestmark = pytest.mark.integration


def _start_worker(tmp_path: Path, database: str, redis_url: str, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
           "MONGODB_URI": database, "REDIS_URL": redis_url,
           # dramatiq creates its multiprocess directory on import: this test's own.
           "dramatiq_prom_db": str(tmp_path / "dramatiq-prometheus"), **extra}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", QUEUE_OUTBOUND], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the text exposition format (labels in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return None


def test_a_worker_with_metrics_on_serves_dramatiq_s_own_counters(
    tmp_path: Path, database: str, redis_server: ServerProcess
) -> None:
    metrics_port, prom_port = free_port(), free_port()
    proc, log = _start_worker(tmp_path, database, redis_server.url, METRICS_PORT=str(metrics_port),
                              DRAMATIQ_PROM_HOST="127.0.0.1", DRAMATIQ_PROM_PORT=str(prom_port))
    output = lambda: log.read_text(encoding="utf-8", errors="replace")  # noqa: E731

    def alive() -> None:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited with code {proc.returncode}:\n{output()}")

    broker = make_broker(redis_server.url)
    try:
        wait_until(lambda: "worker started" in output(), 90, "the worker to start", alive)
        dramatiq_url = f"http://127.0.0.1:{prom_port}/metrics"
        before = httpx.get(dramatiq_url, timeout=5)
        assert before.status_code == 200
        assert "# TYPE dramatiq_messages_total counter" in before.text
        assert _sample(before.text, "dramatiq_messages_total", actor_name=ACTOR_DELIVER_HOOK) is None

        DramatiqQueue(broker).deliver_hook("no-such-delivery")  # processed (nothing to deliver), not failed

        def counted() -> bool:
            text = httpx.get(dramatiq_url, timeout=5).text
            return _sample(text, "dramatiq_messages_total", queue_name=QUEUE_OUTBOUND,
                           actor_name=ACTOR_DELIVER_HOOK) == 1.0

        wait_until(counted, 30, "dramatiq_messages_total to count the message", alive)
        text = httpx.get(dramatiq_url, timeout=5).text
        assert _sample(text, "dramatiq_message_errors_total", actor_name=ACTOR_DELIVER_HOOK) in (None, 0.0)
        assert _sample(text, "dramatiq_message_duration_milliseconds_count", queue_name=QUEUE_OUTBOUND,
                       actor_name=ACTOR_DELIVER_HOOK) == 1.0
        assert _sample(text, "dramatiq_messages_inprogress", actor_name=ACTOR_DELIVER_HOOK) == 0.0
        # The worker's own metrics stay on METRICS_PORT, apart.
        own = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert _sample(own, "relance_actor_messages_total", queue=QUEUE_OUTBOUND, actor=ACTOR_DELIVER_HOOK,
                       outcome="ok") == 1.0
        assert "dramatiq_messages_total" not in own
    finally:
        broker.close()
        stop_process(proc)
    assert "Traceback" not in output(), output()
    # Nothing was written to dramatiq's multiprocess directory: the counters live in the process.
    assert not any((tmp_path / "dramatiq-prometheus").iterdir())


def test_metrics_are_off_by_default(tmp_path: Path, database: str, redis_server: ServerProcess) -> None:
    prom_port = free_port()
    proc, log = _start_worker(tmp_path, database, redis_server.url, DRAMATIQ_PROM_HOST="127.0.0.1",
                              DRAMATIQ_PROM_PORT=str(prom_port))
    try:
        wait_until(lambda: "worker started" in log.read_text(encoding="utf-8", errors="replace"), 90,
                   "the worker to start")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{prom_port}/metrics", timeout=5)
    finally:
        stop_process(proc)
    # dramatiq's module (which creates its directory on import) was not even imported.
    assert not (tmp_path / "dramatiq-prometheus").exists()
