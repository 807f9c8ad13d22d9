"""Checks a drafted message against the contact's facts before it may be sent.

Every amount, date, invoice/quote reference, link, e-mail address and phone number in a
draft must come from the request (its ``facts``, or the contact's and business's names), and a
percentage must be written as one in the facts or the campaign's description; the draft must
fit ``max_chars``, be in the contact's language and not be empty. It may not offer a discount,
cancel or settle the invoice, offer a payment plan or more time, nor threaten legal action the
campaign does not mention (:mod:`shared.language.statements`; words copied from the facts or
names are not judged).

The check runs on every AI draft, and a problem replaces the draft with the offline one,
so it aims at precision: small counts ("2 jours", "24h", "1er"), years, percentages and
times are never taken for amounts, and values are compared normalised (amounts as numbers,
dates as dates, references case-insensitively, links exactly up to trailing punctuation).
Amounts and dates are read by :mod:`shared.language.mentions`, which the offline drafter's
formatting uses too, so that its text passes this check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.domain.models import Language
from shared.errors import Coded
from shared.language.mentions import CURRENCY_CODE, MASK, DateMention, find_dates, find_numbers
from shared.language.statements import find_statements, grants_legal
from shared.language.vocabulary import (
    CURRENCY_CODES,
    CURRENCY_SYMBOLS,
    CURRENCY_WORDS,
    currency_matches,
    normalise_currency,
)
from shared.ports import DraftRequest

__all__ = ["check_draft", "detect_language"]

_SPACES = " \u00a0\u202f"
_TIME = re.compile(r"(?<![\w.,\u2591])\d{1,2}(?::\d{2}|[hH]\d{2})(?::\d{2})?(?!\w)")

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
    if len(stripped) <= 20 and normalise_currency(stripped) in CURRENCY_CODES | {
        "DOLLAR", "YEN", "CFA", *codes
    }:
        return True
    for mention in find_dates(stripped):
        if mention.start == 0 and mention.end == len(stripped):
            return True
    numbers = find_numbers(stripped, codes)
    if len(numbers) == 1:
        rest = stripped[: numbers[0].start] + stripped[numbers[0].end :]
        rest = re.sub(rf"{CURRENCY_SYMBOLS}|{CURRENCY_CODE}|(?i:{CURRENCY_WORDS})", "", rest)
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
        elif currency in CURRENCY_CODES or not re.fullmatch(r"[A-Za-z]{3}", stripped):
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
    return text[:start] + MASK * (end - start) + text[end:]


def _show(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _show_date(mention: DateMention) -> str:
    if mention.full:
        return min(mention.full).isoformat()
    return " ".join(mention.text.split())


class Problem(Coded):
    """A problem phrase (``"amount 990 not in contact data"``) that also carries ``code`` and ``params``,
    so a page can say it in its reader's language; it compares and prints as the phrase."""


def _problems(body: str, request: DraftRequest) -> Iterator[str]:
    if not body.strip():
        yield Problem("empty body", "empty")
        return
    if len(body) > request.max_chars:
        yield Problem(f"too long: {len(body)} characters, at most {request.max_chars}", "too_long",
                      length=len(body), limit=request.max_chars)
    known = _allowed(request)
    text = body
    for pattern in known.mask:
        text = pattern.sub(lambda m: MASK * len(m.group(0)), text)
    # WhatsApp formatting (*bold*, _italic_, ~strike~, `mono`) must not hide a value.
    text = _FORMATTING.sub(" ", text)
    # Read now, on the text with the facts and names masked: "Cabinet d'avocats Martin" as the
    # business's name is not a threat. Reported after the values, which say more precisely what is wrong.
    legal_allowed = grants_legal(request.campaign_name, request.campaign_description, request.tone)
    statements = find_statements(text, legal_allowed=legal_allowed)

    language = detect_language(text)
    if language is not None and language != request.language:
        yield Problem(f"language {language.value}, expected {request.language.value}", "language",
                      found=language.value, expected=request.language.value)
    if _PLACEHOLDER.search(text):
        yield Problem("placeholder left in the text", "placeholder")

    for match in list(_EMAIL.finditer(text)):
        if match.group(0).lower() not in known.emails:
            yield Problem("e-mail address not in contact data", "email")
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
            yield Problem(f"link {url[:80]} not in contact data", "link", value=url[:80])
        text = _blank(text, match.start(), match.end())

    for mention in find_dates(text):
        text = _blank(text, mention.start, mention.end)
        if mention.full:
            if not mention.full & known.dates:
                yield Problem(f"date {_show_date(mention)} not in contact data", "date", value=_show_date(mention))
            elif mention.weekday is not None and all(
                d.weekday() != mention.weekday for d in mention.full & known.dates
            ):
                yield Problem(f"weekday does not match date {_show_date(mention)}", "weekday",
                              value=_show_date(mention))
        elif mention.day_month:
            if not any((d.month, d.day) in mention.day_month for d in known.dates):
                yield Problem(f"date {_show_date(mention)} not in contact data", "date", value=_show_date(mention))
        elif mention.month_year and not any(
            (d.year, d.month) == mention.month_year for d in known.dates
        ):
            yield Problem(f"date {_show_date(mention)} not in contact data", "date", value=_show_date(mention))

    for match in list(_PHONE.finditer(text)):
        digits = re.sub(r"\D", "", match.group(0))
        text = _blank(text, match.start(), match.end())
        if digits[-9:] not in known.phones:
            yield Problem("phone number not in contact data", "phone")
    for match in list(_TIME.finditer(text)):
        text = _blank(text, match.start(), match.end())

    for match in list(_REF.finditer(text)):
        token = match.group(0)
        if _is_ref(token):
            text = _blank(text, match.start(), match.end())
            if _ref_key(token) not in known.refs:
                yield Problem(f"reference {token[:40]} not in contact data", "reference", value=token[:40])

    for number in find_numbers(text, known.codes):
        if not number.values:
            continue
        if number.percent:
            if not number.values & known.percents:
                yield Problem(f"percentage {_show(min(number.values))}% not in contact data", "percentage",
                              value=_show(min(number.values)))
            continue
        if number.currency is not None:
            if not number.values & known.amounts:
                yield Problem(f"amount {_show(min(number.values))} not in contact data", "amount",
                                  value=_show(min(number.values)))
            elif known.currencies and not currency_matches(number.currency, set(known.currencies)):
                yield Problem(f"currency {number.currency} not in contact data", "currency", value=number.currency)
        elif number.grouped_or_decimal:
            if number.unit:
                continue
            if not number.values & known.amounts:
                yield Problem(f"amount {_show(min(number.values))} not in contact data", "amount",
                                  value=_show(min(number.values)))
        else:
            value = next(iter(number.values))
            if value < 100 or number.unit or (1900 <= value <= 2099 and len(number.text) == 4):
                continue
            if value not in known.integers:
                yield Problem(f"number {_show(value)} not in contact data", "number", value=_show(value))

    for statement in statements:
        yield Problem(f'{statement.kind.value} ("{statement.words}")', "grants." + statement.kind.name.lower(),
                      words=statement.words)


def check_draft(body: str, request: DraftRequest) -> list[str]:
    """Problems that forbid sending ``body`` for ``request``; an empty list means it may be sent.

    Each problem is a short phrase such as ``"amount 990 not in contact data"`` (it may quote a
    value from the draft, never the whole draft).
    """
    seen: list[str] = []  # Problem instances: each also carries its code and params
    for problem in _problems(body, request):
        if problem not in seen:
            seen.append(problem)
    return seen
