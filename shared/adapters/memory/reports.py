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

    def _clients(self, campaign_id: str) -> set[str]:
        return {f["contact_id"] for f in self._followups.docs.values() if f.get("campaign_id") == campaign_id}

    def dues(self, campaign_id: str) -> dict[str, int]:
        """What the clients owe on unpaid invoices, by currency."""
        clients, unpaid = self._clients(campaign_id), {s.value for s in UNPAID}
        found: dict[str, int] = {}
        for doc in self._invoices.docs.values():
            if doc.get("contact_id") in clients and doc.get("status") in unpaid and doc.get("amount_due_cents"):
                found[doc["currency"]] = found.get(doc["currency"], 0) + int(doc["amount_due_cents"])
        return found

    def payments(self, campaign_id: str, since: datetime) -> list[Payment]:
        """The payments and refunds on the clients' invoices since ``since``, by time."""
        clients = self._clients(campaign_id)
        found = [payment for doc in self._invoices.docs.values() if doc.get("contact_id") in clients
                 for payment in payments_in_history(int(doc.get("amount_cents") or 0), str(doc.get("currency") or ""),
                                                    doc.get("history") or [], since)]
        return sorted(found, key=lambda p: p.at)
