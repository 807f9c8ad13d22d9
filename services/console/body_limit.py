"""A request body's size, checked from its Content-Length before anything reads it.

FastAPI reads a declared JSON body, and Starlette a form, whole into memory before the API key or the
session is looked at: without this, anyone reaching the console could make it hold a body of any size.
The pages' file imports have their own, larger limit (:mod:`services.console.web.uploads`), which answers
with the page's own message.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
UPLOAD_PATHS = ("/clients/import", "/invoices/import")


class BodyLimit:
    """Answer 413 (a problem document) to a request whose declared body is over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in UPLOAD_PATHS:
            declared = dict(scope.get("headers") or []).get(b"content-length", b"")
            if declared and (not declared.isdigit() or len(declared) > 18 or int(declared) > self.limit):
                body = json.dumps({"type": "about:blank", "title": "Content Too Large", "status": 413,
                                   "detail": f"the request's body is over {self.limit // 1024} KiB"}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/problem+json"),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
