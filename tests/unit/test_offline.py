"""The offline drafter: deterministic French/English follow-ups from the facts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.domain.models import Language
from shared.language.drafts import OfflineDrafter
from shared.language.factcheck import check_draft, detect_language
from shared.language.formatting import format_amount, format_date
from shared.ports import DraftRequest
from tests.support.gemini_helpers import FACTS
from tests.support.gemini_helpers import draft_request as request


def body(req: DraftRequest) -> str:
    """The draft's text with non-breaking spaces shown as plain spaces."""
    return OfflineDrafter().draft(req).body.replace("\u00a0", " ")


def test_format_helpers() -> None:
    assert format_date(date(2026, 3, 15), Language.FR) == "15 mars 2026"
    assert format_date(date(2026, 3, 1), Language.FR) == "1er mars 2026"
    assert format_date(date(2026, 8, 2), Language.EN) == "2 August 2026"
    nbsp = "\u00a0"
    assert format_amount(Decimal("1250"), "EUR", Language.FR) == f"1{nbsp}250,00{nbsp}€"
    assert format_amount(Decimal("1250"), "EUR", Language.EN) == "€1,250.00"
    assert format_amount(Decimal("1234567.5"), "USD", Language.EN) == "$1,234,567.50"
    assert format_amount(Decimal("0.5"), "XOF", Language.FR) == f"0,50{nbsp}XOF"
    assert format_amount(Decimal("99"), None, Language.EN) == "99.00"


def test_french_first_reminder() -> None:
    draft = OfflineDrafter().draft(request())
    assert draft.source == "offline" and draft.language == Language.FR
    assert draft.fallback_reason is None
    text = draft.body.replace("\u00a0", " ")
    assert text.startswith("Bonjour Jean Dupont,")
    assert "INV-2024-001" in text
    assert "1 250,00 €" in text
    assert "15 mars 2026" in text
    assert "https://pay.example.com/i/abc123" in text
    assert text.endswith("Garage Martin")
    assert "dernière" not in text


def test_english_reminder() -> None:
    text = body(request(Language.EN))
    assert text.startswith("Hello Jean Dupont,")
    assert "€1,250.00" in text and "15 March 2026" in text and "INV-2024-001" in text
    assert text.endswith("Garage Martin")
    assert "last" not in text.lower()


def test_steps_get_firmer_and_the_last_says_so() -> None:
    first, middle, last = (body(request(step_index=i)) for i in range(3))
    assert "rappeler" in first
    assert "Sauf erreur" in middle and "meilleurs délais" in middle
    assert "dernière relance" in last
    en_last = body(request(Language.EN, step_index=2))
    assert "last reminder" in en_last
    en_middle = body(request(Language.EN, step_index=1))
    assert "as soon as possible" in en_middle


def test_single_step_campaign_is_not_a_last_reminder() -> None:
    text = body(request(step_index=0, step_count=1))
    assert "dernière" not in text


@pytest.mark.parametrize("language", list(Language))
def test_tones_differ(language: Language) -> None:
    texts = {tone: body(request(language, tone=tone)) for tone in ("courteous", "friendly", "firm")}
    assert len(set(texts.values())) == 3
    assert body(request(language, tone="whatever")) == texts["courteous"]
    friendly = texts["friendly"]
    assert friendly.startswith("Bonjour Jean Dupont !" if language == Language.FR else "Hi Jean")


def test_firm_middle_step() -> None:
    text = body(request(tone="firm", step_index=1))
    assert "sans délai" in text and "Malgré nos précédents messages" in text


def test_quote_wording() -> None:
    facts = {"quote_number": "DEV-9", "amount": "480", "currency": "EUR"}
    text = body(request(facts=facts))
    assert "devis DEV-9" in text and "480,00 €" in text and "règlement a déjà" not in text
    en = body(request(Language.EN, facts=facts, step_index=2))
    assert "quote DEV-9" in en and "last reminder" in en


def test_without_facts() -> None:
    text = body(request(facts={}))
    assert "votre facture" in text
    assert check_draft(OfflineDrafter().draft(request(facts={})).body, request(facts={})) == []


def test_unknown_fields_are_ignored() -> None:
    text = body(request(facts={**FACTS, "siren": "123456789", "notes": "client difficile"}))
    assert "123456789" not in text and "difficile" not in text


def test_values_it_cannot_read_are_copied() -> None:
    facts = {"amount": "1,250", "currency": "EUR", "due_date": "03/04/2026",
             "invoice_number": "FA 2024/17"}
    text = body(request(facts=facts))
    assert "1,250 EUR" in text and "03/04/2026" in text and "FA 2024/17" in text
    req = request(facts=facts)
    assert check_draft(OfflineDrafter().draft(req).body, req) == []


def test_amount_with_own_currency_and_french_date_input() -> None:
    facts = {"amount": "1 250,50 $", "due_date": "15/03/2026"}
    text = body(request(Language.EN, facts=facts))
    assert "$1,250.50" in text and "15 March 2026" in text


def test_negative_or_three_decimal_amounts_are_copied() -> None:
    assert "-50.00" in body(request(facts={"amount": "-50.00"}))
    assert "12.345" in body(request(facts={"amount": "12.345"}))


@pytest.mark.parametrize("max_chars", [80, 100, 150, 200, 300])
@pytest.mark.parametrize("language", list(Language))
def test_always_within_max_chars(max_chars: int, language: Language) -> None:
    req = request(language, max_chars=max_chars, step_index=2, business_name="Garage Martin & Fils")
    draft = OfflineDrafter().draft(req)
    assert 0 < len(draft.body) <= max_chars
    assert check_draft(draft.body, req) == []


def test_short_limit_keeps_the_facts_it_can() -> None:
    text = body(request(max_chars=120))
    assert "INV-2024-001" in text


def test_tiny_or_odd_inputs_never_raise() -> None:
    drafter = OfflineDrafter()
    for max_chars in (0, 1, 5, 20):
        draft = drafter.draft(request(max_chars=max_chars))
        assert len(draft.body) <= max_chars
    odd = request(contact_name="", business_name="", facts={"amount": "", "due_date": "2026-02-30"},
                  step_index=7, step_count=2, tone="")
    assert drafter.draft(odd).body
    huge = request(business_name="X" * 5000, max_chars=100)
    assert len(drafter.draft(huge).body) <= 100


def test_deterministic() -> None:
    req = request(step_index=1, tone="friendly")
    assert OfflineDrafter().draft(req) == OfflineDrafter().draft(req)


@pytest.mark.parametrize("language", list(Language))
def test_detected_language_matches(language: Language) -> None:
    for step in range(3):
        for tone in ("courteous", "friendly", "firm"):
            text = OfflineDrafter().draft(request(language, step_index=step, tone=tone)).body
            assert detect_language(text) == language


def _two_invoices(language: Language) -> dict[str, str]:
    from shared.domain.invoices import Invoice
    from shared.language.invoice_text import invoice_facts

    invoices = [Invoice(id=f"in{n}", reference=f"FA-2026-01{n}", contact_id="ct1", amount_cents=cents,
                        amount_due_cents=cents, currency="EUR", due_date=date(2026, 11, 10 + n),
                        payment_link=f"https://pay.example.com/inv/{n}") for n, cents in ((2, 76000), (3, 114000))]
    return invoice_facts(invoices, language)


@pytest.mark.parametrize("language", [Language.FR, Language.EN])
@pytest.mark.parametrize(("step_index", "tone"), [(0, "courteous"), (1, "firm"), (2, "courteous")])
def test_a_reminder_about_several_invoices_lists_each_and_the_total(language: Language, step_index: int,
                                                                     tone: str) -> None:
    facts = _two_invoices(language)
    req = request(language, facts=facts, step_index=step_index, tone=tone)
    text = body(req)
    assert "FA-2026-012" in text and "FA-2026-013" in text, text
    assert ("1 900,00 €" if language == Language.FR else "€1,900.00") in text, text
    assert "https://pay.example.com/inv/2" in text and "https://pay.example.com/inv/3" in text, text
    assert ("2 factures" if language == Language.FR else "2 invoices") in text, text
    assert "votre facture" not in text and "your invoice" not in text, text
    assert check_draft(OfflineDrafter().draft(req).body, req) == []


def test_a_short_limit_on_several_invoices_keeps_the_count_and_total() -> None:
    req = request(facts=_two_invoices(Language.FR), max_chars=120)
    text = body(req)
    assert len(OfflineDrafter().draft(req).body) <= 120
    assert "2 factures" in text and "1 900,00 €" in text, text
