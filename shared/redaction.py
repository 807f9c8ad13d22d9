"""Keeping phone numbers and secrets out of log output.

:class:`Redactor` masks international phone numbers (:func:`shared.phones.redact_phones`), the
password of any ``scheme://user:password@host`` URL, and a list of secrets. :class:`RedactingFilter`
applies it to a log record's formatted message, its exception text (with every chained cause)
and its stack: installed on the root handler by ``services.bootstrap.configure_logging``, it
covers every logger that reaches it (ours, uvicorn, dramatiq, pymongo, twilio, httpx).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from shared.phones import redact_phones

MASK = "***"
# Shorter values are not redacted: they are no secrets worth the name, and replacing every
# occurrence of a two-letter word would garble the logs.
MIN_SECRET_CHARS = 6
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s/:@]*:)(?P<password>[^\s/@]+)(?=@)", re.IGNORECASE)


def url_secrets(url: str) -> list[str]:
    """The password in a URL's userinfo (as written and percent-decoded); ``[]`` when none."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return list(dict.fromkeys([password, unquote(password)]))


class Redactor:
    """Masks phone numbers, URL passwords and the given secrets in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        # Longest first: a secret containing another is masked whole.
        self.secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with nothing personal or secret left in it."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text:
            text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        return redact_phones(text)


class RedactingFilter(logging.Filter):
    """Redacts a record in place (message with its arguments, exception and stack text).

    The exception is formatted here, with its causes, and kept only as that redacted text
    (``exc_text``): no handler after this one can print the original.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; rewrites what it would print."""
        try:
            message = record.getMessage()
            clean = self.redactor(message)
        except Exception:  # arguments that do not fit the format: show them, redacted, never raw
            message, clean = "", self.redactor(f"{record.msg!r} {record.args!r}")
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.redactor(_FORMATTER.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
# What every LogRecord has: anything else on a record came from ``extra=`` and is written as a field.
# uvicorn's ``color_message`` repeats the message with terminal colours: left out.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json): time, level, logger, message, then the extra fields.

    Runs after :class:`RedactingFilter` (message, exception and stack already redacted); the
    extra fields are redacted here, as text. Their names are kept, their values rendered with
    ``str`` when JSON has no type for them.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _field(value, self.redactor)
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.redactor(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.redactor(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _field(value: object, redactor: Redactor) -> object:
    """An extra field's value, fit for JSON and redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return redactor(value if isinstance(value, str) else str(value))
