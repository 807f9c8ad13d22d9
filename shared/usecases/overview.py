"""The console's overview: per campaign, the funnel, what its clients owe and paid since it began, 30 days of it.

The counts come from aggregations in the store (:class:`shared.domain.reports.ReportRepository`):
one pass over the follow-ups and two over the messages for every campaign's funnel, one over the
messages sent in the window, one over the unpaid invoices and one over those paid since the
oldest campaign began, each joined to the campaigns' clients (one read of the follow-ups).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared.domain.reports import Funnel
from shared.domain.repositories import Repositories

DAYS = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Day:
    """One day (UTC) of a campaign: step messages that went out, payments received."""

    day: date
    sent: int = 0
    payments: int = 0


@dataclass(frozen=True)
class CampaignOverview:
    """One campaign as the overview shows it (amounts in cents, by currency)."""

    id: str
    name: str
    status: str
    started_at: datetime | None
    funnel: Funnel
    due: dict[str, int] = field(default_factory=dict)
    collected: dict[str, int] = field(default_factory=dict)
    days: list[Day] = field(default_factory=list)


def campaign_overview(store: Repositories, *, now: datetime, days: int = DAYS) -> list[CampaignOverview]:
    """Every campaign (by id): funnel, dues, what was collected since it started, and the last ``days`` days."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    window = datetime(first.year, first.month, first.day, tzinfo=UTC)
    campaigns = store.reports.campaign_funnels()
    sent = store.reports.sent_per_day(window)
    dues, payments = store.reports.dues_and_payments(min((c.started_at or _EPOCH for c in campaigns), default=window))
    found = []
    for campaign in campaigns:
        started = campaign.started_at or _EPOCH
        collected: Counter[str] = Counter()
        paid_per_day: Counter[date] = Counter()
        for payment in payments.get(campaign.id, []):
            if payment.at < started:  # before the campaign began: not its doing
                continue
            collected[payment.currency] += payment.cents
            if payment.at >= window and payment.cents > 0:
                paid_per_day[payment.at.astimezone(UTC).date()] += 1
        per_day = sent.get(campaign.id, {})
        found.append(CampaignOverview(
            id=campaign.id, name=campaign.name, status=campaign.status, started_at=campaign.started_at,
            funnel=campaign.funnel, due=dues.get(campaign.id, {}),
            collected={currency: cents for currency, cents in sorted(collected.items()) if cents},
            days=[Day(day=d, sent=per_day.get(d, 0), payments=paid_per_day.get(d, 0))
                  for d in (first + timedelta(days=n) for n in range(days))]))
    return found
