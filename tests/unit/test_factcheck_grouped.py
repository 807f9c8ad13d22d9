"""The facts check over a grouped reminder: the facts of a client's 2–4 invoices, and nothing else."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.invoices import Invoice
from shared.domain.models import Language
from shared.language.drafts import OfflineDrafter
from shared.language.factcheck import check_draft
from shared.language.formatting import format_amount, format_date
from shared.language.invoice_text import invoice_facts
from shared.ports import DraftRequest
from tests.support.gemini_helpers import draft_request
from tests.support.invoice_sets import OTHER_CLIENT, OWN_LINKS, SETS, invoice

NBSP = "\u00a0"


def grouped(invoices: list[Invoice], language: Language = Language.FR, **kwargs: Any) -> DraftRequest:
    """A request from the invoices' facts plus a non-invoice field of the contact, with room to spare."""
    facts = {**invoice_facts(invoices, language), "siren": "552100554"}
    return draft_request(language, facts=facts, **{"max_chars": 1500, **kwargs})


def amount(item: Invoice, language: Language) -> str:
    return format_amount(Decimal(item.amount_due_cents) / 100, item.currency, language).replace(NBSP, " ")


def written(invoices: list[Invoice], language: Language, *, extra: Invoice | None = None,
            total: str | None = None) -> str:
    """A reminder as a model would write it: its own sentences, the facts' values in usual forms."""
    req = grouped(invoices, language)
    shown = [*invoices, extra] if extra is not None else invoices
    total = total if total is not None else req.facts["total_due"].replace(NBSP, " ")
    lines = []
    for n, item in enumerate(shown):
        due = item.due_date
        if language == Language.FR:
            when = ("" if due is None else
                    f", à régler le {format_date(due, language)}" if n % 2 == 0 else f", échue le {due:%d/%m/%Y}")
            link = f" ({item.payment_link})" if item.payment_link else ""
            lines.append(f"- facture {item.reference} : {amount(item, language)}{when}{link}")
        else:
            when = ("" if due is None else
                    f", due {format_date(due, language)}" if n % 2 == 0 else f", due on {due:%B} {due.day}, {due.year}")
            link = f" – pay at {item.payment_link}" if item.payment_link else ""
            lines.append(f"- invoice {item.reference}: {amount(item, language)}{when}{link}")
    listing = "\n".join(lines)
    if language == Language.FR:
        return (f"Bonjour Jean Dupont,\n\nSauf erreur de notre part, {len(shown)} factures restent à régler "
                f"pour un montant total de {total} :\n{listing}\n\nMerci de procéder au règlement dès que "
                "possible.\n\nCordialement,\nGarage Martin")
    return (f"Hello Jean Dupont,\n\nOur records show {len(shown)} invoices still unpaid, {total} in total:\n"
            f"{listing}\n\nPlease settle them at your earliest convenience.\n\nKind regards,\nGarage Martin")


CASES = list(itertools.product(SETS, (2, 3, 4), Language))


@pytest.mark.parametrize(("name", "size", "language"), CASES)
def test_a_draft_quoting_each_invoice_and_the_total_passes(name: str, size: int, language: Language) -> None:
    invoices = SETS[name][:size]
    body = written(invoices, language)
    for item in invoices:
        assert item.reference in body and amount(item, language) in body
    assert check_draft(body, grouped(invoices, language)) == []


@pytest.mark.parametrize(("name", "size", "language"), CASES)
def test_the_facts_copied_as_they_are_pass(name: str, size: int, language: Language) -> None:
    req = grouped(SETS[name][:size], language)
    values = "\n\n".join(v for k, v in req.facts.items() if k != "siren")
    hello = "Bonjour Jean Dupont, voici vos factures :" if language == Language.FR else (
        "Hello Jean Dupont, here are your invoices:")
    for body in (f"{hello}\n{values}\nGarage Martin", f"{hello}\n{values.replace(NBSP, ' ')}\nGarage Martin"):
        assert check_draft(body, req) == []


@pytest.mark.parametrize(("name", "size", "language"), CASES)
def test_every_offline_grouped_draft_passes(name: str, size: int, language: Language) -> None:
    for step, tone, max_chars in itertools.product(range(3), ("courteous", "friendly", "firm"),
                                                   (160, 230, 320, 450, 700)):
        req = draft_request(language, facts=invoice_facts(SETS[name][:size], language), step_index=step,
                            tone=tone, max_chars=max_chars)
        body = OfflineDrafter().draft(req).body
        assert check_draft(body, req) == [], body


@pytest.mark.parametrize(("name", "size", "language"), CASES)
def test_another_clients_invoice_fails(name: str, size: int, language: Language) -> None:
    invoices = SETS[name][:size]
    req = grouped(invoices, language)
    with_other = written(invoices, language, extra=OTHER_CLIENT)
    problems = " | ".join(check_draft(with_other, req))
    assert "reference F2026-0018" in problems
    assert "amount 730" in problems
    assert "date 2026-05-20" in problems
    assert "link https://pay.example.com/i/zz9" in problems
    # Each of its values alone is caught too.
    base = written(invoices, language)
    other_amount = amount(OTHER_CLIENT, language)
    for value, problem in (
        ("facture F2026-0018" if language == Language.FR else "invoice F2026-0018", "reference"),
        (other_amount, "amount 730"),
        (format_date(date(2026, 5, 20), language), "date 2026-05-20"),
        ("https://pay.example.com/i/zz9", "link"),
    ):
        body = base.replace("\n\nCordialement" if language == Language.FR else "\n\nKind regards",
                            f"\n{value}\n\nCordialement" if language == Language.FR else f"\n{value}\n\nKind regards")
        assert value in body
        assert any(p.startswith(problem) for p in check_draft(body, req)), (value, check_draft(body, req))


@pytest.mark.parametrize(("name", "size", "language"), CASES)
def test_an_invented_total_fails(name: str, size: int, language: Language) -> None:
    invoices = SETS[name][:size]
    req = grouped(invoices, language)
    wrong = sum(i.amount_due_cents for i in invoices) + 10000
    invented = format_amount(Decimal(wrong) / 100, "EUR", language).replace(NBSP, " ")
    problems = check_draft(written(invoices, language, total=invented), req)
    assert any(p.startswith("amount") for p in problems), problems


def test_a_draft_dropping_the_dates_or_links_still_passes() -> None:
    """Saying less is never a problem for the check (the drafter's own tests ask for the list)."""
    req = grouped(OWN_LINKS[:3])
    body = (f"Bonjour Jean Dupont, 3 factures restent à régler pour {req.facts['total_due']} : "
            "F2026-0017, F2026-0023 et F2026-0031. Cordialement, Garage Martin")
    assert check_draft(body, req) == []
    assert check_draft(body.replace("F2026-0031", "F2026-0032"), req) != []


REFS = ["FA 2024/17", "2024-017", "N°123", "INV 0042", "1042", "2026/118", "F-2026-03-01", "A.12.2026",
        "#4521", "FACT_2026_9", "fa2024-17b"]
CURRENCIES = ["EUR", "CHF", "XOF", "GBP", "USD", "CAD", "MAD"]


@pytest.mark.parametrize(("n", "refs"), list(enumerate(itertools.combinations(REFS, 2))))
def test_odd_references_and_currencies_pass_copied_or_drafted(n: int, refs: tuple[str, str]) -> None:
    """Whatever a business's references and currencies look like, its own facts are never refused."""
    invoices = [
        invoice(refs[0], 123456 + n, date(2026, 1 + n % 12, 1 + n % 28), f"https://p.example.com/{n}/a",
                currency=CURRENCIES[n % len(CURRENCIES)]),
        invoice(refs[1], 99 * n + 5, date(2026, 1 + (n * 5) % 12, 1 + (n * 7) % 28), f"https://p.example.com/{n}/b",
                currency=CURRENCIES[(n * 3 + 1) % len(CURRENCIES)]),
    ]
    for language in Language:
        facts = invoice_facts(invoices, language)
        hello = "Bonjour Jean Dupont, voici :" if language == Language.FR else "Hello Jean Dupont, here:"
        body = "\n".join([hello, *facts.values()])
        for copied in (body, body.replace(NBSP, " ")):
            assert check_draft(copied, draft_request(language, facts=facts, max_chars=2000)) == []
        for step, max_chars in itertools.product(range(3), (160, 300, 700)):
            req = draft_request(language, facts=facts, max_chars=max_chars, step_index=step)
            assert check_draft(OfflineDrafter().draft(req).body, req) == []
