"""The webhook's metrics: its request latency (an ASGI middleware) and ``GET /metrics``.

``GET /metrics`` answers Prometheus's text format: the process's counters and histograms, then
the installation's gauges read from MongoDB and Redis at that moment
(:class:`shared.metrics.StoreCollector`). Open by default, as Prometheus expects of a scrape
target on a private network; with METRICS_TOKEN set it wants ``Authorization: Bearer <token>``
(401 otherwise).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence

from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.domain.repositories import Repositories
from shared.metrics import CONTENT_TYPE_LATEST, StoreCollector, exposition, observe_request

OTHER_ROUTE = "other"  # any path the application does not serve: never the raw path (unbounded labels)


class RequestTimer:
    """ASGI middleware: every HTTP request's duration, by route, method and answer status."""

    def __init__(self, app: ASGIApp, *, routes: Collection[str],
                 observe: Callable[[str, str, int, float], None] = observe_request,
                 templates: Sequence[tuple[re.Pattern[str], str]] = ()) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self.observe = observe
        self.templates = tuple(templates)  # (path regex, template) of routes with parameters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the application raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope.get("path", "")
            route = path if path in self.routes else self._template(path)
            method = scope.get("method", "GET") if route != OTHER_ROUTE else "other"
            self.observe(route, method, status, time.perf_counter() - started)


    def _template(self, path: str) -> str:
        """The template of the route serving ``path`` (``/api/v1/invoices/{reference}``), else OTHER_ROUTE."""
        return next((template for regex, template in self.templates if regex.match(path)), OTHER_ROUTE)


def metrics_endpoint(store: Repositories | None, queue_depths: Callable[[], dict[tuple[str, str], int]],
                     token: str) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler (bearer ``token`` required when not empty); with ``store``, the
    installation's gauges too (the webhook serves them; the console only its own requests)."""
    registry = CollectorRegistry(auto_describe=False)
    if store is not None:
        registry.register(StoreCollector(store, queue_depths))
    expected = f"Bearer {token}".encode()

    async def metrics(request: Request) -> Response:
        if token:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return PlainTextResponse("a valid METRICS_TOKEN bearer token is required", status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(exposition, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
