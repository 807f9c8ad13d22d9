"""dramatiq's own Prometheus middleware, for workers that ``relance worker`` runs in-process.

:class:`dramatiq.middleware.prometheus.Prometheus` counts every actor message
(``dramatiq_messages_total``, ``dramatiq_message_errors_total``, ``dramatiq_message_retries_total``,
``dramatiq_message_rejects_total``, ``dramatiq_messages_inprogress``,
``dramatiq_delayed_messages_inprogress``, ``dramatiq_message_duration_milliseconds``, labelled by
queue and actor only). Under the ``dramatiq`` command its counters go to prometheus_client's
multiprocess files and a forked process serves them; ``relance worker`` is one process, which
imported prometheus_client before any multiprocess directory could be set, so the counters stay in
memory and :class:`DramatiqPrometheus` serves them itself, on dramatiq's exposition address
(``DRAMATIQ_PROM_HOST``/``DRAMATIQ_PROM_PORT``, i.e. ``dramatiq_prom_host``/``dramatiq_prom_port``).

Importing this module imports dramatiq's, which creates its multiprocess directory
(``dramatiq_prom_db``, by default ``<tmp>/dramatiq-prometheus``): only the workers import it, and
only when metrics are on.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from dramatiq.middleware.prometheus import Prometheus
from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)

_MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class DramatiqPrometheus(Prometheus):
    """dramatiq's Prometheus middleware with its metrics kept in :attr:`registry`, served by :meth:`serve`.

    Its metrics are created with the middleware (dramatiq's own ``after_process_boot``, which the
    ``dramatiq`` command calls in each worker process and ``relance worker`` never emits), so a
    message enqueued, delayed or processed always finds them; no fork is asked for.
    """

    def __init__(self) -> None:
        super().__init__()
        self.registry = CollectorRegistry()
        self._server: Any = None
        self._booted = False
        self.after_process_boot(None)

    @property
    def forks(self) -> list[Any]:
        """None: the exposition server runs in a thread of this process (:meth:`serve`)."""
        return []

    def after_process_boot(self, broker: Any) -> None:
        """Create dramatiq's metrics once (its own code) and register them in :attr:`registry`.

        dramatiq points prometheus_client at its multiprocess directory through the environment;
        that is undone here, so that nothing else this process starts (or imports later) writes
        multiprocess files that no one reads.
        """
        if self._booted:
            return
        self._booted = True
        saved = {name: os.environ.get(name) for name in _MULTIPROC_VARIABLES}
        try:
            super().after_process_boot(broker)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        for metric in (self.total_messages, self.total_errored_messages, self.total_retried_messages,
                       self.total_rejected_messages, self.inprogress_messages, self.inprogress_delayed_messages,
                       self.message_durations):
            self.registry.register(metric)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Stop the exposition server (dramatiq's own clean-up is for multiprocess files: none here)."""
        self.close()

    def serve(self, host: str, port: int) -> bool:
        """Serve :attr:`registry` on ``host:port`` (GET /metrics) in a daemon thread; False when the port is taken."""
        try:
            self._server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:  # taken (several workers on one host with one .env): run without
            log.warning("dramatiq metrics off: %s:%d cannot be served (%s)", host, port, exc.strerror or exc)
            return False
        assert isinstance(thread, threading.Thread)
        log.info("dramatiq metrics on %s:%d/metrics", host, port)
        return True

    def close(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
