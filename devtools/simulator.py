"""A local Twilio sandbox: the part of Twilio's REST API and webhooks Relance uses.

It speaks Twilio's own wire formats, so the real ``twilio`` SDK talks to it unchanged
(``TWILIO_API_BASE_URL=http://127.0.0.1:<port>``):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` creates a message (HTTP Basic
  auth, form-encoded ``To``, ``From``, ``Body`` or ``ContentSid`` + ``ContentVariables``,
  ``StatusCallback``) and answers 201 with the Message resource, status ``queued``;
- ``GET .../Messages.json`` lists messages with ``To``, ``From``, ``DateSent``, ``DateSent<``,
  ``DateSent>``, ``PageSize`` and ``Page``, in Twilio's list envelope, newest first;
- ``GET .../Messages/{Sid}.json`` fetches one (404, code 20404, when unknown);
- after a create, status callbacks ``sent`` → ``delivered`` → ``read`` are posted to the
  message's ``StatusCallback``, form-encoded and signed (``X-Twilio-Signature``) like Twilio.

Errors use Twilio's body: ``{"code", "message", "more_info", "status"}``.

Control endpoints for tests and demos live under ``/_sim/``:

- ``POST /_sim/fail`` ``{"code": 63016, "status": 400, "count": 1, "to": "+33…",
  "created": false, "gateway": false}``: the next ``count`` creates (to that recipient, if
  given) fail with that error; ``created: true`` stores the message anyway (the answer is
  "lost"); ``gateway: true`` answers with a gateway's HTML page instead of Twilio's JSON;
- ``POST /_sim/hold`` ``{"to": "+33…", "count": null}``: new messages (to that recipient, if
  given) stay ``queued``, no ``date_sent`` and no callback, until ``POST /_sim/release``
  ``{"to": …}`` lets them go on (as Twilio's queue does when a channel is backed up);
- ``POST /_sim/fail_delivery`` ``{"to": "+33…", "code": 63024, "status": "failed",
  "count": null}``: messages to that recipient go ``sent`` then ``failed``/``undelivered``;
- ``POST /_sim/inbound`` ``{"from": "+33…", "body": "…", "webhook_url": …, "to": …,
  "profile_name": …, <other Twilio parameters>}``: posts a signed inbound WhatsApp
  message to the webhook (default ``<webhook_base_url>/whatsapp/webhook``), once: like
  Twilio, an answer of 5xx is not retried. A URL fragment of connection overrides
  (``#ct=…&rt=…&rc=…&rp=ct,rt``) is removed before the call and sets its timeouts and how
  often a failed connection (``ct``) or a read timeout (``rt``) is tried again. The message
  is kept as a Message resource (``direction`` ``inbound``, ``status`` ``received``, From
  the client, To our number), listed by ``GET .../Messages.json`` whatever the webhook
  answered;
- ``POST /_sim/config`` ``{"callback_delay": 0.05, "send_read": true,
  "response_delay_ms": 0}``; ``GET /_sim/messages`` (the API's messages; ``?to=``,
  ``?direction=inbound|all``);
  ``POST /_sim/reset``; ``GET /_sim/health`` (with ``pending_callbacks``: messages whose
  status callbacks are not all posted yet).

As at Twilio, ``DateSent`` filters compare ``date_sent`` at whole-second resolution, so a
message still ``queued`` (no ``date_sent`` yet) is left out of a filtered list; a template
message's ``body`` is the rendered template. Deliberate simplifications: ``Page`` drives
paging (``PageToken`` is accepted and ignored); the simulator does not know the templates'
texts, so a template renders as its variables' values, one per line, in variable order.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_WHATSAPP_NUMBER = "whatsapp:+14155238886"
MAX_BODY_CHARS = 1600

_WHATSAPP_ADDRESS = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")

ERROR_MESSAGES: dict[int, str] = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21619: "A text message body or media urls must be specified.",
    21655: "The ContentSid is Invalid",
    21656: "The ContentVariables Parameter is invalid",
    63003: "Channel could not find To address",
    63007: "Twilio could not find a Channel with the specified From address",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you want to send messages outside the session window, please use a Template."
    ),
    63018: "Rate limit exceeded for Channel",
    63024: "Invalid message recipient",
    63032: "User's number is part of an experiment",
    63049: "Meta chose not to deliver this WhatsApp marketing message",
}

# HTTP status Twilio answers with for an error code, when the control call gives none.
_CODE_STATUS = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}
_STATUS_CODE = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(value: datetime | None) -> str | None:
    return format_datetime(value.astimezone(UTC)) if value else None


def _bare(number: str) -> str:
    return number.removeprefix("whatsapp:")


def _whatsapp(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def twilio_error(code: int, status: int | None = None, message: str | None = None) -> JSONResponse:
    """A Twilio-style error response."""
    status = status or _CODE_STATUS.get(code, 400)
    return JSONResponse(
        {
            "code": code,
            "message": message or ERROR_MESSAGES.get(code, f"Error {code}"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def gateway_error(status: int) -> Response:
    """What a load balancer in front of Twilio answers: an HTML page, no Twilio error JSON."""
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Timeout"}.get(status, "Error")
    page = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    return Response(page, status_code=status, media_type="text/html")


@dataclass(frozen=True)
class ConnectionOverrides:
    """Twilio's webhook connection overrides (the URL fragment ``#ct=…&rt=…&rc=…&rp=…``).

    Only what the simulator plays: timeouts in milliseconds, and ``rc`` retries when the
    connection fails (``ct``) or no answer comes in time (``rt``); ``all`` means both here. An
    HTTP answer, even 5xx, is never retried for an incoming message.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retries: int = 0
    policy: frozenset[str] = frozenset()

    def retries_on(self, exc: httpx.HTTPError) -> bool:
        """Whether this failure is one the retry policy retries."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return bool({"ct", "all"} & self.policy)
        if isinstance(exc, httpx.ReadTimeout):
            return bool({"rt", "all"} & self.policy)
        return False


def connection_overrides(url: str) -> tuple[str, ConnectionOverrides]:
    """The URL Twilio calls (and signs), without its fragment, and the overrides the fragment holds."""
    base, _, fragment = url.partition("#")
    found = dict(parse_qsl(fragment))

    def number(key: str, default: float, low: float, high: float) -> float:
        try:
            return min(high, max(low, float(found[key])))
        except (KeyError, ValueError):
            return default

    return base, ConnectionOverrides(
        connect_timeout=number("ct", 5000, 100, 10_000) / 1000,
        read_timeout=number("rt", 15_000, 100, 15_000) / 1000,
        retries=int(number("rc", 0, 0, 5)) if "rc" in found else 0,
        policy=frozenset(p.strip() for p in found.get("rp", "ct,rt").split(",") if p.strip()),
    )


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for this URL and form."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


@dataclass
class CallbackRecord:
    """One status callback the simulator posted (or tried to)."""

    status: str
    url: str
    at: datetime
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        """JSON-friendly form for ``/_sim/messages``."""
        return {
            "status": self.status,
            "url": self.url,
            "at": self.at.isoformat(),
            "attempts": self.attempts,
            "http_status": self.http_status,
            "error": self.error,
        }


@dataclass
class SimMessage:
    """A message the simulator knows, outbound (created through the API) or inbound."""

    sid: str
    account_sid: str
    direction: str  # "outbound-api" | "inbound"
    from_: str
    to: str
    body: str
    status: str
    date_created: datetime
    date_updated: datetime
    seq: int
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    status_callback: str | None = None
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    callbacks: list[CallbackRecord] = field(default_factory=list)
    held: bool = False  # kept ``queued`` by /_sim/hold until released

    @property
    def uri(self) -> str:
        """The resource's URI, relative to the API root."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    @property
    def filter_time(self) -> datetime | None:
        """The time ``DateSent`` filters compare, whole seconds; None until the message is sent."""
        return self.date_sent.replace(microsecond=0) if self.date_sent else None

    @property
    def rendered_body(self) -> str:
        """The body Twilio shows: a template rendered (here: its variables' values), else the body."""
        if self.content_sid:
            variables = self.content_variables or {}
            return "\n".join(variables[key] for key in sorted(variables, key=_variable_order))
        return self.body

    def resource(self) -> dict[str, Any]:
        """The Message resource as Twilio's JSON."""
        base = self.uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.rendered_body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": self.to,
            "uri": self.uri,
        }

    def view(self) -> dict[str, Any]:
        """Everything the simulator recorded, for ``/_sim/messages``."""
        return {
            "sid": self.sid,
            "direction": self.direction,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "rendered_body": self.rendered_body,
            "content_sid": self.content_sid,
            "content_variables": self.content_variables,
            "status_callback": self.status_callback,
            "status": self.status,
            "held": self.held,
            "error_code": self.error_code,
            "created_at": self.date_created.isoformat(),
            "statuses": [c.status for c in self.callbacks],
            "callbacks": [c.view() for c in self.callbacks],
        }


@dataclass
class FailRule:
    """Creates that must fail with a given Twilio error."""

    code: int
    status: int
    message: str
    remaining: int
    to: str | None = None  # bare E.164
    created: bool = False  # store the message anyway (the answer is lost)
    gateway: bool = False  # answer as a gateway in front of Twilio would (HTML, not Twilio's JSON)


@dataclass
class HoldRule:
    """New messages (to a recipient) that stay ``queued`` until released."""

    to: str | None = None  # bare E.164; None = every recipient
    remaining: int | None = None  # None = until released or reset


@dataclass
class DeliveryRule:
    """Messages to a recipient that end ``failed``/``undelivered`` after ``sent``."""

    code: int
    final_status: str
    to: str | None = None  # bare E.164; None = every recipient
    remaining: int | None = None  # None = until reset


_Rule = TypeVar("_Rule", HoldRule, DeliveryRule)


def _take_rule(rules: list[_Rule], to: str) -> _Rule | None:
    """The first of ``rules`` for ``to`` (or for every recipient), one use spent; dropped once used up."""
    for rule in rules:
        if rule.to is None or rule.to == to:
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
            return rule
    return None


@dataclass
class SimConfig:
    """The simulator's adjustable knobs."""

    callback_delay: float = 0.05
    send_read: bool = True
    response_delay_ms: int = 0
    callback_attempts: int = 3
    callback_timeout: float = 5.0


class BadControl(ValueError):
    """A control request with a missing or malformed field."""


class Simulator:
    """The simulator's state and request handlers (one per app; thread-safe)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        webhook_base_url: str = "",
        whatsapp_number: str = DEFAULT_WHATSAPP_NUMBER,
        config: SimConfig | None = None,
    ) -> None:
        """Keep the credentials and webhook target; start with no messages."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.whatsapp_number = _whatsapp(whatsapp_number)
        self.defaults = config or SimConfig()
        self.config = SimConfig(**vars(self.defaults))
        self.channel_install_sid = _sid("XE")
        self._lock = threading.Lock()
        self._messages: dict[str, SimMessage] = {}
        self._fail_rules: list[FailRule] = []
        self._delivery_rules: list[DeliveryRule] = []
        self._hold_rules: list[HoldRule] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    # ----------------------------------------------------------------- plumbing

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.callback_timeout)
        return self._http

    async def close(self) -> None:
        """Stop pending callbacks and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _authorized(self, request: Request, account_sid: str) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), self.account_sid.encode())
        ok_password = hmac.compare_digest(password.encode(), self.auth_token.encode())
        return ok_user and ok_password and account_sid == self.account_sid

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _take_fail_rule(self, to: str) -> FailRule | None:
        with self._lock:
            for rule in self._fail_rules:
                if rule.to is None or rule.to == to:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._fail_rules.remove(rule)
                    return rule
        return None

    def _take_delivery_rule(self, to: str) -> DeliveryRule | None:
        with self._lock:
            return _take_rule(self._delivery_rules, to)

    def _take_hold_rule(self, to: str) -> bool:
        """Whether a new message to ``to`` is to stay queued (call with the lock held)."""
        return _take_rule(self._hold_rules, to) is not None

    # ----------------------------------------------------------------- REST API

    async def create_message(self, request: Request) -> Response:
        """``POST .../Messages.json``: validate, store, answer 201, then post callbacks."""
        if not self._authorized(request, request.path_params["account_sid"]):
            return twilio_error(20003, 401)
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        body = form.get("Body")
        content_sid = form.get("ContentSid") or None
        raw_variables = form.get("ContentVariables")
        status_callback = form.get("StatusCallback") or None
        if not to:
            return twilio_error(21604)
        if not _WHATSAPP_ADDRESS.match(to):
            return twilio_error(21211)
        if not from_:
            return twilio_error(21603)
        if not _WHATSAPP_ADDRESS.match(from_):
            return twilio_error(63007)
        if not body and not content_sid:
            return twilio_error(21619)
        if content_sid and not _CONTENT_SID.match(content_sid):
            return twilio_error(21655)
        variables: dict[str, str] | None = None
        if raw_variables:
            try:
                parsed = json.loads(raw_variables)
            except ValueError:
                return twilio_error(21656)
            if not isinstance(parsed, dict) or not all(
                isinstance(v, str | int | float) and str(v) != "" for v in parsed.values()
            ):
                return twilio_error(21656)
            variables = {str(k): str(v) for k, v in parsed.items()}
        if body and len(body) > MAX_BODY_CHARS:
            return twilio_error(21617)
        if status_callback and urlsplit(status_callback).scheme not in ("http", "https"):
            return twilio_error(21609)

        if self.config.response_delay_ms > 0:
            await asyncio.sleep(self.config.response_delay_ms / 1000)
        rule = self._take_fail_rule(_bare(to))
        if rule is not None and not rule.created:
            logger.info("simulator: forced create failure %s (HTTP %s)", rule.code, rule.status)
            if rule.gateway:
                return gateway_error(rule.status)
            return twilio_error(rule.code, rule.status, rule.message)

        now = _now()
        with self._lock:
            message = SimMessage(
                sid=_sid("SM"),
                account_sid=self.account_sid,
                direction="outbound-api",
                from_=from_,
                to=to,
                body=body or "",
                status="queued",
                date_created=now,
                date_updated=now,
                seq=self._next_seq(),
                content_sid=content_sid,
                content_variables=variables,
                status_callback=status_callback,
            )
            message.held = self._take_hold_rule(_bare(to))
            self._messages[message.sid] = message
            answer = message.resource()
        logger.info("simulator: created %s", message.sid)
        self._spawn(self._progress(message))
        if rule is not None:
            logger.info("simulator: %s created, answering %s anyway", message.sid, rule.code)
            if rule.gateway:
                return gateway_error(rule.status)
            return twilio_error(rule.code, rule.status, rule.message)
        return JSONResponse(answer, status_code=201)

    async def list_messages(self, request: Request) -> Response:
        """``GET .../Messages.json`` with Twilio's filters, newest first, paged."""
        account_sid = request.path_params["account_sid"]
        if not self._authorized(request, account_sid):
            return twilio_error(20003, 401)
        query = request.query_params
        try:
            page_size = int(query.get("PageSize", "50"))
            page = int(query.get("Page", "0"))
            on_day = _parse_day(query.get("DateSent"))
            after = _parse_instant(query.get("DateSent>"))
            before = _parse_instant(query.get("DateSent<"))
        except ValueError:
            return twilio_error(20001, 400, "Invalid parameter")
        if not 1 <= page_size <= 1000 or page < 0:
            return twilio_error(20001, 400, "Invalid parameter: PageSize or Page")
        to, from_ = query.get("To"), query.get("From")

        with self._lock:
            found = [
                m
                for m in self._messages.values()
                if (to is None or m.to == to)
                and (from_ is None or m.from_ == from_)
                and _sent_within(m.filter_time, on_day, after, before)
            ]
            found.sort(key=lambda m: (m.date_created, m.seq), reverse=True)
            start = page * page_size
            chunk = [m.resource() for m in found[start : start + page_size]]

        filters = [
            (k, v)
            for k, v in query.multi_items()
            if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")
        ]
        path = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode([*filters, ('PageSize', page_size), ('Page', number)])}"

        has_next = start + page_size < len(found)
        return JSONResponse(
            {
                "end": start + len(chunk) - 1 if chunk else start,
                "first_page_uri": page_uri(0),
                "messages": chunk,
                "next_page_uri": page_uri(page + 1) if has_next else None,
                "page": page,
                "page_size": page_size,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "start": start,
                "uri": page_uri(page),
            }
        )

    async def fetch_message(self, request: Request) -> Response:
        """``GET .../Messages/{Sid}.json``."""
        account_sid = request.path_params["account_sid"]
        if not self._authorized(request, account_sid):
            return twilio_error(20003, 401)
        sid = request.path_params["sid"]
        with self._lock:
            message = self._messages.get(sid)
            answer = message.resource() if message else None
        if answer is None:
            uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
            return twilio_error(20404, 404, f"The requested resource {uri} was not found")
        return JSONResponse(answer)

    # ------------------------------------------------------------ status flow

    async def _progress(self, message: SimMessage) -> None:
        """Move a new message through its statuses, posting a callback for each."""
        while message.held:  # /_sim/hold: queued (no date_sent, no callback) until released
            await asyncio.sleep(0.02)
        rule = self._take_delivery_rule(_bare(message.to))
        if rule is not None:
            steps: list[tuple[str, int | None]] = [("sent", None), (rule.final_status, rule.code)]
        else:
            steps = [("sent", None), ("delivered", None)]
            if self.config.send_read:
                steps.append(("read", None))
        for status, code in steps:
            await asyncio.sleep(self.config.callback_delay)
            now = _now()
            with self._lock:
                message.status = status
                message.date_updated = now
                if status == "sent":
                    message.date_sent = now
                if code is not None:
                    message.error_code = code
                    message.error_message = ERROR_MESSAGES.get(code, f"Error {code}")
                params = self._status_params(message)
                url = message.status_callback
                record = CallbackRecord(status=status, url=url or "", at=now)
                if url:
                    message.callbacks.append(record)
            if url:
                await self._post_signed(url, params, record)

    def _status_params(self, message: SimMessage) -> dict[str, str]:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "ChannelInstallSid": self.channel_install_sid,
            "ChannelPrefix": "whatsapp",
            "ChannelToAddress": _bare(message.to),
            "From": message.from_,
            "MessageSid": message.sid,
            "MessageStatus": message.status,
            "SmsSid": message.sid,
            "SmsStatus": message.status,
            "StructuredMessage": "false",
            "To": message.to,
        }
        if message.status in ("delivered", "read"):
            params["EventType"] = message.status.upper()
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        return params

    async def _post_signed(self, url: str, params: dict[str, str], record: CallbackRecord) -> None:
        """Post one signed form to ``url``, retrying network errors and 5xx answers."""
        headers = {
            "X-Twilio-Signature": sign(self.auth_token, url, params),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        attempts = max(1, self.config.callback_attempts)
        for attempt in range(1, attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                answer = await self._client().post(url, data=params, headers=headers)
                status = answer.status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            with self._lock:
                record.attempts, record.http_status, record.error = attempt, status, error
            if status is not None and status < 500:
                return
            if attempt < attempts:
                await asyncio.sleep(0.05 * 2**attempt)
        logger.warning("simulator: callback %s for %s failed", record.status, params["MessageSid"])

    # -------------------------------------------------------------- control API

    async def control_fail(self, request: Request) -> Response:
        """``POST /_sim/fail``: make the next creates fail with a Twilio error."""
        data = await _json(request)
        code = _opt_int(data, "code")
        status = _opt_int(data, "status")
        if code is None and status is None:
            raise BadControl("give a Twilio error 'code' and/or an HTTP 'status'")
        if code is None:
            code = _STATUS_CODE.get(status or 400, 20001 if (status or 400) < 500 else 20500)
        status = status or _CODE_STATUS.get(code, 400)
        if not 400 <= status <= 599:
            raise BadControl("'status' must be an HTTP error status (400-599)")
        count = _opt_int(data, "count") or 1
        rule = FailRule(
            code=code,
            status=status,
            message=str(data.get("message") or ERROR_MESSAGES.get(code, f"Error {code}")),
            remaining=count,
            to=_opt_number(data, "to"),
            created=bool(data.get("created", False)),
            gateway=bool(data.get("gateway", False)),
        )
        with self._lock:
            self._fail_rules.append(rule)
        return JSONResponse({"ok": True, "code": code, "status": status, "count": count})

    async def control_fail_delivery(self, request: Request) -> Response:
        """``POST /_sim/fail_delivery``: messages to a recipient end failed/undelivered."""
        data = await _json(request)
        final = str(data.get("status") or "failed")
        if final not in ("failed", "undelivered"):
            raise BadControl("'status' must be 'failed' or 'undelivered'")
        rule = DeliveryRule(
            code=_opt_int(data, "code") or 63024,
            final_status=final,
            to=_opt_number(data, "to"),
            remaining=_opt_int(data, "count"),
        )
        with self._lock:
            self._delivery_rules.append(rule)
        return JSONResponse({"ok": True, "code": rule.code, "status": final})

    async def control_hold(self, request: Request) -> Response:
        """``POST /_sim/hold``: new messages (to a recipient) stay ``queued`` until released."""
        data = await _json(request)
        rule = HoldRule(to=_opt_number(data, "to"), remaining=_opt_int(data, "count"))
        with self._lock:
            self._hold_rules.append(rule)
        return JSONResponse({"ok": True, "to": rule.to, "count": rule.remaining})

    async def control_release(self, request: Request) -> Response:
        """``POST /_sim/release``: held messages (to a recipient, else all) go on; no more holding."""
        data = await _json(request)
        to = _opt_number(data, "to")
        with self._lock:
            self._hold_rules = [r for r in self._hold_rules if to is not None and r.to != to]
            released = [m for m in self._messages.values() if m.held and (to is None or _bare(m.to) == to)]
            for message in released:
                message.held = False
        return JSONResponse({"ok": True, "released": len(released)})

    async def control_config(self, request: Request) -> Response:
        """``POST /_sim/config``: change callback delay, read receipts, response delay."""
        data = await _json(request)
        try:
            delay = float(data.get("callback_delay", self.config.callback_delay))
            response_delay = int(data.get("response_delay_ms", self.config.response_delay_ms))
        except (TypeError, ValueError):
            raise BadControl("'callback_delay' and 'response_delay_ms' must be numbers") from None
        with self._lock:
            self.config.callback_delay = max(0.0, delay)
            self.config.response_delay_ms = max(0, response_delay)
            if "send_read" in data:
                self.config.send_read = bool(data["send_read"])
            current = dict(vars(self.config))
        return JSONResponse(current)

    async def control_messages(self, request: Request) -> Response:
        """``GET /_sim/messages``: the messages created through the API, oldest first.

        ``?to=+33…`` keeps one recipient; ``?direction=inbound`` lists the messages
        ``/_sim/inbound`` sent instead, ``?direction=all`` both.
        """
        to = request.query_params.get("to")
        direction = request.query_params.get("direction", "outbound-api")
        if direction == "outbound":
            direction = "outbound-api"
        with self._lock:
            items = sorted(self._messages.values(), key=lambda m: m.seq)
            views = [
                m.view()
                for m in items
                if (to is None or _bare(m.to) == _bare(to))
                and (direction == "all" or m.direction == direction)
            ]
        return JSONResponse(views)

    async def control_reset(self, request: Request) -> Response:
        """``POST /_sim/reset``: forget messages and rules, restore the default knobs."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # gone from pending_callbacks
        with self._lock:
            self._messages.clear()
            self._fail_rules.clear()
            self._delivery_rules.clear()
            self._hold_rules.clear()
            self.config = SimConfig(**vars(self.defaults))
        return JSONResponse({"ok": True})

    async def control_health(self, request: Request) -> Response:
        """``GET /_sim/health``: also how many status callbacks are still to be posted."""
        return JSONResponse({"ok": True, "account_sid": self.account_sid, "pending_callbacks": len(self._tasks)})

    async def control_inbound(self, request: Request) -> Response:
        """``POST /_sim/inbound``: post a signed inbound WhatsApp message to the webhook."""
        data = await _json(request)
        sender = _opt_number(data, "from")
        if sender is None:
            raise BadControl("'from' (the client's number, E.164) is required")
        url = str(data.get("webhook_url") or "")
        if not url:
            if not self.webhook_base_url:
                raise BadControl("no 'webhook_url' given and no webhook base URL configured")
            url = f"{self.webhook_base_url}/whatsapp/webhook"
        url, overrides = connection_overrides(url)
        to = _opt_number(data, "to")
        recipient = _whatsapp(to) if to else self._our_number_for(sender)
        body = str(data.get("body") or "")
        sid = str(data.get("message_sid") or _sid("SM"))
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": _whatsapp(sender),
            "MessageSid": sid,
            "MessageType": "text",
            "NumMedia": "0",
            "NumSegments": "1",
            "ProfileName": str(data.get("profile_name") or "Client"),
            "ReferralNumMedia": "0",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": recipient,
            "WaId": sender.lstrip("+"),
        }
        consumed = {"from", "to", "body", "webhook_url", "profile_name", "message_sid"}
        params.update({str(k): str(v) for k, v in data.items() if k not in consumed})

        now = _now()
        with self._lock:
            message = SimMessage(
                sid=sid,
                account_sid=self.account_sid,
                direction="inbound",
                from_=params["From"],
                to=recipient,
                body=body,
                status="received",
                date_created=now,
                date_updated=now,
                date_sent=now,
                seq=self._next_seq(),
            )
            self._messages[sid] = message
        headers = {
            "X-Twilio-Signature": sign(self.auth_token, url, params),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        timeout = httpx.Timeout(overrides.read_timeout, connect=overrides.connect_timeout)
        attempt = 0
        while True:  # an answer, even 5xx, is final; a failed connection is retried only as overrides say
            attempt += 1
            try:
                answer = await self._client().post(url, data=params, headers=headers, timeout=timeout)
                break
            except httpx.HTTPError as exc:
                if attempt <= overrides.retries and overrides.retries_on(exc):
                    await asyncio.sleep(0.1)
                    continue
                return JSONResponse(
                    {"sid": sid, "error": f"webhook unreachable ({type(exc).__name__})", "attempts": attempt},
                    status_code=502,
                )
        return JSONResponse(
            {"sid": sid, "status_code": answer.status_code, "body": answer.text[:2000], "attempts": attempt}
        )

    def _our_number_for(self, client_number: str) -> str:
        """The sender the client last heard from, else the configured WhatsApp number."""
        with self._lock:
            for message in sorted(self._messages.values(), key=lambda m: -m.seq):
                if message.direction == "outbound-api" and _bare(message.to) == client_number:
                    return message.from_
        return self.whatsapp_number


# ---------------------------------------------------------------------- helpers


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadControl("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadControl("the body must be a JSON object")
    return data


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadControl(f"'{key}' must be an integer") from None


def _opt_number(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    bare = _bare(str(value).strip())
    if not _E164.match(bare):
        raise BadControl(f"'{key}' must be an E.164 number such as +33612345678")
    return bare


def _sent_within(sent: datetime | None, on_day: date | None, after: datetime | None,
                 before: datetime | None) -> bool:
    """Whether a message passes the DateSent filters (a message not sent yet passes none)."""
    if on_day is None and after is None and before is None:
        return True
    if sent is None:
        return False
    return ((on_day is None or sent.date() == on_day) and (after is None or sent >= after)
            and (before is None or sent <= before))


def _variable_order(key: str) -> tuple[int, str]:
    """Template variables in their order: "1", "2", … "10", then named ones."""
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def _parse_day(value: str | None) -> date | None:
    instant = _parse_instant(value)
    return instant.date() if instant else None


def _parse_instant(value: str | None) -> datetime | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (``Z`` or offset; naive = UTC)."""
    if not value:
        return None
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def _guard(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Turn BadControl into a 400 JSON answer."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadControl as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return wrapped


def create_app(
    *,
    account_sid: str,
    auth_token: str,
    webhook_base_url: str = "",
    callback_delay: float = 0.05,
    send_read: bool = True,
    whatsapp_number: str = DEFAULT_WHATSAPP_NUMBER,
    callback_attempts: int = 3,
) -> Starlette:
    """The simulator as a Starlette app; its :class:`Simulator` is ``app.state.simulator``."""
    sim = Simulator(
        account_sid=account_sid,
        auth_token=auth_token,
        webhook_base_url=webhook_base_url,
        whatsapp_number=whatsapp_number,
        config=SimConfig(
            callback_delay=callback_delay, send_read=send_read, callback_attempts=callback_attempts
        ),
    )
    messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"
    routes = [
        Route(f"{messages}.json", sim.create_message, methods=["POST"]),
        Route(f"{messages}.json", sim.list_messages, methods=["GET"]),
        Route(f"{messages}/{{sid}}.json", sim.fetch_message, methods=["GET"]),
        Route("/_sim/fail", _guard(sim.control_fail), methods=["POST"]),
        Route("/_sim/fail_delivery", _guard(sim.control_fail_delivery), methods=["POST"]),
        Route("/_sim/hold", _guard(sim.control_hold), methods=["POST"]),
        Route("/_sim/release", _guard(sim.control_release), methods=["POST"]),
        Route("/_sim/config", _guard(sim.control_config), methods=["POST"]),
        Route("/_sim/inbound", _guard(sim.control_inbound), methods=["POST"]),
        Route("/_sim/messages", sim.control_messages, methods=["GET"]),
        Route("/_sim/reset", sim.control_reset, methods=["POST"]),
        Route("/_sim/health", sim.control_health, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sim.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.simulator = sim
    return app


def run(*, host: str, port: int, log_level: str = "info", **kwargs: Any) -> None:
    """Serve the simulator with uvicorn until interrupted; ``kwargs`` go to :func:`create_app`."""
    app = create_app(**kwargs)
    logger.info("Twilio simulator on http://%s:%s", host, port)
    # No access log: list queries carry phone numbers in their query string.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, log_config=None)
