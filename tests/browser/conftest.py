"""The browser tests' fixtures: the real console over the test servers, and Debian's chromium driven by Playwright.

``console`` serves :func:`services.console.create_app` with uvicorn in a thread on a free port, over
a fresh MongoDB database of the test server (``console.store`` to plant data, ``console.user()`` to
add a log-in). ``page`` is a new browser page (French unless asked otherwise); when a test fails,
a screenshot of it is saved under ``.relance/test-screenshots/`` and its path printed.

Chromium is Debian's (``/usr/bin/chromium``, or ``RELANCE_CHROMIUM``): Playwright never downloads a
browser. ``.ci/run`` installs it when missing; elsewhere, without it, these tests skip and say why
(on CI, where ``CI`` is set, they fail instead).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import Clock, SystemClock
from shared.usecases.users import add_user
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("RELANCE_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / ".relance" / "test-screenshots"
PASSWORD = "browser test password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep each phase's report on the test, so that ``page`` knows at teardown whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Debian chromium, one for tests/browser/.

    Package-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop marked running in
    the main thread while it is open, and tests after this folder call ``asyncio.run()``.
    """
    if not CHROMIUM.exists():
        reason = (f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does) "
                  "or point RELANCE_CHROMIUM at a chromium binary")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@dataclass
class ConsoleSite:
    """The console under test: its base URL and its store."""

    url: str
    store: MongoRepositories

    def user(self, email: str = "owner@example.com", password: str = PASSWORD) -> tuple[str, str]:
        """Add a user who may log in; their email and password."""
        add_user(self.store, email, password, now=SystemClock().now())
        return email, password


@pytest.fixture
def console_clock() -> Clock:
    """The console's clock (a test may override this fixture with a FakeClock)."""
    return SystemClock()


@pytest.fixture
def console(store: MongoRepositories, console_clock: Clock) -> Iterator[ConsoleSite]:
    """The real console application served over HTTP on a free port."""
    with serve_asgi(create_app(Console(store, console_clock))) as url:
        yield ConsoleSite(url=url.rstrip("/"), store=store)


@pytest.fixture
def browser_locale() -> str:
    """The browser's language (its Accept-Language)."""
    return "fr-FR"


@pytest.fixture
def page(browser: Any, browser_locale: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (own cookies); a screenshot is kept when the test fails."""
    context = browser.new_context(locale=browser_locale, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid) + ".png")
        try:
            opened.screenshot(path=str(path), full_page=True)
            print(f"\nscreenshot of the failed page: {path}")
        except Exception as exc:  # the page may be gone with the failure: say so, do not mask the failure
            print(f"\nno screenshot of the failed page: {exc}")
    context.close()


def log_in(page: Any, base: str, email: str, password: str) -> None:
    """Fill and send the log-in form (from wherever the page is redirected to it)."""
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
