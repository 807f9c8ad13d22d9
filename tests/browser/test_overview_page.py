"""In chromium: log in, see a campaign's funnel and amounts on the overview, switch to English and back, log out."""

from __future__ import annotations

from typing import Any

import pytest

from shared.clock import Clock, FakeClock
from tests.browser.conftest import ConsoleSite, log_in
from tests.support.overview_data import DAY, T0, plant_book


@pytest.fixture
def console_clock() -> Clock:
    return FakeClock(T0 + 3 * DAY)


def _funnel(page: Any) -> dict[str, str]:
    rows = page.locator("#campaign-relance tr[data-stage]")
    return {rows.nth(n).get_attribute("data-stage"): rows.nth(n).locator("td.num").first.inner_text()
            for n in range(rows.count())}


def test_log_in_see_the_funnel_switch_language_log_out(console: ConsoleSite, page: Any) -> None:
    plant_book(console.store)
    email, password = console.user()
    page.goto(f"{console.url}/")
    assert "/login?next=%2F" in page.url
    assert page.locator("h1").inner_text() == "Connexion"

    log_in(page, console.url, email, "not the password")
    assert page.locator("[role=alert]").inner_text() == "Adresse e-mail ou mot de passe incorrect."
    log_in(page, console.url, email, password)
    page.wait_for_url(f"{console.url}/")
    assert page.locator("h1").inner_text() == "Vue d'ensemble"
    assert _funnel(page) == {"enrolled": "5", "sent": "3", "delivered": "2", "read": "1", "replied": "2", "paid": "1"}
    assert page.locator("#campaign-relance [data-amount=due]").inner_text().split("\n") == ["200,00\u00a0€",
                                                                                           "80,00\u00a0$"]
    assert page.locator("#campaign-relance [data-amount=collected]").inner_text() == "150,00\u00a0€"
    assert page.locator("#campaign-relance svg rect.sent").count() == 3
    assert page.locator("#campaign-relance svg rect.paid").count() == 2

    page.click("text=English")
    page.wait_for_url(f"{console.url}/")
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("#campaign-relance [data-amount=collected]").inner_text() == "€150.00"
    assert page.locator("#campaign-relance tr[data-stage=replied] td").first.inner_text() == "Replied"
    page.reload()
    assert page.locator("h1").inner_text() == "Overview"  # the choice is kept (a cookie)
    page.click("text=Français")
    assert page.locator("h1").inner_text() == "Vue d'ensemble"

    page.click("text=Se déconnecter")
    page.wait_for_url("**/login?bye=1")
    assert page.locator("[role=status]").inner_text() == "Vous êtes déconnecté."
    page.goto(f"{console.url}/")
    assert "/login" in page.url


def test_the_overview_reads_on_a_phone(console: ConsoleSite, browser: Any) -> None:
    plant_book(console.store)
    email, password = console.user()
    context = browser.new_context(locale="en-GB", viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.goto(f"{console.url}/")
        log_in(phone, console.url, email, password)
        phone.wait_for_url(f"{console.url}/")
        assert phone.locator("h1").inner_text() == "Overview"
        # Nothing wider than the screen: the page does not scroll sideways.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
