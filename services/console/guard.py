"""What every /api/v1 request goes through: its API key, its cursor, and the replay of a retried POST."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.console.problems import MEDIA_TYPE, Problem, problem_response
from shared.clock import Clock
from shared.domain.api_keys import ApiKey, KeptResponse
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.errors import Conflict, InputError, NotFound
from shared.ports import TaskQueue
from shared.usecases.api_keys import authenticate

MAX_IDEMPOTENCY_KEY = 200
# An unfinished claim this old belongs to a request whose process died: a retry may run it.
ABANDONED_AFTER = timedelta(minutes=2)
BEARER = {"WWW-Authenticate": 'Bearer realm="relance"'}


@dataclass(frozen=True)
class Console:
    """What the console's routes use: the store, the clock, the queue of redrafts, the phones' default region."""

    store: Repositories
    clock: Clock
    queue: TaskQueue | None = None
    default_region: str = "FR"
    metrics_token: str = ""  # GET /metrics asks for it as a bearer token when set (METRICS_TOKEN)
    rules: Rules = field(default_factory=Rules)  # what a message written by hand must follow (Settings.rules())


def check_key(console: Console, authorization: str | None, *, write: bool) -> ApiKey:
    """The request's active key (401 without one, 403 for a read-only key on a write)."""
    scheme, _, presented = (authorization or "").partition(" ")
    if not authorization or scheme.lower() != "bearer" or not presented.strip():
        raise Problem(401, "an API key is required: send 'Authorization: Bearer <key>' (relance keys create NAME)",
                      headers=BEARER)
    key = authenticate(console.store, presented.strip(), now=console.clock.now())
    if key is None:
        raise Problem(401, "this API key is unknown or revoked", headers=BEARER)
    if write and key.read_only:
        raise Problem(403, f"the API key {key.name!r} is read-only: this request changes data")
    return key


def encode_cursor(kind: str, after: str | None) -> str | None:
    """The opaque cursor of the page after ``after`` in the list ``kind``."""
    if after is None:
        return None
    return base64.urlsafe_b64encode(f"{kind}\n{after}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The key a cursor of ``kind`` stands for (400 for a cursor of another list or a made-up one)."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found, _, after = text.partition("\n")
    if found != kind or not after:
        raise Problem(400, "cursor is not valid here: use the next_cursor of this list's previous page")
    return after


def answer(run: Callable[[], BaseModel], status: int = 200) -> Response:
    """The use case's result as JSON (``status``), or its InputError as a problem (404 for what does not exist,
    409 for a conflict)."""
    try:
        result = run()
    except NotFound as exc:
        return problem_response(404, str(exc))
    except Conflict as exc:
        return problem_response(409, str(exc))
    except InputError as exc:
        return problem_response(400, str(exc))
    return JSONResponse(result.model_dump(mode="json"), status_code=status)


def idempotent(console: Console, request: Request, key: ApiKey, body: BaseModel | None,
               run: Callable[[], BaseModel], *, status: int = 200) -> Response:
    """Run a POST once per ``Idempotency-Key``: a retry gets the first response again, and changes nothing.

    The key is claimed in MongoDB before the use case runs, so two concurrent retries cannot both
    run it; the same key with another request (path or body) is a 422 problem.
    """
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return answer(run, status)
    if not 1 <= len(given) <= MAX_IDEMPOTENCY_KEY or not given.isprintable():
        raise Problem(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    method_path = f"{request.method} {request.url.path}"
    canonical = json.dumps(body.model_dump(mode="json") if body is not None else None, sort_keys=True)
    claim = KeptResponse(id=f"{key.name}:{given}", method_path=method_path,
                         body_hash=hashlib.sha256(canonical.encode()).hexdigest(), status=None, body=None)
    store = console.store
    if not store.idempotency.begin(claim, console.clock.now()):
        kept = store.idempotency.get(claim.id)
        if kept is not None and (kept.method_path, kept.body_hash) != (claim.method_path, claim.body_hash):
            raise Problem(422, f"Idempotency-Key {given!r} was used for another request: use a new key")
        if kept is not None and kept.status is not None and kept.body is not None:
            media = MEDIA_TYPE if kept.status >= 400 else "application/json"
            return Response(kept.body, status_code=kept.status, media_type=media,
                            headers={"Idempotent-Replayed": "true"})
        now = console.clock.now()
        if kept is None or not store.idempotency.take_over(claim.id, started_before=now - ABANDONED_AFTER, now=now):
            raise Problem(409, f"a request with Idempotency-Key {given!r} is still running: retry shortly")
        # Taken over: the first request's process died before it answered, so this retry runs it.
    try:
        response = answer(run, status)
    except BaseException:
        store.idempotency.forget(claim.id)  # nothing answered: a retry may run it
        raise
    store.idempotency.finish(claim.id, status=response.status_code, body=bytes(response.body).decode(),
                             now=console.clock.now())
    return response
