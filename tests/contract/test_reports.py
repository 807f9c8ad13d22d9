"""The overview's counts and sums: MongoDB's aggregations and the in-memory twins agree, on a book checked by hand."""

from __future__ import annotations

from datetime import timedelta

from shared.domain.invoices import InvoiceSource
from shared.domain.models import Campaign, Step
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
    assert repos.reports.dues() == {"relance": {"EUR": 20000, "USD": 8000}}  # "vide" has no client
    assert repos.reports.payments(T0) == {"relance": [Payment(at=T0 + DAY, currency="EUR", cents=10000),
                                                      Payment(at=T0 + 2 * DAY, currency="EUR", cents=5000)]}
    assert repos.reports.payments(T0 - 2 * DAY)["relance"][0] == Payment(at=T0 - DAY, currency="EUR", cents=3000)
    assert repos.reports.payments(T0 + 3 * DAY) == {}
    assert repos.reports.dues_and_payments(T0) == (repos.reports.dues(), repos.reports.payments(T0))


def test_a_client_in_two_campaigns_counts_in_both_and_a_refund_subtracts(repos: Repositories) -> None:
    plant_book(repos)
    assert repos.campaigns.create(Campaign(id="bis", name="Bis", steps=[Step()]), T0)
    assert repos.followups.enrol(contact_id="ct2", campaign_id="bis", next_run_at=T0, now=T0)
    assert repos.invoices.mark_paid("FA-2", source=InvoiceSource.COMMAND, now=T0 + 3 * DAY)  # the 200.00 left
    assert repos.invoices.reopen("FA-2", source=InvoiceSource.PAYMENT, now=T0 + 4 * DAY)  # refunded: 250.00 due
    assert repos.reports.dues() == {"relance": {"EUR": 25000, "USD": 8000}, "bis": {"EUR": 25000}}
    assert [p.cents for p in repos.reports.payments(T0 + 2 * DAY)["bis"]] == [5000, 20000, -25000]
