"""Checks a drafted message against the contact's facts before it may be sent.

Every amount, date, invoice/quote reference, link, e-mail address and phone number in a
draft must come from the request (its ``facts``, or the contact's and business's names), and a
percentage must be written as one in the facts or the campaign's description; the draft must
fit ``max_chars``, be in the contact's language and not be empty. It may not offer a discount,
cancel or settle the invoice, offer a payment plan or more time, nor threaten legal action the
campaign does not mention (:mod:`shared.statements`; words copied from the facts or names are
not judged).

The check runs on every AI draft, and a problem replaces the draft with the offline one,
so it aims at precision: small counts ("2 jours", "24h", "1er"), years, percentages and
times are never taken for amounts, and values are compared normalised (amounts as numbers,
dates as dates, references case-insensitively, links exactly up to trailing punctuation).

The parsing helpers (:func:`parse_number`, :func:`find_dates`, …) are shared with
:mod:`shared.offline`, which must produce text this module accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from shared.domain.models import Language
from shared.ports import DraftRequest
from shared.statements import find_statements, grants_legal

__all__ = [
    "DateMention",
    "NumberMention",
    "check_draft",
    "detect_language",
    "find_dates",
    "find_numbers",
    "normalise_currency",
    "parse_number",
]

# A character that replaces masked text: not a word character, not a space, not a digit.
_MASK = "\u2591"
_SPACES = " \u00a0\u202f"

# ----------------------------------------------------------------------------- numbers

_NUMBER = re.compile(
    r"(?<![\w.,'’\u2591])"
    r"(\d{1,3}(?:(?:[ \u00a0\u202f'’]|[.,])\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)"
    r"(?![\w'’]|[.,]\d)"
)

_CURRENCY_CODES = frozenset(
    "EUR USD GBP CHF CAD AUD NZD JPY CNY HKD SGD XOF XAF XPF MAD TND DZD EGP NGN GHS KES ZAR "
    "SEK NOK DKK ISK PLN CZK HUF RON BGN TRY RUB UAH INR BRL MXN ARS CLP COP AED SAR QAR ILS "
    "MUR MGA HTG".split()
)
_SYMBOLS = r"€|US\$|CA\$|C\$|A\$|\$|£|¥|₣|₹|₽|₺|₦"
_WORDS = r"euros?|dollars?|livres?\s+sterling|pounds?(?:\s+sterling)?|francs?\s+CFA|F\s?CFA|FCFA"
_CODE = r"[A-Z]{3}"
_CURRENCY_BEFORE = re.compile(rf"(?:({_SYMBOLS})|(?<![A-Za-z])({_CODE}))[ \u00a0\u202f]?$")
_CURRENCY_AFTER = re.compile(
    rf"^[ \u00a0\u202f]?(?:({_SYMBOLS})|(?:({_CODE}|(?i:{_WORDS}))(?![A-Za-z])))"
)
_PERCENT_AFTER = re.compile(r"^[ \u00a0\u202f]?(?:%|pour\s?cent|per\s?cent|percent)", re.I)
_UNIT_AFTER = re.compile(
    r"^[ \u00a0\u202f]*(?:jours?|j|days?|heures?|h|hours?|hrs?|minutes?|mins?|secondes?|seconds?"
    r"|semaines?|weeks?|mois|months?|ans|années?|years?|fois|times|x|km|kg|m²|m2)(?![A-Za-zÀ-ÿ])",
    re.I,
)

_DOLLARS = frozenset({"USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "ARS", "CLP", "COP"})
_CFA = frozenset({"XOF", "XAF"})


def normalise_currency(text: str) -> str | None:
    """A currency mention as an ISO-like code (``€`` → ``EUR``); None when not one we know.

    ``$`` and ``¥`` stay family names (``DOLLAR``, ``YEN``) since several currencies use them.
    """
    raw = " ".join(text.split())
    low = raw.lower()
    if not raw:
        return None
    if raw == "€" or low in ("euro", "euros", "eur"):
        return "EUR"
    if raw in ("US$",):
        return "USD"
    if raw in ("CA$", "C$"):
        return "CAD"
    if raw == "A$":
        return "AUD"
    if raw == "$" or low in ("dollar", "dollars"):
        return "DOLLAR"
    if raw == "£" or low.startswith(("livre", "pound")):
        return "GBP"
    if raw == "¥":
        return "YEN"
    if raw == "₣":
        return "CHF"
    if raw == "₹":
        return "INR"
    if raw == "₽":
        return "RUB"
    if raw == "₺":
        return "TRY"
    if raw == "₦":
        return "NGN"
    if "cfa" in low:
        return "CFA"
    if re.fullmatch(r"[A-Za-z]{3}", raw):
        return raw.upper()
    return None


def _currency_matches(found: str, allowed: set[str]) -> bool:
    if found in allowed:
        return True
    if found == "DOLLAR":
        return bool(allowed & (_DOLLARS | {"DOLLAR"}))
    if found in _DOLLARS and "DOLLAR" in allowed:
        return True
    if found == "YEN":
        return bool(allowed & {"JPY", "CNY", "YEN"})
    if found in ("JPY", "CNY") and "YEN" in allowed:
        return True
    if found == "CFA":
        return bool(allowed & (_CFA | {"CFA"}))
    return found in _CFA and "CFA" in allowed


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
    known_codes = _CURRENCY_CODES | {c.upper() for c in codes}
    found: list[NumberMention] = []
    for match in _NUMBER.finditer(text):
        token = match.group(1)
        before = text[max(0, match.start() - 12) : match.start()]
        after = text[match.end() : match.end() + 24]
        currency: str | None = None
        pre = _CURRENCY_BEFORE.search(before)
        if pre:
            symbol = pre.group(1) or pre.group(2)
            if symbol and (not re.fullmatch(_CODE, symbol) or symbol in known_codes):
                currency = normalise_currency(symbol)
        post = _CURRENCY_AFTER.match(after)
        if currency is None and post:
            symbol = post.group(1) or post.group(2)
            if symbol and (not re.fullmatch(_CODE, symbol) or symbol in known_codes):
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

_FR_MONTHS = {
    "janvier": 1, "janv": 1, "février": 2, "fevrier": 2, "févr": 2, "fevr": 2, "fév": 2, "fev": 2,
    "mars": 3, "avril": 4, "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "août": 8,
    "aout": 8, "septembre": 9, "sept": 9, "octobre": 10, "oct": 10, "novembre": 11, "nov": 11,
    "décembre": 12, "decembre": 12, "déc": 12, "dec": 12,
}  # fmt: skip
_EN_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12,
}  # fmt: skip
_MONTHS = {**_FR_MONTHS, **_EN_MONTHS}
_WEEKDAYS = {
    "lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6,
}  # fmt: skip


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_MONTH_RE = rf"(?:{_alternation(m for m in _MONTHS if m != 'may')}|May)\.?"
_WEEKDAY_RE = rf"(?:{_alternation(_WEEKDAYS)})"
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
_TIME = re.compile(r"(?<![\w.,\u2591])\d{1,2}(?::\d{2}|[hH]\d{2})(?::\d{2})?(?!\w)")


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


def _year(text: str) -> int:
    value = int(text)
    if len(text) == 2:
        return 2000 + value if value < 70 else 1900 + value
    return value


def _date_or_none(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month(text: str) -> int:
    return _MONTHS[text.lower().rstrip(".")]


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
        return _WEEKDAYS[name.lower()] if name else None

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
        found = _date_or_none(int(match.group(1)), int(match.group(3)), int(match.group(4)))
        if found:
            add(match, DateMention(match.start(), match.end(), match.group(0), frozenset({found}),
                                   frozenset(), None, None))
    for match in _NUMERIC.finditer(text):
        if not free(match.start(), match.end()):
            continue
        a, _, b, y = match.groups()
        year = _year(y)
        candidates = (_date_or_none(year, int(b), int(a)), _date_or_none(year, int(a), int(b)))
        options = {d for d in candidates if d}
        if options:
            add(match, DateMention(match.start(), match.end(), match.group(0), frozenset(options),
                                   frozenset(), None, None))
    for match in _DAY_MONTH.finditer(text):
        if not free(match.start(), match.end()):
            continue
        a, b = int(match.group(1)), int(match.group(2))
        pairs = {(m, d) for m, d in ((b, a), (a, b)) if _date_or_none(2000, m, d)}
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
        found = _date_or_none(int(year), month, day)
        if found is None:
            return None
        return DateMention(match.start(), match.end(), match.group(0), frozenset({found}),
                           frozenset(), None, weekday)
    if _date_or_none(2000, month, day):
        return DateMention(match.start(), match.end(), match.group(0), frozenset(),
                           frozenset({(month, day)}), None, weekday)
    return None


# ------------------------------------------------------------------ links, refs, phones

_TLDS = (
    "com|fr|net|org|io|co|eu|be|ch|ca|app|link|me|ly|info|biz|pay|shop|dev|uk|de|es|it|nl|lu|"
    "ma|sn|ci|tn|dz|re|gp|mq|pf|nc|us|to|gl|page|site|online|store|pro"
)
_EMAIL = re.compile(r"(?<![\w.+\-])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'«»]+"
    rf"|(?<![\w@.\-/])(?:[a-z0-9\-]+\.)+(?:{_TLDS})(?![\w\-])(?:/[^\s<>\"'«»]*)?",
    re.I,
)
_FORMATTING = re.compile(r"[*~`]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_TRAILING = ".,;:!?'\"»’”)]}>"
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ \u00a0.\-]?(?:\(0\)[ \u00a0]?)?\d(?:[ \u00a0.\-]?\d){5,12}"
    r"|0\d(?:[ \u00a0.\-]?\d{2}){4})(?![\w])"
)
_REF = re.compile(r"(?<![\w@/.\-\u2591])[A-Za-z0-9]+(?:[\-_/.#][A-Za-z0-9]+)*")
_PLACEHOLDER = re.compile(
    r"\{\{?\s*[A-Za-zÀ-ÿ_ ]{1,40}\s*\}?\}|\[[A-Za-zÀ-ÿ_ ']{1,40}\]|<[A-Za-zÀ-ÿ_ ]{1,40}>"
)


def _strip_url(url: str) -> str:
    while url and url[-1] in _TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _is_ref(token: str) -> bool:
    """Whether a token looks like an invoice or quote reference (INV-2024-001, FA2024-17, DEV-9)."""
    if not (re.search(r"\d", token) and re.search(r"[A-Za-z]", token)):
        return False
    segments = [s for s in re.split(r"[\-_/.#]", token) if s]
    if len(segments) > 1:
        return any(re.fullmatch(r"[A-Za-z]+", s) or re.match(r"[A-Za-z]+\d", s) for s in segments)
    if re.fullmatch(r"[A-Za-z]{1,6}\d{3,}[A-Za-z0-9]*", token):
        return True
    return bool(re.fullmatch(r"\d+[A-Za-z]{2,}\d+[A-Za-z0-9]*", token)) and (
        sum(c.isdigit() for c in token) >= 3
    )


def _ref_key(token: str) -> str:
    return re.sub(r"[^0-9a-z]", "", token.lower())


# ---------------------------------------------------------------------------- language

_FR_WORDS = frozenset(
    "le la les des du de un une et est vous votre vos nous notre nos pour avec sur dans pas que "
    "qui ce cette ces merci bonjour facture factures paiement montant règlement reglement sauf "
    "erreur au aux il elle sont été avons avez être ne ou par mais se sa son ses je j l d n qu c "
    "s y en très bien cordialement bonne journée relance dernière toujours déjà encore devis "
    "lien ici si avoir fait faire souhaitez pouvez merci madame monsieur échéance reste votre "
    "attente retour vers à".split()
)
_EN_WORDS = frozenset(
    "the and is are you your we our to of for with in this that please thank thanks hello hi "
    "invoice invoices payment amount due would could be have has it if at by from not kindly "
    "regards reminder dear will was an any still just let know can here been already best "
    "quote sent received outstanding yet last final looking forward".split()
)
_WORD = re.compile(r"[a-zà-öø-ÿœæ]+", re.I)


def detect_language(text: str) -> Language | None:
    """French or English by counting common words; None when there are too few to decide."""
    fr = en = 0
    for word in _WORD.findall(text.lower()):
        fr += word in _FR_WORDS
        en += word in _EN_WORDS
    total = fr + en
    if total < 3:
        return None
    if fr >= 0.7 * total:
        return Language.FR
    if en >= 0.7 * total:
        return Language.EN
    return None


# ----------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class _Known:
    """What the request allows, normalised."""

    amounts: frozenset[Decimal]
    integers: frozenset[Decimal]
    currencies: frozenset[str]
    dates: frozenset[date]
    refs: frozenset[str]
    urls: frozenset[str]  # as written in the facts
    bare_urls: frozenset[str]  # without their scheme, for "www.…" or "pay.example.com/…"
    hosts: frozenset[str]
    emails: frozenset[str]
    phones: frozenset[str]
    mask: tuple[re.Pattern[str], ...]
    codes: frozenset[str]
    percents: frozenset[Decimal]  # written as percentages in the facts or the campaign's description


def _mask_pattern(value: str) -> re.Pattern[str] | None:
    parts = value.split()
    if not parts or len("".join(parts)) < 2:
        return None
    body = r"\s+".join(re.escape(p) for p in parts)
    flags = 0 if "://" in value else re.I
    # Only whole values: not inside a longer number, reference, link or address.
    return re.compile(
        rf"(?<![\w\u2591/@#])(?<!\w[.,\-_]){body}(?![\w/?#&=%~+@])(?![.,\-_:]\w)", flags
    )


def _is_plain_value(value: str, codes: Iterable[str]) -> bool:
    """A value that is only an amount, a currency or a date: compared normalised, never masked."""
    stripped = value.strip()
    if len(stripped) <= 20 and normalise_currency(stripped) in _CURRENCY_CODES | {
        "DOLLAR", "YEN", "CFA", *codes
    }:
        return True
    for mention in find_dates(stripped):
        if mention.start == 0 and mention.end == len(stripped):
            return True
    numbers = find_numbers(stripped, codes)
    if len(numbers) == 1:
        rest = stripped[: numbers[0].start] + stripped[numbers[0].end :]
        rest = re.sub(rf"{_SYMBOLS}|{_CODE}|(?i:{_WORDS})", "", rest)
        return not rest.strip(_SPACES + "-")
    return False


def _allowed(request: DraftRequest) -> _Known:
    facts = {k: v for k, v in request.facts.items() if isinstance(v, str) and v.strip()}
    names = [n for n in (request.contact_name, request.business_name, request.campaign_name) if n]
    everything = [*facts.values(), *names]
    codes: set[str] = set()
    currencies: set[str] = set()
    for key, value in facts.items():
        stripped = value.strip()
        currency = normalise_currency(stripped) if len(stripped) <= 20 else None
        if currency is None:
            continue
        if "currenc" in key.lower() or "devise" in key.lower() or "monnaie" in key.lower():
            currencies.add(currency)
            if re.fullmatch(r"[A-Za-z]{3}", stripped):
                codes.add(currency)
        elif currency in _CURRENCY_CODES or not re.fullmatch(r"[A-Za-z]{3}", stripped):
            currencies.add(currency)
    amounts: set[Decimal] = set()
    integers: set[Decimal] = set()
    dates: set[date] = set()
    refs: set[str] = set()
    urls: set[str] = set()
    bare_urls: set[str] = set()
    hosts: set[str] = set()
    emails: set[str] = set()
    phones: set[str] = set()
    masks: list[re.Pattern[str]] = []
    for value in everything:
        text = value
        for match in list(_EMAIL.finditer(text)):
            emails.add(match.group(0).lower())
            text = _blank(text, match.start(), match.end())
        for match in list(_URL.finditer(text)):
            url = _strip_url(match.group(0))
            bare = re.sub(r"^https?://", "", url, flags=re.I)
            urls.add(url)
            bare_urls.add(bare)
            hosts.add(bare.split("/")[0].lower())
            text = _blank(text, match.start(), match.end())
        for mention in find_dates(text):
            dates.update(mention.full)
            text = _blank(text, mention.start, mention.end)
        for match in list(_PHONE.finditer(text)):
            phones.add(re.sub(r"\D", "", match.group(0))[-9:])
        for match in list(_REF.finditer(text)):
            refs.add(_ref_key(match.group(0)))
            if _is_ref(match.group(0)):
                text = _blank(text, match.start(), match.end())
        refs.add(_ref_key(value))
        for number in find_numbers(text, codes):
            amounts.update(number.values)
            if number.currency:
                currencies.add(number.currency)
        integers.update(Decimal(run) for run in re.findall(r"\d+", value))
        if not _is_plain_value(value, codes):
            pattern = _mask_pattern(value)
            if pattern:
                masks.append(pattern)
    # Longer values first, so that a value containing a shorter one is masked whole.
    masks.sort(key=lambda p: len(p.pattern), reverse=True)
    percents = {
        value
        for text in (*facts.values(), request.campaign_description)
        for number in find_numbers(text, codes) if number.percent
        for value in number.values
    }
    return _Known(
        amounts=frozenset(amounts), integers=frozenset(integers | amounts),
        currencies=frozenset(currencies), dates=frozenset(dates), refs=frozenset(refs - {""}),
        urls=frozenset(urls), bare_urls=frozenset(bare_urls), hosts=frozenset(hosts), emails=frozenset(emails),
        phones=frozenset(phones), mask=tuple(masks), codes=frozenset(codes), percents=frozenset(percents),
    )


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + _MASK * (end - start) + text[end:]


def _blank_all(text: str, spans: Iterable[tuple[int, int]]) -> str:
    for start, end in spans:
        text = _blank(text, start, end)
    return text


def _show(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _show_date(mention: DateMention) -> str:
    if mention.full:
        return min(mention.full).isoformat()
    return " ".join(mention.text.split())


def _problems(body: str, request: DraftRequest) -> Iterator[str]:
    if not body.strip():
        yield "empty body"
        return
    if len(body) > request.max_chars:
        yield f"too long: {len(body)} characters, at most {request.max_chars}"
    known = _allowed(request)
    text = body
    for pattern in known.mask:
        text = pattern.sub(lambda m: _MASK * len(m.group(0)), text)
    # WhatsApp formatting (*bold*, _italic_, ~strike~, `mono`) must not hide a value.
    text = _FORMATTING.sub(" ", text)
    # Read now, on the text with the facts and names masked: "Cabinet d'avocats Martin" as the
    # business's name is not a threat. Reported after the values, which say more precisely what is wrong.
    legal_allowed = grants_legal(request.campaign_name, request.campaign_description, request.tone)
    statements = find_statements(text, legal_allowed=legal_allowed)

    language = detect_language(text)
    if language is not None and language != request.language:
        yield f"language {language.value}, expected {request.language.value}"
    if _PLACEHOLDER.search(text):
        yield "placeholder left in the text"

    for match in list(_EMAIL.finditer(text)):
        if match.group(0).lower() not in known.emails:
            yield "e-mail address not in contact data"
        text = _blank(text, match.start(), match.end())
    for match in list(_URL.finditer(text)):
        url = _strip_url(match.group(0))
        bare = re.sub(r"^https?://", "", url, flags=re.I)
        host_only = "/" not in bare.rstrip("/")
        if re.match(r"https?://", url, flags=re.I):
            ok = url in known.urls
        else:
            ok = bare in known.bare_urls or (host_only and bare.rstrip("/").lower() in known.hosts)
        if not ok:
            yield f"link {url[:80]} not in contact data"
        text = _blank(text, match.start(), match.end())

    for mention in find_dates(text):
        text = _blank(text, mention.start, mention.end)
        if mention.full:
            if not mention.full & known.dates:
                yield f"date {_show_date(mention)} not in contact data"
            elif mention.weekday is not None and all(
                d.weekday() != mention.weekday for d in mention.full & known.dates
            ):
                yield f"weekday does not match date {_show_date(mention)}"
        elif mention.day_month:
            if not any((d.month, d.day) in mention.day_month for d in known.dates):
                yield f"date {_show_date(mention)} not in contact data"
        elif mention.month_year and not any(
            (d.year, d.month) == mention.month_year for d in known.dates
        ):
            yield f"date {_show_date(mention)} not in contact data"

    for match in list(_PHONE.finditer(text)):
        digits = re.sub(r"\D", "", match.group(0))
        text = _blank(text, match.start(), match.end())
        if digits[-9:] not in known.phones:
            yield "phone number not in contact data"
    for match in list(_TIME.finditer(text)):
        text = _blank(text, match.start(), match.end())

    for match in list(_REF.finditer(text)):
        token = match.group(0)
        if _is_ref(token):
            text = _blank(text, match.start(), match.end())
            if _ref_key(token) not in known.refs:
                yield f"reference {token[:40]} not in contact data"

    for number in find_numbers(text, known.codes):
        if not number.values:
            continue
        if number.percent:
            if not number.values & known.percents:
                yield f"percentage {_show(min(number.values))}% not in contact data"
            continue
        if number.currency is not None:
            if not number.values & known.amounts:
                yield f"amount {_show(min(number.values))} not in contact data"
            elif known.currencies and not _currency_matches(number.currency, set(known.currencies)):
                yield f"currency {number.currency} not in contact data"
        elif number.grouped_or_decimal:
            if number.unit:
                continue
            if not number.values & known.amounts:
                yield f"amount {_show(min(number.values))} not in contact data"
        else:
            value = next(iter(number.values))
            if value < 100 or number.unit or (1900 <= value <= 2099 and len(number.text) == 4):
                continue
            if value not in known.integers:
                yield f"number {_show(value)} not in contact data"

    for statement in statements:
        yield f'{statement.kind.value} ("{statement.words}")'


def check_draft(body: str, request: DraftRequest) -> list[str]:
    """Problems that forbid sending ``body`` for ``request``; an empty list means it may be sent.

    Each problem is a short phrase such as ``"amount 990 not in contact data"`` (it may quote a
    value from the draft, never the whole draft).
    """
    seen: list[str] = []
    for problem in _problems(body, request):
        if problem not in seen:
            seen.append(problem)
    return seen
