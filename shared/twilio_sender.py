"""The Twilio adapter: sends WhatsApp messages through the real ``twilio`` SDK.

:class:`TwilioSender` implements :class:`shared.ports.Sender`. Twilio's and the network's
errors are translated here, at the boundary, into :class:`~shared.errors.SendRejected`
(permanent) or :class:`~shared.errors.SendDeferred` (retry later), so no other module
imports a vendor exception.

When ``api_base_url`` is set (the local simulator, ``devtools.simulator``), requests go to
that URL instead of ``https://api.twilio.com`` through :class:`RedirectingHttpClient`; the
SDK itself runs unchanged.

Phone numbers and message bodies are never logged here, and neither are Twilio's error
texts (they may quote the number): only SIDs, HTTP statuses and Twilio error codes.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from shared.errors import SendDeferred, SendRejected
from shared.ports import DeliveryStatus, OutboundRequest, SendResult

try:  # RFC 9457 errors, raised by newer SDKs for some services.
    from twilio.base.exceptions import TwilioServiceException
except ImportError:  # pragma: no cover - older SDKs
    TwilioServiceException = None  # type: ignore[assignment,misc,unused-ignore]

logger = logging.getLogger(__name__)

TWILIO_API_URL = "https://api.twilio.com"

# Given to the SDK instead of os.environ (an empty dict would make it fall back to
# os.environ): credentials, region and edge come from our settings only, never from
# TWILIO_* variables, so api.twilio.com stays the host and the base-URL rewrite applies.
_NO_ENVIRONMENT = {
    "TWILIO_ACCOUNT_SID": "",
    "TWILIO_AUTH_TOKEN": "",
    "TWILIO_EDGE": "",
    "TWILIO_REGION": "",
}

# Twilio error codes that mean "slow down / try again later" whatever the HTTP status. The
# sending actor also lowers the shared send rate on 63018 (shared.ratelimit.SLOW_DOWN_CODES).
RETRYABLE_CODES = frozenset({20429, 63018})


def whatsapp_address(number: str) -> str:
    """``+33612345678`` → ``whatsapp:+33612345678`` (unchanged if already prefixed)."""
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def is_retryable(status: int | None, code: int | None) -> bool:
    """Whether a Twilio error (HTTP status, error code) is worth retrying later."""
    if status is not None and (status == 429 or status >= 500):
        return True
    return code in RETRYABLE_CODES


class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc,unused-ignore]
    """Twilio's own HTTP client, sending ``https://api.twilio.com`` calls to ``base_url``.

    Only the URL prefix is rewritten; methods, form data, auth and headers are untouched.
    Request logging is reduced to the method and path at DEBUG (query strings can hold
    phone numbers).
    """

    def __init__(self, *, base_url: str = "", timeout: float | None = None) -> None:
        super().__init__(timeout=timeout, logger=logging.getLogger(f"{__name__}.http"))
        self.base_url = base_url.rstrip("/")

    def rewrite(self, url: str) -> str:
        """The URL the request really goes to."""
        if self.base_url and (url == TWILIO_API_URL or url.startswith(TWILIO_API_URL + "/")):
            return self.base_url + url[len(TWILIO_API_URL) :]
        return url

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Make the request like ``TwilioHttpClient``, to the rewritten URL."""
        return super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """Log the method and path only (no query string, no form data)."""
        self.logger.debug(
            "Twilio request %s %s", kwargs.get("method"), urlsplit(kwargs["url"]).path
        )

    def log_response(self, status_code: int, response: Any) -> None:
        """Log the status code only."""
        self.logger.debug("Twilio response %s", status_code)


class TwilioSender:
    """Sends WhatsApp messages with Twilio's Messages API (implements ``Sender``)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str = "",
        timeout: float = 10.0,
        client: Any | None = None,
    ) -> None:
        """Build the SDK client; ``client`` replaces it entirely when given."""
        self.account_sid = account_sid
        self.from_number = whatsapp_address(from_number)
        self.api_base_url = api_base_url.rstrip("/")
        if client is None:
            http_client = RedirectingHttpClient(base_url=self.api_base_url, timeout=timeout)
            client = Client(
                account_sid, auth_token, http_client=http_client, environment=_NO_ENVIRONMENT
            )
        self.client: Any = client

    def send(self, request: OutboundRequest) -> SendResult:
        """Create the message at Twilio; return its SID and initial status (``queued``).

        With a ``content_sid`` only the template and its variables are sent (``body`` is then
        the local preview and is not passed). Raises SendRejected when Twilio refuses it for
        good (4xx), SendDeferred otherwise. A SendDeferred whose ``status`` is None (no usable
        answer: network error, timeout) or 5xx may come after Twilio created the message (a
        gateway answering 502 for it, say): see ``SendDeferred.maybe_created``; reconcile with
        :meth:`list_messages` before any re-send. 429 and 20429/63018 mean "not created".
        """
        kwargs: dict[str, Any] = {
            "from_": self.from_number,
            "to": whatsapp_address(request.to),
            "status_callback": request.status_callback or values.unset,
        }
        if request.content_sid:
            kwargs["content_sid"] = request.content_sid
            if request.content_variables is not None:
                kwargs["content_variables"] = json.dumps(
                    request.content_variables, ensure_ascii=False
                )
        if request.body is not None and not request.content_sid:
            kwargs["body"] = request.body
        try:
            message = self.client.messages.create(**kwargs)
        except Exception as exc:
            raise self._translate(exc, "create") from None
        logger.info("Twilio accepted message %s (status %s)", message.sid, message.status)
        return SendResult(sid=str(message.sid), status=str(message.status or "queued"))

    def list_messages(
        self,
        *,
        to: str,
        from_: str | None = None,
        date_sent_after: datetime | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Messages to ``to`` (optionally from ``from_``, sent on/after a time), newest first.

        Numbers may be given with or without the ``whatsapp:`` prefix. Each item has
        ``sid, account_sid, to, from, body, status, direction, num_media, date_created,
        date_sent, error_code`` (dates as aware UTC datetimes). Used to reconcile sends whose outcome is
        unknown (without ``date_sent_after``: Twilio filters ``DateSent>`` on the send time, so
        a message still ``queued`` is left out) and to backfill inbound messages (``to`` our
        sender). Errors are translated as in :meth:`send`.
        """
        kwargs: dict[str, Any] = {
            "to": whatsapp_address(to),
            "limit": limit,
            "page_size": max(1, min(limit, 1000)),
        }
        if from_:
            kwargs["from_"] = whatsapp_address(from_)
        if date_sent_after is not None:
            if date_sent_after.tzinfo is None:
                date_sent_after = date_sent_after.replace(tzinfo=UTC)
            kwargs["date_sent_after"] = date_sent_after.astimezone(UTC)
        try:
            messages = self.client.messages.list(**kwargs)
        except Exception as exc:
            raise self._translate(exc, "list") from None
        return [
            {
                "sid": m.sid,
                "account_sid": m.account_sid,
                "to": m.to,
                "from": m.from_,
                "body": m.body,
                "status": m.status,
                "direction": m.direction,
                "num_media": _as_int(m.num_media) or 0,
                "date_created": m.date_created,
                "date_sent": m.date_sent,
                "error_code": m.error_code,
            }
            for m in messages
        ]

    def fetch_status(self, sid: str) -> DeliveryStatus | None:
        """The message's current status and error code (``GET .../Messages/{sid}.json``).

        Returns None when Twilio answers 404 (it does not know this SID); other errors are
        translated as in :meth:`send` (SendDeferred: worth asking again later).
        """
        try:
            message = self.client.messages(sid).fetch()
        except TwilioRestException as exc:
            if _as_int(getattr(exc, "status", None)) == 404:
                logger.warning("Twilio fetch: message %s not found", sid)
                return None
            raise self._translate(exc, "fetch") from None
        except Exception as exc:
            raise self._translate(exc, "fetch") from None
        return DeliveryStatus(status=str(message.status or ""), error_code=_as_int(message.error_code))

    @staticmethod
    def _translate(exc: Exception, operation: str) -> Exception:
        """Map an SDK or network exception to SendRejected / SendDeferred (others unchanged)."""
        if isinstance(exc, TwilioRestException) or (
            TwilioServiceException is not None and isinstance(exc, TwilioServiceException)
        ):
            status = _as_int(getattr(exc, "status", None))
            code = _as_int(getattr(exc, "code", None))
            text = str(getattr(exc, "msg", None) or getattr(exc, "title", None) or "Twilio error")
            if is_retryable(status, code):
                logger.warning("Twilio %s deferred: HTTP %s, code %s", operation, status, code)
                return SendDeferred(code, text, status)
            logger.warning("Twilio %s rejected: HTTP %s, code %s", operation, status, code)
            return SendRejected(code, text, status)
        if isinstance(exc, requests.RequestException):
            kind = type(exc).__name__
            maybe = isinstance(exc, requests.ReadTimeout) and operation == "create"
            text = f"network error talking to Twilio ({kind})"
            if maybe:
                text += "; the message may have been created"
            logger.warning("Twilio %s failed: %s", operation, kind)
            return SendDeferred(None, text)
        if isinstance(exc, TwilioException | json.JSONDecodeError):
            kind = type(exc).__name__
            logger.warning("Twilio %s failed: %s", operation, kind)
            return SendDeferred(None, f"unusable answer from Twilio ({kind})")
        return exc


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
