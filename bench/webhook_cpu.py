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

A second table prices the requests the webhook refuses (issue 9: an unsigned or oversized
request must cost about what a bare 403 costs), each a body of 10,000 fields (just under the
64 KiB cap) unless said otherwise:

- **bare 403**: a Starlette route that answers 403 and reads nothing, the yardstick;
- **unsigned**, **signature malformed**, **Content-Length past the cap**: refused by the header
  checks, before the body is read;
- **forged signature, too many fields**: a well-formed signature lets the body be read; the
  fields are counted on the raw bytes, none is parsed;
- **read, parse, then 403**: what the webhook did before it refused before working (a bare
  route that reads and parses the body, then answers 403), for comparison.

Usage: ``python bench/webhook_cpu.py [--requests 20000] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
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
from webhook_bench import PATH, PUBLIC_BASE_URL, TOKEN, bare_app, flood_body  # noqa: E402

from services import recorder, webhook, webhook_request  # noqa: E402
from shared.clock import SystemClock  # noqa: E402
from shared.fakes import RecordingQueue  # noqa: E402

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class _NoEvents:
    """Every event is new; nothing is written anywhere."""

    def record_many(self, events: list[tuple[str, dict[str, Any]]], now: datetime) -> list[bool]:
        return [True] * len(events)


class MemoryStore:
    """The one repository the webhook's group commit writes to, writing nothing."""

    events = _NoEvents()


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


async def _call(app: ASGIApp, body: bytes, signature: bytes | None, expect: int = 200,
                declared: int | None = None) -> None:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/x-www-form-urlencoded"),
               (b"content-length", str(len(body) if declared is None else declared).encode())]
    if signature is not None:
        headers.append((b"x-twilio-signature", signature))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses != [expect]:
        raise RuntimeError(f"the application answered {statuses}, not {expect}")


def cpu_per_request(make_app: Callable[[], ASGIApp], requests: Sequence[tuple[bytes, bytes | None]],
                    in_flight: int = 32, expect: int = 200, declared: int | None = None) -> float:
    """Process CPU time per request, in microseconds."""

    async def run() -> float:
        app = make_app()
        pending = iter(requests)

        async def client() -> None:
            for body, signature in pending:
                await _call(app, body, signature, expect, declared)

        start = time.process_time()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        return (time.process_time() - start) / len(requests) * 1e6

    return asyncio.run(run())


def bare_403_app() -> ASGIApp:
    """The yardstick: a route that answers 403 without reading anything."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def refuse(request: Request) -> Response:
        return PlainTextResponse("forbidden", status_code=403)

    return Starlette(routes=[Route(PATH, refuse, methods=["POST"])])  # type: ignore[return-value]


def parse_then_403_app() -> ASGIApp:
    """What the webhook did before: read the body and parse every field, then refuse."""
    from urllib.parse import parse_qsl

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def refuse(request: Request) -> Response:
        parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=True)
        return PlainTextResponse("forbidden", status_code=403)

    return Starlette(routes=[Route(PATH, refuse, methods=["POST"])])  # type: ignore[return-value]


def refusals(count: int) -> list[tuple[str, Callable[[], ASGIApp], list[tuple[bytes, bytes | None]], int, int | None]]:
    """(name, app, requests, expected status, declared Content-Length) of each refused request priced."""
    flood = flood_body(10_000)
    forged = b"A" * 27 + b"="

    def same(signature: bytes | None) -> list[tuple[bytes, bytes | None]]:
        return [(flood, signature)] * count

    return [
        ("bare 403", bare_403_app, same(None), 403, None),
        ("unsigned", real_app, same(None), 403, None),
        ("signature malformed", real_app, same(b"x"), 403, None),
        ("Content-Length past the cap", real_app, same(forged), 413, 10 * 1024 * 1024),
        ("forged signature, too many fields", real_app, same(forged), 413, None),
        ("read, parse, then 403 (before)", parse_then_403_app, [(flood, None)] * max(1, count // 20), 403, None),
    ]


def real_app() -> ASGIApp:
    deps = webhook.WebhookDeps(store=MemoryStore(), queue=RecordingQueue(), clock=SystemClock(),  # type: ignore[arg-type]
                               auth_token=TOKEN, public_base_url=PUBLIC_BASE_URL, redis_ping=lambda: True)
    return webhook.create_app(deps)  # type: ignore[return-value]


@contextmanager
def without(*parts: str) -> Iterator[None]:
    """Replace parts of the real path with no-ops for the duration."""

    async def record(self: Any, event_id: str, doc: dict[str, Any], *, enqueue_inbound: bool = False) -> bool:
        return True

    patches: dict[str, Any] = {"signature": mock.patch.object(webhook_request, "_signature_ok", lambda *args: True),
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
    priced = refusals(args.requests)
    refused: dict[str, list[float]] = {name: [] for name, *_ in priced}
    for _ in range(args.rounds):
        for name, make_app, reqs, expect, declared in priced:
            refused[name].append(cpu_per_request(make_app, reqs, expect=expect, declared=declared))
    print(f"\nRefused requests (bodies of 10,000 fields, {len(flood_body(10_000)):,} bytes; "
          f"'before' measured on {max(1, args.requests // 20)} requests):\n")
    print("| refused request | µs CPU / refusal | × bare 403 |\n| --- | ---: | ---: |")
    yardstick = min(refused["bare 403"])
    for name, values in refused.items():
        print(f"| {name} | {min(values):.1f} | {min(values) / yardstick:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
