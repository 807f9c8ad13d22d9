"""Amounts and dates as written in a draft or a contact's data, found and read without guessing.

:func:`find_numbers` gives every value a written number may mean (``"1.250"`` is 1.25 or 1250)
with the currency, percent sign or unit next to it; :func:`find_dates` the dates written in ISO,
numeric (day or month first) or with a French or English month name. The facts check
(:mod:`shared.language.factcheck`) compares them with the contact's data; the formatting of
amounts and dates for a client (:mod:`shared.language.formatting`) reads facts with them, so that
what it writes is what the check accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from shared.language.dates import date_or_none
from shared.language.vocabulary import (
    CURRENCY_CODES,
    CURRENCY_SYMBOLS,
    CURRENCY_WORDS,
    MONTHS,
    WEEKDAYS,
    normalise_currency,
)

__all__ = ["CURRENCY_CODE", "MASK", "DateMention", "NumberMention", "find_dates", "find_numbers", "parse_number"]

# The character the facts check replaces masked text with: not a word character, not a space, not
# a digit; no number or date is read right after it.
MASK = "\u2591"
CURRENCY_CODE = r"[A-Z]{3}"

# ----------------------------------------------------------------------------- numbers

_NUMBER = re.compile(
    r"(?<![\w.,'’\u2591])"
    r"(\d{1,3}(?:(?:[ \u00a0\u202f'’]|[.,])\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)"
    r"(?![\w'’]|[.,]\d)"
)

_CURRENCY_BEFORE = re.compile(rf"(?:({CURRENCY_SYMBOLS})|(?<![A-Za-z])({CURRENCY_CODE}))[ \u00a0\u202f]?$")
_CURRENCY_AFTER = re.compile(
    rf"^[ \u00a0\u202f]?(?:({CURRENCY_SYMBOLS})|(?:({CURRENCY_CODE}|(?i:{CURRENCY_WORDS}))(?![A-Za-z])))"
)
_PERCENT_AFTER = re.compile(r"^[ \u00a0\u202f]?(?:%|pour\s?cent|per\s?cent|percent)", re.I)
_UNIT_AFTER = re.compile(
    r"^[ \u00a0\u202f]*(?:jours?|j|days?|heures?|h|hours?|hrs?|minutes?|mins?|secondes?|seconds?"
    r"|semaines?|weeks?|mois|months?|ans|années?|years?|fois|times|x|km|kg|m²|m2)(?![A-Za-zÀ-ÿ])",
    re.I,
)


def parse_number(token: str) -> frozenset[Decimal]:
    """Every value a written number may mean: ``"1 250,00"`` → {1250}; ``"1.250"`` → {1.25, 1250}.

    Spaces and apostrophes are thousands separators; with both ``.`` and ``,`` the last one is
    the decimal separator; a single separator followed by exactly three digits is ambiguous.
    """
    spaced = bool(re.search(r"[ \u00a0\u202f'’]", token))
    digits = re.sub(r"[ \u00a0\u202f'’]", "", token)
    seps = [c for c in digits if c in ".,"]
    try:
        if not seps:
            return frozenset({Decimal(digits)})
        if len(set(seps)) == 2:
            dec = seps[-1]
            thousands = "," if dec == "." else "."
            if digits.count(dec) != 1 or digits.rindex(thousands) > digits.index(dec):
                return frozenset()
            return frozenset({Decimal(digits.replace(thousands, "").replace(dec, "."))})
        sep = seps[0]
        groups = digits.split(sep)
        if len(groups) > 2:
            if all(len(g) == 3 for g in groups[1:]):
                return frozenset({Decimal(digits.replace(sep, ""))})
            return frozenset({Decimal("".join(groups[:-1]) + "." + groups[-1])})
        before, after = groups
        as_decimal = Decimal(f"{before}.{after}")
        if len(after) == 3 and (spaced or (len(before) <= 3 and before != "0")):
            return frozenset({as_decimal, Decimal(before + after)})
        return frozenset({as_decimal})
    except InvalidOperation:
        return frozenset()


@dataclass(frozen=True)
class NumberMention:
    """A number written in a text, with what surrounds it."""

    start: int
    end: int
    text: str
    values: frozenset[Decimal]
    currency: str | None  # normalised, when a currency is written next to it
    grouped_or_decimal: bool  # written with a separator ("1 250", "12,50")
    percent: bool
    unit: bool  # followed by a unit such as "jours", "h", "fois"


def find_numbers(text: str, codes: Iterable[str] = ()) -> list[NumberMention]:
    """The numbers of ``text`` (digits next to letters, as in "24h" or "1er", are not numbers)."""
    known_codes = CURRENCY_CODES | {c.upper() for c in codes}
    found: list[NumberMention] = []
    for match in _NUMBER.finditer(text):
        token = match.group(1)
        before = text[max(0, match.start() - 12) : match.start()]
        after = text[match.end() : match.end() + 24]
        currency: str | None = None
        pre = _CURRENCY_BEFORE.search(before)
        if pre:
            symbol = pre.group(1) or pre.group(2)
            if symbol and (not re.fullmatch(CURRENCY_CODE, symbol) or symbol in known_codes):
                currency = normalise_currency(symbol)
        post = _CURRENCY_AFTER.match(after)
        if currency is None and post:
            symbol = post.group(1) or post.group(2)
            if symbol and (not re.fullmatch(CURRENCY_CODE, symbol) or symbol in known_codes):
                currency = normalise_currency(symbol)
        found.append(
            NumberMention(
                start=match.start(),
                end=match.end(),
                text=token,
                values=parse_number(token),
                currency=currency,
                grouped_or_decimal=bool(re.search(r"[^\d]", token)),
                percent=bool(_PERCENT_AFTER.match(after)),
                unit=bool(_UNIT_AFTER.match(after)),
            )
        )
    return found


# ------------------------------------------------------------------------------- dates


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_MONTH_RE = rf"(?:{_alternation(m for m in MONTHS if m != 'may')}|May)\.?"
_WEEKDAY_RE = rf"(?:{_alternation(WEEKDAYS)})"
_S = r"[ \u00a0\u202f]+"
_YEAR = r"(?<!\d)(\d{4})(?!\d)"

_WRITTEN_DAY_FIRST = re.compile(
    rf"(?<![\w\u2591])(?:({_WEEKDAY_RE}),?{_S}(?:the{_S})?)?(\d{{1,2}})(?:er|re|ère|st|nd|rd|th)?"
    rf"{_S}(?:of{_S})?({_MONTH_RE})(?![\w])(?:,?{_S}{_YEAR})?",
    re.I,
)
_WRITTEN_MONTH_FIRST = re.compile(
    rf"(?<![\w\u2591])(?:({_WEEKDAY_RE}),?{_S})?({_MONTH_RE}){_S}(?:the{_S})?"
    rf"(\d{{1,2}})(?:st|nd|rd|th)?(?![\w])(?:,?{_S}{_YEAR})?",
    re.I,
)
_MONTH_YEAR = re.compile(rf"(?<![\w\u2591])({_MONTH_RE}){_S}{_YEAR}", re.I)
_ISO = re.compile(
    r"(?<![\w./\-\u2591])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w/\-]|[.,]\d)"
)
_NUMERIC = re.compile(
    r"(?<![\w./\-\u2591])(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/\-]|[.,]\d)"
)
_DAY_MONTH = re.compile(r"(?<![\w./\-\u2591])(\d{1,2})/(\d{2})(?![\w/]|[.,]\d)")


@dataclass(frozen=True)
class DateMention:
    """A date written in a text: the full dates it may mean, or a partial date."""

    start: int
    end: int
    text: str
    full: frozenset[date]  # possible complete dates
    day_month: frozenset[tuple[int, int]]  # (month, day) when written without a year
    month_year: tuple[int, int] | None  # (year, month) for "mars 2026"
    weekday: int | None  # a weekday written just before it (0 = Monday)


def _full_year(text: str) -> int:
    """A written year, two digits read as 1970–2069."""
    value = int(text)
    if len(text) == 2:
        return 2000 + value if value < 70 else 1900 + value
    return value


def _month(text: str) -> int:
    return MONTHS[text.lower().rstrip(".")]


def find_dates(text: str) -> list[DateMention]:
    """Dates in ``text``: ISO, numeric (day or month first), and written in French or English."""
    mentions: list[DateMention] = []
    taken = [False] * len(text)

    def free(start: int, end: int) -> bool:
        return not any(taken[start:end])

    def add(match: re.Match[str], mention: DateMention) -> None:
        mentions.append(mention)
        for i in range(match.start(), match.end()):
            taken[i] = True

    def weekday_of(name: str | None) -> int | None:
        return WEEKDAYS[name.lower()] if name else None

    for pattern, day_first in ((_WRITTEN_DAY_FIRST, True), (_WRITTEN_MONTH_FIRST, False)):
        for match in pattern.finditer(text):
            if not free(match.start(), match.end()):
                continue
            wd, first, second, year = match.groups()
            day, month = (first, second) if day_first else (second, first)
            mention = _written(match, weekday_of(wd), int(day), _month(month), year)
            if mention:
                add(match, mention)
    for match in _MONTH_YEAR.finditer(text):
        if not free(match.start(), match.end()):
            continue
        add(match, DateMention(match.start(), match.end(), match.group(0), frozenset(),
                               frozenset(), (int(match.group(2)), _month(match.group(1))), None))
    for match in _ISO.finditer(text):
        if not free(match.start(), match.end()):
            continue
        found = date_or_none(int(match.group(1)), int(match.group(3)), int(match.group(4)))
        if found:
            add(match, DateMention(match.start(), match.end(), match.group(0), frozenset({found}),
                                   frozenset(), None, None))
    for match in _NUMERIC.finditer(text):
        if not free(match.start(), match.end()):
            continue
        a, _, b, y = match.groups()
        year = _full_year(y)
        candidates = (date_or_none(year, int(b), int(a)), date_or_none(year, int(a), int(b)))
        options = {d for d in candidates if d}
        if options:
            add(match, DateMention(match.start(), match.end(), match.group(0), frozenset(options),
                                   frozenset(), None, None))
    for match in _DAY_MONTH.finditer(text):
        if not free(match.start(), match.end()):
            continue
        a, b = int(match.group(1)), int(match.group(2))
        pairs = {(m, d) for m, d in ((b, a), (a, b)) if date_or_none(2000, m, d)}
        if pairs:
            add(match, DateMention(match.start(), match.end(), match.group(0), frozenset(),
                                   frozenset(pairs), None, None))
    mentions.sort(key=lambda m: m.start)
    return mentions


def _written(
    match: re.Match[str], weekday: int | None, day: int, month: int, year: str | None
) -> DateMention | None:
    """A date written with a month name (helper of :func:`find_dates`)."""
    if year:
        found = date_or_none(int(year), month, day)
        if found is None:
            return None
        return DateMention(match.start(), match.end(), match.group(0), frozenset({found}),
                           frozenset(), None, weekday)
    if date_or_none(2000, month, day):
        return DateMention(match.start(), match.end(), match.group(0), frozenset(),
                           frozenset({(month, day)}), None, weekday)
    return None


