"""The thank-you's message id: deterministic, one per client and day, and always one a status
callback's ``mid`` may carry; the references it names."""

from __future__ import annotations

from datetime import date

import pytest

from services.twilio_fields import MESSAGE_ID
from shared.domain.models import Contact, Language
from shared.usecases.payment_thanks import references_text, thank_you_id, thank_you_text, thank_you_variables


@pytest.mark.parametrize("contact_id", ["ct1", "c_8f2a9d0e1b", "contact 12", "x" * 64, "A.B:C"])
def test_the_id_is_deterministic_and_fits_a_status_callback(contact_id: str) -> None:
    made = thank_you_id(contact_id, date(2026, 3, 2))
    assert made == thank_you_id(contact_id, date(2026, 3, 2))
    assert MESSAGE_ID.fullmatch(made)
    assert made.startswith("thanks:") and made.endswith(":2026-03-02")


def test_one_id_per_client_and_day() -> None:
    assert thank_you_id("ct1", date(2026, 3, 2)) == "thanks:ct1:2026-03-02"
    assert thank_you_id("ct1", date(2026, 3, 2)) != thank_you_id("ct1", date(2026, 3, 3))
    assert thank_you_id("ct1", date(2026, 3, 2)) != thank_you_id("ct2", date(2026, 3, 2))


def test_template_variables_hold_no_line_break_nor_empty_value() -> None:
    contact = Contact(id="ct1", phone="+33612345678", name="Marie\nDupont")
    assert thank_you_variables(contact, ["FA\t1"]) == {"1": "Marie Dupont", "2": "FA 1"}
    assert thank_you_variables(contact, ["FA-1", "FA-2"]) == {"1": "Marie Dupont", "2": "FA-1 et FA-2"}


def test_the_text_names_every_invoice_paid_that_day_up_to_five() -> None:
    marie = Contact(id="ct1", phone="+33612345678", name="Marie", language=Language.FR)
    assert thank_you_text("Atelier", marie, ["FA-1"]) == (
        "Merci Marie, nous avons bien reçu votre paiement pour la facture FA-1.\nAtelier")
    assert thank_you_text("Atelier", marie, ["FA-1", "FA-2", "FA-3"]) == (
        "Merci Marie, nous avons bien reçu votre paiement pour les factures FA-1, FA-2 et FA-3.\nAtelier")
    john = marie.model_copy(update={"name": "John", "language": Language.EN})
    assert thank_you_text("Atelier", john, ["FA-1", "FA-2"]) == (
        "Thank you John, we have received your payment for invoices FA-1 and FA-2.\nAtelier")
    many = [f"FA-{n}" for n in range(1, 8)]
    assert references_text(many, Language.FR) == "FA-1, FA-2, FA-3, FA-4 et FA-5 (+2)"
