"""The demo never messages its made-up numbers through a real Twilio account."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from devtools.devstack import DEMO_DIR, demo_invoices, load_demo
from shared.adapters.mongo import MongoRepositories

pytestmark = pytest.mark.integration


def test_with_real_twilio_and_no_target_phone_no_demo_is_loaded(store: MongoRepositories, tmp_path: Path) -> None:
    said: list[str] = []
    assert load_demo(store, None, said.append, workdir=tmp_path) is False
    assert store.contacts.collection.count_documents({}) == 0 and store.followups.collection.count_documents({}) == 0
    assert said == ["real Twilio account and no TARGET_PHONE_NUMBER: no demo loaded (it would message the demo's "
                    "made-up numbers); set TARGET_PHONE_NUMBER to your own WhatsApp number to receive it"]


def test_with_real_twilio_the_demo_is_one_client_at_the_target_phone(store: MongoRepositories, tmp_path: Path) -> None:
    said: list[str] = []
    assert load_demo(store, None, said.append, target_phone="+33798765432", workdir=tmp_path) is True
    contacts = list(store.contacts.collection.find({}, {"phone": 1, "name": 1}))
    assert [c["phone"] for c in contacts] == ["+33798765432"]
    followups = list(store.followups.collection.find({}, {"contact_id": 1}))
    assert [f["contact_id"] for f in followups] == [contacts[0]["_id"]]
    assert said[0] == "demo: imported 1 contacts"
    # Its invoices only, moved to the target phone: no other demo client is created from the invoices file.
    invoices = list(store.invoices.collection.find({}, {"reference": 1, "contact_id": 1}))
    assert [(i["reference"], i["contact_id"]) for i in invoices] == [("FA-2026-001", contacts[0]["_id"])]
    assert said[1] == "demo: imported 1 invoices"
    # Loaded once: a database with contacts is shown as it is.
    assert load_demo(store, None, said.append, target_phone="+33798765432", workdir=tmp_path) is False
    assert said[-1] == "database not empty: showing its progress (no demo loaded)"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_demo_invoices_are_overdue_whatever_the_clock(tmp_path: Path) -> None:
    original = _rows(DEMO_DIR / "invoices.csv")
    last = max(date.fromisoformat(row["due_date"]) for row in original)
    # A clock past every due date: the file as it is.
    assert _rows(demo_invoices(tmp_path, date(2027, 6, 1))) == original
    # An earlier clock: every date moved back by the same whole weeks, the last due date now past.
    moved = _rows(demo_invoices(tmp_path, date(2026, 1, 15)))
    shifts = {date.fromisoformat(a[key]) - date.fromisoformat(b[key]) for a, b in zip(original, moved, strict=True)
              for key in ("issued_on", "due_date")}
    assert len(shifts) == 1 and shifts.pop().days % 7 == 0
    assert max(date.fromisoformat(row["due_date"]) for row in moved) < date(2026, 1, 15) <= last
    assert [row["invoice"] for row in moved] == [row["invoice"] for row in original]
