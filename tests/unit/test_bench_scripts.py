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
    variants, refusals = done.stdout.split("Refused requests")
    rows = [line for line in variants.splitlines()
            if line.startswith("| ") and "µs" not in line and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "bare", "real", "real, no signature", "real, no signature, no group commit"]
    assert all(float(row.split("|")[2]) > 0 for row in rows)
    refused = [line for line in refusals.splitlines()
               if line.startswith("| ") and "µs" not in line and "---" not in line]
    assert [row.split("|")[1].strip() for row in refused] == [
        "bare 403", "unsigned", "signature malformed", "Content-Length past the cap",
        "forged signature, too many fields", "read, parse, then 403 (before)"]
    assert all(float(row.split("|")[2]) > 0 for row in refused)


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


def test_webhook_bench_measures_the_real_load_beside_a_flood() -> None:
    """--flood: the real endpoint measured again beside unsigned many-field requests, side by side."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "webhook_bench.py"), "--duration", "1",
                           "--warmup", "0.5", "--connections", "2", "--tool", "python", "--pool", "2000",
                           "--flood", "2", "--flood-fields", "5000"],
                          capture_output=True, text=True, timeout=240, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| 2 ")]
    endpoints = {row[2].strip(): row for row in rows if len(row) > 13}
    assert set(endpoints) == {"bare", "real", "real + flood"}
    assert int(endpoints["real + flood"][3]) > 0 and int(endpoints["real + flood"][7]) == 0  # no real request lost
    assert int(endpoints["real + flood"][12]) == int(endpoints["real + flood"][13]) > 0
    assert "Under a flood: 2 more connections sending unsigned requests of 5000 fields" in done.stdout
    (flood,) = [row for row in rows if len(row) == 11]
    answers = flood[7].strip()
    assert answers.endswith("× 403") and "," not in answers  # every flood request refused 403, nothing else


def test_tick_bench_times_a_tick_for_each_size() -> None:
    """Two tiny books on its own SecantusDB: each row has its tick times and operation counts."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "tick_bench.py"), "--sizes", "50,200",
                           "--ticks", "2", "--due", "3"], capture_output=True, text=True, timeout=240, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith(("| 50 ", "| 200 "))]
    assert [row[1].strip() for row in rows] == ["50", "200"]
    for row in rows:
        assert float(row[3]) > 0 and float(row[4]) > 0 and float(row[5]) > 0  # tick times, operations
        assert int(row[6]) == 3  # the due follow-ups claimed, once
    assert "median tick, largest/smallest book:" in done.stdout


def test_console_bench_prints_every_path_beside_the_empty_store() -> None:
    """A tiny run on its own SecantusDB: each path answered 200 on both stores, side by side."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "console_bench.py"), "--clients", "60",
                           "--requests", "2"], capture_output=True, text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| `")]
    assert [row[1].strip() for row in rows] == [
        "`/healthz`", "`/`", "`/clients`", "`/campaigns`", "`/inbox`", "`/api/v1/contacts`"]
    for row in rows:
        assert float(row[2]) > 0 and float(row[4]) > 0 and row[7].strip() == "200", row
    assert "60 clients" in done.stdout and "Slowest with 60 clients" in done.stdout
