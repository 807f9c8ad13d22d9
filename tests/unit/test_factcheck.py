"""The facts check: values in a draft must come from the request, without false positives."""

from __future__ import annotations

import itertools
import string
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.models import Contact, Language
from shared.domain.rules import Rules
from shared.language import texts as reply_texts
from shared.language.drafts import OfflineDrafter
from shared.language.factcheck import check_draft, detect_language
from shared.language.mentions import find_dates, find_numbers, parse_number
from shared.ports import DraftRequest
from shared.usecases import reply_plan
from shared.usecases.context import App
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


# ------------------------------------------------- statements only the business may make
# A draft may not grant a discount, cancel or settle the invoice, offer a payment plan or more
# time, nor threaten legal action the campaign does not mention (shared/statements.py).

DISCOUNT = "offers a discount"
CANCELLED = "cancels or waives the invoice"
SETTLED = "says nothing is left to pay"
INSTALMENTS = "offers a payment plan"
EXTENSION = "grants more time"
LEGAL = "threatens legal action the campaign does not mention"

REFUSED_FR = [
    (DISCOUNT, "Nous vous accordons une remise exceptionnelle.", "remise"),
    (DISCOUNT, "À titre de geste commercial, les frais sont pour nous.", "geste commercial"),
    (DISCOUNT, "Nous pouvons vous faire un rabais.", "rabais"),
    (DISCOUNT, "Une ristourne vous sera appliquée.", "ristourne"),
    (DISCOUNT, "Un escompte est possible pour un paiement rapide.", "escompte"),
    (DISCOUNT, "Nous vous proposons une réduction.", "réduction"),
    (DISCOUNT, "Les frais de dossier vous sont offerts.", "offerts"),
    (DISCOUNT, "Nous émettons un avoir sur votre compte.", "un avoir"),
    (DISCOUNT, "La livraison est gratuite.", "gratuite"),
    (CANCELLED, "Bonne nouvelle : votre facture est annulée.", "annulée"),
    (CANCELLED, "Nous avons décidé d'annuler les pénalités.", "annuler"),
    (CANCELLED, "Nous renonçons à vous réclamer cette somme.", "renonçons"),
    (CANCELLED, "Nous effaçons la dette.", "effaçons la dette"),
    (CANCELLED, "Cette somme ne vous sera plus réclamée.", "ne vous sera plus réclamée"),
    (CANCELLED, "Nous passons l'éponge pour cette fois.", "passons l'éponge"),
    (SETTLED, "Vous n'avez plus rien à payer.", "plus rien à payer"),
    (SETTLED, "Votre facture est soldée.", "est soldée"),
    (SETTLED, "Votre compte est soldé.", "est soldé"),
    (SETTLED, "La facture a bien été réglée, merci.", "a bien été réglée"),
    (SETTLED, "Le montant a été intégralement payé.", "a été intégralement payé"),
    (SETTLED, "Vous ne nous devez plus rien.", "ne nous devez plus rien"),
    (SETTLED, "Nous avons bien reçu votre virement.", "avons bien reçu votre virement"),
    (SETTLED, "Vous êtes à jour de vos paiements.", "êtes à jour"),
    (SETTLED, "Facture acquittée.", "acquittée"),
    (INSTALMENTS, "Nous vous proposons un échéancier.", "échéancier"),
    (INSTALMENTS, "Vous pouvez régler en plusieurs fois.", "en plusieurs fois"),
    (INSTALMENTS, "Vous pouvez régler en 3 fois sans frais.", "en 3 fois"),
    (INSTALMENTS, "Un paiement échelonné est possible.", "échelonné"),
    (INSTALMENTS, "Nous pouvons étaler le paiement.", "étaler"),
    (INSTALMENTS, "Réglez par mensualités.", "mensualités"),
    (INSTALMENTS, "Nous acceptons un plan de paiement.", "plan de paiement"),
    (INSTALMENTS, "Un paiement partiel nous conviendrait.", "paiement partiel"),
    (EXTENSION, "Vous disposez d'un délai supplémentaire.", "délai supplémentaire"),
    (EXTENSION, "Nous vous accordons un délai.", "accordons un délai"),
    (EXTENSION, "Nous vous laissons quinze jours de plus.", "laissons quinze jours"),
    (EXTENSION, "Nous reportons l'échéance.", "reportons"),
    (EXTENSION, "L'échéance est prolongée.", "prolongée"),
    (EXTENSION, "Prenez votre temps, rien ne presse.", "Prenez votre temps"),
    (EXTENSION, "Une nouvelle échéance vous sera proposée.", "nouvelle échéance"),
    (LEGAL, "Sans règlement, nous vous adresserons une mise en demeure.", "mise en demeure"),
    (LEGAL, "Le dossier sera transmis à notre huissier.", "huissier"),
    (LEGAL, "Nous ferons appel à un commissaire de justice.", "commissaire de justice"),
    (LEGAL, "Votre dossier passera au service contentieux.", "contentieux"),
    (LEGAL, "Nous engagerons des poursuites.", "poursuites"),
    (LEGAL, "Nous saisirons le tribunal.", "tribunal"),
    (LEGAL, "Nous demanderons une injonction de payer.", "injonction"),
    (LEGAL, "Notre avocat prendra contact avec vous.", "avocat"),
    (LEGAL, "Une procédure de recouvrement judiciaire sera lancée.", "recouvrement"),
]
REFUSED_EN = [
    (DISCOUNT, "We are happy to offer you a discount.", "discount"),
    (DISCOUNT, "As a goodwill gesture, the fees are on us.", "goodwill"),
    (DISCOUNT, "You are entitled to a rebate.", "rebate"),
    (DISCOUNT, "We will issue a credit note.", "credit note"),
    (DISCOUNT, "We can take 50 off the total.", "off the total"),
    (DISCOUNT, "We will deduct the delivery costs.", "deduct"),
    (CANCELLED, "Good news: your invoice has been cancelled.", "cancelled"),
    (CANCELLED, "We have decided to waive the late fee.", "waive"),
    (CANCELLED, "The balance has been written off.", "written off"),
    (CANCELLED, "The invoice is void.", "void"),
    (CANCELLED, "We forgive the debt.", "forgive the debt"),
    (SETTLED, "You have nothing left to pay.", "nothing left to pay"),
    (SETTLED, "Your invoice is paid in full.", "is paid"),
    (SETTLED, "The invoice has been settled.", "has been settled"),
    (SETTLED, "You no longer owe us anything.", "no longer owe"),
    (SETTLED, "We have received your payment, thank you.", "We have received your payment"),
    (SETTLED, "There is no outstanding balance.", "no outstanding balance"),
    (SETTLED, "You do not need to pay it.", "do not need to pay"),
    (SETTLED, "Your account is up to date.", "account is up to date"),
    (INSTALMENTS, "You can pay in three instalments.", "pay in three instalments"),
    (INSTALMENTS, "We can set up a payment plan.", "payment plan"),
    (INSTALMENTS, "Monthly installments are possible.", "installments"),
    (INSTALMENTS, "You may split the payment.", "split the payment"),
    (INSTALMENTS, "Partial payments are welcome.", "Partial payments"),
    (EXTENSION, "We extend your deadline by two weeks.", "extend"),
    (EXTENSION, "We can grant you an extension.", "extension"),
    (EXTENSION, "You have a grace period.", "grace period"),
    (EXTENSION, "Take some more time if you need it.", "more time"),
    (EXTENSION, "We can give you two more weeks.", "two more weeks"),
    (EXTENSION, "We are postponing the due date.", "postponing"),
    (EXTENSION, "There is no rush.", "no rush"),
    (LEGAL, "We will take legal action.", "legal"),
    (LEGAL, "We will take you to court.", "to court"),
    (LEGAL, "Our lawyer will contact you.", "lawyer"),
    (LEGAL, "A bailiff will visit you.", "bailiff"),
    (LEGAL, "The file goes to a debt collection agency.", "debt collection"),
    (LEGAL, "We will sue.", "sue"),
    (LEGAL, "This is a formal notice.", "formal notice"),
]


@pytest.mark.parametrize(("kind", "sentence", "words"), REFUSED_FR, ids=[s for _, s, _ in REFUSED_FR])
def test_refuses_statements_in_french(kind: str, sentence: str, words: str) -> None:
    assert check_draft(fr() + " " + sentence, request()) == [f'{kind} ("{words}")']


@pytest.mark.parametrize(("kind", "sentence", "words"), REFUSED_EN, ids=[s for _, s, _ in REFUSED_EN])
def test_refuses_statements_in_english(kind: str, sentence: str, words: str) -> None:
    assert check_draft(en() + " " + sentence, request(language=Language.EN)) == [f'{kind} ("{words}")']


@pytest.mark.parametrize(
    ("sentence", "language", "kind"),
    [
        # A refusal is still about a discount: the topic is not the model's to raise, and the
        # offline draft that replaces it says nothing about it.
        ("Nous ne pouvons pas vous accorder de remise.", Language.FR, DISCOUNT),
        ("Nous n'annulerons pas la facture.", Language.FR, CANCELLED),
        ("Aucun échéancier n'est possible.", Language.FR, INSTALMENTS),
        ("Aucun délai supplémentaire ne sera accordé.", Language.FR, EXTENSION),
        ("Nous ne souhaitons pas en arriver au tribunal.", Language.FR, LEGAL),
        ("We cannot offer any discount.", Language.EN, DISCOUNT),
        ("We will not cancel the invoice.", Language.EN, CANCELLED),
        ("A payment plan is not possible.", Language.EN, INSTALMENTS),
        ("No extension can be granted.", Language.EN, EXTENSION),
        ("We would rather avoid legal action.", Language.EN, LEGAL),
    ],
)
def test_negated_offers_are_refused_too(sentence: str, language: Language, kind: str) -> None:
    body = (fr() if language == Language.FR else en()) + " " + sentence
    (problem,) = check_draft(body, request(language=language))
    assert problem.startswith(f'{kind} ("')


def test_statements_are_read_in_any_case_accents_and_formatting() -> None:
    for sentence in ("VOTRE FACTURE EST ANNULEE.", "Votre facture est *annulée*.", "Votre facture est annulée."):
        assert check_draft(fr() + " " + sentence, request()) == [f'{CANCELLED} ("{sentence.split()[-1].strip(".*")}")']
    # Typographic apostrophes and non-breaking spaces change nothing.
    body = fr() + " Vous n\u2019avez plus\u00a0rien à payer."
    assert check_draft(body, request()) == [f'{SETTLED} ("plus rien à payer")']


def test_every_class_is_reported_once_in_text_order() -> None:
    body = (fr() + " Nous pouvons vous proposer un échéancier, une remise et même un délai supplémentaire,"
            " sinon ce sera l'huissier. Et encore une remise.")
    assert check_draft(body, request()) == [
        f'{INSTALMENTS} ("échéancier")', f'{DISCOUNT} ("remise")', f'{EXTENSION} ("délai supplémentaire")',
        f'{LEGAL} ("huissier")',
    ]


@pytest.mark.parametrize(
    ("sentence", "language", "shown"),
    [
        ("Un escompte de 2,5 % est possible.", Language.FR, "2.5"),
        ("Vous faites partie des 15 % de clients en retard.", Language.FR, "15"),
        ("Des intérêts de 10 pour cent s'appliquent.", Language.FR, "10"),
        ("You are among the 15% of clients who pay late.", Language.EN, "15"),
        ("Interest of 12 percent applies.", Language.EN, "12"),
    ],
)
def test_refuses_percentages_not_in_the_data(sentence: str, language: Language, shown: str) -> None:
    body = (fr() if language == Language.FR else en()) + " " + sentence
    problems = check_draft(body, request(language=language))
    assert problems[0] == f"percentage {shown}% not in contact data"


def test_percentages_written_in_the_facts_or_the_campaign_are_allowed() -> None:
    body = fr() + " Des intérêts de retard de 10 % s'appliquent."
    assert check_draft(body, request()) == ["percentage 10% not in contact data"]
    assert check_draft(body, request({**FACTS, "late_interest": "10 %"})) == []
    assert check_draft(body, request(campaign_description="Intérêts de retard : 10 % par an.")) == []
    # A number that is not written as a percentage in the data does not allow one.
    assert check_draft(body, request({**FACTS, "days": "10"})) == ["percentage 10% not in contact data"]


def test_a_date_not_in_the_data_is_refused_as_a_new_deadline() -> None:
    assert check_draft(fr() + " Vous avez jusqu'au 30 avril 2026 pour régler.", request()) == [
        "date 2026-04-30 not in contact data"]
    assert check_draft(en() + " You have until April 30, 2026 to pay.", request(language=Language.EN)) == [
        "date 2026-04-30 not in contact data"]
    # The due date of the data is no new deadline.
    assert check_draft(fr() + " Vous aviez jusqu'au 15 mars 2026 pour régler.", request()) == []


@pytest.mark.parametrize(
    "campaign",
    [
        {"campaign_description": "Dernière relance avant mise en demeure."},
        {"campaign_description": "After the third reminder the file goes to our lawyer."},
        {"tone": "firm, mention of the bailiff"},
        {"campaign_name": "Pré-contentieux"},
    ],
)
def test_legal_steps_are_allowed_when_the_campaign_mentions_them(campaign: dict[str, str]) -> None:
    body = fr() + " Sans règlement, le dossier sera transmis à notre huissier."
    assert check_draft(body, request()) == [f'{LEGAL} ("huissier")']
    assert check_draft(body, request(**campaign)) == []
    # Only legal steps: the campaign's mention of them grants nothing else.
    assert check_draft(body + " Une remise reste possible.", request(**campaign)) == [f'{DISCOUNT} ("remise")']


def test_words_of_the_facts_and_names_are_not_judged() -> None:
    req = request({**FACTS, "notes": "Remise déjà appliquée"}, business_name="Cabinet d'avocats Martin",
                  contact_name="Sue Court")
    body = fr().replace("Jean Dupont", "Sue Court").replace("Garage Martin", "Cabinet d'avocats Martin")
    assert check_draft(body + " Note : Remise déjà appliquée.", req) == []
    assert check_draft(body + " Votre avocat peut nous écrire.", req) == [f'{LEGAL} ("avocat")']


# Sentences of ordinary reminders that come close to the refused ones and must pass.
ORDINARY_FR = [
    "Merci de procéder au paiement dans les meilleurs délais.",
    "Merci de régler sans délai.",
    "Merci de régulariser la situation sans attendre.",
    "Sauf erreur de notre part, nous n'avons pas encore reçu votre règlement.",
    "La facture n'est toujours pas réglée.",
    "Si le règlement a déjà été effectué, merci de ne pas tenir compte de ce message.",
    "Si la facture a déjà été réglée, merci de ne pas tenir compte de ce message.",
    "Le solde reste dû.",
    "Le montant reste à régler.",
    "Merci par avance pour votre règlement.",
    "Nous restons à votre disposition pour toute question.",
    "N'hésitez pas à nous laisser un message.",
    "Petit rappel amical.",
    "Ceci est notre dernière relance.",
    "Sans réponse de votre part, nous considérerons que le devis n'est plus d'actualité.",
    "Nous souhaitons la poursuite de notre collaboration.",
    "Merci de votre confiance.",
    "Bonne journée !",
]
ORDINARY_EN = [
    "Please settle it as soon as possible.",
    "Please settle it without further delay.",
    "Unless we are mistaken, we have not yet received payment for it.",
    "The invoice is still unpaid.",
    "If you have already paid, please disregard this message.",
    "If this invoice has already been paid, please disregard this message.",
    "Your outstanding balance remains due.",
    "Thank you for your prompt payment.",
    "Please pay at your earliest convenience.",
    "Feel free to contact us with any question.",
    "If we do not hear from you, we will consider that the quote is no longer needed.",
    "This is our last reminder.",
    "Kind regards.",
]


@pytest.mark.parametrize("sentence", ORDINARY_FR)
def test_ordinary_french_reminders_pass(sentence: str) -> None:
    assert check_draft(fr() + " " + sentence, request()) == []


@pytest.mark.parametrize("sentence", ORDINARY_EN)
def test_ordinary_english_reminders_pass(sentence: str) -> None:
    assert check_draft(en() + " " + sentence, request(language=Language.EN)) == []


# Every text the offline drafter writes, for a grid of facts, names, tones, steps, languages and
# lengths (the shortened variants too), and every text the replies actor sends, must pass.
GRID_FACTS: list[dict[str, str]] = [
    dict(FACTS),
    {"quote_number": "DEV-2026-07", "amount": "980", "currency": "EUR", "due_date": "2026-04-01",
     "payment_link": "https://pay.example.com/q/7"},
    {},
    {"amount": "1,250.50", "currency": "USD"},
    {"amount": "75000", "currency": "XOF", "invoice_number": "F2026-0042", "due_date": "01/02/2026"},
    {"amount": "12.5", "currency": "GBP", "payment_link": "https://pay.example.com/x"},
]
GRID_NAMES = [("Jean Dupont", "Garage Martin"), ("", ""),
              # Names holding refused words: they are masked, never judged.
              ("Sue Court", "Cabinet d'avocats Martin & Associés"), ("Remise Legal", "Discount Plus SARL")]
GRID_TONES = ["courteous", "friendly", "firm", "unknown"]
GRID_STEPS = [(index, count) for count in (1, 2, 3) for index in range(count)]  # every stage: first, middle, last
GRID_LENGTHS = [80, 150, 300, 1600]  # the shortened variants and the full one


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("tone", GRID_TONES)
def test_every_offline_draft_of_the_grid_passes(language: Language, tone: str) -> None:
    drafter = OfflineDrafter()
    checked = 0
    for facts, (name, business), (index, count), max_chars in itertools.product(
        GRID_FACTS, GRID_NAMES, GRID_STEPS, GRID_LENGTHS
    ):
        req = request(dict(facts), language=language, tone=tone, step_index=index, step_count=count,
                      max_chars=max_chars, contact_name=name, business_name=business)
        body = drafter.draft(req).body
        assert check_draft(body, req) == [], (req, body)
        checked += 1
    assert checked == len(GRID_FACTS) * len(GRID_NAMES) * len(GRID_STEPS) * len(GRID_LENGTHS)


def _replies_deps(business: str) -> App:
    """What the replies' text functions read of their dependencies: the business name and the length cap."""
    return cast(App, SimpleNamespace(rules=Rules(business_name=business, max_message_chars=700)))


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("facts", GRID_FACTS, ids=range(len(GRID_FACTS)))
def test_every_reply_text_passes(language: Language, facts: dict[str, str]) -> None:
    business = "Garage Martin"
    deps = _replies_deps(business)
    contact = Contact(id="ct", phone="+33612345678", name="Jean Dupont", language=language, fields=dict(facts))
    texts: list[tuple[str, dict[str, str] | None]] = [
        (reply_texts.thank_you_text(business, contact, stopped=stopped), None) for stopped in (True, False)]
    promised, resume = "2026-04-10", "2026-03-12"
    for back in (None, resume):
        texts.append((reply_texts.promise_text(business, contact, promised, resume=back),
                      {"promised_date": promised, "resume_date": resume}))
    for topic in ("amount", "due_date", "payment_link", "invoice_number", "quote_number", "currency"):
        answer = reply_texts.answer_text(business, contact, topic)
        if answer is not None:
            texts.append((answer, None))
    for text, extra in texts:
        assert check_draft(text, reply_plan._facts_request(deps, contact, extra)) == [], text
