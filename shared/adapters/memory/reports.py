"""The console overview's counts and sums, over the in-memory twins' documents."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from shared.adapters.memory.base import MemoryRepository
from shared.domain.reports import CampaignFunnel, Funnel, Payment, payments_in_history
from shared.domain.states import UNPAID

Doc = dict[str, Any]


def _step(doc: Doc) -> bool:
    return doc.get("direction") == "outbound" and doc.get("purpose") in ("step", None) and bool(doc.get("followup_id"))


class MemoryReports(MemoryRepository):
    """See :class:`shared.domain.reports.ReportRepository` (reads the other twins' documents)."""

    def __init__(self, lock: Any, *, campaigns: MemoryRepository, followups: MemoryRepository,
                 messages: MemoryRepository, invoices: MemoryRepository) -> None:
        super().__init__(lock)
        self._campaigns, self._followups, self._messages, self._invoices = campaigns, followups, messages, invoices

    def campaign_funnels(self) -> list[CampaignFunnel]:
        """The same counts as the MongoDB aggregations."""
        reached: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for doc in self._messages.docs.values():
            if _step(doc):
                stages = reached[doc.get("campaign_id") or ""]
                if doc.get("sent_at") is not None:
                    stages["sent"].add(doc["followup_id"])
                if doc.get("state") in ("delivered", "read"):
                    stages["delivered"].add(doc["followup_id"])
                if doc.get("state") == "read":
                    stages["read"].add(doc["followup_id"])
            elif doc.get("direction") == "inbound":
                for followup_id in doc.get("followup_ids") or []:
                    reached[followup_id.split(":", 1)[0]]["replied"].add(followup_id)
        found = []
        for cid in sorted(self._campaigns.docs):
            doc = self._campaigns.docs[cid]
            followups = [f for f in self._followups.docs.values() if f.get("campaign_id") == cid]
            stages = reached.get(cid, {})
            found.append(CampaignFunnel(
                id=cid, name=str(doc.get("name") or cid), status=str(doc.get("status") or "active"),
                started_at=doc.get("created_at"),
                funnel=Funnel(enrolled=len(followups), sent=len(stages.get("sent", ())),
                              delivered=len(stages.get("delivered", ())), read=len(stages.get("read", ())),
                              replied=len(stages.get("replied", ())),
                              paid=sum(1 for f in followups if f.get("stop_reason") == "paid"))))
        return found

    def sent_per_day(self, since: datetime) -> dict[str, dict[date, int]]:
        """Step messages sent since ``since``, by campaign and UTC day."""
        found: dict[str, dict[date, int]] = defaultdict(dict)
        for doc in self._messages.docs.values():
            sent = doc.get("sent_at")
            if _step(doc) and isinstance(sent, datetime) and sent >= since:
                day = sent.astimezone(UTC).date()
                per_day = found[doc.get("campaign_id") or ""]
                per_day[day] = per_day.get(day, 0) + 1
        return dict(found)

    def _campaigns_of_clients(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        for doc in self._followups.docs.values():
            found[doc["contact_id"]].append(doc["campaign_id"])
        return found

    def dues(self) -> dict[str, dict[str, int]]:
        """What each campaign's clients owe on unpaid invoices, by currency."""
        campaigns, unpaid = self._campaigns_of_clients(), {s.value for s in UNPAID}
        found: dict[str, dict[str, int]] = defaultdict(dict)
        for doc in self._invoices.docs.values():
            if doc.get("status") in unpaid and doc.get("amount_due_cents"):
                for campaign_id in campaigns.get(doc["contact_id"], ()):
                    dues = found[campaign_id]
                    dues[doc["currency"]] = dues.get(doc["currency"], 0) + int(doc["amount_due_cents"])
        return dict(found)

    def dues_and_payments(self, since: datetime) -> tuple[dict[str, dict[str, int]], dict[str, list[Payment]]]:
        """:meth:`dues` and :meth:`payments` together."""
        return self.dues(), self.payments(since)

    def payments(self, since: datetime) -> dict[str, list[Payment]]:
        """The payments and refunds since ``since`` on each campaign's clients' invoices, by time."""
        campaigns = self._campaigns_of_clients()
        found: dict[str, list[Payment]] = defaultdict(list)
        for doc in self._invoices.docs.values():
            paid = payments_in_history(int(doc.get("amount_cents") or 0), str(doc.get("currency") or ""),
                                       doc.get("history") or [], since)
            for campaign_id in campaigns.get(doc["contact_id"], ()) if paid else ():
                found[campaign_id].extend(paid)
        return {cid: sorted(payments, key=lambda p: p.at) for cid, payments in found.items()}
