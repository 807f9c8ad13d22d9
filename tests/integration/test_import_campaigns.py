"""Contacts import, campaign creation and enrolment on the real MongoDB-compatible server."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from devtools.devstack import demo_invoices
from shared.adapters.mongo import MongoRepositories
from shared.campaign_files import load_campaign
from shared.clock import FakeClock, utc
from shared.errors import InputError
from shared.usecases.campaigns import create_campaign, enrol_campaign
from shared.usecases.contacts import import_contacts
from shared.usecases.invoices import import_invoices

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "devtools" / "demo"
HEADER = "name,phone,tags,invoice_number,amount,due_date,payment_link"
CAMPAIGN = """
id: relance
name: Relance
steps:
  - delay: 2d
    anchor: due_date
    template:
      content_sid: HX0123456789abcdef0123456789abcdef
      variables: {"1": name, "2": invoice_number}
      preview: {fr: "Bonjour {{1}}, facture {{2}}", en: "Hello {{1}}, invoice {{2}}"}
  - delay: 1w
    anchor: previous
    tone: firm
send_window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
enrol: {tags: [clients]}
"""


def _csv(tmp_path: Path, rows: list[str], name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _contact_id(store: MongoRepositories, phone: str) -> str:
    contact = store.contacts.by_phone(phone)
    assert contact is not None
    return contact.id


def _campaign(tmp_path: Path, text: str = CAMPAIGN, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = [
    "Marie Dupont,06 12 34 56 78,clients,FA-1,\"1 250,50\",15/03/2026,https://pay.example.com/1",
    "John Smith,+44 7911 123456,clients|uk,FA-2,99.9,2026-03-20,",
    "Paul Durand,07 51 23 45 67,prospects,,,,",
]


def test_import_then_reimport_changes_nothing(store: MongoRepositories, clock: FakeClock, tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD)
    first = import_contacts(store, path, now=clock.now())
    assert (first.inserted, first.updated, first.unchanged, first.errors) == (3, 0, 0, [])
    doc = store.contacts.collection.find_one({"phone": "+33612345678"})
    assert doc is not None
    assert doc["fields"] == {"invoice_number": "FA-1", "amount": "1250.50", "currency": "EUR",
                             "due_date": "2026-03-15", "payment_link": "https://pay.example.com/1"}
    created = utc(doc["updated_at"])

    clock.advance(timedelta(hours=1))
    second = import_contacts(store, path, now=clock.now())
    assert (second.inserted, second.updated, second.unchanged, second.errors) == (0, 0, 3, [])
    again = store.contacts.collection.find_one({"phone": "+33612345678"})
    assert again is not None and utc(again["updated_at"]) == created
    assert again["_id"] == doc["_id"]  # found by its phone: a re-import keeps the contact's id

    # The same people written differently (spacing, separators, date format) are still unchanged.
    reformatted = _csv(tmp_path, [
        "Marie Dupont,+33612345678,clients,FA-1,1250.5,2026-03-15,https://pay.example.com/1",
        "John Smith,00447911123456,clients | uk,FA-2,\"99,90\",20/03/2026,",
        "Paul Durand,+33 7 51 23 45 67,prospects,,,,",
    ], name="again.csv")
    third = import_contacts(store, reformatted, now=clock.now())
    assert (third.inserted, third.updated, third.unchanged) == (0, 0, 3)

    changed = _csv(tmp_path, [GOOD[0].replace("FA-1", "FA-9")], name="changed.csv")
    fourth = import_contacts(store, changed, now=clock.now())
    assert (fourth.inserted, fourth.updated, fourth.unchanged) == (0, 1, 0)
    assert store.contacts.collection.count_documents({}) == 3
    assert store.contacts.collection.find_one({"phone": "+33612345678"})["_id"] == doc["_id"]


def test_new_contacts_get_random_ids_and_existing_ones_keep_theirs(store: MongoRepositories, clock: FakeClock,
                                                                  tmp_path: Path) -> None:
    """Ids are random (a hash of the phone is reversible); a contact stored before keeps its old id."""
    legacy_id = "ct_" + hashlib.sha256(b"+33612345678").hexdigest()[:16]  # how ids were made before
    store.contacts.collection.insert_one({"_id": legacy_id, "phone": "+33612345678", "name": "Marie Dupont",
                                          "language": "fr", "timezone": "Europe/Paris", "fields": {}, "tags": [],
                                          "opted_out": False, "last_inbound_at": None, "created_at": clock.now(),
                                          "updated_at": clock.now()})
    report = import_contacts(store, _csv(tmp_path, GOOD), now=clock.now())
    assert (report.inserted, report.updated, report.unchanged) == (2, 1, 0)
    assert store.contacts.collection.find_one({"phone": "+33612345678"})["_id"] == legacy_id
    for phone in ("+447911123456", "+33751234567"):
        contact_id = _contact_id(store, phone)
        assert re.fullmatch(r"ct_[0-9a-f]{16}", contact_id)
        assert contact_id != "ct_" + hashlib.sha256(phone.encode()).hexdigest()[:16]
    assert store.contacts.collection.count_documents({}) == 3


def test_bad_rows_are_skipped_and_reported_while_good_rows_land(
    store: MongoRepositories, clock: FakeClock, tmp_path: Path
) -> None:
    rows = [
        GOOD[0],
        "Nobody,+33 6 12,clients,FA-3,10,2026-03-01,",
        ",06 11 22 33 44,clients,FA-4,10,2026-03-01,",
        "Late,06 11 22 33 45,clients,FA-5,10,31/02/2026,",
        "Marie Again,+33612345678,clients,FA-6,10,2026-03-01,",
        GOOD[1],
    ]
    seen: list[tuple[int, int | None]] = []
    report = import_contacts(store, _csv(tmp_path, rows), now=clock.now(),
                             progress=lambda done, total: seen.append((done, total)))
    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
    assert report.errors == [
        "line 3: phone '+33***12' is not a valid number",
        "line 4: name is empty",
        "line 5: due_date '31/02/2026' is not a date (write it as YYYY-MM-DD or DD/MM/YYYY)",
        "line 6: phone '+33*******78' is a duplicate of line 2",
    ]
    assert store.contacts.collection.count_documents({}) == 2
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)


def test_file_problems_raise_before_anything_is_written(store: MongoRepositories, clock: FakeClock,
                                                        tmp_path: Path) -> None:
    no_phone = tmp_path / "no_phone.csv"
    no_phone.write_text("name,email\nMarie,m@example.com\n", encoding="utf-8")
    late_decode_error = tmp_path / "latin.csv"
    late_decode_error.write_bytes(("name,phone\n" + "Marie,0612345678\n" * 3).encode()
                                  + "Zoé,0751234567\n".encode("latin-1"))
    for path, message in ((no_phone, "missing required column 'phone'"), (late_decode_error, "not UTF-8"),
                          (tmp_path / "absent.json", "no such file"), (tmp_path / "contacts.xls", "unsupported")):
        with pytest.raises(InputError, match=message):
            import_contacts(store, path, now=clock.now())
    assert store.contacts.collection.count_documents({}) == 0


def test_campaign_lacking_a_field_is_refused_and_nothing_stored(
    store: MongoRepositories, clock: FakeClock, tmp_path: Path
) -> None:
    import_contacts(store, _csv(tmp_path, [GOOD[0], "Zoé Petit,07 51 23 45 68,clients,FA-7,10,,"]),
                    now=clock.now())
    with pytest.raises(InputError) as info:
        create_campaign(store, _campaign(tmp_path), now=clock.now())
    message = str(info.value)
    assert "campaign 'relance' does not fit the contacts it enrols (2 selected)" in message
    assert "contact Zoé Petit (+33*******68) lacks field 'due_date' used by step 1 anchor" in message
    assert "0751234568" not in message.replace(" ", "")
    assert store.campaigns.get("relance") is None and store.campaigns.collection.count_documents({}) == 0

    # Fixed data: the campaign is created, once.
    import_contacts(store, _csv(tmp_path, ["Zoé Petit,07 51 23 45 68,clients,FA-7,10,2026-04-01,"],
                                name="fix.csv"), now=clock.now())
    campaign = create_campaign(store, _campaign(tmp_path), now=clock.now())
    assert store.campaigns.get("relance") == campaign
    with pytest.raises(InputError, match="already exists"):
        create_campaign(store, _campaign(tmp_path), now=clock.now())


def test_invalid_campaign_file_stores_nothing(store: MongoRepositories, clock: FakeClock, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"campaign.yaml: steps\[1\].delay: invalid duration '3x'"):
        create_campaign(store, _campaign(tmp_path, CAMPAIGN.replace("1w", "3x")), now=clock.now())
    assert store.campaigns.collection.count_documents({}) == 0


@pytest.mark.parametrize(("delay", "shown"), [("366d", "366d"), ("99999999999999999999d", "99999999999999999...")])
def test_a_delay_over_a_year_is_refused_and_stores_nothing(store: MongoRepositories, clock: FakeClock, tmp_path: Path,
                                                          delay: str, shown: str) -> None:
    """A huge delay once passed here and overflowed in the scheduler; now it is a clear error up front."""
    with pytest.raises(InputError) as info:
        create_campaign(store, _campaign(tmp_path, CAMPAIGN.replace("1w", delay)), now=clock.now())
    assert str(info.value) == f"campaign.yaml: steps[1].delay: duration {shown!r} is too long: at most 365 days (365d)"
    assert store.campaigns.collection.count_documents({}) == 0
    assert create_campaign(store, _campaign(tmp_path, CAMPAIGN.replace("1w", "365d")), now=clock.now()).id == "relance"


def test_enrol_twice_enrols_nobody_twice_and_skips_opted_out(
    store: MongoRepositories, clock: FakeClock, tmp_path: Path
) -> None:
    import_contacts(store, _csv(tmp_path, GOOD), now=clock.now())
    campaign = create_campaign(store, _campaign(tmp_path), now=clock.now())
    john = store.contacts.by_phone("+447911123456")
    assert john is not None
    store.contacts.set_opt_out(john.id, True, clock.now())

    first = enrol_campaign(store, campaign.id, now=clock.now())
    assert (first.enrolled, first.already_enrolled) == (1, 0)
    assert first.skipped == ["contact John Smith (+44********56) opted out"]
    second = enrol_campaign(store, campaign.id, now=clock.now() + timedelta(minutes=5))
    assert (second.enrolled, second.already_enrolled, len(second.skipped)) == (0, 1, 1)
    assert store.followups.collection.count_documents({}) == 1

    # Step 0 is 2 days after the due date (15 March 2026, in Paris), inside the send window.
    followup = store.followups.get(f"relance:{_contact_id(store, '+33612345678')}")
    assert followup is not None and followup.next_run_at is not None
    assert utc(followup.next_run_at).isoformat() == "2026-03-17T08:00:00+00:00"

    # A contact imported later without the anchor field is skipped with the reason, not enrolled.
    import_contacts(store, _csv(tmp_path, ["Léa Roux,07 51 23 45 69,clients,FA-8,10,,"], name="late.csv"),
                    now=clock.now())
    third = enrol_campaign(store, campaign.id, now=clock.now(), tags=["clients"])
    assert third.enrolled == 0 and third.already_enrolled == 1
    assert "contact Léa Roux (+33*******69) lacks field 'due_date' used by step 1 anchor" in third.skipped

    with pytest.raises(InputError, match="no campaign 'nope'"):
        enrol_campaign(store, "nope", now=clock.now())


def test_enrol_with_extra_tags_narrows_the_selection(store: MongoRepositories, clock: FakeClock,
                                                     tmp_path: Path) -> None:
    import_contacts(store, _csv(tmp_path, GOOD), now=clock.now())
    campaign = create_campaign(store, _campaign(tmp_path), now=clock.now())
    report = enrol_campaign(store, campaign.id, now=clock.now(), tags=["uk"])
    assert (report.enrolled, report.skipped) == (1, [])
    assert store.followups.collection.find_one({"contact_id": _contact_id(store, "+447911123456")}) is not None


def test_enrolment_by_filter_selects_on_the_contacts_fields_in_mongodb(store: MongoRepositories, clock: FakeClock,
                                                                       tmp_path: Path) -> None:
    """``enrol.filter`` (a field equal to a value, here a number written as YAML would read it)."""
    import_contacts(store, _csv(tmp_path, GOOD), now=clock.now())
    text = CAMPAIGN.replace("enrol: {tags: [clients]}", "enrol: {tags: [clients], filter: {amount: 99.9}}")
    campaign = create_campaign(store, _campaign(tmp_path, text), now=clock.now())
    report = enrol_campaign(store, campaign.id, now=clock.now())
    assert (report.enrolled, report.already_enrolled) == (1, 0)
    enrolled = [f["contact_id"] for f in store.followups.collection.find({}, {"contact_id": 1})]
    assert enrolled == [_contact_id(store, "+447911123456")]
    bad = text.replace("relance", "relance-bad", 1).replace("amount: 99.9", "amount: quatre-vingts")
    with pytest.raises(InputError, match=r"enrol\.filter\.amount: amount 'quatre-vingts' is not an amount"):
        create_campaign(store, _campaign(tmp_path, bad, name="bad.yaml"), now=clock.now())
    assert store.campaigns.collection.count_documents({}) == 1


def test_demo_files_load_import_and_enrol_cleanly(store: MongoRepositories, clock: FakeClock, tmp_path: Path) -> None:
    report = import_contacts(store, DEMO / "contacts.csv", now=clock.now())
    assert (report.inserted, report.errors) == (8, [])
    contacts = store.contacts.find(tags=["demo"])
    assert len(contacts) == 8
    assert {c.language.value for c in contacts} == {"fr", "en"}
    invoices = import_invoices(store, demo_invoices(tmp_path, clock.now().date()), now=clock.now())
    assert (invoices.created, invoices.errors) == (9, [])
    owing = {invoice.contact_id for invoice in store.invoices.find()}
    assert owing == {c.id for c in contacts}  # every demo client owes something; one of them two invoices
    assert all(i.payment_link and i.payment_link.startswith("https://pay.example.com/") for i in store.invoices.find())
    campaign = load_campaign(DEMO / "campaign.yaml")
    assert campaign.id == "demo-relance" and [s.delay for s in campaign.steps] == ["5s", "20s"]
    assert all(s.template is not None and set(s.template.preview) == {"fr", "en"} for s in campaign.steps)
    created = create_campaign(store, DEMO / "campaign.yaml", now=clock.now())
    enrolled = enrol_campaign(store, created.id, now=clock.now())
    assert (enrolled.enrolled, enrolled.skipped) == (8, [])
    # All week, round the clock: the first step is due 5 s after enrolment for everyone.
    for doc in store.followups.collection.find({"campaign_id": "demo-relance"}):
        assert utc(doc["next_run_at"]) == clock.now() + timedelta(seconds=5)
    assert import_contacts(store, DEMO / "contacts.csv", now=clock.now()).unchanged == 8


def test_a_larger_file_imports_with_right_counts(store: MongoRepositories, clock: FakeClock, tmp_path: Path) -> None:
    rows = 2000
    lines = [f"Client {n},+3361{n:07d},bulk,FA-{n:05d},\"{n % 100} {n % 1000:03d},50\",{1 + n % 28:02d}/03/2026,"
             for n in range(rows)]
    lines[10] = "Broken,+33 6 12,bulk,FA-X,1,2026-03-01,"
    path = _csv(tmp_path, lines, name="big.csv")
    progress: list[tuple[int, int | None]] = []
    started = time.perf_counter()
    report = import_contacts(store, path, now=clock.now(), progress=lambda d, t: progress.append((d, t)))
    elapsed = time.perf_counter() - started
    print(f"imported {rows} rows in {elapsed:.2f}s ({rows / elapsed:.0f} rows/s)")
    assert (report.inserted, len(report.errors)) == (rows - 1, 1)
    assert report.errors[0].startswith("line 12: phone")
    assert store.contacts.collection.count_documents({"tags": "bulk"}) == rows - 1
    assert progress[0] == (0, rows) and progress[-1] == (rows, rows) and 50 <= len(progress) <= 110
    started = time.perf_counter()
    second = import_contacts(store, path, now=clock.now())
    elapsed = time.perf_counter() - started
    print(f"re-imported {rows} rows in {elapsed:.2f}s ({rows / elapsed:.0f} rows/s)")
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, rows - 1)
