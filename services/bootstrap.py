"""Composition roots: build each process's real dependencies from one Settings object.

Nothing here runs at import time; tests call these builders with their own settings, or
build :class:`workers.deps.Deps` directly with fakes.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

import redis
from dramatiq.brokers.redis import RedisBroker
from pymongo import MongoClient
from starlette.applications import Starlette

from shared.clock import Clock, SystemClock
from shared.gemini import CheckedDrafter, GeminiDrafter
from shared.offline import OfflineDrafter
from shared.ports import Classifier, Drafter, Sender
from shared.queue import DramatiqQueue, make_broker
from shared.settings import Settings
from shared.store import Doc, Store, open_store
from shared.twilio_sender import TwilioSender
from workers.deps import Deps

log = logging.getLogger(__name__)


class SecretsFilter(logging.Filter):
    """Last line of defence: blank out configured secrets if one ever reaches a log record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def configure_logging(settings: Settings) -> None:
    """Plain one-line logs on stderr; vendor loggers that echo requests are quietened."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretsFilter([settings.twilio_auth_token.get_secret_value(),
                                     settings.gemini_api_key.get_secret_value()]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper() if settings.log_level.upper() in logging._nameToLevel else "INFO")
    for noisy in ("twilio.http_client", "httpx", "httpcore", "pymongo", "google_genai", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


WEBHOOK_STORE_TIMEOUT_MS = 10_000


def build_store(settings: Settings, *, socket_timeout_ms: int | None = None) -> tuple[MongoClient[Doc], Store]:
    """Connect to MongoDB (lazily) and build the repositories."""
    return open_store(settings.mongodb_uri, settings.mongodb_database, socket_timeout_ms=socket_timeout_ms)


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
    from shared.classifier import GeminiClassifier, OfflineClassifier

    key = settings.gemini_api_key.get_secret_value()
    if not key:
        return OfflineClassifier()
    return GeminiClassifier(api_key=key, model=settings.gemini_model, base_url=settings.gemini_api_base_url,
                            timeout_seconds=settings.gemini_timeout_seconds)


def build_broker(settings: Settings) -> RedisBroker:
    """The dramatiq Redis broker."""
    return make_broker(settings.redis_url)


def build_worker_deps(settings: Settings, *, clock: Clock | None = None) -> tuple[Deps, RedisBroker, MongoClient[Doc]]:
    """Everything an actor process needs."""
    client, store = build_store(settings)
    broker = build_broker(settings)
    from shared.ratelimit import SendRateLimiter

    limiter = SendRateLimiter(client=broker.client, sender=settings.twilio_whatsapp_number, rate=settings.send_rate,
                              burst=settings.send_rate_burst)
    deps = Deps(settings=settings, store=store, clock=clock or SystemClock(), queue=DramatiqQueue(broker),
                drafter=build_drafter(settings), sender=build_sender(settings),
                classifier=build_classifier(settings), rate_limiter=limiter, redis=broker.client)
    return deps, broker, client


def register_actors(broker: RedisBroker, deps: Deps) -> None:
    """Declare every actor on the broker (each process consumes only its own queues)."""
    from workers import delivery, drafting, replies, sending

    drafting.register(broker, deps)
    sending.register(broker, deps)
    replies.register(broker, deps)
    delivery.register(broker, deps)


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
                       body_timeout=settings.webhook_body_timeout_seconds)
    return create_app(deps, on_shutdown=close, freeze_gc=True)


def stale_after(settings: Settings) -> timedelta:
    """How long work may sit in an intermediate state before it is enqueued again."""
    return timedelta(seconds=settings.stale_after_seconds)
