"""Phone normalisation and masking; deterministic opt-out keywords."""

from __future__ import annotations

import pytest

from shared.errors import InputError
from shared.language.reply_rules import is_opt_in, is_opt_out
from shared.phones import mask_phone, normalise_phone, timezone_for_phone


@pytest.mark.parametrize(("raw", "e164"), [
    ("06 12 34 56 78", "+33612345678"), ("+33 6 12 34 56 78", "+33612345678"),
    ("whatsapp:+33612345678", "+33612345678"), ("0033612345678", "+33612345678"),
    ("+44 7911 123456", "+447911123456"),
])
def test_normalise(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "abc", "+33 1", "12"])
def test_invalid_phone_is_a_clear_error_without_the_full_number(raw: str) -> None:
    with pytest.raises(InputError) as info:
        normalise_phone(raw)
    assert "phone" in str(info.value)


def test_mask_and_timezone() -> None:
    assert mask_phone("+33612345678") == "+33*******78"
    assert "612345" not in mask_phone("whatsapp:+33612345678")
    assert timezone_for_phone("+33612345678") == "Europe/Paris"
    assert timezone_for_phone("+447911123456") == "Europe/London"


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "ARRÊT", "arret", "Stop all", "UNSUBSCRIBE",
                                  "désinscrire", "Je ne veux plus recevoir ces messages", "STOP 🙏"])
def test_opt_out_keywords(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["Je paie demain", "stop by tomorrow?", "Merci", "", "Start"])
def test_not_opt_out(text: str) -> None:
    assert not is_opt_out(text)


def test_stop_button_and_start() -> None:
    assert is_opt_out("", button_payload="STOP")
    assert is_opt_in("START") and is_opt_in("start ") and not is_opt_in("started paying")
