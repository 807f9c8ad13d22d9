"""Contacts files (CSV and JSON): reading and checking each row.

Storing them is a use case (:mod:`shared.usecases.contacts`); each row is made a contact by
:mod:`shared.contact_rows`. An invoices file is read the same way (:func:`open_rows` with its
:class:`FileKind`: its own required columns and JSON key; rows made invoices by
:mod:`shared.invoice_rows`).

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.contact_rows import REQUIRED_COLUMNS, RowResult, build_contact, field_key, shown
from shared.errors import Coded, InputError
from shared.phones import mask_phone, normalise_phone

log = logging.getLogger(__name__)

_DELIMITERS = (",", ";", "\t")


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


@dataclass(frozen=True)
class FileKind:
    """What a file holds: its required columns and the key of its JSON list (``{"contacts": [...]}``)."""

    required: tuple[str, ...] = REQUIRED_COLUMNS
    wrapper: str = "contacts"


CONTACTS = FileKind()


def _open_source(path: Path, kind: FileKind = CONTACTS) -> ContactsFile:
    """Check the file and its header, count its rows; InputError when it cannot be imported."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".json"):
        raise InputError(f"{path.name}: unsupported file type {suffix or '(none)'!r}: "
                         "use .csv or .json", code="file.type", name=path.name)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".json":
        return _open_json(path, kind)
    return _open_csv(path, kind)


def _read_error(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, UnicodeDecodeError):
        return InputError(f"{path.name}: not UTF-8 text; save it as 'CSV UTF-8' (or JSON in UTF-8)",
                          code="file.encoding", name=path.name)
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


def _open_csv(path: Path, kind: FileKind) -> ContactsFile:
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
        raise InputError(f"{path.name}: the file is empty (expected a header row: {', '.join(kind.required)}, …)",
                         code="file.empty", name=path.name, columns=", ".join(kind.required))
    keys = [field_key(cell) for cell in header]
    seen: dict[str, str] = {}
    for key, cell in zip(keys, header, strict=True):
        if not key:
            continue
        if key in seen:
            raise InputError(f"{path.name}: columns {shown(seen[key])} and {shown(cell)} are "
                             f"the same field {key!r}; rename one")
        seen[key] = cell
    _require_columns(path, kind, set(keys), ", ".join(shown(c) for c in header[:8]))

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


def _require_columns(path: Path, kind: FileKind, keys: set[str], found: str) -> None:
    missing = [c for c in kind.required if c not in keys]
    if missing:
        what = " and ".join(repr(c) for c in missing)
        raise InputError(f"{path.name}: missing required column {what} (the first row must be a "
                         f"header with {' and '.join(kind.required)}; found {found or 'nothing'})",
                         code="file.columns", name=path.name, missing=what, columns=", ".join(kind.required),
                         found=found or "—")


def _json_scalar(value: Any) -> str | None:
    """A JSON value as the text a CSV cell would hold; None when it is not a scalar."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def item_values(item: Any, kind: FileKind = CONTACTS) -> tuple[dict[str, str] | None, str | None]:
    """A JSON object's values as a CSV row of ``kind`` would hold them (keys normalised); or the problem."""
    if not isinstance(item, dict):
        return None, f"is not an object with {' and '.join(kind.required)}"
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
            return None, f"key {shown(raw_key)} is not a usable field name"
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


def _open_json(path: Path, kind: FileKind) -> ContactsFile:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _read_error(path, exc) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name}: invalid JSON at line {exc.lineno}, "
                         f"column {exc.colno}: {exc.msg}", code="file.json", name=path.name, line=exc.lineno,
                         column=exc.colno) from None
    items = data.get(kind.wrapper) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f'{path.name}: expected a list of {kind.wrapper}, or {{"{kind.wrapper}": [...]}}')
    objects = [i for i in items if isinstance(i, dict)]
    if objects:
        keys: set[str] = set()
        for obj in objects:
            keys.update(field_key(k) for k in obj)
        _require_columns(path, kind, keys, ", ".join(repr(k) for k in sorted(keys)[:8]))

    def rows() -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
        for index, item in enumerate(items, start=1):
            yield (index, *item_values(item, kind))

    return ContactsFile("item", len(items), rows)


def _results(source: ContactsFile, default_region: str) -> Iterator[RowResult]:
    seen: dict[str, int] = {}
    for line, values, problem in source.rows():
        prefix = f"{source.unit} {line}"
        if values is None:
            yield RowResult(line, None, f"{prefix}: {problem}")
            continue
        contact, problems = build_contact(values, default_region)
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
            yield RowResult(line, None, Coded(f"{prefix}: " + "; ".join(problems), "row", unit=source.unit, line=line,
                                              problems=problems))
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


def open_rows(path: Path, kind: FileKind) -> ContactsFile:
    """Check a CSV or JSON file of another ``kind`` (invoices) and its header: its raw rows, read alike."""
    return _open_source(Path(path), kind)
