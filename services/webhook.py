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

The checks before the form is trusted are :mod:`services.webhook_request`; the event documents
and the status update, :mod:`services.webhook_events`; this module is the application: the
bound on requests in flight, the two routes, the answers. ``POST /payments/stripe`` (Stripe's
payment events, when STRIPE_WEBHOOK_SECRET is set) is :mod:`services.stripe_webhook`.

Answers: 200 (stored, applied, or a duplicate); 400 malformed, a field Twilio would not send,
or the client gone before its body arrived; 403 missing, malformed or wrong signature; 408 body
too slow; 413 body too large, too many or too long fields; 503 too many requests in flight, or
the event cannot be recorded. See docs/webhook-security.md.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.recorder import EventRecorder
from services.stripe_webhook import stripe_handler
from services.twilio_fields import FieldError, Ours, check_inbound, check_status
from services.webhook_events import apply_status, inbound_event, status_event
from services.webhook_metrics import RequestTimer, metrics_endpoint
from services.webhook_request import BODY_TIMEOUT_SECONDS, BadRequest, check_headers, read_signed_form, refusal
from shared.clock import Clock
from shared.domain.invoices import Invoice
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.domain.states import FAILED_STATUSES, STATUS_RANK
from shared.errors import TransientError
from shared.phones import mask_phone
from shared.ports import TaskQueue
from shared.usecases.payment_thanks import thank_for_payment

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Default of WEBHOOK_MAX_IN_FLIGHT (shared.settings).
MAX_IN_FLIGHT = 1000  # well above the few hundred the group commit batches at full load
SANDBOX_SENDER = "whatsapp:+14155238886"  # TWILIO_WHATSAPP_NUMBER's default
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
    stripe_webhook_secret: str = ""  # STRIPE_WEBHOOK_SECRET: POST /payments/stripe exists only when set
    # What the thank-you after a payment reads: business name, THANK_YOU_*, the replies cap.
    rules: Rules = field(default_factory=Rules)
    # GET /metrics: the queue depths read from Redis (none without), and METRICS_TOKEN.
    queue_depths: Callable[[], dict[tuple[str, str], int]] = dict
    metrics_token: str = ""


def twiml() -> Response:
    """The empty TwiML answer: nothing to reply right now."""
    return Response(EMPTY_TWIML, media_type="text/xml")


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

    routes = [
        Route("/whatsapp/webhook", inbound, methods=["POST"]),
        Route("/whatsapp/status", status, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint(deps.store, deps.queue_depths, deps.metrics_token), methods=["GET"]),
    ]
    if deps.stripe_webhook_secret:
        def thank(invoice: Invoice, payment_ref: str) -> None:
            thank_for_payment(deps.store, deps.queue, deps.rules, invoice, payment_ref, now=deps.clock.now())

        handler = stripe_handler(deps.store, deps.clock, deps.stripe_webhook_secret, deps.queue, on_paid=thank)
        routes.append(Route("/payments/stripe", handler, methods=["POST"]))
    timer = Middleware(RequestTimer, routes=[route.path for route in routes])
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[timer])
    app.state.in_flight = lambda: in_flight  # read by tests and the bench
    return app
