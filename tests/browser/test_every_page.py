"""Every page, in French and in English, in chromium at a phone's width (375×740).

Each page of a planted book (campaigns, clients, invoices, a hand-over, a draft waiting for approval, a
refusal from a use case) is opened: the body must never be wider than the screen (tables stack or
scroll inside their card), and a French page must hold none of the English words a use case or a
stored state would leak into it (and an English page none of the French ones).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.clock import Clock, FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.states import MessageState
from tests.browser.conftest import ConsoleSite, log_in
from tests.support.overview_data import DAY, T0, plant_book

PAGES = ("/", "/inbox", "/conversations/%2B33612345602", "/conversations/%2B33612345603", "/approvals",
         "/approvals/relance:ct3:1", "/campaigns", "/clients", "/clients?q=zzz", "/invoices", "/invoices?status=owing",
         "/invoices?status=paid", "/nope")
# Words that would be English leaking into a French page: the use cases' messages, stored states and
# reasons, the facts check's phrases, the layout's English labels.
ENGLISH = re.compile(r"\b(?:is not one of|not in contact data|no campaign|no invoice|Refused|scheduled|completed|"
                     r"stopped|paused|delivered|awaiting|dispute|says the invoice is paid|unknown number|Overview|"
                     r"Inbox|Campaigns|Invoices|Waiting|Log out|Still due|Step|Client's|nothing|cancelled|"
                     r"failed|sent|read|opted out|No (?:client|invoice|campaign|draft|conversation))\b")
FRENCH = re.compile(r"\b(?:Vue d'ensemble|Boîte de réception|Campagnes|Factures|Aucun|Aucune|Refusé|programmée|"
                    r"terminée|arrêtée|en pause|contestation|remis|échec|annulé|Étape|Reste dû|Se déconnecter|"
                    r"n'existe pas|depuis)\b")


@pytest.fixture
def console_clock() -> Clock:
    return FakeClock(T0 + 3 * DAY)


def _plant(console: ConsoleSite) -> None:
    store = console.store
    plant_book(store)
    store.followups.flag("relance:ct2", reason="dispute", now=T0 + DAY)
    draft = OutboundMessage(id="relance:ct3:1", followup_id="relance:ct3", contact_id="ct3", campaign_id="relance",
                            step=1, state=MessageState.AWAITING_APPROVAL, kind="freeform", body="Bonjour Client 3",
                            language=Language.FR)
    assert store.messages.insert(draft, T0 + 2 * DAY)


def _main_text(page: Any) -> str:
    text: str = page.locator("main").inner_text()
    return text


@pytest.mark.parametrize("locale", ["fr-FR", "en-GB"])
def test_every_page_fits_a_phone_and_speaks_one_language(console: ConsoleSite, browser: Any, locale: str) -> None:
    _plant(console)
    email, password = console.user()
    context = browser.new_context(locale=locale, viewport={"width": 375, "height": 740})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(f"{console.url}/login")
        log_in(page, console.url, email, password)
        page.wait_for_url(f"{console.url}/")
        foreign = ENGLISH if locale == "fr-FR" else FRENCH
        problems = []
        for path in PAGES:
            page.goto(f"{console.url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 375:
                problems.append(f"{path}: the page is {width}px wide on a 375px screen")
            leaked = sorted({m.group(0) for m in foreign.finditer(_main_text(page))})
            if leaked:
                problems.append(f"{path}: {leaked}")
        assert problems == []
        # A refusal from a use case is shown in the page's language.
        page.goto(f"{console.url}/invoices?status=owing")
        assert ("Le statut « owing » n'existe pas." if locale == "fr-FR" else "There is no status 'owing'.") \
            in _main_text(page)
        page.goto(f"{console.url}/inbox")
        reason = "contestation de la facture" if locale == "fr-FR" else "dispute"
        assert reason in page.locator("#waiting").inner_text()
    finally:
        context.close()
