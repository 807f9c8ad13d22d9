"""The scheduler process: the loop that runs the tick (:mod:`shared.usecases.scheduling`) every few seconds."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

from shared.clock import Clock
from shared.domain.repositories import Repositories
from shared.metrics import observe_tick
from shared.ports import TaskQueue
from shared.usecases.scheduling import QUICK_STEPS, STEPS, sweep_period, tick
from shared.usecases.tick_guard import Backfill, describe_problem

__all__ = ["run_forever"]

log = logging.getLogger(__name__)


def run_forever(store: Repositories, queue: TaskQueue, clock: Clock, *, interval: float, batch: int,
                stale_after: timedelta, stop: threading.Event | None = None,
                backfill: Backfill | None = None) -> None:
    """Tick every ``interval`` seconds until SIGTERM/SIGINT (or ``stop`` is set).

    Every tick claims what is due and resumes ended pauses; the sweeps for stuck work run at the
    first tick and then once per :func:`~shared.usecases.scheduling.sweep_period`.
    """
    stop = stop or threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("scheduler stopping (signal %s)", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    log.info("scheduler started: every %.1fs, batch %d", interval, batch)
    next_sweep = None
    while not stop.is_set():
        try:
            now = clock.now()
            sweep = next_sweep is None or now >= next_sweep
            report = tick(store, queue, clock, batch=batch, stale_after=stale_after, backfill=backfill,
                          steps=STEPS if sweep else QUICK_STEPS)
            if sweep:
                next_sweep = now + sweep_period(stale_after)
            if report.failed_steps or report.quarantined or report.skipped:
                log.warning("%s", report.line())
                observe_tick("warning", len(report.claimed))
            else:
                observe_tick("ok", len(report.claimed))
                if report.eventful():
                    log.info("%s", report.line())
            # A full batch means more is due: go again at once.
            if len(report.claimed) >= batch:
                continue
        except Exception as exc:  # the steps are guarded: only a bug in tick itself lands here
            log.error("scheduler tick failed unexpectedly: %s", describe_problem(exc))
            observe_tick("failed", 0)
            log.debug("scheduler tick failed", exc_info=exc)
        stop.wait(interval)
