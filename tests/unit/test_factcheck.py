"""The facts check: values in a draft must come from the request, without false positives."""

from __future__ import annotations

import string
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.factcheck import check_draft, detect_language, find_dates, find_numbers, parse_number
from shared.models import Language
from shared.offline import OfflineDrafter
from shared.ports import DraftRequest
from tests.support.gemini_helpers import FACTS, draft_request


def request(facts: dict[str, str] | None = None, language: Language = Language.FR, **kwargs: Any) -> DraftRequest:
    """The usual request (``facts`` first here: most tests vary them)."""
    return draft_request(language, facts=facts, **kwargs)


FR_OK = (
    "Bonjour Jean Dupont, sauf erreur de notre part, la facture {ref} d'un montant de {amount} "
    "(échéance le {date}) reste en attente de règlement. Vous pouvez la régler ici : {link} "
    "Merci par avance. Garage Martin"
)
EN_OK = (
    "Hello Jean Dupont, this is a reminder that invoice {ref} for {amount} (due on {date}) is "
    "still awaiting payment. You can pay here: {link} Thank you in advance. Garage Martin"
)


def fr(**kw: str) -> str:
    values = {"ref": "INV-2024-001", "amount": "1 250,00 €", "date": "15 mars 2026",
              "link": "https://pay.example.com/i/abc123"}
    values.update(kw)
    return FR_OK.format(**values)


def en(**kw: str) -> str:
    values = {"ref": "INV-2024-001", "amount": "€1,250.00", "date": "15 March 2026",
              "link": "https://pay.example.com/i/abc123"}
    values.update(kw)
    return EN_OK.format(**values)


# ------------------------------------------------------------------------ parsing helpers


@pytest.mark.parametrize(
    ("token", "values"),
    [
        ("1250", {"1250"}),
        ("1250.00", {"1250"}),
        ("1 250,00", {"1250"}),
        ("1\u00a0250,00", {"1250"}),
        ("1\u202f250,00", {"1250"}),
        ("1,250.00", {"1250"}),
        ("1.250,00", {"1250"}),
        ("1'250.00", {"1250"}),
        ("12,50", {"12.5"}),
        ("0,500", {"0.5"}),
        ("1.250", {"1.25", "1250"}),
        ("1,250", {"1.25", "1250"}),
        ("1,250,000", {"1250000"}),
        ("1 250 000,00", {"1250000"}),
        ("1250,5", {"1250.5"}),
    ],
)
def test_parse_number(token: str, values: set[str]) -> None:
    assert parse_number(token) == {Decimal(v) for v in values}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("le 15 mars 2026", date(2026, 3, 15)),
        ("le 1er avril 2026", date(2026, 4, 1)),
        ("15 March 2026", date(2026, 3, 15)),
        ("March 15, 2026", date(2026, 3, 15)),
        ("March 15th, 2026", date(2026, 3, 15)),
        ("the 15th of March 2026", date(2026, 3, 15)),
        ("15 févr. 2026", date(2026, 2, 15)),
        ("15 fevrier 2026", date(2026, 2, 15)),
        ("20 août 2026", date(2026, 8, 20)),
        ("2026-03-15", date(2026, 3, 15)),
        ("2026-03-15T10:00:00Z", date(2026, 3, 15)),
        ("15/03/2026", date(2026, 3, 15)),
        ("15.03.2026", date(2026, 3, 15)),
        ("15-03-2026", date(2026, 3, 15)),
        ("15/03/26", date(2026, 3, 15)),
    ],
)
def test_find_dates_full(text: str, expected: date) -> None:
    (mention,) = find_dates(text)
    assert expected in mention.full


def test_find_dates_partial_and_ambiguous() -> None:
    (ambiguous,) = find_dates("03/04/2026")
    assert ambiguous.full == {date(2026, 4, 3), date(2026, 3, 4)}
    (no_year,) = find_dates("avant le 15 mars")
    assert no_year.day_month == {(3, 15)} and not no_year.full
    (month_year,) = find_dates("la facture de mars 2026")
    assert month_year.month_year == (2026, 3)
    (weekday,) = find_dates("mardi 17 mars 2026")
    assert weekday.weekday == 1


@pytest.mark.parametrize(
    "text",
    ["24/7", "24h/24", "7j/7", "le 32/13", "version 1.2", "1 250,00 €", "2 jours", "Q1 2026"],
)
def test_not_dates(text: str) -> None:
    assert find_dates(text) == []


def test_find_numbers_currency_and_units() -> None:
    (amount,) = find_numbers("total : 1 250,00 € TTC")
    assert amount.currency == "EUR" and amount.values == {Decimal("1250")}
    (prefixed,) = find_numbers("total: €1,250.00")
    assert prefixed.currency == "EUR"
    (code,) = find_numbers("1250 EUR")
    assert code.currency == "EUR"
    (dollars,) = find_numbers("$1,250.00")
    assert dollars.currency == "DOLLAR"
    (days,) = find_numbers("sous 2 jours")
    assert days.unit
    (percent,) = find_numbers("10 %")
    assert percent.percent
    assert find_numbers("24h, 1er, 2e, 15th, 3rd") == []


def test_detect_language() -> None:
    assert detect_language(fr()) == Language.FR
    assert detect_language(en()) == Language.EN
    assert detect_language("OK 👍") is None
    assert detect_language("Jean Dupont INV-2024-001") is None
    assert detect_language("") is None


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    "amount",
    ["1 250,00 €", "1250 €", "1 250 €", "1250,00 €", "1250.00 EUR", "1\u00a0250,00\u00a0€",
     "1\u202f250,00\u00a0€", "EUR 1250", "1 250,00 euros", "1.250,00 €"],
)
def test_accepts_amount_formats_fr(amount: str) -> None:
    assert check_draft(fr(amount=amount), request()) == []


@pytest.mark.parametrize("amount", ["€1,250.00", "€1250", "1,250.00 EUR", "EUR 1,250.00", "€ 1,250"])
def test_accepts_amount_formats_en(amount: str) -> None:
    assert check_draft(en(amount=amount), request(language=Language.EN)) == []


@pytest.mark.parametrize(
    "written",
    ["15 mars 2026", "15/03/2026", "2026-03-15", "15.03.2026", "15 mars", "15/03",
     "dimanche 15 mars 2026", "15\u00a0mars\u00a02026"],
)
def test_accepts_date_formats_fr(written: str) -> None:
    assert check_draft(fr(date=written), request()) == []


@pytest.mark.parametrize(
    "written",
    ["15 March 2026", "March 15, 2026", "March 15th, 2026", "the 15th of March 2026", "03/15/2026",
     "Sunday, March 15, 2026", "March 15"],
)
def test_accepts_date_formats_en(written: str) -> None:
    assert check_draft(en(date=written), request(language=Language.EN)) == []


@pytest.mark.parametrize("ref", ["INV-2024-001", "inv-2024-001", "INV2024001"])
def test_accepts_reference_case_and_separators(ref: str) -> None:
    assert check_draft(fr(ref=ref), request()) == []


@pytest.mark.parametrize(
    "link",
    ["https://pay.example.com/i/abc123.", "https://pay.example.com/i/abc123,",
     "(https://pay.example.com/i/abc123)", "<https://pay.example.com/i/abc123>",
     "https://pay.example.com/i/abc123 !", "«https://pay.example.com/i/abc123»"],
)
def test_accepts_link_with_trailing_punctuation(link: str) -> None:
    assert check_draft(fr(link=link), request()) == []


@pytest.mark.parametrize(
    "sentence",
    [
        "Merci de régler sous 2 jours.",
        "Nous restons disponibles 24h/24 et 7j/7.",
        "Réponse sous 24h ou 48 heures.",
        "Ceci est notre 2e relance, après le 1er rappel.",
        "Relance 2/3.",
        "Rappel n° 3.",
        "Nos bureaux sont ouverts de 9h à 18h, ou à 14h30, ou à 10:00.",
        "Vous avez 3 factures en attente.",
        "Nous vous en remercions 1000 fois.",
        "Un escompte de 2,5 % est possible.",
        "Pour l'exercice 2026, merci.",
        "Une question ? Répondez simplement à ce message.",
        "Depuis 12 mois.",
    ],
)
def test_no_false_positive_on_ordinary_numbers(sentence: str) -> None:
    body = fr() + " " + sentence
    assert check_draft(body, request()) == []


def test_values_from_names_and_other_fields_are_allowed() -> None:
    facts = {**FACTS, "deposit": "300.00", "client_ref": "CL-77", "contact_email": "compta@acme.fr",
             "phone": "+33 6 12 34 56 78", "site": "acme.fr"}
    req = request(facts, business_name="Garage 2000", contact_name="ACME-42 SARL")
    body = (fr() + " Acompte reçu : 300,00 €. Votre référence client : CL-77. "
            "Contact : compta@acme.fr ou 06 12 34 56 78, acme.fr. Garage 2000, ACME-42 SARL")
    assert check_draft(body, req) == []


def test_facts_in_other_formats() -> None:
    facts = {"amount": "1.250,50 €", "due_date": "15/03/2026", "invoice_number": "FA 2024/17"}
    body = ("Bonjour Jean Dupont, la facture FA 2024/17 de 1 250,50 € échue le 15 mars 2026 "
            "reste à régler. Merci. Garage Martin")
    assert check_draft(body, request(facts)) == []


def test_ambiguous_fact_accepts_either_reading() -> None:
    facts = {"amount": "1,250", "currency": "EUR"}
    for amount in ("1 250 €", "1,25 €", "1,250 €"):
        body = f"Bonjour Jean Dupont, votre facture de {amount} est en attente de règlement."
        assert check_draft(body, request(facts)) == [], amount


def test_pure_digit_reference() -> None:
    facts = {"invoice_number": "20240017", "amount": "99.90"}
    body = "Bonjour Jean Dupont, la facture 20240017 de 99,90 € est en attente de règlement."
    assert check_draft(body, request(facts)) == []


def test_offline_style_text_without_currency() -> None:
    facts = {"amount": "1250", "invoice_number": "F-123"}
    body = "Bonjour Jean Dupont, la facture F-123 d'un montant de 1 250,00 est en attente."
    assert check_draft(body, request(facts)) == []


# ----------------------------------------------------------------------------- flagged


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("990,00 €", "990"), ("1 250,50 €", "1250.5"), ("€990", "990"), ("990 EUR", "990"),
     ("1 350 €", "1350"), ("12 500,00 €", "12500"), ("125,00 €", "125")],
)
def test_flags_wrong_amount(amount: str, shown: str) -> None:
    assert check_draft(fr(amount=amount), request()) == [f"amount {shown} not in contact data"]


def test_flags_invented_fee_and_bare_number() -> None:
    body = fr() + " Une indemnité forfaitaire de 40 € s'ajoute."
    assert check_draft(body, request()) == ["amount 40 not in contact data"]
    body = fr() + " Montant restant : 1350."
    assert check_draft(body, request()) == ["number 1350 not in contact data"]
    body = fr() + " Montant restant : 1 350."
    assert check_draft(body, request()) == ["amount 1350 not in contact data"]


def test_whatsapp_formatting_does_not_hide_values() -> None:
    assert check_draft(fr(amount="*1 250,00 €*", date="_15 mars 2026_"), request()) == []
    body = fr() + " Frais : _990,00 €_ et *16/03/2026*."
    assert check_draft(body, request()) == [
        "date 2026-03-16 not in contact data", "amount 990 not in contact data",
    ]


def test_flags_wrong_currency() -> None:
    assert check_draft(fr(amount="1 250,00 $"), request()) == ["currency DOLLAR not in contact data"]
    assert check_draft(fr(amount="1250 GBP"), request()) == ["currency GBP not in contact data"]


@pytest.mark.parametrize(
    ("written", "shown"),
    [("16 mars 2026", "2026-03-16"), ("15 mars 2025", "2025-03-15"), ("16/03/2026", "2026-03-16"),
     ("2026-04-15", "2026-04-15"), ("16 mars", "16 mars"), ("avril 2026", "avril 2026")],
)
def test_flags_wrong_date(written: str, shown: str) -> None:
    assert check_draft(fr(date=written), request()) == [f"date {shown} not in contact data"]


def test_flags_wrong_date_en() -> None:
    req = request(language=Language.EN)
    assert check_draft(en(date="March 16, 2026"), req) == ["date 2026-03-16 not in contact data"]


def test_flags_wrong_weekday() -> None:
    problems = check_draft(fr(date="lundi 15 mars 2026"), request())
    assert problems == ["weekday does not match date 2026-03-15"]


@pytest.mark.parametrize("ref", ["INV-2024-002", "FA2024-17", "F-123", "DEV-9", "INV2024"])
def test_flags_wrong_reference(ref: str) -> None:
    assert check_draft(fr(ref=ref), request()) == [f"reference {ref} not in contact data"]


@pytest.mark.parametrize(
    "link",
    ["https://pay.example.com/i/abc124", "https://pay.example.com/i/abc123/x",
     "http://pay.example.com/i/abc123", "https://evil.example.net/pay", "www.example.org/pay"],
)
def test_flags_wrong_link(link: str) -> None:
    problems = check_draft(fr(link=link), request())
    assert len(problems) == 1 and problems[0].startswith("link ")


def test_flags_invented_contact_details() -> None:
    body = fr() + " Contact : compta@garage.fr ou 06 11 22 33 44."
    assert check_draft(body, request()) == [
        "e-mail address not in contact data", "phone number not in contact data",
    ]


def test_flags_length_language_empty_and_placeholders() -> None:
    assert check_draft("", request()) == ["empty body"]
    assert check_draft("  \n ", request()) == ["empty body"]
    body = fr()
    assert check_draft(body, request(max_chars=len(body) - 1)) == [
        f"too long: {len(body)} characters, at most {len(body) - 1}"
    ]
    assert check_draft(body, request(max_chars=len(body))) == []
    assert check_draft(en(), request()) == ["language en, expected fr"]
    assert check_draft(fr(), request(language=Language.EN)) == ["language fr, expected en"]
    assert check_draft(fr() + " [Votre nom]", request()) == ["placeholder left in the text"]
    assert check_draft(fr() + " {{amount}}", request()) == ["placeholder left in the text"]


def test_names_do_not_sway_language() -> None:
    req = request(contact_name="The Best And Only", business_name="You Are Here Ltd")
    body = fr().replace("Jean Dupont", "The Best And Only").replace("Garage Martin",
                                                                    "You Are Here Ltd")
    assert check_draft(body, req) == []


def test_reports_every_problem_once() -> None:
    body = fr(amount="990,00 €", date="16 mars 2026") + " Encore 990,00 €."
    assert check_draft(body, request()) == [
        "date 2026-03-16 not in contact data", "amount 990 not in contact data",
    ]


def test_nothing_in_facts_means_no_values_allowed() -> None:
    body = "Bonjour Jean Dupont, votre facture de 1 250,00 € est en attente de règlement."
    assert check_draft(body, request({})) == ["amount 1250 not in contact data"]
    body = "Bonjour Jean Dupont, votre facture est en attente de règlement. Merci !"
    assert check_draft(body, request({})) == []


# ------------------------------------------------- the offline drafter always passes


_NAME_CHARS = string.ascii_letters + "éèçàôÉ" + string.digits + " -'&."
names = st.text(alphabet=_NAME_CHARS, min_size=0, max_size=40)


@st.composite
def amounts(draw: st.DrawFn) -> str:
    cents = draw(st.integers(min_value=0, max_value=10**9))
    value = Decimal(cents) / 100
    style = draw(st.sampled_from(["plain", "int", "fr", "en", "symbol", "code", "raw"]))
    whole, frac = f"{value:.2f}".split(".")
    grouped_en = f"{int(whole):,}"
    if style == "plain":
        return f"{value:.2f}"
    if style == "int":
        return whole
    if style == "fr":
        return grouped_en.replace(",", " ") + "," + frac
    if style == "en":
        return f"{grouped_en}.{frac}"
    if style == "symbol":
        return f"{grouped_en}.{frac} €"
    if style == "code":
        return f"{whole}.{frac} EUR"
    return draw(st.text(alphabet=string.ascii_letters + string.digits + " .,-€$", max_size=20))


@st.composite
def requests(draw: st.DrawFn) -> DraftRequest:
    facts: dict[str, str] = {}
    if draw(st.booleans()):
        facts["amount"] = draw(amounts())
    if draw(st.booleans()):
        facts["currency"] = draw(st.sampled_from(["EUR", "€", "USD", "GBP", "XOF", "CHF", "eur",
                                                  "euros", "$", "bitcoins"]))
    if draw(st.booleans()):
        day = draw(st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31)))
        fmt = draw(st.sampled_from(["iso", "fr", "raw"]))
        facts["due_date"] = {"iso": day.isoformat(), "fr": day.strftime("%d/%m/%Y"),
                             "raw": draw(st.text(max_size=15))}[fmt]
    if draw(st.booleans()):
        facts["invoice_number"] = draw(st.from_regex(r"[A-Z]{1,4}-?\d{1,6}(-\d{1,4})?",
                                                     fullmatch=True))
    if draw(st.booleans()):
        facts["quote_number"] = draw(st.from_regex(r"(DEV|Q)-?\d{1,5}", fullmatch=True))
    if draw(st.booleans()):
        path = draw(st.from_regex(r"[A-Za-z0-9_\-/]{0,30}", fullmatch=True))
        facts["payment_link"] = f"https://pay.example.com/{path}"
    extra = draw(st.dictionaries(st.sampled_from(["city", "notes", "siren", "x"]),
                                 st.text(max_size=20), max_size=2))
    facts.update(extra)
    step_count = draw(st.integers(min_value=1, max_value=6))
    return DraftRequest(
        contact_name=draw(names),
        language=draw(st.sampled_from(list(Language))),
        facts=facts,
        step_index=draw(st.integers(min_value=0, max_value=step_count - 1)),
        step_count=step_count,
        tone=draw(st.sampled_from(["courteous", "friendly", "firm", "unknown"])),
        business_name=draw(names),
        campaign_name=draw(names),
        max_chars=draw(st.integers(min_value=80, max_value=1600)),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_offline_drafts_always_pass(req: DraftRequest) -> None:
    draft = OfflineDrafter().draft(req)
    assert draft.body.strip()
    assert len(draft.body) <= req.max_chars
    assert check_draft(draft.body, req) == []


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("tone", ["courteous", "friendly", "firm"])
@pytest.mark.parametrize("step", [0, 1, 2])
def test_offline_drafts_pass_for_every_step_and_tone(language: Language, tone: str,
                                                     step: int) -> None:
    req = request(language=language, tone=tone, step_index=step)
    draft = OfflineDrafter().draft(req)
    assert check_draft(draft.body, req) == []
    assert detect_language(draft.body) == language
