"""The thank-you's message id: deterministic, and always one a status callback's ``mid`` may carry."""

from __future__ import annotations

import pytest

from services.twilio_fields import MESSAGE_ID
from shared.domain.models import Contact
from shared.usecases.payment_thanks import thank_you_id, thank_you_variables


@pytest.mark.parametrize("reference", ["FA-2026-001", "FA 2026/001", "Facture n°12", "x" * 64, "A.B:C"])
def test_the_id_is_deterministic_and_fits_a_status_callback(reference: str) -> None:
    made = thank_you_id(reference, "stripe:pi_3Nabc")
    assert made == thank_you_id(reference, "stripe:pi_3Nabc")
    assert MESSAGE_ID.fullmatch(made)
    assert made.startswith("thanks:") and made.endswith(":stripe:pi_3Nabc")


def test_another_payment_or_invoice_has_another_id() -> None:
    assert thank_you_id("FA-1", "stripe:pi_1") != thank_you_id("FA-1", "stripe:pi_2")
    assert thank_you_id("FA 1", "stripe:pi_1") != thank_you_id("FA 2", "stripe:pi_1")
    assert thank_you_id("FA-1", "stripe:pi_1") == "thanks:FA-1:stripe:pi_1"


def test_template_variables_hold_no_line_break_nor_empty_value() -> None:
    contact = Contact(id="ct1", phone="+33612345678", name="Marie\nDupont")
    assert thank_you_variables(contact, "FA\t1") == {"1": "Marie Dupont", "2": "FA 1"}
