"""Pure parsing of contacts files (CSV, JSON) and campaign files: no database involved."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from pathlib import Path

import pytest

from services.terminal import print_progress
from shared.campaign_files import check_campaign_against_contacts, load_campaign
from shared.contact_rows import RowResult, normalise_amount, normalise_date
from shared.domain.models import Campaign, Contact, Language
from shared.errors import InputError
from shared.importing import count_rows, read_contacts

HEADER = "name,phone,language,timezone,tags,invoice_number,amount,currency,due_date,payment_link"


def _write(tmp_path: Path, text: str, name: str = "contacts.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _rows(path: Path) -> list[RowResult]:
    return list(read_contacts(path))


def _errors(path: Path) -> list[str]:
    return [r.error for r in _rows(path) if r.error]


def _one(tmp_path: Path, row: str, header: str = HEADER) -> RowResult:
    results = _rows(_write(tmp_path, f"{header}\n{row}\n"))
    assert len(results) == 1
    return results[0]


# --------------------------------------------------------------------------- formats
def test_csv_with_bom_and_semicolons_as_excel_writes_it(tmp_path: Path) -> None:
    text = ("\ufeffNom;Téléphone;Tags;N° facture;Amount;Due Date\r\n"
            "Marie Dupont;06 12 34 56 78;clients|vip;FA-1;1 250,50;15/03/2026\r\n"
            "Jean Martin;+33 7 51 23 45 67;clients, retard;FA-2;80;2026-04-01\r\n")
    results = _rows(_write(tmp_path, text))
    assert [r.error for r in results] == [None, None]
    marie, jean = (r.contact for r in results)
    assert marie is not None and jean is not None
    assert (marie.name, marie.phone, marie.tags) == ("Marie Dupont", "+33612345678", ["clients", "vip"])
    assert marie.fields == {"n_facture": "FA-1", "amount": "1250.50", "currency": "EUR",
                            "due_date": "2026-03-15"}
    assert jean.tags == ["clients", "retard"] and jean.fields["amount"] == "80.00"
    assert [r.line for r in results] == [2, 3]


def test_excel_sep_line_tabs_and_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    text = "sep=;\nname;phone\n\nMarie;0612345678\n;\nPaul;12\n"
    results = _rows(_write(tmp_path, text))
    assert [(r.line, r.error is None) for r in results] == [(4, True), (6, False)]
    assert results[1].error is not None and results[1].error.startswith("line 6: phone")
    tabbed = _rows(_write(tmp_path, "name\tphone\nMarie\t0612345678\n", name="c.tsv"))
    assert tabbed[0].contact is not None and tabbed[0].contact.phone == "+33612345678"


def test_quoted_multiline_cell_reports_the_starting_line(tmp_path: Path) -> None:
    text = 'name,phone,note\nMarie,0612345678,"two\nlines"\nPaul,nope,x\n'
    results = _rows(_write(tmp_path, text))
    assert results[0].contact is not None and results[0].contact.fields["note"] == "two\nlines"
    assert results[1].error is not None and results[1].error.startswith("line 4: ")


def test_json_list_wrapped_and_nested_fields(tmp_path: Path) -> None:
    items = [
        {"name": "Marie", "phone": "+33612345678", "tags": ["a", "b"], "amount": 1250.5,
         "fields": {"invoice_number": "FA-1", "due_date": "01/02/2026"}},
        {"name": "John", "phone": "+447911123456", "language": "english", "tags": "x|y"},
        "not an object",
        {"name": "", "phone": "+33612345679", "fields": {"deep": {"no": 1}}},
        {"name": "Twice", "phone": "+33612345670", "amount": "1", "fields": {"amount": "2"}},
    ]
    for payload in (items, {"contacts": items}):
        path = _write(tmp_path, json.dumps(payload), name="c.json")
        results = _rows(path)
        marie, john = results[0].contact, results[1].contact
        assert marie is not None and john is not None
        assert marie.fields == {"invoice_number": "FA-1", "due_date": "2026-02-01", "amount": "1250.50",
                                "currency": "EUR"}
        assert marie.tags == ["a", "b"] and john.tags == ["x", "y"]
        assert john.language is Language.EN
        assert results[2].error == "item 3: is not an object with name and phone"
        assert results[3].error == "item 4: field 'deep' must be text or a number"
        assert results[4].error == "item 5: field 'amount' is given twice with different values"
        assert count_rows(path) == 5


def test_contact_ids_are_random_not_derived_from_the_phone(tmp_path: Path) -> None:
    """A hash of the phone is reversed in minutes: a new contact's id says nothing about its number.

    (The store finds a re-imported contact by its phone and keeps its first id: see
    tests/integration/test_import_campaigns.py.)
    """
    first = _one(tmp_path, "Marie,06 12 34 56 78,,,,,,,,").contact
    second = _one(tmp_path, "Marie D.,+33612345678,,,,,,,,").contact
    assert first is not None and second is not None
    assert first.phone == second.phone == "+33612345678"
    assert first.id != second.id
    for contact in (first, second):
        assert re.fullmatch(r"ct_[0-9a-f]{16}", contact.id)
        digests = {hashlib.new(name, form.encode()).hexdigest() for name in ("sha256", "sha1", "md5")
                   for form in ("+33612345678", "33612345678", "0612345678")}
        assert not any(contact.id[3:] in digest for digest in digests)


# --------------------------------------------------------------------------- derivations
@pytest.mark.parametrize(("phone", "language", "timezone"), [
    ("+33612345678", Language.FR, "Europe/Paris"),
    ("+32478561234", Language.FR, "Europe/Brussels"),
    ("+447911123456", Language.EN, "Europe/London"),
    ("+14155550132", Language.EN, "America/Los_Angeles"),
    ("+12015550123", Language.EN, "America/New_York"),
])
def test_language_and_timezone_from_the_phone(tmp_path: Path, phone: str, language: Language,
                                              timezone: str) -> None:
    contact = _one(tmp_path, f"X,{phone},,,,,,,,").contact
    assert contact is not None
    assert (contact.language, contact.timezone) == (language, timezone)


def test_explicit_language_and_timezone_win(tmp_path: Path) -> None:
    contact = _one(tmp_path, "X,+33612345678,EN,america/new_york,,,,,,").contact
    assert contact is not None
    assert (contact.language, contact.timezone) == (Language.EN, "America/New_York")
    contact = _one(tmp_path, "X,+447911123456,fr-FR,Europe/Paris,,,,,,").contact
    assert contact is not None and contact.language is Language.FR


def test_tags_split_trim_and_dedupe(tmp_path: Path) -> None:
    contact = _one(tmp_path, 'X,+33612345678,,,"a, b|c,,a ",,,,,').contact
    assert contact is not None and contact.tags == ["a", "b", "c"]


def test_empty_free_fields_are_dropped_and_others_kept_as_text(tmp_path: Path) -> None:
    contact = _one(tmp_path, "X,+33612345678,1,2,3", header="name,phone,Client Ref,note,  ").contact
    # An unnamed column with a value is an error; without a value it is ignored.
    assert contact is None
    contact = _one(tmp_path, "X,+33612345678,R-9,,", header="name,phone,Client Ref,note,").contact
    assert contact is not None and contact.fields == {"client_ref": "R-9"}


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(("raw", "canonical", "currency"), [
    ("1 250,50", "1250.50", None), ("1250.5", "1250.50", None), ("1,250.50", "1250.50", None),
    ("1.250,50", "1250.50", None), ("1\u202f250,5", "1250.50", None), ("80", "80.00", None),
    ("1 250,50 €", "1250.50", "EUR"), ("$99.90", "99.90", "USD"), ("1250 GBP", "1250.00", "GBP"),
    ("1.000.000", "1000000.00", None), ("0,5", "0.50", None),
])
def test_amounts(raw: str, canonical: str, currency: str | None) -> None:
    assert normalise_amount(raw) == (canonical, currency)


@pytest.mark.parametrize("raw", ["12x", "-12", "1,2,3", "12.345", "abc", "1 25 0,5 6", "€"])
def test_bad_amounts(raw: str) -> None:
    with pytest.raises(InputError, match="amount"):
        normalise_amount(raw)


@pytest.mark.parametrize(("raw", "iso"), [
    ("2026-03-15", "2026-03-15"), ("15/03/2026", "2026-03-15"), ("5/3/2026", "2026-03-05"),
    ("15.03.2026", "2026-03-15"), ("2026-03-15 00:00:00", "2026-03-15"), ("29/02/2028", "2028-02-29"),
])
def test_dates(raw: str, iso: str) -> None:
    assert normalise_date(raw) == iso


@pytest.mark.parametrize("raw", ["31/02/2026", "2026-13-01", "03/15/2026", "tomorrow", "15/03/26"])
def test_bad_dates(raw: str) -> None:
    with pytest.raises(InputError, match="is not a date"):
        normalise_date(raw)


def test_currency_defaults_uppercases_and_checks(tmp_path: Path) -> None:
    contact = _one(tmp_path, "X,+33612345678,,,,,10,usd,,").contact
    assert contact is not None and contact.fields["currency"] == "USD"
    contact = _one(tmp_path, "X,+33612345678,,,,,,chf,,").contact  # currency alone is kept
    assert contact is not None and contact.fields == {"currency": "CHF"}
    assert _one(tmp_path, "X,+33612345678,,,,,10 €,USD,,").error == (
        "line 2: currency USD does not match the amount's EUR")


# --------------------------------------------------------------------------- bad rows
@pytest.mark.parametrize(("row", "message"), [
    (",+33612345678,,,,,,,,", "line 2: name is empty"),
    ("   ,+33612345678,,,,,,,,", "line 2: name is empty"),
    ("X,,,,,,,,,", "line 2: phone is empty"),
    ("X,+33 6 12,,,,,,,,", "line 2: phone '+33***12' is not a valid number"),
    ("X,0612345,,,,,,,,", "line 2: phone '061**45' is not a valid number"),
    ("X,hello,,,,,,,,", "line 2: phone 'hello' is not a phone number"),
    ("X,+33612345678,de,,,,,,,", "line 2: language 'de' is not supported (use fr or en)"),
    ("X,+33612345678,,Mars/Olympus,,,,,,",
     "line 2: timezone 'Mars/Olympus' is not an IANA timezone (e.g. Europe/Paris)"),
    ("X,+33612345678,,,,,12x,,,", "line 2: amount '12x' is not an amount (write it like 1250.50 or 1 250,50)"),
    ("X,+33612345678,,,,,,euro,,", "line 2: currency 'euro' is not a 3-letter code such as EUR"),
    ("X,+33612345678,,,,,,,31/02/2026,",
     "line 2: due_date '31/02/2026' is not a date (write it as YYYY-MM-DD or DD/MM/YYYY)"),
    ("X,+33612345678,,,,,,,,ftp://pay.example.com/1",
     "line 2: payment_link 'ftp://pay.example.com/1' is not an http(s) URL"),
    ("X,+33612345678,,,,,,,,pay.example.com/1", "line 2: payment_link 'pay.example.com/1' is not an http(s) URL"),
    ("X,+33612345678,,,,,,,,https://", "line 2: payment_link 'https://' is not an http(s) URL"),
    ("X,+33612345678,,,,,,,,,extra", "line 2: has 11 values but the header has 10 columns"),
])
def test_bad_row_reasons(tmp_path: Path, row: str, message: str) -> None:
    result = _one(tmp_path, row)
    assert result.contact is None and result.error == message


def test_several_problems_in_one_row_are_all_listed(tmp_path: Path) -> None:
    error = _one(tmp_path, ",+33 6 12,,,,,12x,,31/02/2026,").error
    assert error is not None and error.startswith("line 2: name is empty; phone '+33***12'")
    assert "amount '12x'" in error and "due_date '31/02/2026'" in error


def test_full_phone_numbers_never_appear_in_messages(tmp_path: Path) -> None:
    rows = [
        "A,06 12 34 56 78,,,,,,,,",
        "B,+33612345678,,,,,,,,",                       # duplicate
        "C,+33 6 12 34 56 78 99,,,,,,,,",               # too long
        "D,+33612345679,,,,,0612345678x,,,",            # a phone pasted in the amount column
        "E,+33612345670,,,,,,,0612345678,",             # … and in the due date column
    ]
    errors = _errors(_write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    assert len(errors) == 4
    for error in errors:
        assert "612345678" not in error.replace(" ", "") and "12 34 56" not in error
    assert errors[0] == "line 3: phone '+33*******78' is a duplicate of line 2"


def test_duplicates_within_a_file(tmp_path: Path) -> None:
    rows = ["A,0612345678,,,,,,,,", "B,0751234567,,,,,,,,", "C,+33 6 12 34 56 78,,,,,,,,",
            "D,+33751234567,,,,,,,,", "E,0612345678,,,,,,,31/02/2026,"]
    results = _rows(_write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    assert [r.contact is not None for r in results] == [True, True, False, False, False]
    assert results[2].error == "line 4: phone '+33*******78' is a duplicate of line 2"
    assert results[3].error == "line 5: phone '+33*******67' is a duplicate of line 3"
    assert results[4].error is not None and "due_date" in results[4].error


def test_a_bad_first_row_still_makes_a_later_same_phone_a_duplicate(tmp_path: Path) -> None:
    rows = ["A,0612345678,,,,,,,31/02/2026,", "B,0612345678,,,,,,,,"]
    errors = _errors(_write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    assert errors[1] == "line 3: phone '+33*******78' is a duplicate of line 2"


# --------------------------------------------------------------------------- file problems
def test_file_level_problems_raise_before_any_row(tmp_path: Path) -> None:
    cases: list[tuple[Path, str]] = [
        (tmp_path / "missing.csv", "no such file"),
        (_write(tmp_path, "name,phone\n", name="c.xlsx"), "unsupported file type '.xlsx'"),
        (_write(tmp_path, "", name="empty.csv"), "the file is empty"),
        (_write(tmp_path, "name,email\nX,x@example.com\n", name="a.csv"), "missing required column 'phone'"),
        (_write(tmp_path, "Marie,0612345678\nPaul,0751234567\n", name="b.csv"),
         "missing required column 'name' and 'phone'"),
        (_write(tmp_path, "name,phone,Due date,due_date\n", name="d.csv"), "are the same field 'due_date'"),
        (_write(tmp_path, "name,phone\nMarie Lefèvre,0612345678\n", name="e.csv", encoding="latin-1"),
         "not UTF-8"),
        (_write(tmp_path, '{"name": ', name="f.json"), "invalid JSON at line 1"),
        (_write(tmp_path, '{"people": []}', name="g.json"), "expected a list of contacts"),
        (_write(tmp_path, '[{"name": "X", "tel": "1"}, {"name": "Y"}]', name="h.json"), None),
        (_write(tmp_path, '[{"name": "X"}]', name="i.json"), "missing required column 'phone'"),
    ]
    for path, message in cases:
        if message is None:
            assert len(_rows(path)) == 2  # 'tel' is an accepted spelling of phone
            continue
        with pytest.raises(InputError) as info:
            _rows(path)
        assert message in str(info.value), (path, str(info.value))


def test_a_missing_header_does_not_echo_phone_numbers(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        _rows(_write(tmp_path, "Marie,06 12 34 56 78\n"))
    assert "12 34 56" not in str(info.value) and "'061*****78'" in str(info.value)


# --------------------------------------------------------------------------- progress
def test_print_progress_prints_about_every_tenth_when_not_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    for done in range(0, 1001):
        print_progress(done, 1000)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "contacts: 0/1000 (0%)" and lines[-1] == "contacts: 1000/1000 (100%)"
    assert len(lines) == 11
    print_progress(0, None)
    print_progress(2500, None)
    assert capsys.readouterr().err.splitlines() == ["contacts: 0", "contacts: 2500"]
    for done in range(9):
        print_progress(done, 8)
    assert capsys.readouterr().err == ""


def test_print_progress_draws_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    monkeypatch.setattr(sys, "stderr", stream)
    for done in (0, 4, 8):
        print_progress(done, 8)
    text = stream.getvalue()
    assert text.startswith("\r[" + "." * 30 + "]   0% 0/8")
    assert text.endswith("\r[" + "#" * 30 + "] 100% 8/8\n")


# --------------------------------------------------------------------------- campaign files
CAMPAIGN = """
id: relance
name: Relance
steps:
  - delay: 3d
    anchor: due_date
    template:
      content_sid: HX0123456789abcdef0123456789abcdef
      variables: {1: name, 2: invoice_number}
      preview: {fr: "Bonjour {{1}}, facture {{2}}", en: "Hello {{1}}, invoice {{2}}"}
  - delay: 1w
    anchor: previous
    tone: firm
send_window: {days: [mon, tue, wed, thu, fri], start: 9:00, end: 18:00}
enrol: {tags: [clients], filter: {currency: EUR}}
"""


def _campaign_file(tmp_path: Path, text: str, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_campaign_yaml_and_json(tmp_path: Path) -> None:
    campaign = load_campaign(_campaign_file(tmp_path, CAMPAIGN))
    assert campaign.send_window.start.hour == 9 and campaign.send_window.end.hour == 18  # not 1080 s
    assert campaign.steps[0].template is not None
    assert campaign.steps[0].template.variables == {"1": "name", "2": "invoice_number"}
    assert campaign.referenced_fields() == {"due_date", "invoice_number", "currency"}
    as_json = _campaign_file(tmp_path, campaign.model_dump_json(), name="campaign.json")
    assert load_campaign(as_json) == campaign


def _load_problems(tmp_path: Path, text: str, name: str = "campaign.yaml") -> list[str]:
    with pytest.raises(InputError) as info:
        load_campaign(_campaign_file(tmp_path, text, name))
    message = str(info.value)
    assert "Traceback" not in message and "pydantic" not in message and "errors.pydantic.dev" not in message
    return message.splitlines()


def test_campaign_validation_lists_every_problem_with_its_place(tmp_path: Path) -> None:
    text = CAMPAIGN.replace("delay: 1w", "delay: 3x").replace("tone: firm", "tone: firm\n    tmplate: {}")
    text = text.replace("id: relance", "id: Relance Mars").replace("HX0123", "HX0")
    problems = _load_problems(tmp_path, text)
    assert problems[0] == ("campaign.yaml: steps[1].delay: invalid duration '3x': write it like 3d, 4h, "
                           "90s or 1h30m")
    assert "campaign.yaml: steps[1].tmplate: unknown key (did you mean 'template'?)" in problems
    assert any(p.startswith("campaign.yaml: id: id must be lower-case") for p in problems)
    assert any(p.startswith("campaign.yaml: steps[0].template.content_sid: content_sid must look like")
               for p in problems)
    assert len(problems) == 4


@pytest.mark.parametrize(("edit", "expected"), [
    (("name: Relance\n", ""), "campaign.yaml: name: is required"),
    (("start: 9:00, end: 18:00", "start: '18:00', end: '09:00'"),
     "campaign.yaml: send_window: send window end must be after its start"),
    (("start: 9:00", "start: 25:00"), "campaign.yaml: send_window.start: Input should be in a valid time format"),
    (("days: [mon, tue, wed, thu, fri]", "days: [mon, funday]"), "campaign.yaml: send_window.days: days must be among"),
    (("  - delay: 1w\n    anchor: previous", "  - delay: 1w\n    anchor: previous\n    relation: before"),
     "campaign.yaml: steps[1].relation: 'before' needs a date anchor such as due_date"),
    (("en: \"Hello {{1}}, invoice {{2}}\"", "en: \"Hello {{1}}, {{3}}\""),
     "campaign.yaml: steps[0].template.preview.en: {{3}} not among the template's variables"),
    (("2: invoice_number", "2: Invoice Number"), "campaign.yaml: steps[0].template.variables.2: 'Invoice Number'"),
])
def test_campaign_validation_messages(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    assert edit[0] in CAMPAIGN
    problems = _load_problems(tmp_path, CAMPAIGN.replace(edit[0], edit[1]))
    assert any(p.startswith(expected) for p in problems), problems


def test_campaign_file_level_problems(tmp_path: Path) -> None:
    assert _load_problems(tmp_path, "id: a\nsteps:\n  - delay: 5s\n   bad: indent\n")[0].startswith(
        "campaign.yaml: invalid YAML at line 4, column 4")
    assert _load_problems(tmp_path, '{"id": "a",\n "steps": [}', name="c.json")[0].startswith(
        "c.json: invalid JSON at line 2, column 12")
    assert _load_problems(tmp_path, "- a\n- b\n")[0] == (
        "campaign.yaml: expected a mapping with id, name and steps at the top level")
    assert _load_problems(tmp_path, "id: a", name="c.toml")[0].startswith("c.toml: unsupported file type")
    with pytest.raises(InputError, match="no such file"):
        load_campaign(tmp_path / "nope.yaml")


def _contact(n: int, **fields: str) -> Contact:
    phone = f"+336123456{n:02d}"
    return Contact(id=f"ct_{n}", phone=phone, name=f"Client {n}", tags=["clients"],
                   fields={"currency": "EUR", **fields})


def test_check_against_contacts_names_the_field_and_its_use(tmp_path: Path) -> None:
    campaign = load_campaign(_campaign_file(tmp_path, CAMPAIGN))
    contacts = [
        _contact(1, due_date="2026-03-01", invoice_number="FA-1"),
        _contact(2, invoice_number="FA-2"),
        _contact(3, due_date="soon", invoice_number="FA-3"),
        _contact(4).model_copy(update={"tags": ["other"]}),            # not selected
        _contact(5).model_copy(update={"opted_out": True}),           # will not be enrolled
        _contact(6, currency="USD"),                                  # filtered out
    ]
    problems = check_campaign_against_contacts(campaign, contacts)
    assert problems == [
        "contact Client 2 (+33*******02) lacks field 'due_date' used by step 1 anchor",
        "contact Client 3 (+33*******03) has due_date 'soon', not a date (used by step 1 anchor)",
    ]


def test_check_against_many_contacts_is_a_summary(tmp_path: Path) -> None:
    campaign = load_campaign(_campaign_file(tmp_path, CAMPAIGN))
    contacts = [_contact(n % 100, due_date="2026-03-01") for n in range(10_000)]
    problems = check_campaign_against_contacts(campaign, contacts)
    assert problems == [
        "10000 contacts lack field 'invoice_number' used by step 1 template variable {{2}}, "
        "e.g. Client 0 (+33*******00), Client 1 (+33*******01), Client 2 (+33*******02) and 9997 more"
    ]


def test_campaign_model_helpers_are_consistent() -> None:
    campaign = Campaign.model_validate({"id": "c", "name": "C", "steps": [{"anchor": "due_date"}]})
    assert check_campaign_against_contacts(campaign, [_contact(1, due_date="01/03/2026")]) == []
