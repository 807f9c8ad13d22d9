"""Contacts files (CSV and JSON): reading and checking each row.

Storing them is a use case (:mod:`shared.usecases.contacts`).

CSV: a header row is required; UTF-8 with or without BOM; the delimiter (``,`` ``;`` or tab)
is taken from the header line, as French Excel exports use ``;`` (an Excel ``sep=;`` first
line is honoured too). JSON: a list of objects, or ``{"contacts": [...]}``.

Columns (keys): ``name`` and ``phone`` are required; ``language`` (fr/en), ``timezone``
(IANA) and ``tags`` (``,`` or ``|`` separated) are optional; every other column is a free
field kept as a string in ``Contact.fields``. Column names are normalised to
``lower_snake_case`` without accents (``Due Date`` → ``due_date``, ``Nom`` → ``name``), which
is how campaigns refer to them. A few free fields are checked and normalised:

- ``amount``: ``1 250,50`` / ``1,250.50`` / ``1250.5`` → ``1250.50``;
- ``currency``: three upper-case letters, ``EUR`` when an amount has none;
- ``due_date``: ``YYYY-MM-DD`` or ``DD/MM/YYYY`` → ``YYYY-MM-DD``;
- ``payment_link``: an http(s) URL.

A bad row never stops the import: it is reported with its line (``item`` for JSON) and a
reason that never shows a full phone number. File-level problems (unreadable, unsupported
type, a required column missing) raise :class:`InputError` before anything is written.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

from shared.domain.models import Contact, Language, new_id
from shared.errors import InputError
from shared.language.text import strip_accents
from shared.phones import mask_phone, normalise_phone, timezone_for_phone

log = logging.getLogger(__name__)

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
_DELIMITERS = (",", ";", "\t")
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


def _show(value: str, limit: int = 40) -> str:
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
    not_amount = InputError(f"amount {_show(raw)} is not an amount (write it like 1250.50 or 1 250,50)")
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
        raise InputError(f"amount {_show(raw)} has more than 2 decimals")
    return f"{number:.2f}", implied


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
    raise InputError(f"{_show(raw)} is not a date (write it as YYYY-MM-DD or DD/MM/YYYY)")


def _is_http_url(value: str) -> bool:
    if re.search(r"\s", value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


# ------------------------------------------------------------------------------------ rows
def _build_contact(values: dict[str, str], default_region: str) -> tuple[Contact | None, list[str]]:
    """Validate one row's values (keys already normalised); the contact or the problems."""
    problems: list[str] = []
    name = " ".join(values.get("name", "").split())
    if not name:
        problems.append("name is empty")
    phone: str | None = None
    try:
        phone = normalise_phone(values.get("phone", ""), default_region)
    except InputError as exc:
        problems.append(str(exc))

    language: Language | None = None
    raw_language = values.get("language", "").strip()
    if raw_language:
        language = _language(raw_language)
        if language is None:
            problems.append(f"language {_show(raw_language)} is not supported (use fr or en)")
    raw_zone = values.get("timezone", "").strip()
    zone: str | None = None
    if raw_zone:
        zone = _canonical_zone(raw_zone)
        if zone is None:
            problems.append(f"timezone {_show(raw_zone)} is not an IANA timezone "
                            "(e.g. Europe/Paris)")

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
            problems.append(str(exc))
    if "currency" in fields:
        raw_currency = fields["currency"]
        currency = _CURRENCY_SYMBOLS.get(raw_currency, raw_currency.upper())
        if not re.fullmatch(r"[A-Z]{3}", currency):
            problems.append(f"currency {_show(raw_currency)} is not a 3-letter code such as EUR")
        elif implied_currency and implied_currency != currency:
            problems.append(f"currency {currency} does not match the amount's {implied_currency}")
        fields["currency"] = currency
    elif "amount" in fields:
        fields["currency"] = implied_currency or "EUR"
    if "due_date" in fields:
        try:
            fields["due_date"] = normalise_date(fields["due_date"])
        except InputError as exc:
            problems.append(f"due_date {exc}")
    if "payment_link" in fields and not _is_http_url(fields["payment_link"]):
        problems.append(f"payment_link {_show(fields['payment_link'])} is not an http(s) URL")

    if problems or phone is None:
        return None, problems
    contact = Contact(
        id=new_contact_id(), phone=phone, name=name,
        language=language or _default_language(phone),
        timezone=zone or timezone_for_phone(phone),
        fields=fields, tags=_tags(values.get("tags", "")),
    )
    return contact, []


# ------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class ContactsFile:
    """A readable import file: its row count, and a way to walk its rows."""

    unit: str  # "line" (CSV) or "item" (JSON)
    total: int
    rows: Callable[[], Iterator[tuple[int, dict[str, str] | None, str | None]]]

    def results(self, default_region: str = "FR") -> Iterator[RowResult]:
        """Each data row as a contact or the reason it was rejected (duplicate phones included)."""
        return _results(self, default_region)


def _open_source(path: Path) -> ContactsFile:
    """Check the file and its header, count its rows; InputError when it cannot be imported."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".json"):
        raise InputError(f"{path.name}: unsupported file type {suffix or '(none)'!r}: "
                         "use .csv or .json")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".json":
        return _open_json(path)
    return _open_csv(path)


def _read_error(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, UnicodeDecodeError):
        return InputError(f"{path.name}: not UTF-8 text; save it as 'CSV UTF-8' (or JSON in UTF-8)")
    if isinstance(exc, csv.Error):
        return InputError(f"{path.name}: not a readable CSV file ({exc})")
    return InputError(f"{path.name}: cannot read the file ({type(exc).__name__}: "
                      f"{getattr(exc, 'strerror', None) or exc})")


def _csv_layout(path: Path) -> tuple[str, int]:
    """The delimiter, and how many lines precede the header (1 with an Excel ``sep=`` line)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    stripped = first.strip()
    if stripped.lower().startswith("sep=") and len(stripped) == 5:
        return stripped[4], 1
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return (best if counts[best] else ","), 0


def _open_csv(path: Path) -> ContactsFile:
    try:
        delimiter, skip = _csv_layout(path)
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for _ in range(skip):
                handle.readline()
            reader = csv.reader(handle, delimiter=delimiter)
            header = next((row for row in reader if any(c.strip() for c in row)), None)
            total = sum(1 for row in reader if any(c.strip() for c in row))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _read_error(path, exc) from None
    if header is None:
        raise InputError(f"{path.name}: the file is empty (expected a header row: name, phone, …)")
    keys = [field_key(cell) for cell in header]
    seen: dict[str, str] = {}
    for key, cell in zip(keys, header, strict=True):
        if not key:
            continue
        if key in seen:
            raise InputError(f"{path.name}: columns {_show(seen[key])} and {_show(cell)} are "
                             f"the same field {key!r}; rename one")
        seen[key] = cell
    _require_columns(path, set(keys), ", ".join(_show(c) for c in header[:8]))

    def rows() -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                for _ in range(skip):
                    handle.readline()
                reader = csv.reader(handle, delimiter=delimiter)
                end = skip
                header_done = False
                for cells in reader:
                    line, end = end + 1, reader.line_num + skip
                    if not any(c.strip() for c in cells):
                        continue
                    if not header_done:
                        header_done = True
                        continue
                    yield (line, *_csv_row(keys, cells))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise _read_error(path, exc) from None

    return ContactsFile("line", total, rows)


def _csv_row(keys: list[str], cells: list[str]) -> tuple[dict[str, str] | None, str | None]:
    if len(cells) > len(keys) and any(c.strip() for c in cells[len(keys):]):
        return None, f"has {len(cells)} values but the header has {len(keys)} columns"
    values: dict[str, str] = {}
    for index, (key, cell) in enumerate(zip(keys, cells, strict=False)):
        if key:
            values[key] = cell
        elif cell.strip():
            return None, f"column {index + 1} has a value but no header"
    return values, None


def _require_columns(path: Path, keys: set[str], found: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in keys]
    if missing:
        what = " and ".join(repr(c) for c in missing)
        raise InputError(f"{path.name}: missing required column {what} (the first row must be a "
                         f"header with name and phone; found {found or 'nothing'})")


def _json_scalar(value: Any) -> str | None:
    """A JSON value as the text a CSV cell would hold; None when it is not a scalar."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _json_item(item: Any) -> tuple[dict[str, str] | None, str | None]:
    if not isinstance(item, dict):
        return None, "is not an object with name and phone"
    values: dict[str, str] = {}
    pairs: list[tuple[str, Any]] = []
    for raw_key, value in item.items():
        if field_key(raw_key) == "fields" and isinstance(value, dict):
            pairs.extend((str(k), v) for k, v in value.items())
        else:
            pairs.append((str(raw_key), value))
    for raw_key, value in pairs:
        key = field_key(raw_key)
        if not key:
            return None, f"key {_show(raw_key)} is not a usable field name"
        if key == "tags" and isinstance(value, list):
            texts = [_json_scalar(v) for v in value]
            if any(t is None for t in texts):
                return None, "tags must be a list of words"
            text: str | None = ",".join(t for t in texts if t)
        else:
            text = _json_scalar(value)
        if text is None:
            return None, f"field {key!r} must be text or a number"
        if key in values and values[key].strip() != text.strip():
            return None, f"field {key!r} is given twice with different values"
        values[key] = text
    return values, None


def _open_json(path: Path) -> ContactsFile:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _read_error(path, exc) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name}: invalid JSON at line {exc.lineno}, "
                         f"column {exc.colno}: {exc.msg}") from None
    items = data.get("contacts") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f'{path.name}: expected a list of contacts, or {{"contacts": [...]}}')
    objects = [i for i in items if isinstance(i, dict)]
    if objects:
        keys: set[str] = set()
        for obj in objects:
            keys.update(field_key(k) for k in obj)
        _require_columns(path, keys, ", ".join(repr(k) for k in sorted(keys)[:8]))

    def rows() -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
        for index, item in enumerate(items, start=1):
            yield (index, *_json_item(item))

    return ContactsFile("item", len(items), rows)


def _results(source: ContactsFile, default_region: str) -> Iterator[RowResult]:
    seen: dict[str, int] = {}
    for line, values, problem in source.rows():
        prefix = f"{source.unit} {line}"
        if values is None:
            yield RowResult(line, None, f"{prefix}: {problem}")
            continue
        contact, problems = _build_contact(values, default_region)
        if contact is not None:
            first = seen.setdefault(contact.phone, line)
            if first != line:
                masked = mask_phone(contact.phone)
                problems = [f"phone {masked!r} is a duplicate of {source.unit} {first}"]
                contact = None
        else:
            try:  # remember valid phones of bad rows too: a later row is still a duplicate
                seen.setdefault(normalise_phone(values.get("phone", ""), default_region), line)
            except InputError:
                pass
        if contact is None:
            yield RowResult(line, None, f"{prefix}: " + "; ".join(problems))
        else:
            yield RowResult(line, contact, None)


# ------------------------------------------------------------------------------------ API
def read_contacts(path: Path, *, default_region: str = "FR") -> Iterator[RowResult]:
    """Parse a CSV or JSON contacts file row by row; no database involved.

    Raises InputError (on first iteration) when the file itself cannot be imported.
    """
    source = _open_source(Path(path))
    yield from _results(source, default_region)


def count_rows(path: Path) -> int:
    """How many data rows the file holds (InputError when it cannot be imported)."""
    return _open_source(Path(path)).total


def open_contacts(path: Path) -> ContactsFile:
    """Check a CSV or JSON contacts file and its header, count its rows; InputError when it cannot be imported."""
    return _open_source(Path(path))
