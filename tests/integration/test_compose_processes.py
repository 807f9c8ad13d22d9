"""Each Relance process starts with exactly the environment compose.yaml gives it, and nothing else.

The environment of each compose service that runs Relance is resolved from the .env of an
operator who set every secret (tests/unit/test_deploy_files.py checks which secrets reach which
service); only the stores' URLs are swapped for the test servers', whose credentials compose's
URLs would not match. The service's own command then runs with that environment alone, from an
empty directory (no .env to fall back on): the webhook must answer /readyz, a worker and the
scheduler must log that they started. A process that reads a setting compose does not give it
stops with a configuration error instead, and the test shows its output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.embedded import ServerProcess, free_port
from tests.support.compose import as_argv, container_environment, operator_env, services
from tests.support.servers import stop_process, wait_until

pytestmark = pytest.mark.integration

RELANCE_SERVICES = sorted(name for name, svc in services().items() if "build" in svc)
STARTED = {"scheduler": "scheduler started", "worker": "worker started"}


def _output(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


@pytest.mark.parametrize("name", RELANCE_SERVICES)
def test_service_starts_with_its_compose_environment_alone(
    name: str, tmp_path: Path, database: str, redis_server: ServerProcess
) -> None:
    service = services()[name]
    dotenv = operator_env()
    # Nothing outside this machine: Twilio and Gemini calls (none expected at start) fail fast.
    closed = f"http://127.0.0.1:{free_port()}"
    dotenv.update({"BACKEND_PORT": str(free_port()), "CONSOLE_PORT": str(free_port()),
                   "TWILIO_API_BASE_URL": closed, "GEMINI_API_BASE_URL": closed})
    env = container_environment(service, dotenv)
    assert env["MONGODB_URI"].startswith("mongodb://") and env["REDIS_URL"].startswith("redis://")
    env.update({"MONGODB_URI": database, "REDIS_URL": redis_server.url})
    # What the Dockerfiles' ENV add; no PATH entries are needed (the interpreter is named).
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)})
    argv = as_argv(service["command"])
    assert argv[0] == "relance"
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", *argv[1:]], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:

        def alive() -> None:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with code {proc.returncode} using the environment compose "
                                     f"gives it:\n{_output(log)}")

        if argv[1] in ("webhook", "console"):
            url = (f"http://127.0.0.1:{dotenv['BACKEND_PORT']}/readyz" if argv[1] == "webhook"
                   else f"http://127.0.0.1:{dotenv['CONSOLE_PORT']}/healthz")

            def ready() -> bool:
                try:
                    return httpx.get(url, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, 90, f"{name} to answer {url}", alive)
        else:
            wait_until(lambda: STARTED[argv[1]] in _output(log), 90, f"{name} to log {STARTED[argv[1]]!r}", alive)
    finally:
        stop_process(proc)
    assert "Traceback" not in _output(log), _output(log)
