"""invoice_facts: the facts of a reminder covering a client's invoices (count, total, list, links)."""

from __future__ import annotations

from datetime import date

import pytest

from shared.domain.models import Language
from shared.language.invoice_text import invoice_facts, total_due_text
from tests.support.invoice_sets import NO_LINK, OWN_LINKS, SHARED_LINK, invoice

NBSP = "\u00a0"
FR, EN = Language.FR, Language.EN


def plain(value: str) -> str:
    return value.replace(NBSP, " ")


def test_several_invoices_in_french_and_english() -> None:
    fr = invoice_facts(OWN_LINKS[:3], FR)
    assert set(fr) == {"invoice_count", "total_due", "invoice_list", "payment_links"}
    assert fr["invoice_count"] == "3" and plain(fr["total_due"]) == "1 810,50 €"
    assert plain(fr["invoice_list"]).splitlines() == [
        "F2026-0017 : 1 250,50 € (échéance : 1er mars 2026)",
        "F2026-0023 : 480,00 € (échéance : 15 mars 2026)",
        "F2026-0031 : 80,00 € (échéance : 2 avril 2026)",
    ]
    assert fr["payment_links"].splitlines()[0] == "F2026-0017 : https://pay.example.com/i/a1"
    en = invoice_facts(OWN_LINKS[:2], EN)
    assert en["total_due"] == "€1,730.50"
    assert en["invoice_list"].splitlines() == ["F2026-0017: €1,250.50 (due 1 March 2026)",
                                               "F2026-0023: €480.00 (due 15 March 2026)"]
    assert en["payment_links"].splitlines()[1] == "F2026-0023: https://pay.example.com/i/b2"


def test_totals_per_currency_and_invoices_without_a_due_date() -> None:
    facts = invoice_facts(SHARED_LINK, EN)
    assert facts["total_due"] == total_due_text(SHARED_LINK, EN) == "€1,440.75 + $2,500.00"
    assert "FA-2026-131: €150.75" in facts["invoice_list"].splitlines()
    assert plain(invoice_facts(SHARED_LINK, FR)["total_due"]) == "1 440,75 € + 2 500,00 $"


def test_one_link_only_when_every_invoice_has_it() -> None:
    assert invoice_facts(SHARED_LINK, FR)["payment_link"] == "https://portal.example.fr/client/77"
    assert "payment_links" not in invoice_facts(SHARED_LINK, FR)
    # One invoice without the link: the link no longer pays them all, it says which invoice it pays.
    partial = [*SHARED_LINK[:2], invoice("FA-2026-160", 5000, None)]
    facts = invoice_facts(partial, FR)
    assert "payment_link" not in facts
    assert facts["payment_links"].splitlines() == ["FA-2026-118 : https://portal.example.fr/client/77",
                                                   "FA-2026-131 : https://portal.example.fr/client/77"]
    facts = invoice_facts(NO_LINK, EN)
    assert "payment_link" not in facts and "payment_links" not in facts


@pytest.mark.parametrize("language", list(Language))
def test_the_list_stops_at_the_limit(language: Language) -> None:
    invoices = [invoice(f"F-{n}", 1000 * n, date(2026, 1, n), f"https://pay.example.com/{n}") for n in range(1, 9)]
    facts = invoice_facts(invoices, language)
    lines = facts["invoice_list"].splitlines()
    assert len(lines) == 6 and lines[-1] == ("… et 3 autre(s)" if language == FR else "… and 3 more")
    assert len(facts["payment_links"].splitlines()) == 5
    assert facts["invoice_count"] == "8"
    assert plain(facts["total_due"]) == ("360,00 €" if language == FR else "€360.00")
    # Links only beyond the list: no empty payment_links.
    hidden = [invoice(f"F-{n}", 100, None) for n in range(1, 3)] + [invoice("F-9", 100, None, "https://x.example.com")]
    assert "payment_links" not in invoice_facts(hidden, language, limit=2)


def test_one_invoice_carries_the_contacts_keys() -> None:
    facts = invoice_facts([OWN_LINKS[0]], FR)
    assert facts["invoice_count"] == "1"
    assert {k: facts[k] for k in ("invoice_number", "amount", "currency", "due_date", "payment_link")} == {
        "invoice_number": "F2026-0017", "amount": "1250.50", "currency": "EUR", "due_date": "2026-03-01",
        "payment_link": "https://pay.example.com/i/a1"}
    assert "due_date" not in invoice_facts([SHARED_LINK[1]], EN)
