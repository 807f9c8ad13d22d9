"""Settings: one pydantic-settings class, read from the environment and an optional ``.env``.

Every process builds one :class:`Settings` through :func:`load_settings` in its composition
root; nothing reads ``os.environ`` elsewhere. A malformed value, or a value a process needs
and does not have (see :meth:`Settings.require`), raises :class:`~shared.errors.ConfigError`
whose message is one line naming the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.models import CONTENT_SID_SHAPE, is_content_sid
from shared.domain.rules import Rules
from shared.durations import MAX_DURATION, parse_duration
from shared.errors import ConfigError, InputError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PAID_CLAIM_ACTIONS = ("pause_and_verify", "stop")

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


class Settings(BaseSettings):
    """All of Relance's configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Twilio (seed names)
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    # The secret of a Twilio webhook SharedKey, for webhooks Twilio signs with it (requests that
    # carry X-Twilio-Webhooks-Signature-Settings); the Auth Token signs the others.
    twilio_webhook_shared_key: SecretStr = SecretStr("")
    twilio_whatsapp_number: str = "whatsapp:+14155238886"
    target_phone_number: str = ""
    twilio_api_base_url: str = ""

    # Gemini
    gemini_api_key: SecretStr = SecretStr("")
    gemini_model: str = "gemini-2.5-flash"
    gemini_api_base_url: str = ""
    gemini_timeout_seconds: float = Field(default=20.0, gt=0)

    # Stripe: the signing secret of the webhook endpoint POST /payments/stripe (off when empty).
    stripe_webhook_secret: SecretStr = SecretStr("")

    # Processes and stores
    ngrok_authtoken: SecretStr = SecretStr("")
    backend_port: int = Field(default=3000, ge=1, le=65535)
    console_port: int = Field(default=8080, ge=1, le=65535)
    # Proxies whose X-Forwarded-Proto/-For the console believes (uvicorn's forwarded_allow_ips; "*": any).
    console_trusted_proxies: str = "127.0.0.1"
    mongodb_uri: str = "mongodb://127.0.0.1:27017/relance"
    redis_url: str = "redis://127.0.0.1:6379/0"
    public_base_url: str = ""
    # The webhook's front door (docs/webhook-security.md): requests in flight past which it
    # answers 503 at once, and how long a request body may take to arrive (408 after).
    webhook_max_in_flight: int = Field(default=1000, ge=1)
    webhook_body_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    # Behaviour
    business_name: str = "Relance"
    scheduler_interval_seconds: float = Field(default=2.0, gt=0)
    scheduler_batch_size: int = Field(default=200, ge=1)
    stale_after_seconds: float = Field(default=300.0, gt=0)
    # How long a send whose outcome is unknown must leave no trace in Twilio's list before it is
    # sent again (docs/twilio.md).
    reconcile_grace_seconds: float = Field(default=600.0, ge=1)
    # How often one scheduler lists Twilio's recent inbound messages to store any the webhook
    # missed (docs/twilio.md); 0 turns the backfill off.
    inbound_backfill_seconds: float = Field(default=60.0, ge=0, le=86_400)
    max_message_chars: int = Field(default=700, ge=80, le=1600)
    default_country: str = "FR"
    owner_whatsapp_number: str = ""
    # Approved Content template for owner alerts outside the owner's 24-hour window;
    # variables {"1": contact name, "2": reason, "3": contact phone}.
    owner_alert_template_sid: str = ""
    classifier_threshold: float = Field(default=0.6, ge=0, le=1)
    thank_you_on_paid: bool = True
    # Approved Content template of the thank-you after a payment, outside the client's 24-hour
    # window; variables {"1": client name, "2": invoice reference}. Unset: no thank-you outside it.
    thank_you_template_sid: str = ""
    # Approved Content template of a reply a person writes by hand (the console, `relance reply`) outside the
    # client's 24-hour window; variables {"1": client name, "2": the text}. Unset: no such reply there.
    manual_reply_template_sid: str = ""
    # A client's "I paid": pause and ask the owner to confirm (pause_and_verify), or stop at once (stop).
    paid_claim_action: Literal["pause_and_verify", "stop"] = "pause_and_verify"
    # The longest pause a promise to pay buys, in days; a later promised date is capped.
    max_promise_days: int = Field(default=30, ge=1, le=366)
    # Automated replies (thank-you, acknowledgement, answer) one client may get in 24 hours; 0: no limit.
    max_auto_replies_per_day: int = Field(default=3, ge=0)
    log_level: str = "INFO"
    # text: one plain line per record; json: one JSON object per line (docs/operations.md).
    log_format: Literal["text", "json"] = "text"

    # Metrics (docs/operations.md): the port the scheduler and the workers serve /metrics on
    # (0: off; the webhook serves GET /metrics on its own port), and a bearer token that
    # protects the webhook's /metrics when set.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_token: SecretStr = SecretStr("")
    # dramatiq's own Prometheus middleware on the workers (when METRICS_PORT is set too): the
    # address and port its exposition server listens on (dramatiq's dramatiq_prom_host and
    # dramatiq_prom_port, with the same defaults; 0: off).
    dramatiq_prom_host: str = "0.0.0.0"
    dramatiq_prom_port: int = Field(default=9191, ge=0, le=65535)

    # Sending pace
    send_rate: str = "80/1s"
    send_rate_burst: int = Field(default=1, ge=1)
    min_gap_between_messages: str = "1h"
    daily_cap_per_contact: int = Field(default=2, ge=0)
    holidays_country: str = "FR"
    holidays_subdiv: str = ""

    @field_validator("send_rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from shared.ratelimit import parse_rate

        try:
            parse_rate(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("scheduler_interval_seconds", "stale_after_seconds")
    @classmethod
    def _check_seconds(cls, value: float) -> float:
        # Beyond a year it is a typo; an infinite or huge value would overflow timedelta and
        # threading waits at the scheduler's start instead of failing here with one line.
        if not value <= MAX_DURATION.total_seconds():
            raise ValueError(f"must be at most {int(MAX_DURATION.total_seconds())} seconds (365 days)")
        return value

    @field_validator("min_gap_between_messages")
    @classmethod
    def _check_gap(cls, value: str) -> str:
        try:
            parse_duration(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("holidays_country")
    @classmethod
    def _check_holidays_country(cls, value: str) -> str:
        from shared.policy import check_holidays_country

        try:
            return check_holidays_country(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("holidays_subdiv")
    @classmethod
    def _check_holidays_subdiv(cls, value: str, info: ValidationInfo) -> str:
        from shared.policy import check_holidays_country

        country = info.data.get("holidays_country", "")
        if value.strip() and not country:
            raise ValueError("needs HOLIDAYS_COUNTRY")
        try:
            check_holidays_country(country, value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("twilio_account_sid")
    @classmethod
    def _check_sid(cls, value: str) -> str:
        if value and not _ACCOUNT_SID.match(value):
            raise ValueError("must look like AC followed by 32 hexadecimal characters")
        return value

    @field_validator("twilio_whatsapp_number")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        if not re.match(r"^whatsapp:\+[1-9]\d{6,14}$", value):
            raise ValueError("must look like whatsapp:+14155238886")
        return value

    @field_validator("owner_whatsapp_number", "target_phone_number")
    @classmethod
    def _check_owner(cls, value: str) -> str:
        if value and not re.match(r"^(whatsapp:)?\+[1-9]\d{6,14}$", value):
            raise ValueError("must be an E.164 number such as +33612345678")
        return value.removeprefix("whatsapp:")

    @field_validator("owner_alert_template_sid", "thank_you_template_sid", "manual_reply_template_sid")
    @classmethod
    def _check_owner_template(cls, value: str) -> str:
        value = value.strip()
        if value and not is_content_sid(value):
            raise ValueError(f"must look like {CONTENT_SID_SHAPE} (a Twilio Content template SID)")
        return value

    @field_validator("paid_claim_action", mode="before")
    @classmethod
    def _check_paid_claim_action(cls, value: Any) -> str:
        action = str(value).strip().lower()
        if action not in PAID_CLAIM_ACTIONS:
            raise ValueError(f"must be one of {', '.join(PAID_CLAIM_ACTIONS)}")
        return action

    @field_validator("mongodb_uri")
    @classmethod
    def _check_mongo(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("default_country")
    @classmethod
    def _check_default_country(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if not phonenumbers.country_code_for_region(region):
            raise ValueError("must be a two-letter country code such as FR, BE or GB")
        return region

    @field_validator("gemini_model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a Gemini model, e.g. gemini-2.5-flash")
        return value.strip()

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("public_base_url", "twilio_api_base_url", "gemini_api_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http(s) URL such as https://example.ngrok-free.app")
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        """The public URL Twilio calls; defaults to this machine's webhook port."""
        return self.public_base_url or f"http://127.0.0.1:{self.backend_port}"

    @property
    def status_callback_url(self) -> str:
        """Where Twilio posts delivery statuses."""
        return f"{self.base_url}/whatsapp/status"

    @property
    def mongodb_database(self) -> str:
        """The database named in MONGODB_URI, ``relance`` when it names none."""
        path = urlparse(self.mongodb_uri).path.lstrip("/")
        return path.split("?")[0] or "relance"

    @property
    def min_gap(self) -> timedelta:
        """MIN_GAP_BETWEEN_MESSAGES as a timedelta."""
        return parse_duration(self.min_gap_between_messages)

    @property
    def sender_number(self) -> str:
        """The sender as E.164, without the ``whatsapp:`` prefix."""
        return self.twilio_whatsapp_number.removeprefix("whatsapp:")

    @property
    def real_twilio(self) -> bool:
        """Whether messages go to Twilio itself (credentials set, no TWILIO_API_BASE_URL)."""
        return bool(self.twilio_account_sid) and not self.twilio_api_base_url

    def rules(self) -> Rules:
        """The business rules these settings describe (what use cases read)."""
        return Rules(
            business_name=self.business_name,
            max_message_chars=self.max_message_chars,
            sender=self.twilio_whatsapp_number,
            status_callback_url=self.status_callback_url,
            classifier_threshold=self.classifier_threshold,
            thank_you_on_paid=self.thank_you_on_paid,
            paid_claim_action=self.paid_claim_action,
            max_promise_days=self.max_promise_days,
            max_auto_replies_per_day=self.max_auto_replies_per_day,
            owner_number=self.owner_whatsapp_number,
            owner_alert_template_sid=self.owner_alert_template_sid,
            thank_you_template_sid=self.thank_you_template_sid,
            manual_reply_template_sid=self.manual_reply_template_sid,
            min_gap=self.min_gap,
            daily_cap_per_contact=self.daily_cap_per_contact,
            holidays_country=self.holidays_country or None,
            holidays_subdiv=self.holidays_subdiv or None,
            reconcile_grace=timedelta(seconds=self.reconcile_grace_seconds),
        )

    def require_public_url(self) -> None:
        """With real Twilio, PUBLIC_BASE_URL must be set: Twilio cannot call 127.0.0.1."""
        if self.real_twilio and not self.public_base_url:
            raise ConfigError("PUBLIC_BASE_URL is not set: with a real Twilio account, Twilio must reach the "
                              "webhook at a public https URL (ngrok or your domain); add it to the environment "
                              "or .env")

    def require(self, *names: str) -> None:
        """Fail with one clear line if any named setting is empty."""
        for name in names:
            value: Any = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value in ("", None):
                raise ConfigError(f"{name.upper()} is not set: add it to the environment or .env")


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read the settings once; errors become a one-line :class:`ConfigError`."""
    try:
        if environ is None:
            return Settings(_env_file=env_file)  # type: ignore[call-arg]
        lowered = {k.lower(): v for k, v in environ.items() if k.lower() in Settings.model_fields}
        factory: Any = Settings
        return factory(_env_file=None, **lowered)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None
