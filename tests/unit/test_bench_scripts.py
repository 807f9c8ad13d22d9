"""The benchmark scripts still run (tiny sizes): a script that rots is worse than none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_webhook_cpu_script_prints_every_variant() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "webhook_cpu.py"), "--requests", "300",
                           "--rounds", "1"], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines()
            if line.startswith("| ") and "µs" not in line and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "bare", "real", "real, no signature", "real, no signature, no group commit"]
    assert all(float(row.split("|")[2]) > 0 for row in rows)


def test_webhook_bench_measures_both_endpoints_at_each_connection_count() -> None:
    """A tiny run on its own Redis and SecantusDB, with the Python load generator."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "webhook_bench.py"), "--duration", "1",
                           "--warmup", "0.5", "--connections", "2,4", "--tool", "python", "--pool", "3000"],
                          capture_output=True, text=True, timeout=240, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| 2 ") or line.startswith("| 4 ")]
    assert sorted((row[1].strip(), row[2].strip()) for row in rows) == [
        ("2", "bare"), ("2", "real"), ("4", "bare"), ("4", "real")]
    for row in rows:
        assert int(row[3]) > 0 and int(row[7]) == 0  # requests answered, no errors
        if row[2].strip() == "real":
            assert int(row[12]) == int(row[13]) > 0  # every stored event enqueued
    assert "real/bare throughput at 2 connections" in done.stdout
    assert "real/bare throughput at 4 connections" in done.stdout
    assert "target ≥ 0.50:" in done.stdout
