"""/api/v1/hooks: the business's outbound webhooks (as ``relance hooks``; docs/webhooks-out.md)."""

from __future__ import annotations

import hashlib
import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router, by_key
from services.console.guard import Console, decode_cursor, encode_cursor, idempotent
from services.console.schemas import HookCreatedOut, HookIn, HookOut, PageOut
from shared.usecases.outbound import add_subscription, remove_subscription, subscriptions_page


def router(console: Console) -> APIRouter:
    """The webhooks routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/hooks", response_model=PageOut[HookOut], tags=["webhooks"])
    def hooks(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[HookOut]:
        page = subscriptions_page(store, after=decode_cursor("hooks", cursor), limit=limit)
        return PageOut(items=[HookOut.of(sub, last) for sub, last in page.items],
                       next_cursor=encode_cursor("hooks", page.next_after))

    @api.post("/hooks", response_model=HookCreatedOut, status_code=201, tags=["webhooks"])
    def add(body: HookIn, request: Request, key: Writer) -> Response:
        # With an Idempotency-Key, the subscription's id comes from it (and the request): a retry that takes over
        # the claim of a process that died before answering gets the subscription (and secret) already stored.
        given = request.headers.get("Idempotency-Key")
        seed = json.dumps([key.name, given, body.url, sorted(body.events)])
        derived = f"wh_{hashlib.sha256(seed.encode()).hexdigest()[:12]}" if given else None

        def run() -> HookCreatedOut:
            sub = add_subscription(store, body.url, body.events, now=console.clock.now(), by=by_key(key),
                                   subscription_id=derived)
            return HookCreatedOut(**HookOut.of(sub, None).model_dump(), secret=sub.secret)
        return idempotent(console, request, key, body, run, status=201)

    @api.delete("/hooks/{hook_id}", status_code=204, tags=["webhooks"])
    def remove(hook_id: str, key: Writer) -> Response:
        remove_subscription(store, hook_id, by=by_key(key), now=console.clock.now())
        return Response(status_code=204)

    return api
