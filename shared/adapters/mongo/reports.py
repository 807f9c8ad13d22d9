"""The console overview's counts and sums, as aggregations over ``followups``, ``messages`` and ``invoices``."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from typing import Any

from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.reports import CampaignFunnel, Funnel, Payment, payments_in_history
from shared.domain.states import UNPAID

_STEP = {"direction": "outbound", "purpose": {"$in": ["step", None]}, "followup_id": {"$ne": None}}
_INBOUND_LINKED = {"direction": "inbound", "followup_ids.0": {"$exists": True}}


def _flag(condition: Any) -> Doc:
    return {"$max": {"$cond": [condition, 1, 0]}}


class MongoReports(MongoRepository):
    """See :class:`shared.domain.reports.ReportRepository`."""

    collection_name = "followups"

    def campaign_funnels(self) -> list[CampaignFunnel]:
        """Four aggregations, each one pass: follow-ups, step messages, replies, by campaign."""
        enrolled: dict[str, Doc] = {row["_id"]: row for row in self.collection.aggregate([
            {"$group": {"_id": "$campaign_id", "enrolled": {"$sum": 1},
                        "paid": {"$sum": {"$cond": [{"$eq": ["$stop_reason", "paid"]}, 1, 0]}}}}])}
        reached: dict[str, Doc] = {row["_id"]: row for row in self.db["messages"].aggregate([
            {"$match": _STEP},
            {"$group": {"_id": {"c": "$campaign_id", "f": "$followup_id"},
                        "sent": _flag({"$gt": ["$sent_at", None]}),
                        "delivered": _flag({"$in": ["$state", ["delivered", "read"]]}),
                        "read": _flag({"$eq": ["$state", "read"]})}},
            {"$group": {"_id": "$_id.c", "sent": {"$sum": "$sent"}, "delivered": {"$sum": "$delivered"},
                        "read": {"$sum": "$read"}}}])}
        replied = Counter(str(row["_id"]).split(":", 1)[0] for row in self.db["messages"].aggregate([
            {"$match": _INBOUND_LINKED}, {"$unwind": "$followup_ids"}, {"$group": {"_id": "$followup_ids"}}]))
        found = []
        for doc in self.db["campaigns"].find({}, {"name": 1, "status": 1, "created_at": 1}).sort("_id", 1):
            cid = doc["_id"]
            counts, steps = enrolled.get(cid, {}), reached.get(cid, {})
            found.append(CampaignFunnel(
                id=cid, name=str(doc.get("name") or cid), status=str(doc.get("status") or "active"),
                started_at=doc.get("created_at"),
                funnel=Funnel(enrolled=int(counts.get("enrolled", 0)), sent=int(steps.get("sent", 0)),
                              delivered=int(steps.get("delivered", 0)), read=int(steps.get("read", 0)),
                              replied=replied.get(cid, 0), paid=int(counts.get("paid", 0)))))
        return found

    def sent_per_day(self, since: datetime) -> dict[str, dict[date, int]]:
        """One aggregation on the ``sent_at`` index, grouped by campaign and UTC day."""
        found: dict[str, dict[date, int]] = defaultdict(dict)
        for row in self.db["messages"].aggregate([
                {"$match": {"sent_at": {"$gte": since}, **_STEP}},
                {"$group": {"_id": {"c": "$campaign_id", "d": {"$dateToString": {"format": "%Y-%m-%d",
                                                                                  "date": "$sent_at"}}},
                            "n": {"$sum": 1}}}]):
            found[row["_id"]["c"]][date.fromisoformat(row["_id"]["d"])] = int(row["n"])
        return dict(found)

    def _clients(self, campaign_id: str) -> list[str]:
        return [str(c) for c in self.collection.distinct("contact_id", {"campaign_id": campaign_id})]

    def dues(self, campaign_id: str) -> dict[str, int]:
        """One aggregation over the clients' unpaid invoices (index ``contact_status``)."""
        unpaid = [status.value for status in UNPAID]
        rows = self.db["invoices"].aggregate([
            {"$match": {"contact_id": {"$in": self._clients(campaign_id)}, "status": {"$in": unpaid}}},
            {"$group": {"_id": "$currency", "due": {"$sum": "$amount_due_cents"}}}])
        return {str(row["_id"]): int(row["due"]) for row in rows if row["due"]}

    def payments(self, campaign_id: str, since: datetime) -> list[Payment]:
        """The clients' invoices changed since ``since``, their histories read here."""
        docs = self.db["invoices"].find(
            {"contact_id": {"$in": self._clients(campaign_id)}, "history.at": {"$gte": since}},
            {"amount_cents": 1, "currency": 1, "history.at": 1, "history.what": 1, "history.amount_due_cents": 1})
        found = [payment for doc in docs for payment in payments_in_history(
            int(doc.get("amount_cents") or 0), str(doc.get("currency") or ""), doc.get("history") or [], since)]
        return sorted(found, key=lambda p: p.at.astimezone(UTC) if p.at.tzinfo else p.at)
