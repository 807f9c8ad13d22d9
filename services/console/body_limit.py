"""A request body's size, checked from its Content-Length before anything reads it, and counted as it streams.

FastAPI reads a declared JSON body, and Starlette a form, whole into memory before the API key or the
session is looked at: without this, anyone reaching the console could make it hold a body of any size.
A body sent without Content-Length (chunked) is counted as it arrives and refused once past the limit,
as the webhook does for its own (:func:`services.webhook_request._read_body`).
The pages' file imports have their own, larger limit (:mod:`services.console.web.uploads`), which answers
with the page's own message.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
UPLOAD_PATHS = ("/clients/import", "/invoices/import")


class _TooLarge(Exception):
    """The body streamed past the limit: raised into whatever reads it (which may answer it), answered 413 here."""


class BodyLimit:
    """Answer 413 (a problem document) to a request whose body is, or streams, over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared and (not declared.isdigit() or len(declared) > 18 or int(declared) > self.limit):
            await self._refuse(send)
            return
        size = 0
        started = over = False

        async def counted() -> Message:
            nonlocal size, over
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    over = True
                    raise _TooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # what the app answers to the body it could not read (FastAPI: a 400) gives way to the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            pass
        if over and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"type": "about:blank", "title": "Content Too Large", "status": 413,
                           "detail": f"the request's body is over {self.limit // 1024} KiB"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
