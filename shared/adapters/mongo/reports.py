"""The console overview's counts and sums, as aggregations over ``followups``, ``messages`` and ``invoices``."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime

from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.reports import CampaignFunnel, Funnel, Payment, payments_in_history
from shared.domain.states import UNPAID

_STEP = {"direction": "outbound", "purpose": {"$in": ["step", None]}, "followup_id": {"$ne": None}}
_INBOUND_LINKED = {"direction": "inbound", "followup_ids.0": {"$exists": True}}


class MongoReports(MongoRepository):
    """See :class:`shared.domain.reports.ReportRepository`."""

    collection_name = "followups"

    def campaign_funnels(self) -> list[CampaignFunnel]:
        """Three aggregations, each one pass: follow-ups, step messages, replies (then a sum per campaign here)."""
        enrolled: dict[str, Doc] = {row["_id"]: row for row in self.collection.aggregate([
            {"$group": {"_id": "$campaign_id", "enrolled": {"$sum": 1},
                        "paid": {"$sum": {"$cond": [{"$eq": ["$stop_reason", "paid"]}, 1, 0]}}}}])}
        # One row per follow-up: the states its step messages are in, and whether one went out.
        reached: dict[str, Counter[str]] = defaultdict(Counter)
        for row in self.db["messages"].aggregate([
                {"$match": _STEP},
                {"$group": {"_id": {"c": "$campaign_id", "f": "$followup_id"}, "states": {"$addToSet": "$state"},
                            "sent": {"$max": "$sent_at"}}}]):
            stages, states = reached[row["_id"]["c"]], set(row["states"])
            stages["sent"] += row["sent"] is not None
            stages["delivered"] += bool(states & {"delivered", "read"})
            stages["read"] += "read" in states
        replied = Counter(str(row["_id"]).split(":", 1)[0] for row in self.db["messages"].aggregate([
            {"$match": _INBOUND_LINKED}, {"$unwind": "$followup_ids"}, {"$group": {"_id": "$followup_ids"}}]))
        found = []
        for doc in self.db["campaigns"].find({}, {"name": 1, "status": 1, "created_at": 1}).sort("_id", 1):
            cid = doc["_id"]
            counts, steps = enrolled.get(cid, {}), reached.get(cid, Counter())
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

    def _campaigns_of_clients(self) -> dict[str, list[str]]:
        """Contact id → the campaigns it is enrolled in (one pass over the follow-ups, two fields each)."""
        found: dict[str, list[str]] = defaultdict(list)
        for doc in self.collection.find({}, {"_id": 0, "contact_id": 1, "campaign_id": 1}):
            found[str(doc["contact_id"])].append(str(doc["campaign_id"]))
        return found

    def dues(self) -> dict[str, dict[str, int]]:
        """One aggregation of the unpaid invoices by client and currency, added up per campaign here."""
        return self._dues(self._campaigns_of_clients())

    def dues_and_payments(self, since: datetime) -> tuple[dict[str, dict[str, int]], dict[str, list[Payment]]]:
        """Both, with one pass over the follow-ups for the clients' campaigns."""
        campaigns = self._campaigns_of_clients()
        return self._dues(campaigns), self._payments(since, campaigns)

    def _dues(self, campaigns: dict[str, list[str]]) -> dict[str, dict[str, int]]:
        found: dict[str, Counter[str]] = defaultdict(Counter)
        for row in self.db["invoices"].aggregate([
                {"$match": {"status": {"$in": [status.value for status in UNPAID]}}},
                {"$group": {"_id": {"c": "$contact_id", "cur": "$currency"}, "due": {"$sum": "$amount_due_cents"}}}]):
            for campaign_id in campaigns.get(str(row["_id"]["c"]), ()):
                found[campaign_id][str(row["_id"]["cur"])] += int(row["due"])
        return {cid: {cur: cents for cur, cents in dues.items() if cents} for cid, dues in found.items()}

    def payments(self, since: datetime) -> dict[str, list[Payment]]:
        """The invoices whose history changed since ``since`` (their histories read here), per campaign."""
        return self._payments(since, self._campaigns_of_clients())

    def _payments(self, since: datetime, campaigns: dict[str, list[str]]) -> dict[str, list[Payment]]:
        found: dict[str, list[Payment]] = defaultdict(list)
        for doc in self.db["invoices"].find(
                {"history.at": {"$gte": since}},
                {"contact_id": 1, "amount_cents": 1, "currency": 1, "history.at": 1, "history.what": 1,
                 "history.amount_due_cents": 1}):
            paid = payments_in_history(int(doc.get("amount_cents") or 0), str(doc.get("currency") or ""),
                                       doc.get("history") or [], since)
            for campaign_id in campaigns.get(str(doc.get("contact_id")), ()) if paid else ():
                found[campaign_id].extend(paid)
        return {cid: sorted(payments, key=lambda p: p.at) for cid, payments in found.items()}
