"""Composition roots: build each process's real dependencies from one Settings object.

Nothing here runs at import time; tests call these builders with their own settings, or
build :class:`shared.usecases.context.App` directly with fakes (``App.build``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import redis
from dramatiq.brokers.redis import RedisBroker
from starlette.applications import Starlette

from shared.adapters.cached import CachedCampaigns
from shared.adapters.mongo import Client, open_repositories
from shared.clock import Clock, SystemClock
from shared.domain.repositories import Repositories
from shared.errors import ConfigError
from shared.gemini import CheckedDrafter, GeminiDrafter
from shared.language.drafts import OfflineDrafter
from shared.metrics import ActorMetrics, MeteredClassifier, MeteredSender, redis_queue_depths
from shared.pacing import RedisContactLocks
from shared.ports import Classifier, DeliveryStatus, Drafter, OutboundRequest, Sender, SendResult
from shared.queue import QUEUE_SENDING, QUEUES, DramatiqQueue, make_broker
from shared.redaction import JsonFormatter, RedactingFilter, Redactor, url_secrets
from shared.settings import Settings
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App

if TYPE_CHECKING:
    from services.backfill import InboundBackfill

log = logging.getLogger(__name__)


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret the settings hold: tokens, keys, and the passwords in the store URLs."""
    return [
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_webhook_shared_key.get_secret_value(),
        settings.gemini_api_key.get_secret_value(),
        settings.ngrok_authtoken.get_secret_value(),
        settings.stripe_webhook_secret.get_secret_value(),
        settings.metrics_token.get_secret_value(),
        *url_secrets(settings.mongodb_uri),
        *url_secrets(settings.redis_url),
    ]


def configure_logging(settings: Settings) -> None:
    """Plain one-line logs on stderr, redacted; vendor loggers that echo requests are quietened.

    Every record reaching the root handler (ours, uvicorn's, dramatiq's, pymongo's, twilio's)
    goes through :class:`~shared.redaction.RedactingFilter`: phone numbers masked, secrets
    and URL passwords replaced by ``***``, in the message and in the exception text. Uncaught
    exceptions are logged through it too, instead of printed raw.
    """
    redacting = RedactingFilter(Redactor(settings_secrets(settings)))
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(redacting.redactor))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redacting)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # A handler that fails (stderr closed) must not print the record and the exception being
    # handled, unredacted, to stderr: logging's own error report does that unless told not to.
    logging.raiseExceptions = False
    root.setLevel(settings.log_level.upper() if settings.log_level.upper() in logging._nameToLevel else "INFO")
    for noisy in ("twilio.http_client", "httpx", "httpcore", "pymongo", "google_genai", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Handlers a library set up on its own loggers before this (they do not reach the root).
    for other in list(logging.root.manager.loggerDict.values()):
        for own in getattr(other, "handlers", []):
            if not any(isinstance(f, RedactingFilter) for f in own.filters):
                own.addFilter(redacting)
    _log_uncaught_exceptions()


def _log_uncaught_exceptions() -> None:
    """Route tracebacks Python would print raw to stderr through the redacted log.

    Left alone when something else (a test runner) has already replaced the hooks.
    """
    if sys.excepthook is sys.__excepthook__:
        def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
            if issubclass(kind, KeyboardInterrupt):
                sys.__excepthook__(kind, value, tb)
                return
            logging.getLogger("relance").critical("uncaught exception", exc_info=(kind, value, tb))

        sys.excepthook = excepthook
    if threading.excepthook is threading.__excepthook__:
        def thread_excepthook(args: threading.ExceptHookArgs) -> None:
            if args.exc_type is SystemExit or args.exc_value is None:
                return
            name = args.thread.name if args.thread else "?"
            logging.getLogger("relance").critical("uncaught exception in thread %s", name,
                                                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

        threading.excepthook = thread_excepthook


WEBHOOK_STORE_TIMEOUT_MS = 10_000


def build_store(settings: Settings, *, socket_timeout_ms: int | None = None) -> tuple[Client, Repositories]:
    """Connect to MongoDB (lazily) and build the repositories."""
    return open_repositories(settings.mongodb_uri, settings.mongodb_database, socket_timeout_ms=socket_timeout_ms)


def build_sender(settings: Settings) -> Sender:
    """The Twilio adapter (pointed at the simulator when TWILIO_API_BASE_URL is set)."""
    settings.require("twilio_account_sid", "twilio_auth_token")
    settings.require_public_url()  # the StatusCallback of every message
    return TwilioSender(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_whatsapp_number,
        api_base_url=settings.twilio_api_base_url,
    )


class NoSender:
    """The Sender of a worker that does not consume the sending queue: it holds no Twilio credentials.

    Only the sending queue's actors (send, reconcile, status poll) call Twilio, so the drafting and
    replies workers run without the Auth Token; a call here would be a bug, and says so.
    """

    def _refuse(self) -> NoReturn:
        raise ConfigError("this worker does not consume the sending queue: it has no Twilio client")

    def send(self, request: OutboundRequest) -> SendResult:
        self._refuse()

    def list_messages(self, *, to: str, from_: str | None = None, date_sent_after: datetime | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        self._refuse()

    def fetch_status(self, sid: str) -> DeliveryStatus | None:
        self._refuse()


def build_inbound_backfill(settings: Settings) -> InboundBackfill | None:
    """The scheduler's inbound backfill (Twilio's Messages list), or None when it cannot or need not run.

    Off with INBOUND_BACKFILL_SECONDS=0, and without Twilio credentials (one warning: the
    scheduler itself runs without them). It only reads Twilio: PUBLIC_BASE_URL is not needed.
    """
    from services.backfill import InboundBackfill

    if settings.inbound_backfill_seconds <= 0:
        log.info("inbound backfill off (INBOUND_BACKFILL_SECONDS=0)")
        return None
    if not settings.twilio_account_sid or not settings.twilio_auth_token.get_secret_value():
        log.warning("inbound backfill off: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set for the scheduler, "
                    "so messages the webhook misses during an outage are not fetched from Twilio")
        return None
    sender = TwilioSender(account_sid=settings.twilio_account_sid,
                          auth_token=settings.twilio_auth_token.get_secret_value(),
                          from_number=settings.twilio_whatsapp_number, api_base_url=settings.twilio_api_base_url)
    return InboundBackfill(sender=sender, our_number=settings.twilio_whatsapp_number,
                           period=timedelta(seconds=settings.inbound_backfill_seconds))


def build_drafter(settings: Settings) -> Drafter:
    """Gemini checked against the facts, falling back to the offline drafter; offline only without a key."""
    key = settings.gemini_api_key.get_secret_value()
    primary = None
    if key:
        primary = GeminiDrafter(api_key=key, model=settings.gemini_model, base_url=settings.gemini_api_base_url,
                                timeout_seconds=settings.gemini_timeout_seconds)
    return CheckedDrafter(primary=primary, fallback=OfflineDrafter())


def build_classifier(settings: Settings) -> Classifier:
    """Gemini reads replies when a key is set; the offline rules otherwise."""
    from shared.gemini_classifier import GeminiClassifier
    from shared.language.classifier import OfflineClassifier

    key = settings.gemini_api_key.get_secret_value()
    if not key:
        return OfflineClassifier()
    return GeminiClassifier(api_key=key, model=settings.gemini_model, base_url=settings.gemini_api_base_url,
                            timeout_seconds=settings.gemini_timeout_seconds)


def build_broker(settings: Settings) -> RedisBroker:
    """The dramatiq Redis broker."""
    return make_broker(settings.redis_url)


def build_task_queue(settings: Settings) -> DramatiqQueue:
    """The queue the CLI's commands and the console hand work to (drafts asked again, messages to send,
    hooks): Redis. Redis away: an enqueue fails, is logged, and the scheduler's sweeps pick the work up."""
    return DramatiqQueue(build_broker(settings))


def build_worker_deps(settings: Settings, *, clock: Clock | None = None,
                      queues: Collection[str] = QUEUES) -> tuple[App, RedisBroker, Client]:
    """Everything an actor process consuming ``queues`` needs (Twilio only for the sending queue)."""
    # First, so that missing credentials stop the process before it connects to anything.
    sender: Sender = MeteredSender(build_sender(settings)) if QUEUE_SENDING in queues else NoSender()
    client, store = build_store(settings)
    broker = build_broker(settings)
    broker.add_middleware(ActorMetrics())
    if settings.metrics_port and settings.dramatiq_prom_port:
        from shared.dramatiq_metrics import DramatiqPrometheus

        broker.add_middleware(DramatiqPrometheus())
    from shared.ratelimit import SendRateLimiter

    limiter = SendRateLimiter(client=broker.client, sender=settings.twilio_whatsapp_number, rate=settings.send_rate,
                              burst=settings.send_rate_burst)
    # The actors read a campaign per message: kept per process (they decide nothing from its status).
    store = replace(store, campaigns=CachedCampaigns(store.campaigns))
    deps = App(rules=settings.rules(), store=store, clock=clock or SystemClock(),
               queue=DramatiqQueue(broker), drafter=build_drafter(settings), sender=sender,
               classifier=MeteredClassifier(build_classifier(settings)), limiter=limiter,
               locks=RedisContactLocks(broker.client))
    return deps, broker, client


def register_actors(broker: RedisBroker, deps: App) -> None:
    """Declare every actor on the broker (each process consumes only its own queues)."""
    from workers import drafting, outbound, replies, sending

    drafting.register(broker, deps)
    sending.register(broker, deps)
    replies.register(broker, deps)
    outbound.register(broker, deps)


def build_webhook(settings: Settings, *, clock: Clock | None = None) -> Starlette:
    """The webhook application with its real store and queue."""
    from services.webhook import WebhookDeps, create_app

    settings.require("twilio_auth_token")
    settings.require_public_url()  # what Twilio signs: a wrong one refuses every webhook (403)
    # Twilio gives up on a webhook after 15 s: a write stuck on a hung MongoDB link fails before
    # that (503, Twilio retries) instead of holding every request of its batch.
    client, store = build_store(settings, socket_timeout_ms=WEBHOOK_STORE_TIMEOUT_MS)
    broker = build_broker(settings)
    redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)

    def redis_ping() -> bool:
        try:
            return bool(redis_client.ping())
        except redis.RedisError:
            return False

    def close() -> None:
        client.close()
        broker.close()
        redis_client.close()

    deps = WebhookDeps(store=store, queue=DramatiqQueue(broker), clock=clock or SystemClock(),
                       auth_token=settings.twilio_auth_token.get_secret_value(),
                       public_base_url=settings.base_url, redis_ping=redis_ping,
                       shared_key=settings.twilio_webhook_shared_key.get_secret_value(),
                       account_sid=settings.twilio_account_sid, sender=settings.twilio_whatsapp_number,
                       max_in_flight=settings.webhook_max_in_flight,
                       body_timeout=settings.webhook_body_timeout_seconds,
                       stripe_webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
                       rules=settings.rules(),
                       queue_depths=lambda: redis_queue_depths(redis_client, broker.namespace, QUEUES),
                       metrics_token=settings.metrics_token.get_secret_value())
    if not deps.stripe_webhook_secret:
        log.warning("Stripe payments off: STRIPE_WEBHOOK_SECRET is not set, POST /payments/stripe answers 404 "
                    "(docs/invoices.md)")
    return create_app(deps, on_shutdown=close, freeze_gc=True)


def serve_metrics(settings: Settings) -> None:
    """Serve this process's metrics on METRICS_PORT (scheduler, workers); nothing when it is 0."""
    if not settings.metrics_port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.metrics_port)
    except OSError as exc:  # taken (several processes on one host with one .env): run without metrics
        log.warning("metrics off: port %d cannot be served (%s)", settings.metrics_port, exc.strerror or exc)
        return
    log.info("metrics on :%d/metrics", settings.metrics_port)


def serve_dramatiq_metrics(settings: Settings, broker: RedisBroker) -> None:
    """Serve dramatiq's Prometheus middleware of this worker on DRAMATIQ_PROM_HOST:DRAMATIQ_PROM_PORT.

    Nothing when :func:`build_worker_deps` did not add it (metrics off).
    """
    if not (settings.metrics_port and settings.dramatiq_prom_port):
        return
    from shared.dramatiq_metrics import DramatiqPrometheus

    for middleware in broker.middleware:
        if isinstance(middleware, DramatiqPrometheus):
            middleware.serve(settings.dramatiq_prom_host, settings.dramatiq_prom_port)
            return


def stale_after(settings: Settings) -> timedelta:
    """How long work may sit in an intermediate state before it is enqueued again."""
    return timedelta(seconds=settings.stale_after_seconds)
