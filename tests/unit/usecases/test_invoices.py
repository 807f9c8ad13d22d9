"""The invoice use cases on the in-memory repositories: import, sync, payments, cancel, list, migration."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from shared.adapters.memory import MemoryRepositories, memory_repositories
from shared.clock import FakeClock
from shared.domain.invoices import InvoiceSource
from shared.domain.models import Contact, Language
from shared.domain.states import InvoiceStatus
from shared.errors import InputError
from shared.usecases.invoices import (
    cancel_invoice,
    import_invoices,
    list_invoices,
    migrate_contact_invoices,
    record_payment,
)

ST = InvoiceStatus
HEADER = "phone,name,language,tags,invoice,amount,amount_due,currency,issued_on,due_date,payment_link,status"
ROWS = [
    '06 12 34 56 78,Marie Dupont,fr,clients,FA-1,"1 250,50",,EUR,2026-01-05,15/02/2026,https://pay.example.com/1,',
    "06 12 34 56 78,Marie Dupont,fr,clients,FA-2,300,100,EUR,2026-01-10,2026-02-20,,",
    "+44 7911 123456,John Smith,en,clients|uk,FA-3,99.90,,GBP,,2026-03-01,,",
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryRepositories:
    return memory_repositories()


def _csv(tmp_path: Path, rows: list[str], name: str = "invoices.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _status(store: MemoryRepositories, reference: str) -> tuple[ST, int]:
    found = store.invoices.get(reference)
    assert found is not None
    return found.status, found.amount_due_cents


def test_an_import_creates_clients_and_invoices_and_twice_changes_nothing(store: MemoryRepositories,
                                                                        clock: FakeClock, tmp_path: Path) -> None:
    path = _csv(tmp_path, ROWS)
    first = import_invoices(store, path, now=clock.now())
    assert (first.created, first.updated, first.unchanged, first.clients_created, first.errors) == (3, 0, 0, 2, [])
    marie = store.contacts.by_phone("+33612345678")
    assert marie is not None and marie.name == "Marie Dupont" and marie.tags == ["clients"] and marie.fields == {}
    fa1 = store.invoices.get("FA-1")
    assert fa1 is not None and fa1.contact_id == marie.id and (fa1.amount_cents, fa1.amount_due_cents) == (125050,
                                                                                                         125050)
    assert (fa1.issued_on, fa1.due_date, fa1.payment_link) == (date(2026, 1, 5), date(2026, 2, 15),
                                                               "https://pay.example.com/1")
    assert fa1.history[0].source == InvoiceSource.IMPORT
    assert _status(store, "FA-2") == (ST.PARTIALLY_PAID, 10000)  # amount_due below the amount
    fa3 = store.invoices.get("FA-3")
    assert fa3 is not None and fa3.currency == "GBP" and store.contacts.get(fa3.contact_id).language == Language.EN  # type: ignore[union-attr]

    clock.advance(timedelta(hours=1))
    again = import_invoices(store, path, now=clock.now())
    assert (again.created, again.updated, again.unchanged, again.clients_created, again.errors) == (0, 0, 3, 0, [])
    assert len(store.invoices.get("FA-1").history) == 1  # type: ignore[union-attr]


def test_bad_rows_are_reported_with_their_line_and_skipped(store: MemoryRepositories, clock: FakeClock,
                                                           tmp_path: Path) -> None:
    path = _csv(tmp_path, [
        ROWS[0],
        "06 00,Bad Phone,fr,,FA-4,10,,,,,,",
        "06 12 34 56 78,Marie Dupont,fr,,,10,,,,,,",
        "06 12 34 56 78,Marie Dupont,fr,,FA-5,ten,,,,,,",
        "06 12 34 56 78,Marie Dupont,fr,,FA-6,10,20,,,,,",
        "06 12 34 56 78,Marie Dupont,fr,,FA-7,10,,,,31/02/2026,ftp://x,",
        "06 12 34 56 78,Marie Dupont,fr,,FA-8,10,,,,,,lost",
        "06 12 34 56 78,Marie Dupont,fr,,FA-1,10,,,,,,",
        "07 51 23 45 67,,fr,,FA-9,10,,,,,,",
    ])
    report = import_invoices(store, path, now=clock.now())
    assert report.created == 1
    errors = "\n".join(report.errors)
    assert [e.split(":")[0] for e in report.errors] == [f"line {n}" for n in range(3, 11)]
    assert "line 4: invoice (the reference) is empty" in errors
    assert "amount 'ten' is not an amount" in errors
    assert "amount_due is more than the amount" in errors
    assert "due_date" in errors and "payment_link 'ftp://x' is not an http(s) URL" in errors
    assert "status 'lost' is not one of open, partially_paid, paid" in errors
    assert "line 9: invoice 'FA-1' is a duplicate of line 2" in errors
    assert "line 10: no client has phone" in errors and "name is empty" in errors
    assert "751234567" not in errors  # phones masked
    assert store.invoices.get("FA-9") is None and store.contacts.by_phone("+33751234567") is None


def test_json_files_are_read_like_csv(store: MemoryRepositories, clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "invoices.json"
    path.write_text(json.dumps({"invoices": [
        {"phone": "+33612345678", "name": "Marie", "invoice": "FA-1", "amount": 120.5, "due_date": "2026-02-01"},
        {"phone": "+33612345678", "invoice": "FA-2", "amount": "80", "status": "paid"},
        ["not", "an", "object"],
    ]}), encoding="utf-8")
    report = import_invoices(store, path, now=clock.now())
    assert report.created == 2 and report.errors == ["item 3: is not an object with phone and invoice and amount"]
    assert _status(store, "FA-1") == (ST.OPEN, 12050) and _status(store, "FA-2") == (ST.PAID, 0)


def test_a_file_lowers_what_is_due_or_closes_but_never_reopens(store: MemoryRepositories, clock: FakeClock,
                                                              tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS), now=clock.now())
    record_payment(store, "FA-3", now=clock.now())
    changed = [
        ROWS[0].replace('"1 250,50",,', '"1 250,50",250.50,').replace("https://pay.example.com/1", "https://p.example/1"),
        ROWS[1] + "cancelled",
        "+44 7911 123456,John Smith,en,clients|uk,FA-3,99.90,,GBP,,2026-03-01,,open",
    ]
    report = import_invoices(store, _csv(tmp_path, changed, "again.csv"), now=clock.now())
    assert (report.updated, report.unchanged, report.errors) == (2, 1, [])
    assert _status(store, "FA-1") == (ST.PARTIALLY_PAID, 25050)
    assert store.invoices.get("FA-1").payment_link == "https://p.example/1"  # type: ignore[union-attr]
    assert _status(store, "FA-2") == (ST.CANCELLED, 10000)
    assert _status(store, "FA-3") == (ST.PAID, 0)
    assert report.notes == ["line 4: invoice 'FA-3' is paid in Relance: the file's open is not applied "
                            "(a file never reopens an invoice)"]


def test_an_empty_cell_keeps_what_is_stored(store: MemoryRepositories, clock: FakeClock, tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS[:1]), now=clock.now())
    bare = "06 12 34 56 78,,,,FA-1,1250.50,,,,,,"
    report = import_invoices(store, _csv(tmp_path, [bare], "bare.csv"), now=clock.now())
    assert (report.unchanged, report.errors) == (1, [])
    fa1 = store.invoices.get("FA-1")
    assert fa1 is not None and (fa1.issued_on, fa1.due_date, fa1.payment_link) == (
        date(2026, 1, 5), date(2026, 2, 15), "https://pay.example.com/1")


def test_a_changed_amount_or_another_client_is_refused(store: MemoryRepositories, clock: FakeClock,
                                                       tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS), now=clock.now())
    report = import_invoices(store, _csv(tmp_path, [ROWS[0].replace('"1 250,50"', "999"),
                                                     ROWS[1].replace("06 12 34 56 78", "+44 7911 123456")], "b.csv"),
                             now=clock.now())
    assert len(report.errors) == 2
    assert "stored with 1250.50 EUR: a changed amount needs a new reference" in report.errors[0]
    assert "invoice 'FA-2' belongs to another client" in report.errors[1]


def test_sync_closes_as_paid_every_unpaid_invoice_missing_from_the_file(store: MemoryRepositories,
                                                                        clock: FakeClock, tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS), now=clock.now())
    cancel_invoice(store, "FA-3", now=clock.now())
    report = import_invoices(store, _csv(tmp_path, [ROWS[0]], "nightly.csv"), now=clock.now(), sync=True)
    assert report.closed_by_sync == ["FA-2"] and report.sync_refused is None
    assert _status(store, "FA-1") == (ST.OPEN, 125050) and _status(store, "FA-2") == (ST.PAID, 0)
    assert _status(store, "FA-3") == (ST.CANCELLED, 9990)  # closed already: left alone
    assert store.invoices.get("FA-2").history[-1].source == InvoiceSource.SYNC  # type: ignore[union-attr]
    again = import_invoices(store, _csv(tmp_path, [ROWS[0]], "nightly.csv"), now=clock.now(), sync=True)
    assert again.closed_by_sync == [] and again.unchanged == 1


def test_sync_closes_nothing_when_a_row_is_rejected_or_the_file_lists_nothing(
        store: MemoryRepositories, clock: FakeClock, tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS), now=clock.now())
    report = import_invoices(store, _csv(tmp_path, [ROWS[0], "bad,,,,FA-2,x,,,,,,"], "n.csv"), now=clock.now(),
                             sync=True)
    assert report.closed_by_sync == [] and report.sync_refused and "1 row(s) rejected" in report.sync_refused
    empty = import_invoices(store, _csv(tmp_path, [], "empty.csv"), now=clock.now(), sync=True)
    assert empty.closed_by_sync == [] and empty.sync_refused and "lists no invoice" in empty.sync_refused
    assert [i.status for i in store.invoices.find()] == [ST.OPEN, ST.PARTIALLY_PAID, ST.OPEN]


def test_payments_and_cancellation_by_a_person(store: MemoryRepositories, clock: FakeClock, tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS), now=clock.now())
    part = record_payment(store, "FA-1", amount="250,50", now=clock.now())
    assert (part.status, part.amount_due_cents) == (ST.PARTIALLY_PAID, 100000)
    assert part.history[-1].source == InvoiceSource.COMMAND
    paid = record_payment(store, " FA-1 ", now=clock.now())
    assert (paid.status, paid.amount_due_cents) == (ST.PAID, 0)
    for wrong, message in ((lambda: record_payment(store, "FA-1", now=clock.now()), "is paid: nothing is due"),
                           (lambda: record_payment(store, "nope", now=clock.now()), "no invoice 'nope'"),
                           (lambda: record_payment(store, "FA-2", amount="0", now=clock.now()), "more than 0"),
                           (lambda: record_payment(store, "FA-2", amount="abc", now=clock.now()), "not an amount"),
                           (lambda: record_payment(store, "FA-3", amount="5 €", now=clock.now()), "in GBP, not EUR"),
                           (lambda: cancel_invoice(store, "FA-1", now=clock.now()), "is paid: it cannot be cancelled")):
        with pytest.raises(InputError, match=message):
            wrong()
    assert cancel_invoice(store, "FA-2", now=clock.now()).status == ST.CANCELLED


def test_the_list_filters_by_status_and_phone(store: MemoryRepositories, clock: FakeClock, tmp_path: Path) -> None:
    import_invoices(store, _csv(tmp_path, ROWS), now=clock.now())
    lines = list_invoices(store)
    assert lines[0] == "FA-1  open  1250.50 EUR due  due 2026-02-15  +33612345678  Marie Dupont"
    assert lines[1] == "FA-2  partially_paid  100.00 EUR due of 300.00  due 2026-02-20  +33612345678  Marie Dupont"
    assert [line.split()[0] for line in list_invoices(store, status="open")] == ["FA-1", "FA-3"]
    assert [line.split()[0] for line in list_invoices(store, phone="+44 7911 123456")] == ["FA-3"]
    assert list_invoices(store, status="paid") == []
    with pytest.raises(InputError, match="status 'late' is not one of"):
        list_invoices(store, status="late")
    with pytest.raises(InputError, match="no client has phone"):
        list_invoices(store, phone="06 99 99 99 99")


def test_contacts_invoice_fields_become_one_invoice_each_once(store: MemoryRepositories, clock: FakeClock) -> None:
    fields = {"invoice_number": "FA-2026-001", "amount": "1250.50", "currency": "EUR", "due_date": "2026-10-15",
              "payment_link": "https://pay.example.com/inv/FA-2026-001"}
    store.contacts.upsert(Contact(id="ct1", phone="+33645178203", name="Marie", fields=fields), clock.now())
    store.contacts.upsert(Contact(id="ct2", phone="+33645178204", name="Paul", fields={"city": "Lyon"}), clock.now())
    store.contacts.upsert(Contact(id="ct3", phone="+33645178205", name="Zoé",
                                  fields={"invoice_number": "FA-9", "amount": "beaucoup"}), clock.now())
    first = migrate_contact_invoices(store, now=clock.now())
    assert (first.created, first.existing) == (1, 0) and len(first.skipped) == 1 and "FA-9" in first.skipped[0]
    invoice = store.invoices.get("FA-2026-001")
    assert invoice is not None and invoice.contact_id == "ct1" and invoice.amount_due_cents == 125050
    assert invoice.due_date == date(2026, 10, 15) and invoice.history[0].source == InvoiceSource.MIGRATION
    second = migrate_contact_invoices(store, now=clock.now())
    assert (second.created, second.existing) == (0, 1) and len(store.invoices.find()) == 1
    assert store.contacts.get("ct1").fields == fields  # type: ignore[union-attr]  # kept: drafts read them
