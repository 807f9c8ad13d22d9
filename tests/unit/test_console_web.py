"""The pages' helpers: the language a browser gets, the paths ``next`` may take, amounts and dates per language."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from starlette.requests import Request

from services.console.web import i18n
from services.console.web.core import csrf_ok, safe_next
from shared.domain.models import Language
from shared.domain.users import WebSession

FR, EN = Language.FR, Language.EN


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, "en-GB,en;q=0.9,fr;q=0.8", EN),
    (None, "fr-CA,en;q=0.5", FR),
    (None, "de-DE,de;q=0.9,en;q=0.7,fr;q=0.6", EN),
    (None, "de-DE,fr;q=0.3,en;q=0.2", FR),
    (None, "en;q=0,fr", FR),
    (None, "es, it", FR),  # neither: French, the business's language
    (None, None, FR),
    (None, "en;q=banana,fr;q=0.5", FR),
    ("en", "fr", EN),  # the switch wins over the browser
    ("fr", "en", FR),
    ("de", "en", EN),  # an unknown cookie is ignored
])
def test_the_language_a_browser_gets(cookie: str | None, header: str | None, expected: Language) -> None:
    assert i18n.choose(cookie, header) == expected


@pytest.mark.parametrize(("given", "expected"), [
    ("/", "/"), ("/inbox?x=1", "/inbox?x=1"), ("/a/b#c", "/a/b#c"),
    ("https://evil.example/", "/"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"), ("", "/"), (None, "/"), ("/x\r\nSet-Cookie: a=b", "/"), ("inbox", "/"),
])
def test_next_is_a_local_path_or_the_overview(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_strings_are_registered_per_module_and_formatted() -> None:
    i18n.register({"test.hello": ("Bonjour {name}", "Hello {name}")})
    i18n.register({"test.hello": ("Bonjour {name}", "Hello {name}")})  # the same again: fine
    assert i18n.translate("test.hello", FR, name="Marie") == "Bonjour Marie"
    assert i18n.translate("test.hello", EN, name="Marie") == "Hello Marie"
    assert i18n.translate("test.unknown", EN) == "test.unknown"
    with pytest.raises(ValueError, match="registered twice"):
        i18n.register({"test.hello": ("Salut", "Hi")})


def test_amounts_dates_and_times_per_language() -> None:
    assert i18n.amount(125050, "EUR", FR, cents=True) == "1\u00a0250,50\u00a0€"
    assert i18n.amount(125050, "EUR", EN, cents=True) == "€1,250.50"
    assert i18n.amount(Decimal("99.9"), "USD", EN) == "$99.90"
    assert i18n.day(date(2026, 3, 1), FR) == "1er mars 2026"
    assert i18n.day(date(2026, 3, 1), EN) == "1 March 2026"
    moment = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
    assert i18n.moment(moment, FR) == "2 mars 2026 à 10:05\u00a0UTC"
    assert i18n.moment(moment, EN, "Europe/Paris") == "2 March 2026 at 11:05\u00a0CET"
    assert i18n.moment(None, EN) == "—"


def test_every_template_ships_in_the_wheel() -> None:
    """pyproject's package-data covers each template (a deeper folder would be left out of the images)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["services.console"]
    package = root / "services" / "console"
    templates = sorted(path.relative_to(package).as_posix() for path in (package / "templates").rglob("*")
                       if path.is_file())
    assert "templates/base.html" in templates
    left_out = [name for name in templates if not any(fnmatch.fnmatch(name, p) and name.count("/") == p.count("/")
                                                      for p in patterns)]
    assert left_out == []


def _request(cookie: str | None, session_csrf: str | None) -> Request:
    session = None if session_csrf is None else WebSession(
        token_hash="h", email="a@example.com", csrf=session_csrf, created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 1, 2, tzinfo=UTC))
    headers = [(b"cookie", f"relance_csrf={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers,
                    "state": {"web_session": session}})


@pytest.mark.parametrize(("cookie", "session_csrf", "given", "expected"), [
    ("pre-login", None, "pre-login", True),  # before the log-in: the cookie's token
    ("pre-login", None, "other", False),
    (None, None, "", False),  # no cookie, no session: nothing is right, not even an empty token
    (None, None, "None", False),
    ("pre-login", "of-session", "pre-login", False),  # logged in: the session's own token only
    (None, "of-session", "of-session", True),
    (None, "of-session", None, False),
    (None, "of-session", ["of-session"], False),
    ("x" * 101, None, "x" * 101, False),  # too long to be one of ours
])
def test_a_forms_csrf_token_is_the_sessions_or_the_cookies(cookie: str | None, session_csrf: str | None,
                                                             given: object, expected: bool) -> None:
    assert csrf_ok(_request(cookie, session_csrf), given) is expected
