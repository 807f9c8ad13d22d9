"""The offline drafter's grouped reminder: one message naming all of a client's covered invoices."""

from __future__ import annotations

import itertools
import json
from datetime import date
from typing import Any

import pytest

from shared.domain.invoices import Invoice
from shared.domain.models import Language
from shared.gemini import SYSTEM_INSTRUCTION, CheckedDrafter, GeminiDrafter, build_prompt
from shared.language.drafts import OfflineDrafter
from shared.language.factcheck import check_draft, detect_language
from shared.language.invoice_text import invoice_facts, total_due_text
from shared.ports import DraftRequest
from tests.support.gemini_helpers import FACTS, StubClient, draft_request
from tests.support.invoice_sets import NO_LINK, OTHER_CLIENT, OWN_LINKS, SETS, SHARED_LINK, invoice

NBSP = "\u00a0"
STAGES = range(3)
TONES = ("courteous", "friendly", "firm")
SIZES = (2, 3, 4)


def grouped(invoices: list[Invoice], language: Language = Language.FR, **kwargs: Any) -> DraftRequest:
    """A request drafted from the invoices' facts plus a non-invoice field of the contact."""
    facts = {**invoice_facts(invoices, language), "siren": "552100554"}
    return draft_request(language, facts=facts, **kwargs)


def plain(text: str) -> str:
    return text.replace(NBSP, " ")


def draft(req: DraftRequest) -> str:
    return OfflineDrafter().draft(req).body


def lines_of(req: DraftRequest, key: str) -> list[str]:
    return [plain(line) for line in req.facts.get(key, "").splitlines() if line.strip()]


def every_case() -> list[tuple[str, int, Language, int, str]]:
    return list(itertools.product(SETS, SIZES, Language, STAGES, TONES))


@pytest.mark.parametrize(("name", "size", "language", "step", "tone"), every_case())
def test_full_reminder_names_every_invoice(name: str, size: int, language: Language, step: int, tone: str
                                           ) -> None:
    invoices = SETS[name][:size]
    # At the usual limit (700 characters), 2 to 4 invoices are always listed in full.
    req = grouped(invoices, language, step_index=step, tone=tone, max_chars=700)
    body = draft(req)
    text = plain(body)
    assert check_draft(body, req) == []
    assert detect_language(body) == language
    # Every listed invoice, with its amount due (and due date), as a whole line.
    for line in lines_of(req, "invoice_list"):
        assert line in text
    for item in invoices:
        assert item.reference in text
    assert plain(total_due_text(invoices, language)) in text
    assert (f"{size} factures" if language == Language.FR else f"{size} invoices") in text
    links = {i.payment_link for i in invoices if i.payment_link}
    for link in links:
        assert link in text
    link_lines = lines_of(req, "payment_links")
    for line in link_lines:
        assert line in text
    assert bool(link_lines) == (len(links) > 1 or (any(not i.payment_link for i in invoices) and bool(links)))
    assert text.startswith("Bonjour Jean Dupont" if language == Language.FR else ("Hi Jean" if tone == "friendly"
                                                                                  else "Hello Jean"))
    assert text.endswith("Garage Martin")
    last = "dernière relance" in text if language == Language.FR else "last reminder" in text
    assert last == (step == 2)
    # The list is never split: each invoice is on one line.
    for item in invoices:
        has_line = any(line.startswith(item.reference) for line in link_lines)
        assert sum(item.reference in line for line in text.splitlines()) == (2 if has_line else 1)


@pytest.mark.parametrize("language", list(Language))
def test_stages_and_tones_differ(language: Language) -> None:
    texts = {(s, t): draft(grouped(OWN_LINKS[:3], language, step_index=s, tone=t)) for s in STAGES for t in TONES}
    assert len(set(texts.values())) == len(texts)
    first, middle, last = (plain(texts[(s, "courteous")]) for s in STAGES)
    if language == Language.FR:
        assert "rappeler" in first and "meilleurs délais" in middle and "dernière relance" in last
        assert "sans délai" in plain(texts[(1, "firm")])
    else:
        assert "reminder" in first and "as soon as possible" in middle and "last reminder" in last
        assert "without delay" in plain(texts[(1, "firm")])


@pytest.mark.parametrize("max_chars", [0, 1, 20, 40, 60, 80, 100, 120, 140, 160, 200, 250, 300, 400, 500, 700])
@pytest.mark.parametrize(("name", "size", "language"), list(itertools.product(SETS, SIZES, Language)))
def test_always_fits_and_passes_the_facts_check(max_chars: int, name: str, size: int, language: Language) -> None:
    invoices = SETS[name][:size]
    for step, tone in itertools.product(STAGES, TONES):
        req = grouped(invoices, language, step_index=step, tone=tone, max_chars=max_chars,
                      business_name="Garage Martin & Fils")
        body = draft(req)
        assert len(body) <= max_chars
        if max_chars >= 20:
            assert body.strip() and check_draft(body, req) == []
        text = plain(body)
        total = plain(total_due_text(invoices, language))
        # Values are never split: the total, a list line, a link line is whole or absent.
        assert total.split(" + ")[0] not in text or total in text
        for line in text.splitlines():
            if any(line.startswith(i.reference) for i in invoices):
                assert line in lines_of(req, "invoice_list") or line in lines_of(req, "payment_links")
            for link_word in [w for w in line.split() if w.startswith("http")]:
                assert link_word in {i.payment_link for i in invoices}
        if max_chars >= 160:
            # The total, the count and a link survive every shortening at a WhatsApp-sized limit.
            assert total in text
            assert (f"{size} factures" if language == Language.FR else f"{size} invoices") in text
            if name != "no_link":
                assert "https://" in text


@pytest.mark.parametrize("language", list(Language))
def test_shortening_drops_the_closing_then_the_list_from_its_end(language: Language) -> None:
    invoices = OWN_LINKS[:4]
    full = draft(grouped(invoices, language, max_chars=2000))
    closing = "ne pas tenir compte" if language == Language.FR else "disregard"
    assert closing in full
    less = plain(draft(grouped(invoices, language, max_chars=len(full) - 1)))
    assert closing not in less
    assert all(line in less for line in lines_of(grouped(invoices, language), "invoice_list"))
    # Shorter still: the first invoices stay listed, the others are counted.
    seen: list[int] = []
    for max_chars in range(len(full) - 1, 150, -5):
        text = plain(draft(grouped(invoices, language, max_chars=max_chars)))
        shown = [i for i in invoices if any(line.startswith(i.reference) and "http" not in line
                                             for line in text.splitlines())]
        assert shown == invoices[:len(shown)]
        if 0 < len(shown) < len(invoices):
            more = len(invoices) - len(shown)
            assert (f"… et {more} autre(s)" if language == Language.FR else f"… and {more} more") in text
        seen.append(len(shown))
    assert seen == sorted(seen, reverse=True)
    assert {4, 0} <= set(seen)


@pytest.mark.parametrize("language", list(Language))
def test_more_invoices_than_the_list_shows(language: Language) -> None:
    invoices = [invoice(f"F2026-{n:04d}", 10000 + n, None, "https://pay.example.com/all") for n in range(1, 8)]
    req = grouped(invoices, language, max_chars=1000)
    body = draft(req)
    text = plain(body)
    assert check_draft(body, req) == []
    assert ("7 factures" if language == Language.FR else "7 invoices") in text
    assert all(i.reference in text for i in invoices[:5]) and invoices[5].reference not in text
    assert ("… et 2 autre(s)" if language == Language.FR else "… and 2 more") in text
    assert text.count("https://pay.example.com/all") == 1


@pytest.mark.parametrize("language", list(Language))
def test_one_invoice_keeps_the_single_invoice_text(language: Language) -> None:
    """invoice_facts of one invoice carry the contact's old keys: the text is the one it always was."""
    one = invoice("INV-2024-001", 125000, date(2026, 3, 15), "https://pay.example.com/i/abc123")
    facts = invoice_facts([one], language)
    assert {k: facts[k] for k in FACTS} == FACTS
    for step, tone in itertools.product(STAGES, TONES):
        for max_chars in (700, 160, 90):
            req = draft_request(language, facts=facts, step_index=step, tone=tone, max_chars=max_chars)
            old = draft_request(language, step_index=step, tone=tone, max_chars=max_chars)
            body = draft(req)
            assert body == draft(old)
            assert check_draft(body, req) == []


def test_odd_grouped_facts_never_raise_and_always_fit() -> None:
    drafter = OfflineDrafter()
    # Odd facts never raise and always fit.
    for facts in ({"invoice_count": "3"}, {"invoice_count": "x", "total_due": "10,00 €"},
                  {"invoice_count": "2", "invoice_list": "\n\n", "total_due": ""},
                  {"invoice_count": "2", "payment_links": "A : https://pay.example.com/a"}):
        for max_chars in (0, 5, 50, 700):
            req = draft_request(facts=facts, max_chars=max_chars, contact_name="", business_name="")
            assert len(drafter.draft(req).body) <= max_chars
    text = plain(draft(draft_request(facts={"invoice_count": "3", "total_due": "10,00 €"})))
    assert "3 factures" in text and "10,00 €" in text


def test_no_link_means_no_link_sentence() -> None:
    text = plain(draft(grouped(NO_LINK[:3])))
    assert "régler ici" not in text and "Pour régler" not in text and "http" not in text
    text = plain(draft(grouped(SHARED_LINK[:3], Language.EN)))
    assert text.count("https://portal.example.fr/client/77") == 1 and "To pay:" not in text


def test_deterministic() -> None:
    req = grouped(OWN_LINKS, step_index=1, tone="firm", max_chars=300)
    assert OfflineDrafter().draft(req) == OfflineDrafter().draft(req)


# ------------------------------------------------------------------ the Gemini draft, without HTTP


def _gemini_draft(answer: str, req: DraftRequest) -> tuple[Any, dict[str, Any]]:
    client = StubClient(answer)
    checked = CheckedDrafter(primary=GeminiDrafter(api_key="k", model="m", client=client),  # type: ignore[arg-type]
                             fallback=OfflineDrafter())
    result = checked.draft(req)
    (call,) = client.models.calls
    return result, call


def test_the_prompt_asks_for_each_invoice_the_total_and_the_links() -> None:
    assert "invoice_list" in SYSTEM_INSTRUCTION and "total_due" in SYSTEM_INSTRUCTION
    assert "payment_links" in SYSTEM_INSTRUCTION and "Never add an invoice" in SYSTEM_INSTRUCTION
    req = grouped(OWN_LINKS[:3])
    good = draft(grouped(OWN_LINKS[:3], max_chars=2000)).replace("\n", "\\n")
    result, call = _gemini_draft(f'{{"body": "{good}", "language": "fr"}}', req)
    assert result.source == "gemini" and result.fallback_reason is None
    assert "invoice_list" in str(call["config"].system_instruction)
    facts = json.loads(call["contents"].split("<facts>")[1].split("</facts>")[0])["facts"]
    assert facts["invoice_count"] == "3" and facts["invoice_list"] == req.facts["invoice_list"]
    assert facts["payment_links"] == req.facts["payment_links"] and facts["total_due"] == req.facts["total_due"]
    assert build_prompt(req).count("F2026-0017") == 2  # in the list and in the links


def test_a_gemini_draft_adding_another_clients_invoice_falls_back_to_the_grouped_text() -> None:
    req = grouped(OWN_LINKS[:2])
    added = (f"Bonjour Jean Dupont, 3 factures restent à régler : F2026-0017, F2026-0023 et "
             f"{OTHER_CLIENT.reference} (730,00 €). Garage Martin")
    result, _ = _gemini_draft(f'{{"body": "{added}", "language": "fr"}}', req)
    assert result.source == "offline" and "F2026-0018" in (result.fallback_reason or "")
    assert "F2026-0017" in result.body and "F2026-0023" in result.body and "F2026-0018" not in result.body
