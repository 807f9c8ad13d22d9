"""What the console's overview reads: each campaign's funnel, its messages sent per day, its clients' dues and payments.

:class:`ReportRepository` answers with aggregations over the stored follow-ups, messages and
invoices (:mod:`shared.usecases.overview` puts them together). A payment's amount is read from
its invoice's history: the amount due before the payment less the amount due after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

PAYMENT_MOVES = frozenset({"mark_paid", "pay_part"})  # the invoice transitions that lower the amount due
REFUND_MOVES = frozenset({"reopen"})  # a paid invoice owes its whole amount again


@dataclass(frozen=True)
class Funnel:
    """A campaign's clients (follow-ups) at each stage: each counts a follow-up once, at every stage it reached.

    ``sent``: a step message went out (Twilio took it); ``delivered``/``read``: one was delivered
    (or read)/read; ``replied``: the client wrote back about it; ``paid``: stopped because they paid.
    """

    enrolled: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    paid: int = 0


@dataclass(frozen=True)
class CampaignFunnel:
    """One campaign, when it started, and its funnel."""

    id: str
    name: str
    status: str
    started_at: datetime | None
    funnel: Funnel


@dataclass(frozen=True)
class Payment:
    """Money received on an invoice (``cents`` below 0: given back, a refund)."""

    at: datetime
    currency: str
    cents: int


def payments_in_history(amount_cents: int, currency: str, history: Iterable[Mapping[str, Any]],
                        since: datetime) -> list[Payment]:
    """The payments and refunds an invoice's history records at ``since`` or later.

    Each entry carries the amount due after it, when it changed it; before the first such entry
    the whole amount was due (the history keeps the latest entries only).
    """
    found: list[Payment] = []
    due = amount_cents
    for entry in history:
        after = entry.get("amount_due_cents")
        if not isinstance(after, int):
            continue
        at = entry.get("at")
        what = entry.get("what")
        if isinstance(at, datetime) and at >= since:
            if what in PAYMENT_MOVES and after < due:
                found.append(Payment(at=at, currency=currency, cents=due - after))
            elif what in REFUND_MOVES and after > due:
                found.append(Payment(at=at, currency=currency, cents=due - after))
        due = after
    return found


class ReportRepository(Protocol):
    """Counts and sums over the store for the console's overview."""

    def campaign_funnels(self) -> list[CampaignFunnel]:
        """Every campaign (by id) with its funnel."""

    def sent_per_day(self, since: datetime) -> dict[str, dict[date, int]]:
        """Step messages that went out at ``since`` or later: campaign id → day (UTC) → how many."""

    def dues(self) -> dict[str, dict[str, int]]:
        """What each campaign's clients still owe on their unpaid invoices: campaign id → currency → cents."""

    def payments(self, since: datetime) -> dict[str, list[Payment]]:
        """The payments (and refunds) at ``since`` or later on each campaign's clients' invoices: campaign id →
        payments by time."""

    def dues_and_payments(self, since: datetime) -> tuple[dict[str, dict[str, int]], dict[str, list[Payment]]]:
        """:meth:`dues` and :meth:`payments` together, the clients' campaigns read once for both."""
