"""Log redaction: phone numbers and secrets leave no trace in what a process prints."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from services.bootstrap import configure_logging, settings_secrets
from shared.phones import redact_phones
from shared.redaction import Redactor, url_secrets
from shared.settings import load_settings

PHONE = "+33612345678"
FORMS = (PHONE, PHONE[1:], "0612345678")
SECRETS = {
    "TWILIO_AUTH_TOKEN": "tok_0123456789abcdef0123456789ab",
    "TWILIO_WEBHOOK_SHARED_KEY": "sharedkey-9876543210",
    "GEMINI_API_KEY": "AIzaSy-gemini-secret-key",
    "NGROK_AUTHTOKEN": "ngrok-secret-2xyz",
    "STRIPE_WEBHOOK_SECRET": "whsec_stripe-secret-31415",
}
MONGO_PASSWORD, REDIS_PASSWORD = "m0ngo-p@ss", "redis-pass-42"
ENV = {**SECRETS, "MONGODB_URI": "mongodb://relance:m0ngo-p%40ss@mongo:27017/relance",
       "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis:6379/0", "LOG_LEVEL": "DEBUG"}
EVERY_SECRET = (*SECRETS.values(), MONGO_PASSWORD, "m0ngo-p%40ss", REDIS_PASSWORD)


def _leaks(text: str) -> list[str]:
    return [s for s in (*FORMS, *EVERY_SECRET) if s in text]


@pytest.mark.parametrize(("text", "expected"), [
    (f"to={PHONE}", "to=+33*******78"),
    (f"to=whatsapp:{PHONE}.", "to=whatsapp:+33*******78."),
    ("GET /Messages.json?To=whatsapp%3A%2B33612345678&PageSize=50",
     "GET /Messages.json?To=whatsapp%3A%2B33*******78&PageSize=50"),
    ('dup key: { phone: "+447911123456" }', 'dup key: { phone: "+44********56" }'),
    ("call +33 6 12 34 56 78 now", "call +33*******78 now"),
    # Without the "+", or in national form, as a model or a client may write them.
    ("number 33612345678 not in contact data", "number 336******78 not in contact data"),
    ("tel: 0612345678.", "tel: 061*****78."),
    # Not phone numbers: digits inside hex ids and SIDs, decimals, ports, short counts.
    ("SM5ef717ecad6e742c00a9c364451109cd 651472490123abcdef012345", "SM5ef717ecad6e742c00a9c364451109cd "
     "651472490123abcdef012345"),
    ("amount 1234567890.50 on 127.0.0.1:58023 in 3397 ms", "amount 1234567890.50 on 127.0.0.1:58023 in 3397 ms"),
    # Not phone numbers: times, offsets, counts, too many digits.
    ("2026-03-02T10:00:00+01:00 took +12 ms", "2026-03-02T10:00:00+01:00 took +12 ms"),
    ("+1234567890123456789", "+1234567890123456789"),
])
def test_redact_phones(text: str, expected: str) -> None:
    assert redact_phones(text) == expected
    assert redact_phones(expected) == expected  # idempotent


def test_secrets_of_the_settings_and_url_passwords() -> None:
    settings = load_settings(ENV)
    found = settings_secrets(settings)
    assert set(EVERY_SECRET) <= set(found)
    assert url_secrets("redis://127.0.0.1:6379/0") == [] and url_secrets("mongodb://u@h/db") == []
    redact = Redactor(found)
    line = (f"auth {SECRETS['TWILIO_AUTH_TOKEN']} key={SECRETS['GEMINI_API_KEY']} "
            f"{ENV['MONGODB_URI']} {ENV['REDIS_URL']} postgres://bob:hunter22@db/x")
    assert redact(line) == ("auth *** key=*** mongodb://relance:***@mongo:27017/relance "
                            "redis://:***@redis:6379/0 postgres://bob:***@db/x")
    assert Redactor(["abc", ""])("abc") == "abc"  # too short to be a secret: left alone


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was after configure_logging replaced its handlers."""
    root = logging.getLogger()
    handlers, level, raising = root.handlers[:], root.level, logging.raiseExceptions
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.raiseExceptions = raising


class _Wrapped(Exception):
    pass


def test_every_logger_and_exception_text_is_redacted(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(load_settings(ENV))
    token = SECRETS["TWILIO_AUTH_TOKEN"]
    for name in ("relance", "uvicorn.error", "dramatiq.worker.Worker", "twilio.http_client", "pymongo",
                 "shared.usecases.sending"):
        logging.getLogger(name).warning("to=%s token=%s", f"whatsapp:{PHONE}", token)
    try:
        try:
            raise ConnectionError(f"GET /Messages.json?To=whatsapp%3A%2B{PHONE[1:]} redis://:{REDIS_PASSWORD}@h")
        except ConnectionError as exc:
            raise _Wrapped(f"failed for {PHONE}") from exc
    except _Wrapped:
        logging.getLogger("dramatiq.worker.Worker").error("Failed to process message %s", "m1", exc_info=True)
    logging.getLogger("relance").warning("odd %s %s", PHONE)  # arguments that do not fit the format
    logging.getLogger("relance").info("stack of %s", PHONE, stack_info=True)
    err = capsys.readouterr().err
    assert err.count("to=whatsapp:+33*******78 token=***") == 6
    assert "Traceback" in err and "_Wrapped: failed for +33*******78" in err
    assert "The above exception was the direct cause" in err and "%2B33*******78" in err
    assert "odd" in err and "Stack (most recent call last)" in err
    assert _leaks(err) == []


def test_uncaught_exceptions_are_logged_redacted() -> None:
    """A real process: its main thread and another thread die with personal data in the error."""
    code = (
        "import threading\n"
        "from services.bootstrap import configure_logging\n"
        "from shared.settings import load_settings\n"
        f"configure_logging(load_settings({ENV!r}))\n"
        f"thread = threading.Thread(target=lambda: 1 / 0 if False else (_ for _ in ()).throw("
        f"ValueError('thread {PHONE} {SECRETS['GEMINI_API_KEY']}')))\n"
        "thread.start(); thread.join()\n"
        f"raise RuntimeError('main {PHONE} {SECRETS['TWILIO_AUTH_TOKEN']}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "CRITICAL relance: uncaught exception in thread" in done.stderr
    assert "ValueError: thread +33*******78 ***" in done.stderr
    assert "CRITICAL relance: uncaught exception" in done.stderr
    assert "RuntimeError: main +33*******78 ***" in done.stderr
    assert _leaks(done.stderr + done.stdout) == []


def test_a_failing_handler_prints_nothing_raw(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """logging's report of a handler error prints the record's arguments and the exception being
    handled (with its causes) straight to stderr, past every filter: it is turned off."""
    configure_logging(load_settings(ENV))
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    broken = io.StringIO()
    broken.close()
    handler.setStream(broken)
    try:
        raise ConnectionError(f"GET /Messages.json?To=whatsapp%3A%2B{PHONE[1:]}")
    except ConnectionError:
        logging.getLogger("shared.twilio_sender").warning("Twilio list failed: %s", "ConnectionError")
    err = capsys.readouterr().err
    assert "Logging error" not in err and _leaks(err) == []
