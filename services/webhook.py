"""The webhook service: Twilio → Relance. Thin on purpose, and it refuses before it works.

Each request goes through, in order: the checks that need no body (an X-Twilio-Signature that
is present and shaped like one, the form content type, the declared size), a bound on the
requests in flight, the body read under a deadline and a size cap, the form parsed under caps
on its fields, the signature itself (PUBLIC_BASE_URL + path + query, with the Auth Token, or
with our SharedKey and its algorithm when Twilio says so in
X-Twilio-Webhooks-Signature-Settings), the shape of every identifier
(:mod:`services.twilio_fields`); then an inbound message or a failed delivery status is stored
once under a dedupe key and enqueued, delivered and read move their message forward (one
conditional update; sent and queued write nothing), and the request is answered at once with
empty TwiML. No AI and no slow work happens here.

Answers: 200 (stored, applied, or a duplicate); 400 malformed, a field Twilio would not send, or the
client gone before its body arrived; 403
missing, malformed or wrong signature; 408 body too slow; 413 body too large, too many or too
long fields; 503 too many requests in flight, or the event cannot be recorded. See
docs/webhook-security.md.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import itertools
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
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
from services.twilio_fields import FieldError, Ours, check_inbound, check_status
from shared.clock import Clock
from shared.domain.events import status_event_doc
from shared.domain.repositories import Repositories
from shared.domain.states import FAILED_STATUSES, STATUS_RANK, ActionState, EventState
from shared.errors import TransientError
from shared.phones import mask_phone
from shared.ports import TaskQueue

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
FORM_TYPE = "application/x-www-form-urlencoded"
# Caps generous for what Twilio sends: a WhatsApp message with 10 media has about 70 fields,
# Twilio's longest field names have under 30 characters, a WhatsApp text at most 4,096.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 128
MAX_NAME_CHARS = 64
MAX_VALUE_CHARS = 8192
# Defaults of WEBHOOK_BODY_TIMEOUT_SECONDS and WEBHOOK_MAX_IN_FLIGHT (shared.settings).
BODY_TIMEOUT_SECONDS = 5.0  # Twilio sends its body right behind its headers
MAX_IN_FLIGHT = 1000  # well above the few hundred the group commit batches at full load
SANDBOX_SENDER = "whatsapp:+14155238886"  # TWILIO_WHATSAPP_NUMBER's default
# base64 (with its padding) of an HMAC-SHA1, 20 bytes, or of an HMAC-SHA256, 32 bytes.
SIGNATURE_SHAPE = re.compile(r"[A-Za-z0-9+/]{27}=|[A-Za-z0-9+/]{43}=")
BUSY = "too many requests in flight, retry later"


@dataclass
class WebhookDeps:
    """What the webhook needs; built by the composition root."""

    store: Repositories
    queue: TaskQueue
    clock: Clock
    auth_token: str
    public_base_url: str
    redis_ping: Callable[[], bool]
    shared_key: str = ""  # TWILIO_WEBHOOK_SHARED_KEY: for webhooks signed with a Twilio SharedKey
    account_sid: str = ""  # TWILIO_ACCOUNT_SID: when set, other accounts' requests are refused
    sender: str = SANDBOX_SENDER  # TWILIO_WHATSAPP_NUMBER: the To of inbound, the From of statuses
    max_in_flight: int = MAX_IN_FLIGHT  # WEBHOOK_MAX_IN_FLIGHT
    body_timeout: float = BODY_TIMEOUT_SECONDS  # WEBHOOK_BODY_TIMEOUT_SECONDS


class BadRequest(Exception):
    """A request to refuse with a status code and a short reason.

    ``close``: the body was not read to its end; the connection is closed after the answer
    rather than left to the client to finish.
    """

    def __init__(self, status: int, reason: str, *, close: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close


def twiml() -> Response:
    """The empty TwiML answer: nothing to reply right now."""
    return Response(EMPTY_TWIML, media_type="text/xml")


def refusal(exc: BadRequest) -> Response:
    """The answer to a refused request."""
    return PlainTextResponse(exc.reason, status_code=exc.status,
                             headers={"Connection": "close"} if exc.close else None)


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


def check_headers(scope: Scope) -> dict[bytes, str]:
    """The checks that need no body; the headers the webhook reads (raises BadRequest).

    An X-Twilio-Signature present and shaped like one (403), a form (400), a declared size
    within the cap (413): a request refused here costs about what a bare 403 costs.
    """
    headers = _headers(scope)
    if not SIGNATURE_SHAPE.fullmatch(headers.get(_SIGNATURE, "").strip()):
        raise BadRequest(403, "missing or malformed X-Twilio-Signature")
    if headers.get(_CONTENT_TYPE, "").split(";")[0].strip().lower() != FORM_TYPE:
        raise BadRequest(400, f"expected an {FORM_TYPE} body")
    declared = headers.get(_CONTENT_LENGTH, "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 9 or int(declared) > MAX_BODY_BYTES):
        raise BadRequest(413, "body too large", close=True)
    return headers


async def _read_body(receive: Receive, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The request body: refused (413) as soon as it passes MAX_BODY_BYTES, or (408) when it
    has not all arrived ``timeout`` seconds after the headers (a client trickling bytes).

    The deadline is one timer that cancels this task, not ``asyncio.timeout``: a third of the
    cost (about 2 µs instead of 6 per request), for the same effect.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # always, in a coroutine the loop runs
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = loop.call_at(loop.time() + timeout, expire)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BadRequest(413, "body too large", close=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    except asyncio.CancelledError:
        if not expired:
            raise  # cancelled by someone else: not ours to swallow
        task.uncancel()
        raise BadRequest(408, "request body not received in time", close=True) from None
    finally:
        timer.cancel()


def parse_form(body: bytes) -> SignedForm:
    """The urlencoded ``body`` as a form, within the caps on fields (raises BadRequest).

    The fields are counted on the raw bytes before any is built: a body of thousands of
    fields costs one ``bytes.count``, not a list of thousands of pairs.
    """
    if body.count(b"&") >= MAX_FIELDS:
        raise BadRequest(413, f"too many fields (at most {MAX_FIELDS})")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(body), max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "malformed form body") from None
    for name, value in pairs:
        if len(name) > MAX_NAME_CHARS:
            raise BadRequest(413, f"a field name is longer than {MAX_NAME_CHARS} characters")
        if len(value) > MAX_VALUE_CHARS:
            raise BadRequest(413, f"field {name} is longer than {MAX_VALUE_CHARS} characters")
    form = SignedForm(pairs)
    if len(form) != len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise BadRequest(400, f"field {twice} appears twice")
    form.body = text
    return form


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


async def read_signed_form(request: Request, deps: WebhookDeps,
                           headers: dict[bytes, str] | None = None) -> SignedForm:
    """The request's form after the header, size, format and signature checks (raises BadRequest).

    ``headers``: what :func:`check_headers` returned, when the caller ran it already. Reads the
    ASGI scope and messages directly (one pass over the headers, no ``request.url``, no async
    generator): most of what this costs per request went there.
    """
    if headers is None:
        headers = check_headers(request.scope)
    form = parse_form(await _read_body(request.receive, deps.body_timeout))
    form.idempotency_token = headers.get(_IDEMPOTENCY_TOKEN, "")
    signature = headers[_SIGNATURE].strip()
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
    if not _signature_ok(secret, url, form, signature, algorithm):
        raise BadRequest(403, "invalid X-Twilio-Signature")
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


def apply_status(deps: WebhookDeps, event_id: str, event: dict[str, Any], message_id: str = "", *,
                 fresh: bool = False) -> None:
    """Move the message forward (one conditional update); enqueue the action of a newly stored failure.

    Forward only, so a duplicate or a late callback changes nothing (a failure stored just before
    MongoDB went away is finished when Twilio retries it). ``message_id``, the StatusCallback
    URL's ``mid``: the same update adopts the SID when the callback comes before the sending
    worker stored it, or the worker lost Twilio's answer (``MessageRepository.apply_status``).
    """
    sid = event["sid"]
    deps.store.messages.apply_status(sid, event["status"], event["error_code"], deps.clock.now(),
                                     message_id=message_id or None)
    if fresh and event["action_state"] == ActionState.PENDING:
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
        "kind": "inbound", "sid": sid, "state": EventState.RECEIVED.value,
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

    ``app.state.in_flight()`` tells how many requests are past the header checks and not yet
    answered (the count WEBHOOK_MAX_IN_FLIGHT bounds).
    """
    recorder = EventRecorder(deps.store, deps.queue, deps.clock)
    ours = Ours(account_sid=deps.account_sid, sender=deps.sender)
    in_flight = 0  # requests past the header checks and not yet answered (one event loop: no lock)

    async def guarded(request: Request, handle: Callable[[Request, dict[bytes, str]], Awaitable[Response]],
                      what: str) -> Response:
        """The header checks, then the bound on requests in flight, then ``handle``; refusals answered."""
        nonlocal in_flight
        try:
            headers = check_headers(request.scope)
        except BadRequest as exc:
            return refusal(exc)
        if in_flight >= deps.max_in_flight:
            # At once: a queue without bound would push every request past Twilio's 15 s.
            return PlainTextResponse(BUSY, status_code=503, headers={"Retry-After": "1"})
        in_flight += 1
        try:
            return await handle(request, headers)
        except FieldError as exc:
            # Signed, yet not what Twilio sends: a re-cut of a captured body, or Twilio changed a format.
            log.warning("refused a signed %s: %s", what, exc.reason)
            return PlainTextResponse(exc.reason, status_code=400)
        except BadRequest as exc:
            return refusal(exc)
        except TransientError:
            return PlainTextResponse("store unavailable, retry later", status_code=503)
        except ClientDisconnect:
            # Gone before its body was sent: nobody reads this answer, and it is no server error.
            return PlainTextResponse("client disconnected", status_code=400, headers={"Connection": "close"})
        finally:
            in_flight -= 1

    async def handle_status(request: Request, headers: dict[bytes, str]) -> Response:
        form = await read_signed_form(request, deps, headers)
        message_id = request.query_params.get("mid")
        check_status(form, ours, message_id)
        event_id, event = status_event(form)
        if STATUS_RANK.get(event["status"], 0) <= STATUS_RANK["sent"]:
            # Nothing the sending worker does not write itself (the SID, sent). Were its answer
            # lost: the next callback adopts the SID, or the reconciliation finds it at Twilio.
            return twiml()
        fresh = False
        if event["status"] in FAILED_STATUSES:
            # For the replies worker; delivered/read need none: the message's history records
            # them, its rank guard is their dedupe.
            fresh = await recorder.record(event_id, event)
        await run_in_threadpool(apply_status, deps, event_id, event, message_id or "", fresh=fresh)
        log.debug("status sid=%s status=%s new failure=%s", form["MessageSid"], form["MessageStatus"], fresh)
        return twiml()

    async def handle_inbound(request: Request, headers: dict[bytes, str]) -> Response:
        form = await read_signed_form(request, deps, headers)
        check_inbound(form, ours)
        event_id, event = inbound_event(form, form.idempotency_token)
        fresh = await recorder.record(event_id, event, enqueue_inbound=True)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("inbound sid=%s from=%s duplicate=%s", form["MessageSid"], mask_phone(form["From"]), not fresh)
        return twiml()

    async def status(request: Request) -> Response:
        return await guarded(request, handle_status, "status callback")

    async def inbound(request: Request) -> Response:
        return await guarded(request, handle_inbound, "inbound message")

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

    app = Starlette(
        routes=[
            Route("/whatsapp/webhook", inbound, methods=["POST"]),
            Route("/whatsapp/status", status, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.in_flight = lambda: in_flight  # read by tests and the bench
    return app
