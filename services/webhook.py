"""The webhook service: Twilio → Relance. Thin on purpose.

Each request is checked (size, form, X-Twilio-Signature against PUBLIC_BASE_URL + path +
query, with the Auth Token, or with our SharedKey and its algorithm when Twilio says so in
X-Twilio-Webhooks-Signature-Settings), stored once under a dedupe key, enqueued, and answered
at once with empty TwiML. No AI and no slow work happens here. Answers: 200 (stored, or a
duplicate), 400 malformed, 403 bad or missing signature, 413 too large, 503 when the event
cannot be recorded.
"""

from __future__ import annotations

import gc
import hmac
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, get_signature_algorithm

from services.recorder import EventRecorder
from shared.clock import Clock
from shared.errors import TransientError
from shared.phones import mask_phone
from shared.ports import TaskQueue
from shared.store import Store, status_event_doc

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY_BYTES = 64 * 1024


@dataclass
class WebhookDeps:
    """What the webhook needs; built by the composition root."""

    store: Store
    queue: TaskQueue
    clock: Clock
    auth_token: str
    public_base_url: str
    redis_ping: Callable[[], bool]
    shared_key: str = ""  # TWILIO_WEBHOOK_SHARED_KEY: for webhooks signed with a Twilio SharedKey


class BadRequest(Exception):
    """A request to refuse with a status code and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def twiml() -> Response:
    """The empty TwiML answer: nothing to reply right now."""
    return Response(EMPTY_TWIML, media_type="text/xml")


# The headers read_signed_form looks at; ASGI servers give header names in lower case.
_CONTENT_LENGTH, _CONTENT_TYPE = b"content-length", b"content-type"
_SIGNATURE, _SIGNATURE_SETTINGS = b"x-twilio-signature", b"x-twilio-webhooks-signature-settings"
_IDEMPOTENCY_TOKEN = b"i-twilio-idempotency-token"
_READ_HEADERS = frozenset({_CONTENT_LENGTH, _CONTENT_TYPE, _SIGNATURE, _SIGNATURE_SETTINGS, _IDEMPOTENCY_TOKEN})


def _headers(scope: Scope) -> dict[bytes, str]:
    """The headers the webhook reads, in one pass; the first of a repeated one, as Starlette's."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in _READ_HEADERS and key not in found:
            found[key] = value.decode("latin-1")
    return found


async def _read_body(receive: Receive) -> bytes:
    """The request body, refused (413) as soon as it passes MAX_BODY_BYTES."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, "body too large")
        if not message.get("more_body", False):
            return body


def signed_url(public_base_url: str, scope: Scope) -> str:
    """What Twilio signed: PUBLIC_BASE_URL + the path + the query string exactly as called.

    The path is escaped as Starlette's ``request.url`` has it; a query string that is not
    UTF-8 cannot have been signed by Twilio (400).
    """
    url = public_base_url + scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    query = scope.get("query_string", b"")
    if query:
        try:
            url += "?" + query.decode()
        except UnicodeDecodeError:
            raise BadRequest(400, "malformed query string") from None
    return url


async def read_signed_form(request: Request, deps: WebhookDeps) -> SignedForm:
    """The request's form after the size, format and signature checks (raises BadRequest).

    Reads the ASGI scope and messages directly (one pass over the headers, no ``request.url``,
    no async generator): most of what this costs per request went there.
    """
    headers = _headers(request.scope)
    declared = headers.get(_CONTENT_LENGTH, "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 9 or int(declared) > MAX_BODY_BYTES):
        raise BadRequest(413, "body too large")
    body = await _read_body(request.receive)
    content_type = headers.get(_CONTENT_TYPE, "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest(400, "expected an application/x-www-form-urlencoded body")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "malformed form body") from None
    form = SignedForm(pairs)
    if len(form) != len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise BadRequest(400, f"field {twice} appears twice")
    form.body, form.idempotency_token = text, headers.get(_IDEMPOTENCY_TOKEN, "")
    signature = headers.get(_SIGNATURE, "")
    url = signed_url(deps.public_base_url, request.scope)
    secret, algorithm = deps.auth_token, HMAC_SHA1
    settings_header = headers.get(_SIGNATURE_SETTINGS)
    if settings_header is not None:
        # Signed with a SharedKey of ours (a Webhook Rule matched the URL), by the named algorithm.
        if not deps.shared_key:
            log.warning("a webhook was signed with a Twilio SharedKey, but TWILIO_WEBHOOK_SHARED_KEY is not set")
            raise BadRequest(403, "signed with a shared key, which is not configured (TWILIO_WEBHOOK_SHARED_KEY)")
        secret, algorithm = deps.shared_key, get_signature_algorithm(settings_header)
        if algorithm.upper() not in (HMAC_SHA1, HMAC_SHA256):
            raise BadRequest(403, "unsupported signature algorithm in X-Twilio-Webhooks-Signature-Settings")
    if not signature or not _signature_ok(secret, url, form, signature, algorithm):
        raise BadRequest(403, "invalid or missing X-Twilio-Signature")
    return form


class SignedForm(dict[str, str]):
    """A parsed webhook form: a dict with the ``getall`` of the multi-dicts the SDK knows.

    RequestValidator asks each field for its values through ``getall`` first, then ``getlist``,
    then plain indexing, each miss an exception: given a plain dict, the two misses per field
    were most of the signature's cost (about 26 µs of 16 fields, 10 µs with ``getall``).
    Duplicate field names are refused before this, so each field has exactly one value.
    """

    __slots__ = ("body", "idempotency_token")

    def __init__(self, *args: Any, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)
        self.body = ""  # the form as it was posted (urlencoded), set by read_signed_form
        self.idempotency_token = ""  # I-Twilio-Idempotency-Token, set by read_signed_form

    def getall(self, name: str) -> list[str]:
        """The values of field ``name`` (one: duplicates are refused)."""
        return [self[name]]


@lru_cache(maxsize=4)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)


def _signature_ok(secret: str, url: str, form: dict[str, str], signature: str, algorithm: str = HMAC_SHA1) -> bool:
    """Whether ``signature`` is Twilio's for this URL and form (the SDK's RequestValidator).

    First the URL exactly as configured (one HMAC, what Twilio signs when PUBLIC_BASE_URL is
    right); then ``validate``, which also accepts the URL with or without its port.
    """
    validator = _validator(secret)
    expected = validator.compute_signature(url, form, algorithm).encode()
    return (hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
            or validator.validate(url, form, signature, algorithm))


def _require(form: dict[str, str], *names: str) -> None:
    missing = [n for n in names if not form.get(n)]
    if missing:
        raise BadRequest(400, f"missing field(s): {', '.join(missing)}")


def _small_int(raw: str, digits: int = 9) -> int | None:
    """``raw`` as an int when it is 1 to ``digits`` ASCII digits, else None.

    ``str.isdigit`` alone accepts ``²`` (which ``int`` refuses) and any length (``int`` refuses
    over 4300 digits, BSON over 8 bytes): both used to escape as a 500.
    """
    if 0 < len(raw) <= digits and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def _error_code(form: dict[str, str]) -> int | None:
    raw = form.get("ErrorCode", "").strip()
    if not raw:
        return None
    code = _small_int(raw)
    if code is None:
        raise BadRequest(400, "ErrorCode must be a number")
    return code


def status_event(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The event id and document of a status callback (raises BadRequest on a bad ErrorCode)."""
    return status_event_doc(form["MessageSid"], form["MessageStatus"].lower(), _error_code(form))


def apply_status(deps: WebhookDeps, event_id: str, event: dict[str, Any], fresh: bool, message_id: str = "") -> None:
    """Move the message forward from a stored status event; enqueue the action of a new failure.

    Applied for a duplicate too (the moves are monotonic and conditional, so a second time
    changes nothing): a callback whose event was stored just before MongoDB went away is
    finished when Twilio retries it. ``message_id`` is our marker from the StatusCallback URL:
    when a send's outcome was lost (worker crash, timeout), the first callback tells us Twilio
    has it and under which SID.
    """
    now = deps.clock.now()
    sid = event["sid"]
    if not deps.store.apply_status(sid, event["status"], event["error_code"], now) and message_id:
        # No message carries this SID yet: either the sending worker has not written it, or its
        # answer was lost. Adopt it (a no-op unless the message is sending/uncertain).
        deps.store.record_sid(message_id, sid, now)
    if fresh and event["action_state"] == "pending":
        try:
            deps.queue.process_status(event_id)
        except Exception:  # Redis down: the scheduler re-enqueues pending actions later.
            log.warning("status event %s stored but not enqueued (Redis unavailable)", sid)


def inbound_event(form: dict[str, str], idempotency_token: str = "") -> tuple[str, dict[str, Any]]:
    """The event id and document of an inbound message, every field Twilio sent kept.

    ``form`` keeps the whole form as posted (a :class:`SignedForm`'s ``body``, else re-encoded):
    one string holds every field (media types, Referral*, fields Twilio adds later) whatever
    its name, where a BSON key cannot take '.', '$' or NUL, and costs the store less than a
    list of pairs. ``urllib.parse.parse_qsl(event["form"], keep_blank_values=True)`` reads it.
    """
    sid = form["MessageSid"]
    media = list(itertools.takewhile(bool, (form.get(f"MediaUrl{i}") for i in itertools.count())))
    event: dict[str, Any] = {
        "kind": "inbound", "sid": sid, "state": "received",
        "from": form.get("From", ""), "to": form.get("To", ""), "body": form.get("Body", ""),
        "num_media": _small_int(form.get("NumMedia", "0"), digits=4) or 0, "media_urls": media,
        "profile_name": form.get("ProfileName", ""), "wa_id": form.get("WaId", ""),
        "button_payload": form.get("ButtonPayload", ""), "button_text": form.get("ButtonText", ""),
        "idempotency_token": idempotency_token,
        "form": getattr(form, "body", "") or urlencode(form),
    }
    return f"inbound:{sid}", event


def create_app(deps: WebhookDeps, *, on_shutdown: Callable[[], None] | None = None,
               freeze_gc: bool = False) -> Starlette:
    """The webhook Starlette application.

    ``freeze_gc`` (the ``relance webhook`` process): once started, everything built so far
    (modules, the SDKs, clients) is moved out of the cyclic garbage collector's reach with
    ``gc.freeze()``. Those objects live as long as the process, yet every full collection used
    to walk them again: about a sixth of the webhook's CPU per request under load
    (bench/webhook_bench.py).
    """
    recorder = EventRecorder(deps.store, deps.queue, deps.clock)

    async def status(request: Request) -> Response:
        try:
            form = await read_signed_form(request, deps)
            _require(form, "MessageSid", "MessageStatus")
            event_id, event = status_event(form)
            fresh = await recorder.record(event_id, event)
            await run_in_threadpool(apply_status, deps, event_id, event, fresh, request.query_params.get("mid", ""))
        except BadRequest as exc:
            return PlainTextResponse(exc.reason, status_code=exc.status)
        except TransientError:
            return PlainTextResponse("store unavailable, retry later", status_code=503)
        log.debug("status sid=%s status=%s duplicate=%s", form["MessageSid"], form["MessageStatus"], not fresh)
        return twiml()

    async def inbound(request: Request) -> Response:
        try:
            form = await read_signed_form(request, deps)
            _require(form, "MessageSid", "From")
            event_id, event = inbound_event(form, form.idempotency_token)
            fresh = await recorder.record(event_id, event, enqueue_inbound=True)
        except BadRequest as exc:
            return PlainTextResponse(exc.reason, status_code=exc.status)
        except TransientError:
            return PlainTextResponse("store unavailable, retry later", status_code=503)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("inbound sid=%s from=%s duplicate=%s", form["MessageSid"], mask_phone(form["From"]), not fresh)
        return twiml()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        mongo = await run_in_threadpool(deps.store.ping)
        redis_ok = await run_in_threadpool(deps.redis_ping)
        body = {"mongo": mongo, "redis": redis_ok}
        return JSONResponse(body, status_code=200 if mongo and redis_ok else 503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield
        await recorder.close()
        if on_shutdown is not None:
            on_shutdown()

    return Starlette(
        routes=[
            Route("/whatsapp/webhook", inbound, methods=["POST"]),
            Route("/whatsapp/status", status, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
