#!/usr/bin/env python3
"""What the webhook's own code costs per request, without HTTP, MongoDB or Redis.

A companion to ``webhook_bench.py``, whose figures mix the webhook with uvicorn, SecantusDB,
Redis and wrk sharing the machine. Here the ASGI applications are called directly in one event
loop (32 requests in flight, signed WhatsApp inbound forms), with an in-memory store and queue
behind the project's own interfaces, and the process CPU time per request is printed for:

- **bare**: the benchmark's baseline (parse the form, answer TwiML);
- **real**: ``services.webhook.create_app`` (size and form checks, X-Twilio-Signature through
  the SDK, the event document, the group commit);
- **real, no signature** and **real, no signature, no group commit**: the same with one part
  replaced by a no-op, so the differences show what each part costs.

Usage: ``python bench/webhook_cpu.py [--requests 20000] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
for folder in (REPO, REPO / "bench"):  # run as a plain script from anywhere
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from twilio.request_validator import RequestValidator  # noqa: E402
from webhook_bench import PATH, PUBLIC_BASE_URL, TOKEN, bare_app  # noqa: E402

from services import recorder, webhook  # noqa: E402
from shared.clock import SystemClock  # noqa: E402
from shared.fakes import RecordingQueue  # noqa: E402

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class MemoryStore:
    """Every event is new; nothing is written anywhere."""

    def record_events(self, events: list[tuple[str, dict[str, Any]]], now: datetime) -> list[bool]:
        return [True] * len(events)


def signed_requests(count: int) -> list[tuple[bytes, bytes]]:
    """(body, signature) of ``count`` WhatsApp inbound forms, each with its own MessageSid."""
    validator = RequestValidator(TOKEN)
    out = []
    for i in range(count):
        sid = f"SM{i:032d}"
        form = {"SmsMessageSid": sid, "NumMedia": "0", "ProfileName": "Marie", "MessageType": "text",
                "SmsSid": sid, "WaId": "33612345678", "SmsStatus": "received",
                "Body": "Bonjour, je vous paie demain sans faute", "To": "whatsapp:+14155238886",
                "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": "AC" + "0" * 32,
                "From": "whatsapp:+33612345678", "ApiVersion": "2010-04-01"}
        out.append((urlencode(form).encode(), validator.compute_signature(PUBLIC_BASE_URL + PATH, form).encode()))
    return out


async def _call(app: ASGIApp, body: bytes, signature: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", str(len(body)).encode()), (b"x-twilio-signature", signature)],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses != [200]:
        raise RuntimeError(f"the application answered {statuses}")


def cpu_per_request(make_app: Callable[[], ASGIApp], requests: list[tuple[bytes, bytes]],
                    in_flight: int = 32) -> float:
    """Process CPU time per request, in microseconds."""

    async def run() -> float:
        app = make_app()
        pending = iter(requests)

        async def client() -> None:
            for body, signature in pending:
                await _call(app, body, signature)

        start = time.process_time()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        return (time.process_time() - start) / len(requests) * 1e6

    return asyncio.run(run())


def real_app() -> ASGIApp:
    deps = webhook.WebhookDeps(store=MemoryStore(), queue=RecordingQueue(), clock=SystemClock(),  # type: ignore[arg-type]
                               auth_token=TOKEN, public_base_url=PUBLIC_BASE_URL, redis_ping=lambda: True)
    return webhook.create_app(deps)  # type: ignore[return-value]


@contextmanager
def without(*parts: str) -> Iterator[None]:
    """Replace parts of the real path with no-ops for the duration."""

    async def record(self: Any, event_id: str, doc: dict[str, Any], *, enqueue_inbound: bool = False) -> bool:
        return True

    patches = {"signature": mock.patch.object(webhook, "_signature_ok", lambda *args: True),
               "group commit": mock.patch.object(recorder.EventRecorder, "record", record)}
    with ExitStack() as stack:
        for part in parts:
            stack.enter_context(patches[part])
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    requests = signed_requests(args.requests)
    variants: list[tuple[str, Callable[[], ASGIApp], tuple[str, ...]]] = [
        ("bare", bare_app, ()), ("real", real_app, ()), ("real, no signature", real_app, ("signature",)),
        ("real, no signature, no group commit", real_app, ("signature", "group commit")),
    ]
    results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for _ in range(args.rounds):  # interleaved, so a noisy moment hits every variant
        for name, make_app, parts in variants:
            with without(*parts):
                results[name].append(cpu_per_request(make_app, requests))
    print(f"CPU per request in one process, ASGI only ({args.requests} requests, 32 in flight, "
          f"best of {args.rounds}):\n")
    print("| variant | µs CPU / request |\n| --- | ---: |")
    for name, values in results.items():
        print(f"| {name} | {min(values):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
