"""`relance invoices` on the real MongoDB-compatible server: import, sync, list, paid, cancel, and the
migration of contacts' invoice fields by `relance db init`, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Contact
from shared.domain.states import FollowUpState
from tests.support.cli import Relance

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "devtools" / "demo"
HEADER = "phone,name,language,tags,invoice,amount,amount_due,currency,issued_on,due_date,payment_link,status"
ROWS = [
    '06 12 34 56 78,Marie Dupont,fr,clients,FA-1,"1 250,50",,EUR,2026-01-05,15/02/2026,https://pay.example.com/1,',
    "06 12 34 56 78,Marie Dupont,fr,clients,FA-2,300,,EUR,2026-01-10,2026-02-20,,",
    "+44 7911 123456,John Smith,en,clients|uk,FA-3,99.90,,GBP,,2026-03-01,,",
]


def _csv(tmp_path: Path, rows: list[str], name: str = "invoices.csv") -> str:
    path = tmp_path / name
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_import_twice_then_list_pay_and_cancel(relance: Relance, store: MongoRepositories, tmp_path: Path) -> None:
    path = _csv(tmp_path, ROWS)
    assert relance("invoices", "import", path) == (
        0, "invoices: 3 new, 0 updated, 0 unchanged, 0 skipped; 2 new client(s)\n", "")
    assert relance("invoices", "import", path) == (
        0, "invoices: 0 new, 0 updated, 3 unchanged, 0 skipped; 0 new client(s)\n", "")
    assert store.invoices.collection.count_documents({}) == 3 and store.contacts.count() == 2
    doc = store.invoices.collection.find_one({"reference": "FA-1"})
    assert doc is not None and doc["amount_cents"] == 125050 and doc["due_date"] == "2026-02-15"
    assert [entry["source"] for entry in doc["history"]] == ["import"]

    code, out, err = relance("invoices", "list")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "FA-1  open  1250.50 EUR due  due 2026-02-15  +33612345678  Marie Dupont",
        "FA-2  open  300.00 EUR due  due 2026-02-20  +33612345678  Marie Dupont",
        "FA-3  open  99.90 GBP due  due 2026-03-01  +447911123456  John Smith",
    ]
    assert relance("invoices", "paid", "FA-1", "--amount", "250,50") == (
        0, "FA-1  partially_paid  1000.00 EUR due of 1250.50  due 2026-02-15  recorded\n", "")
    assert relance("invoices", "paid", "FA-1")[1].startswith("FA-1  paid  0.00 EUR due of 1250.50")
    assert relance("invoices", "cancel", "FA-3")[1].startswith("FA-3  cancelled")
    assert relance("invoices", "list", "--status", "open")[1].split()[0] == "FA-2"
    assert [line.split()[0] for line in relance("invoices", "list", "--phone", "06 12 34 56 78")[1].splitlines()] == [
        "FA-1", "FA-2"]
    assert relance("invoices", "list", "--status", "disputed") == (0, "no invoices\n", "")
    doc = store.invoices.collection.find_one({"reference": "FA-1"})
    assert doc is not None and [(e["what"], e["source"], e.get("amount_due_cents")) for e in doc["history"]] == [
        ("created", "import", 125050), ("pay_part", "command", 100000), ("mark_paid", "command", 0)]


def test_user_mistakes_end_with_one_error_line_and_an_exit_code(relance: Relance, tmp_path: Path) -> None:
    relance("invoices", "import", _csv(tmp_path, ROWS))
    relance("invoices", "paid", "FA-2")
    for argv, message in (
        (("invoices", "paid", "FA-2"), "error: invoice 'FA-2' is paid: nothing is due on it\n"),
        (("invoices", "paid", "NOPE"), "error: no invoice 'NOPE' (relance invoices list shows them)\n"),
        (("invoices", "paid", "FA-1", "--amount", "lots"), "error: amount 'lots' is not an amount"),
        (("invoices", "cancel", "FA-2"), "error: invoice 'FA-2' is paid: it cannot be cancelled\n"),
        (("invoices", "list", "--status", "late"), "error: status 'late' is not one of open, partially_paid"),
        (("invoices", "list", "--phone", "06 99 99 99 99"), "error: no client has phone '+33*******99'"),
        (("invoices", "import", str(tmp_path / "missing.csv")), "error: "),
        (("invoices", "import", _csv(tmp_path, [], "x.txt")), "error: x.txt: unsupported file type '.txt'"),
    ):
        code, out, err = relance(*argv)
        assert (code, out) == (1, ""), argv
        assert err.startswith(message) and "Traceback" not in err, (argv, err)
    no_invoice_column = tmp_path / "contacts.csv"
    no_invoice_column.write_text("phone,name,amount\n0612345678,Marie,10\n", encoding="utf-8")
    code, _, err = relance("invoices", "import", str(no_invoice_column))
    assert code == 1 and "missing required column 'invoice'" in err


def test_bad_rows_are_skipped_with_their_line_and_the_exit_code_says_so(relance: Relance, store: MongoRepositories,
                                                                        tmp_path: Path) -> None:
    path = _csv(tmp_path, [ROWS[0], "06 00,Bad,fr,,FA-4,10,,,,,,", "06 12 34 56 78,Marie,fr,,FA-5,10,,,,,,owed"])
    code, out, err = relance("invoices", "import", path)
    assert code == 1 and out == "invoices: 1 new, 0 updated, 0 unchanged, 2 skipped; 1 new client(s)\n"
    assert err.splitlines()[0].startswith("skipped line 3: ") and err.splitlines()[1].startswith(
        "skipped line 4: status 'owed' is not one of")
    assert store.invoices.collection.count_documents({}) == 1


def test_a_nightly_sync_closes_what_disappeared_as_paid(relance: Relance, store: MongoRepositories,
                                                        tmp_path: Path) -> None:
    relance("invoices", "import", _csv(tmp_path, ROWS))
    nightly = tmp_path / "nightly.json"
    nightly.write_text(json.dumps({"invoices": [
        {"phone": "+33612345678", "invoice": "FA-1", "amount": "1250.50", "amount_due": "1000",
         "due_date": "2026-02-15", "issued_on": "2026-01-05", "payment_link": "https://pay.example.com/1",
         "currency": "EUR"},
    ]}), encoding="utf-8")
    code, out, err = relance("invoices", "import", str(nightly), "--sync")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["invoices: 0 new, 1 updated, 0 unchanged, 0 skipped; 0 new client(s)",
                                "sync: 2 invoice(s) closed as paid: FA-2, FA-3"]
    statuses = {d["reference"]: (d["status"], d["amount_due_cents"], d["history"][-1]["source"])
                for d in store.invoices.collection.find()}
    assert statuses == {"FA-1": ("partially_paid", 100000, "import"), "FA-2": ("paid", 0, "sync"),
                        "FA-3": ("paid", 0, "sync")}
    assert relance("invoices", "import", str(nightly), "--sync")[1].splitlines() == [
        "invoices: 0 new, 0 updated, 1 unchanged, 0 skipped; 0 new client(s)", "sync: 0 invoice(s) closed as paid"]
    bad = _csv(tmp_path, ["06 12 34 56 78,Marie,fr,,FA-1,oops,,,,,,"], "bad.csv")
    code, _, err = relance("invoices", "import", bad, "--sync")
    assert code == 1 and "sync not applied: 1 row(s) rejected" in err
    assert store.invoices.collection.find_one({"reference": "FA-1"})["status"] == "partially_paid"  # type: ignore[index]


def test_db_init_makes_one_invoice_per_contact_from_its_fields_once(relance: Relance, store: MongoRepositories,
                                                                    clock: FakeClock) -> None:
    assert relance("contacts", "import", str(DEMO / "contacts.csv"))[0] == 0
    store.contacts.upsert(Contact(id="ct_x", phone="+33700000001", name="Sans facture"), clock.now())
    contacts_with_invoices = store.contacts.collection.count_documents({"fields.invoice_number": {"$exists": True}})
    assert contacts_with_invoices > 0
    code, out, err = relance("db", "init")
    assert (code, err) == (0, "")
    assert out == f"indexes ready\ninvoices made from contacts' fields: {contacts_with_invoices}\n"
    assert relance("db", "init") == (0, "indexes ready\n", "")  # idempotent: nothing made twice
    assert store.invoices.collection.count_documents({}) == contacts_with_invoices
    marie = store.contacts.by_phone("+33645178203")
    assert marie is not None
    doc = store.invoices.collection.find_one({"reference": "FA-2026-001"})
    assert doc is not None and doc["contact_id"] == marie.id and doc["amount_cents"] == 125050
    assert doc["due_date"] == "2026-10-15" and doc["history"][0]["source"] == "migration"
    index_names = {index["name"] for index in store.invoices.collection.list_indexes()}
    assert {"reference_unique", "contact_status"} <= index_names


CAMPAIGN = """\
id: factures
name: Factures en retard
steps:
  - {delay: 0s}
  - {delay: 3d, anchor: previous}
send_window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
enrol: {tags: [clients], invoices: {overdue_days: 10, min_amount: 100}}
"""


def test_an_import_enrols_the_clients_an_invoice_campaign_selects_and_a_sync_stops_them(
        relance: Relance, store: MongoRepositories, tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN, encoding="utf-8")
    assert relance("campaigns", "create", str(campaign))[0] == 0
    rows = [  # Marie: two overdue invoices; John: one overdue but under 100; Inès: not 10 days overdue
        "06 12 34 56 78,Marie Dupont,fr,clients,FA-1,250,,EUR,,2026-01-10,,",
        "06 12 34 56 78,Marie Dupont,fr,clients,FA-2,300,,EUR,,2026-02-01,,",
        "+44 7911 123456,John Smith,en,clients,FA-3,99.90,,EUR,,2026-01-01,,",
        "06 11 11 22 22,Inès Martin,fr,clients,FA-4,500,,EUR,,2099-01-01,,",
    ]
    code, out, _ = relance("invoices", "import", _csv(tmp_path, rows))
    assert code == 0 and out.splitlines()[-1] == "campaign factures: 1 client(s) enrolled"
    marie = store.contacts.by_phone("+33612345678")
    assert marie is not None
    assert [f.state for f in store.followups.of_contact(marie.id, [FollowUpState.SCHEDULED])] == ["scheduled"]
    assert store.followups.collection.count_documents({}) == 1
    # Again: nothing new. Then the nightly sync no longer lists Marie's invoices: her reminders stop.
    assert relance("invoices", "import", _csv(tmp_path, rows))[1].count("enrolled") == 0
    code, out, _ = relance("invoices", "import", _csv(tmp_path, rows[2:], "nightly.csv"), "--sync")
    assert code == 0 and "sync: 2 invoice(s) closed as paid: FA-1, FA-2" in out
    (followup,) = store.followups.summaries_of_contact(marie.id)
    assert (followup.state, followup.stop_reason) == ("stopped", "paid")
    # The next night Marie owes a new overdue invoice: she is enrolled again, once.
    later = [*rows[2:], "06 12 34 56 78,Marie Dupont,fr,clients,FA-5,400,,EUR,,2026-02-10,,"]
    code, out, _ = relance("invoices", "import", _csv(tmp_path, later, "nightly2.csv"), "--sync")
    assert code == 0 and out.splitlines()[-1] == "campaign factures: 1 client(s) enrolled"
    assert relance("invoices", "import", _csv(tmp_path, later, "nightly2.csv"), "--sync")[1].count("enrolled") == 0
    assert sorted((f.state, f.stop_reason) for f in store.followups.summaries_of_contact(marie.id)) == [
        ("scheduled", None), ("stopped", "paid")]
