"""The overview's use case and page on the real MongoDB-compatible server (book: tests/support/overview_data.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.reports import Funnel
from shared.usecases.overview import campaign_overview
from shared.usecases.users import add_user
from tests.support.overview_data import DAY, T0, plant_book

pytestmark = pytest.mark.integration


def test_the_overview_numbers(store: MongoRepositories) -> None:
    plant_book(store)
    found = {c.id: c for c in campaign_overview(store, now=T0 + 3 * DAY)}
    relance = found["relance"]
    assert relance.funnel == Funnel(enrolled=5, sent=3, delivered=2, read=1, replied=2, paid=1)
    assert relance.due == {"EUR": 20000, "USD": 8000}
    assert relance.collected == {"EUR": 15000}  # FA-4's 30.00, paid before the campaign, is not counted
    assert len(relance.days) == 30 and relance.days[-1].day == (T0 + 3 * DAY).date()
    active = {d.day: (d.sent, d.payments) for d in relance.days if d.sent or d.payments}
    assert active == {T0.date(): (2, 0), (T0 + DAY).date(): (1, 1), (T0 + 2 * DAY).date(): (1, 1)}
    assert found["vide"].funnel == Funnel() and found["vide"].due == {} and found["vide"].collected == {}
    # 40 days later the window has moved past every message and payment; the totals stay.
    later = {c.id: c for c in campaign_overview(store, now=T0 + 40 * DAY)}["relance"]
    assert not any(d.sent or d.payments for d in later.days) and later.collected == {"EUR": 15000}


@pytest.fixture
def page(store: MongoRepositories) -> Iterator[TestClient]:
    plant_book(store)
    clock = FakeClock(T0 + 3 * DAY)
    add_user(store, "owner@example.com", "correct horse battery", now=clock.now())
    with TestClient(create_app(Console(store, clock)), follow_redirects=False) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        assert client.post("/login", data={"email": "owner@example.com", "password": "correct horse battery",
                                           "csrf_token": token.group(1)}).status_code == 303
        yield client


def _stages(text: str) -> dict[str, str]:
    return dict(re.findall(r'data-stage="(\w+)"><td>[^<]*</td><td class="num">(\d+)</td>', text))


def test_the_overview_page_in_french_and_english(page: TestClient) -> None:
    french = page.get("/", headers={"Accept-Language": "fr"})
    assert french.status_code == 200
    text = html.unescape(french.text)
    section = text[text.index('id="campaign-relance"'):text.index('id="campaign-vide"')]
    assert _stages(section) == {"enrolled": "5", "sent": "3", "delivered": "2", "read": "1", "replied": "2",
                                "paid": "1"}
    assert "Relances mars" in section and "Commencée le 2 mars 2026" in section
    assert "200,00\u00a0€" in section and "80,00\u00a0$" in section and "150,00\u00a0€" in section
    assert section.count('class="sent"') == 3 and section.count('class="paid"') == 2
    assert "4 messages envoyés et 2 paiements sur la période." in section
    english = html.unescape(page.get("/", headers={"Accept-Language": "en-US"}).text)
    assert "€200.00" in english and "$80.00" in english and "€150.00" in english
    assert "Started on 2 March 2026" in english
    assert "Clients' funnel" in english and "Message sent" in english
