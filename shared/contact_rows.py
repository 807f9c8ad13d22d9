"""A contacts file's row made a contact: each value checked and normalised, or the reasons it cannot be.

The files themselves (CSV, JSON, their headers, duplicates between rows) are
:mod:`shared.importing`; what is checked on each row is described there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

from shared.domain.models import Contact, Language, new_id
from shared.errors import Coded, InputError, coded
from shared.language.text import strip_accents
from shared.phones import mask_phone, normalise_phone, timezone_for_phone

REQUIRED_COLUMNS = ("name", "phone")
STANDARD_COLUMNS = frozenset({"name", "phone", "language", "timezone", "tags"})
# French-speaking regions (phone country) whose contacts default to French.
FRENCH_REGIONS = frozenset({
    "FR", "BE", "CH", "LU", "MC",
    "RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF", "NC", "PF", "WF",
})
# Header spellings accepted for the standard columns (after normalisation).
_ALIASES = {
    "nom": "name", "telephone": "phone", "tel": "phone", "langue": "language", "lang": "language",
    "fuseau_horaire": "timezone", "tz": "timezone", "etiquettes": "tags",
}
_LANGUAGES = {
    "fr": Language.FR, "french": Language.FR, "francais": Language.FR,
    "en": Language.EN, "english": Language.EN, "anglais": Language.EN,
}
_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
_LONG_DIGITS = re.compile(r"\+?\d(?:[ \u00a0.]?\d){7,}")


@dataclass(frozen=True)
class RowResult:
    """One data row of an import file: a contact, or the reason it was rejected."""

    line: int
    contact: Contact | None
    error: str | None


# ------------------------------------------------------------------------------------ helpers
def new_contact_id() -> str:
    """A random id for a new contact (``ct_`` + 16 hex characters).

    Random, not derived from the phone: a hash of a phone number is reversed in minutes (the
    space of numbers is small), and contact ids travel in message ids, logs and the StatusCallback
    URL given to Twilio. A re-import still finds the contact, by its phone (unique index), and
    keeps its id; contacts imported before this change keep theirs (see docs/privacy.md).
    """
    return new_id("ct")


def field_key(raw: str) -> str:
    """A column or key name as stored: lower_snake_case, ASCII, standard aliases applied."""
    text = strip_accents(str(raw)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    return _ALIASES.get(text, text)


def shown(value: str, limit: int = 40) -> str:
    """A user value safe to echo in a message: shortened, long digit runs masked."""
    text = str(value).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(_LONG_DIGITS.sub(lambda m: mask_phone(re.sub(r"[ \u00a0.]", "", m.group())), text))


@lru_cache(maxsize=1)
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=512)
def _canonical_zone(name: str) -> str | None:
    """The IANA zone name as the system spells it, None when it is not one."""
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return _zones_by_lower_name().get(name.lower())


def _language(value: str) -> Language | None:
    key = field_key(value)
    return _LANGUAGES.get(key) or _LANGUAGES.get(key.split("_")[0])


def _phone_region(e164: str) -> str | None:
    """The main region of an E.164 number's country code (country codes are prefix-free)."""
    for length in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(e164[1:1 + length] or 0))
        if regions:
            return regions[0]
    return None


def _default_language(e164: str) -> Language:
    return Language.FR if _phone_region(e164) in FRENCH_REGIONS else Language.EN


def _tags(value: str) -> list[str]:
    tags: list[str] = []
    for part in re.split(r"[,|]", value):
        tag = part.strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def normalise_amount(raw: str) -> tuple[str, str | None]:
    """``(canonical amount, currency implied by a symbol or code)``; InputError when not an amount.

    ``1 250,50``, ``1.250,50``, ``1,250.50``, ``1250.5`` and ``1250,50 €`` all give ``1250.50``.
    """
    text = raw.strip()
    implied: str | None = None
    for symbol, code in _CURRENCY_SYMBOLS.items():
        if text.startswith(symbol) or text.endswith(symbol):
            text, implied = text.strip(symbol).strip(), code
            break
    else:
        coded = re.fullmatch(r"([A-Za-z]{3})\s*(.+)|(.+?)\s*([A-Za-z]{3})", text)
        if coded:
            implied = (coded.group(1) or coded.group(4)).upper()
            text = coded.group(2) or coded.group(3)
    text = text.strip()
    not_amount = InputError(f"amount {shown(raw)} is not an amount (write it like 1250.50 or 1 250,50)",
                            code="amount.invalid", value=shown(raw))
    if re.search(r"[\s']", text) and not re.fullmatch(r"\d{1,3}(?:[\s']\d{3})+(?:[.,]\d+)?", text):
        raise not_amount  # spaces only as thousands separators: "1 250,50"
    compact = re.sub(r"[\s']", "", text)
    if not re.fullmatch(r"\d[\d.,]*", compact):
        raise not_amount
    if "," in compact and "." in compact:
        decimal_sep = "," if compact.rfind(",") > compact.rfind(".") else "."
    elif compact.count(",") == 1:
        decimal_sep = ","
    elif compact.count(".") == 1:
        decimal_sep = "."
    else:
        decimal_sep = ""  # none, or only repeated thousands separators
    integer, _, fraction = compact.rpartition(decimal_sep) if decimal_sep else (compact, "", "")
    if not re.fullmatch(r"\d+|\d{1,3}([.,]\d{3})+", integer) or not re.fullmatch(r"\d*", fraction):
        raise not_amount
    digits = re.sub(r"[.,]", "", integer) + ("." + fraction if fraction else "")
    try:
        number = Decimal(digits)
    except InvalidOperation:
        raise not_amount from None
    if number != number.quantize(Decimal("0.01")):
        raise InputError(f"amount {shown(raw)} has more than 2 decimals", code="amount.decimals", value=shown(raw))
    return f"{number:.2f}", implied


def normalise_currency(raw: str, implied: str | None) -> tuple[str, str | None]:
    """``(3-letter code, problem)``: ``raw`` (``€`` or ``eur`` read as ``EUR``), else the one an amount
    implied, else ``EUR``; a problem when it is no code or differs from the amount's."""
    if not raw.strip():
        return implied or "EUR", None
    currency = _CURRENCY_SYMBOLS.get(raw.strip(), raw.strip().upper())
    if not re.fullmatch(r"[A-Z]{3}", currency):
        return currency, f"currency {shown(raw)} is not a 3-letter code such as EUR"
    if implied and implied != currency:
        return currency, f"currency {currency} does not match the amount's {implied}"
    return currency, None


def normalise_date(raw: str) -> str:
    """``YYYY-MM-DD`` from ``YYYY-MM-DD`` or ``DD/MM/YYYY``; InputError when it is not a date."""
    text = raw.strip()
    try:
        iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?", text)
        if iso:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3))).isoformat()
        dmy = re.fullmatch(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})", text)
        if dmy:
            return date(int(dmy.group(4)), int(dmy.group(3)), int(dmy.group(1))).isoformat()
    except ValueError:
        pass
    raise InputError(f"{shown(raw)} is not a date (write it as YYYY-MM-DD or DD/MM/YYYY)", code="date.invalid",
                     value=shown(raw))


def is_http_url(value: str) -> bool:
    """True for an http(s) URL with a host and no spaces."""
    if re.search(r"\s", value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


# ------------------------------------------------------------------------------------ rows
def build_contact(values: dict[str, str], default_region: str) -> tuple[Contact | None, list[str]]:
    """Validate one row's values (keys already normalised); the contact or the problems."""
    problems: list[str] = []
    name = " ".join(values.get("name", "").split())
    if not name:
        problems.append(Coded("name is empty", "row.name_empty"))
    phone: str | None = None
    try:
        phone = normalise_phone(values.get("phone", ""), default_region)
    except InputError as exc:
        problems.append(coded(exc))

    language: Language | None = None
    raw_language = values.get("language", "").strip()
    if raw_language:
        language = _language(raw_language)
        if language is None:
            problems.append(Coded(f"language {shown(raw_language)} is not supported (use fr or en)", "row.language",
                                  value=shown(raw_language)))
    raw_zone = values.get("timezone", "").strip()
    zone: str | None = None
    if raw_zone:
        zone = _canonical_zone(raw_zone)
        if zone is None:
            problems.append(Coded(f"timezone {shown(raw_zone)} is not an IANA timezone (e.g. Europe/Paris)",
                                  "row.timezone", value=shown(raw_zone)))

    fields: dict[str, str] = {}
    for key, raw in values.items():
        value = raw.strip()
        if key in STANDARD_COLUMNS or not value:
            continue
        fields[key] = value
    implied_currency: str | None = None
    if "amount" in fields:
        try:
            fields["amount"], implied_currency = normalise_amount(fields["amount"])
        except InputError as exc:
            problems.append(coded(exc))
    if "currency" in fields or "amount" in fields:
        currency, problem = normalise_currency(fields.get("currency", ""), implied_currency)
        if problem:
            problems.append(problem)
        fields["currency"] = currency
    if "due_date" in fields:
        try:
            fields["due_date"] = normalise_date(fields["due_date"])
        except InputError as exc:
            problems.append(coded(exc, "due_date ", field="due_date"))
    if "payment_link" in fields and not is_http_url(fields["payment_link"]):
        problems.append(Coded(f"payment_link {shown(fields['payment_link'])} is not an http(s) URL", "row.link",
                              value=shown(fields["payment_link"])))

    if problems or phone is None:
        return None, problems
    contact = Contact(
        id=new_contact_id(), phone=phone, name=name,
        language=language or _default_language(phone),
        timezone=zone or timezone_for_phone(phone),
        fields=fields, tags=_tags(values.get("tags", "")),
    )
    return contact, []
