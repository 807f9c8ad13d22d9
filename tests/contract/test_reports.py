"""The overview's counts and sums: MongoDB's aggregations and the in-memory twins agree, on a book checked by hand."""

from __future__ import annotations

from datetime import timedelta

from shared.domain.reports import Funnel, Payment
from shared.domain.repositories import Repositories
from tests.support.overview_data import DAY, T0, plant_book


def test_funnels_per_campaign(repos: Repositories) -> None:
    plant_book(repos)
    found = {c.id: c for c in repos.reports.campaign_funnels()}
    assert list(found) == ["relance", "vide"]
    assert found["relance"].funnel == Funnel(enrolled=5, sent=3, delivered=2, read=1, replied=2, paid=1)
    assert found["relance"].name == "Relances mars" and found["relance"].status == "active"
    assert found["relance"].started_at == T0
    assert found["vide"].funnel == Funnel()


def test_messages_sent_per_day(repos: Repositories) -> None:
    plant_book(repos)
    assert repos.reports.sent_per_day(T0 - DAY) == {"relance": {T0.date(): 2, (T0 + DAY).date(): 1,
                                                                (T0 + 2 * DAY).date(): 1}}
    assert repos.reports.sent_per_day(T0 + timedelta(hours=1)) == {"relance": {(T0 + DAY).date(): 1,
                                                                               (T0 + 2 * DAY).date(): 1}}


def test_dues_and_payments_of_the_campaigns_clients(repos: Repositories) -> None:
    plant_book(repos)
    assert repos.reports.dues("relance") == {"EUR": 20000, "USD": 8000}
    assert repos.reports.dues("vide") == {}
    assert repos.reports.payments("relance", T0) == [Payment(at=T0 + DAY, currency="EUR", cents=10000),
                                                     Payment(at=T0 + 2 * DAY, currency="EUR", cents=5000)]
    assert repos.reports.payments("relance", T0 - 2 * DAY)[0] == Payment(at=T0 - DAY, currency="EUR", cents=3000)
    assert repos.reports.payments("vide", T0 - 2 * DAY) == []
