"""The scheduler's loop: every tick claims what is due, the sweeps for stuck work run once per period."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

import services.scheduler as loop
from shared.adapters.memory import memory_repositories
from shared.clock import FakeClock
from shared.fakes import RecordingQueue
from shared.usecases.scheduling import QUICK_STEPS, STEPS, TickReport, sweep_period


def _run(monkeypatch: pytest.MonkeyPatch, stale_after: timedelta, ticks: int, tick_every: timedelta) -> list[str]:
    """Run the loop for ``ticks`` ticks, the clock moving ``tick_every`` per tick; which steps each ran."""
    clock, stop, ran = FakeClock(), threading.Event(), []

    def fake_tick(*args: Any, steps: Sequence[tuple[str, Any]], **kwargs: Any) -> TickReport:
        ran.append("sweep" if tuple(steps) == STEPS else "quick" if tuple(steps) == QUICK_STEPS else "other")
        clock.advance(tick_every)
        if len(ran) >= ticks:
            stop.set()
        return TickReport()

    monkeypatch.setattr(loop, "tick", fake_tick)
    loop.run_forever(memory_repositories(), RecordingQueue(), clock, interval=0, batch=10,
                     stale_after=stale_after, stop=stop)
    return ran


def test_the_sweeps_run_at_the_first_tick_then_once_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sweep_period(timedelta(minutes=5)) == timedelta(seconds=10)
    ran = _run(monkeypatch, timedelta(minutes=5), ticks=9, tick_every=timedelta(seconds=3))
    # t=0 sweep, 3 6 9 quick, 12 sweep, 15 18 21 quick, 24 sweep
    assert ran == ["sweep", "quick", "quick", "quick", "sweep", "quick", "quick", "quick", "sweep"]


def test_a_short_stale_period_sweeps_at_least_four_times_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sweep_period(timedelta(seconds=8)) == timedelta(seconds=2)
    ran = _run(monkeypatch, timedelta(seconds=8), ticks=4, tick_every=timedelta(seconds=3))
    assert ran == ["sweep"] * 4


def test_the_quick_steps_are_what_is_due_now() -> None:
    assert [name for name, _ in QUICK_STEPS] == ["claim", "backfill"]  # resume: the sweep's
    assert {name for name, _ in QUICK_STEPS} < {name for name, _ in STEPS}


def test_each_tick_is_counted_with_what_it_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY

    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ok, claimed = count("relance_scheduler_ticks_total", outcome="ok"), count("relance_scheduler_claimed_total")
    clock, stop, calls = FakeClock(), threading.Event(), []

    def fake_tick(*args: Any, **kwargs: Any) -> TickReport:
        calls.append(1)
        if len(calls) >= 2:
            stop.set()
        return TickReport(claimed=["c1:a", "c1:b"] if len(calls) == 1 else [])

    monkeypatch.setattr(loop, "tick", fake_tick)
    loop.run_forever(memory_repositories(), RecordingQueue(), clock, interval=0, batch=10,
                     stale_after=timedelta(minutes=5), stop=stop)
    assert count("relance_scheduler_ticks_total", outcome="ok") == ok + 2
    assert count("relance_scheduler_claimed_total") == claimed + 2
