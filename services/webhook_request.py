"""The webhook's front door: the checks a request passes before its form is trusted.

In order: the checks that need no body (an X-Twilio-Signature present and shaped like one, the
form content type, the declared size), the body read under a deadline and a size cap, the form
parsed under caps on its fields, then the signature itself (PUBLIC_BASE_URL + path + query,
with the Auth Token, or with our SharedKey and its algorithm when Twilio says so in
X-Twilio-Webhooks-Signature-Settings). Each refusal is a :class:`BadRequest`; the application
(:mod:`services.webhook`) answers it. See docs/webhook-security.md.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, get_signature_algorithm

if TYPE_CHECKING:
    from services.webhook import WebhookDeps

log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
# Caps generous for what Twilio sends: a WhatsApp message with 10 media has about 70 fields,
# Twilio's longest field names have under 30 characters, a WhatsApp text at most 4,096.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 128
MAX_NAME_CHARS = 64
MAX_VALUE_CHARS = 8192
# Default of WEBHOOK_BODY_TIMEOUT_SECONDS (shared.settings).
BODY_TIMEOUT_SECONDS = 5.0  # Twilio sends its body right behind its headers
# base64 (with its padding) of an HMAC-SHA1, 20 bytes, or of an HMAC-SHA256, 32 bytes.
SIGNATURE_SHAPE = re.compile(r"[A-Za-z0-9+/]{27}=|[A-Za-z0-9+/]{43}=")


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
