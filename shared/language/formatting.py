"""Amounts and dates as a client reads them: ``1 250,00 €`` / ``€1,250.00``, ``15 mars 2026`` / ``15 March 2026``.

A fact is reformatted only when :mod:`shared.language.mentions` reads it unambiguously; anything
else is shown as given. Either way the facts check accepts what is written. Values are kept
whole: their spaces become non-breaking (:func:`atomic`), so shortening a text never splits one.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from shared.domain.models import Language
from shared.language.mentions import find_dates, find_numbers
from shared.language.vocabulary import DISPLAY_SYMBOLS, MONTH_NAMES, normalise_currency

__all__ = ["NBSP", "amount_text", "atomic", "date_text", "format_amount", "format_date"]

NBSP = "\u00a0"


def format_date(value: date, language: Language) -> str:
    """``15 mars 2026`` / ``15 March 2026`` (``1er`` for the first day in French)."""
    if language == Language.FR:
        day = "1er" if value.day == 1 else str(value.day)
        return f"{day} {MONTH_NAMES[Language.FR][value.month - 1]} {value.year}"
    return f"{value.day} {MONTH_NAMES[Language.EN][value.month - 1]} {value.year}"


def _group(digits: str, sep: str) -> str:
    parts = []
    while len(digits) > 3:
        parts.append(digits[-3:])
        digits = digits[:-3]
    parts.append(digits)
    return sep.join(reversed(parts))


def format_amount(value: Decimal, currency: str | None, language: Language) -> str:
    """``1 250,00 €`` in French, ``€1,250.00`` in English (other currencies after the number)."""
    whole, cents = f"{value.quantize(Decimal('0.01')):f}".split(".")
    code = normalise_currency(currency) if currency else None
    symbol = DISPLAY_SYMBOLS.get(code or "", "")
    if language == Language.FR:
        number = f"{_group(whole, NBSP)},{cents}"
        unit = symbol or (currency or "").strip()
        return f"{number}{NBSP}{unit}" if unit else number
    number = f"{_group(whole, ',')}.{cents}"
    if symbol:
        return f"{symbol}{number}"
    unit = (currency or "").strip()
    return f"{number}{NBSP}{unit}" if unit else number


def atomic(value: str) -> str:
    """A value that must never be split when the text is shortened (spaces become non-breaking)."""
    return NBSP.join(value.split())


def amount_text(raw: str, currency: str, language: Language) -> str:
    """An amount fact as shown to the contact (``1 250,00 €`` / ``€1,250.00``), else as given."""
    numbers = find_numbers(raw, [currency] if re.fullmatch(r"[A-Za-z]{3}", currency) else [])
    if len(numbers) == 1 and len(numbers[0].values) == 1 and "-" not in raw:
        number = numbers[0]
        rest = (raw[: number.start] + raw[number.end :]).strip()
        value = next(iter(number.values))
        exponent = value.as_tuple().exponent
        own = rest if rest and normalise_currency(rest) else ""
        if (not rest or own) and isinstance(exponent, int) and exponent >= -2:
            return format_amount(value, own or currency or None, language)
    if currency and not re.search(r"\D", raw.replace(" ", "").replace(",", "").replace(".", "")):
        return atomic(f"{raw} {currency}")
    return atomic(raw)


def date_text(raw: str, language: Language) -> str:
    """A date fact as shown to the contact (``15 mars 2026`` / ``15 March 2026``), else as given."""
    stripped = raw.strip()
    for mention in find_dates(stripped):
        if mention.start == 0 and mention.end == len(stripped) and len(mention.full) == 1:
            return atomic(format_date(next(iter(mention.full)), language))
    return atomic(raw)
