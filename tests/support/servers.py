"""Test servers: any ASGI app served by uvicorn in a thread, the Twilio simulator, and a webhook recorder."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from devtools.simulator import create_app as create_simulator


def run_asgi_in_thread(app: Any, *, timeout: float = 10.0) -> tuple[str, Callable[[], None]]:
    """Start ``app`` on 127.0.0.1 (an OS-chosen port); return its base URL and a stop function."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None, as the project's processes: uvicorn's default config would give its loggers a
    # handler of their own and stop them propagating to the root (later logging tests then miss them).
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"asgi-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the ASGI server on port {port} did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=timeout)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Context manager around :func:`run_asgi_in_thread`; yields the base URL."""
    base_url, stop = run_asgi_in_thread(app)
    try:
        yield base_url
    finally:
        stop()


@contextlib.contextmanager
def simulator_serving(account_sid: str, auth_token: str) -> Iterator[str]:
    """The Twilio simulator served as :func:`serve_asgi` (status callbacks quick, tried once): its base URL."""
    app = create_simulator(account_sid=account_sid, auth_token=auth_token, callback_delay=0.01, callback_attempts=1)
    with serve_asgi(app) as url:
        yield url


@contextlib.contextmanager
def simulator_control(sim_url: str) -> Iterator[httpx.Client]:
    """A client of the simulator at ``sim_url``, its state reset first."""
    with httpx.Client(base_url=sim_url, timeout=5) as client:
        client.post("/_sim/reset").raise_for_status()
        yield client


@dataclass
class Received:
    """One form a :class:`WebhookRecorder` received."""

    path: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    signature_valid: bool


@dataclass
class WebhookRecorder:
    """A tiny Starlette app recording Twilio-style form posts and checking their signature.

    Any POST path is accepted and answered 200 (``fail_next[path] = n`` answers 500 to the
    next ``n`` posts on that path, to exercise retries). The signature is verified with the
    real ``twilio.request_validator.RequestValidator`` against the URL the request reached.
    """

    auth_token: str
    base_url: str = ""  # set by whoever serves it
    received: list[Received] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        """The ASGI app to serve."""

        async def record(request: Request) -> Response:
            raw = (await request.body()).decode()
            params = dict(parse_qsl(raw, keep_blank_values=True))
            url = str(request.url)
            signature = request.headers.get("x-twilio-signature", "")
            valid = bool(RequestValidator(self.auth_token).validate(url, params, signature))
            with self._lock:
                path = request.url.path
                if self.fail_next.get(path, 0) > 0:
                    self.fail_next[path] -= 1
                    return PlainTextResponse("boom", status_code=500)
                self.received.append(Received(path, url, params, dict(request.headers), valid))
            return PlainTextResponse("<Response/>", media_type="application/xml")

        return Starlette(routes=[Route("/{path:path}", record, methods=["POST"])])

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self.received.clear()
            self.fail_next.clear()

    def items(self, path: str | None = None, sid: str | None = None) -> list[Received]:
        """What was received so far (on a path, about a MessageSid), in arrival order."""
        with self._lock:
            return [
                r
                for r in self.received
                if (path is None or r.path == path)
                and (sid is None or r.params.get("MessageSid") == sid)
            ]

    def wait_for(
        self, count: int, *, path: str | None = None, sid: str | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """Wait until at least ``count`` matching posts arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.items(path, sid)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)


class FreezableProxy:
    """A TCP proxy to a real server that can stop forwarding (a network partition without RST).

    ``freeze()``: bytes already in flight and new ones are held, connections stay open, so a
    client waits as it would on a hung link; ``thaw()`` lets them through again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def freeze(self) -> None:
        """Stop forwarding (connections stay open)."""
        self._open.clear()

    def thaw(self) -> None:
        """Forward again."""
        self._open.set()

    def close(self) -> None:
        """Stop the proxy and drop every connection."""
        self._closed = True
        self._open.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            self._open.wait()
            try:
                sink.sendall(data)
            except OSError:
                return


@contextlib.contextmanager
def serve_recorder(auth_token: str) -> Iterator[WebhookRecorder]:
    """A :class:`WebhookRecorder` served on loopback, its ``base_url`` set."""
    rec = WebhookRecorder(auth_token)
    with serve_asgi(rec.app()) as url:
        rec.base_url = url
        yield rec


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` and wait for it; kill it when it has not ended within 30 seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll ``predicate`` every 0.05 s until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               alive: Callable[[], None] | None = None) -> None:
    """Poll ``predicate`` every 0.3 s until true; ``alive`` (raising when a process died) each time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
