"""The console's pages say the use cases' refusals in their reader's language, from codes (no second copy of a rule)."""

from __future__ import annotations

import re
from pathlib import Path

from services.console.web import i18n, invoices  # noqa: F401  (the invoice statuses' words)
from services.console.web.refusals import facts, known, refusal, say, state
from shared.domain.models import Language
from shared.domain.states import FollowUpState, InvoiceStatus, MessageState
from shared.errors import InputError
from shared.importing import read_contacts
from shared.language.factcheck import Problem, check_draft
from shared.language.statements import StatementKind
from shared.ports import DraftRequest

ROOT = Path(__file__).resolve().parents[2]


def test_every_code_a_use_case_gives_has_its_french_and_english_words() -> None:
    codes = set()
    for path in (ROOT / "shared").rglob("*.py"):
        codes |= set(re.findall(r'\bcode="([a-z_.]+)"', path.read_text(encoding="utf-8")))
    codes |= {"reply.empty", "reply.too_long"}
    assert len(codes) > 15
    missing = sorted(code for code in codes if not known(f"err.{code}"))
    assert missing == []
    for code in codes:
        french, english = (i18n.translate(f"err.{code}", language) for language in (Language.FR, Language.EN))
        assert french != english or code.startswith("x"), code


def test_every_facts_check_problem_is_said_in_french() -> None:
    request = DraftRequest(contact_name="Marie", language=Language.FR,
                           facts={"amount": "120", "invoice_number": "FA-1"},
                           step_index=0, step_count=1, tone="courteous", business_name="Atelier",
                           campaign_name="Relance", max_chars=1000)
    problems = check_draft("Bonjour Marie, payez 990 € pour FA-77 avant le 3 mars 2031 : remise de 20 % "
                           "sur https://paie.example/x", request)
    assert problems and all(isinstance(p, Problem) for p in problems)
    said = facts(problems, Language.FR)
    assert "not in contact data" not in said and "montant 990" in said and "FA-77" in said
    assert "amount 990 is not in the client's data" in facts(problems, Language.EN)
    for kind in StatementKind:
        assert known(f"facts.grants.{kind.name.lower()}")


def test_a_refusal_without_a_code_is_its_message_after_a_translated_lead_in() -> None:
    assert refusal(InputError("something odd"), Language.FR) == "Refusé : something odd"
    assert refusal(InputError("x", code="invoice.unknown", reference="FA-9"), Language.FR) == \
        "La facture « FA-9 » n'existe pas."
    assert refusal(InputError("x", code="invoice.nothing_due", reference="FA-9", status="paid"), Language.FR) == \
        "La facture FA-9 est déjà payée : plus rien n'est dû."


def test_a_contacts_file_s_refused_line_is_said_in_french(tmp_path: Path) -> None:
    path = tmp_path / "clients.csv"
    path.write_text("name,phone,language,due_date\n,+33612345678,de,31/02/2026\n", encoding="utf-8")
    (result,) = list(read_contacts(path))
    assert result.error is not None and result.error.startswith("line 2: ")  # the CLI's words, unchanged
    said = say(result.error, Language.FR)
    assert said.startswith("ligne 2 : le nom est vide; la langue 'de' n'est pas prise en charge")
    assert "due_date : '31/02/2026' n'est pas une date" in said


def test_stored_states_are_words_in_both_languages() -> None:
    for value in [*FollowUpState, *MessageState]:
        assert state(value, Language.FR) != value.value or value.value in ("question",), value
        assert known(f"state.{value.value}")
    for status in InvoiceStatus:
        assert known(f"invoice.status.{status.value}")
