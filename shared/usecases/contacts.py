"""Importing contacts: the valid rows of a contacts file upserted by phone (``relance contacts import``).

Reading and checking the file is :mod:`shared.importing`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.contact_rows import build_contact
from shared.domain.models import Contact
from shared.domain.reasons import StopReason
from shared.domain.repositories import Repositories
from shared.errors import Conflict, InputError, NotFound
from shared.importing import item_values, open_contacts
from shared.phones import mask_phone
from shared.usecases import audit
from shared.usecases.cadence import stop_contact

log = logging.getLogger(__name__)

# Told (rows done, rows in the file) now and then during an import.
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class ImportReport:
    """What an import did: counts of contacts and the rejected rows' reasons."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    applied: bool = True  # False: an all-or-nothing import found bad rows and wrote nothing

    @property
    def imported(self) -> int:
        """Rows that were valid (inserted, updated or unchanged)."""
        return self.inserted + self.updated + self.unchanged


def import_contacts(
    store: Repositories,
    path: Path,
    *,
    now: datetime,
    default_region: str = "FR",
    progress: ProgressCallback | None = None,
    all_or_nothing: bool = False,
) -> ImportReport:
    """Import a contacts file: valid rows are upserted by phone, bad rows skipped and reported.

    Idempotent: importing the same file again leaves every contact unchanged. The file is
    fully checked (readable, header, required columns) before anything is written.
    ``all_or_nothing`` (the console's upload): a file with a bad row is reported and nothing is
    written (``applied`` False).
    """
    source = open_contacts(Path(path))
    total = source.total
    report = ImportReport()
    if all_or_nothing:
        report.errors = [r.error or f"{source.unit} {r.line}: invalid" for r in source.results(default_region)
                         if r.contact is None]
        if report.errors:
            report.applied = False
            return report
    every = max(1, min(500, total // 100))
    if progress:
        progress(0, total)
    done = 0
    for result in source.results(default_region):
        done += 1
        if result.contact is None:
            report.errors.append(result.error or f"{source.unit} {result.line}: invalid")
        else:
            outcome = store.contacts.upsert(result.contact, now)
            if outcome == "inserted":
                report.inserted += 1
            elif outcome == "updated":
                report.updated += 1
            else:
                report.unchanged += 1
        if progress and done % every == 0 and done != total:
            progress(done, total)
    if progress:
        progress(done, total)
    log.info("contacts import %s: %d inserted, %d updated, %d unchanged, %d rejected",
             Path(path).name, report.inserted, report.updated, report.unchanged, len(report.errors))
    return report


# ------------------------------------------------------------------ one contact at a time (the console)
def _checked(values: Mapping[str, Any], default_region: str) -> Contact:
    """A contact from one item's values, checked as a contacts file's row is (InputError listing the problems)."""
    row, problem = item_values(dict(values))
    if row is None:
        raise InputError(f"the contact {problem}")
    contact, problems = build_contact(row, default_region)
    if contact is None:
        raise InputError("; ".join(problems))
    return contact


def create_contact(store: Repositories, values: Mapping[str, Any], *, now: datetime, by: str,
                   default_region: str = "FR") -> Contact:
    """A new contact from ``values`` (name, phone, language, timezone, tags, fields), checked as an import row is.

    InputError listing the problems (nothing stored); Conflict when a contact has this phone already.
    """
    contact = _checked(values, default_region)
    known = store.contacts.record_by_phone(contact.phone)
    if known is not None:
        raise Conflict(f"contact {known.id} has phone {mask_phone(contact.phone)!r} already: change that one")
    if store.contacts.upsert(contact, now) != "inserted":
        raise Conflict(f"a contact with phone {mask_phone(contact.phone)!r} was stored meanwhile")
    created = store.contacts.by_phone(contact.phone)
    assert created is not None  # just stored
    log.info("contact %s created by %s", created.id, by)
    audit.record(store, by=by, action="contact.create", contact_id=created.id, target=created.id, now=now)
    return created


def update_contact(store: Repositories, contact_id: str, changes: Mapping[str, Any], *, now: datetime, by: str,
                   default_region: str = "FR") -> Contact:
    """Change a contact's name, language, timezone, tags or fields (merged: a field set to null is removed),
    checked as an import row is; ``opted_out: true`` opts the client out (its follow-ups stop).

    The phone is not changed (replies find the client by it: create another contact). An opt-out is
    undone only by the client (writing START), never here. InputError (nothing changed) otherwise.
    """
    current = store.contacts.get(contact_id)
    if current is None:
        raise NotFound(f"no contact {contact_id!r}")
    changes = dict(changes)
    opt_out = changes.pop("opted_out", None)
    if opt_out is False and current.opted_out:
        raise InputError(f"contact {contact_id} opted out: only the client can undo it (by writing START)")
    phone = changes.pop("phone", None)
    if phone is not None and _checked({"name": current.name, "phone": phone}, default_region).phone != current.phone:
        raise InputError("a contact's phone cannot be changed (replies find the client by it): create another contact")
    fields: dict[str, Any] = dict(current.fields)
    for key, value in (changes.pop("fields", None) or {}).items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    merged = {"name": current.name, "phone": current.phone, "language": current.language.value,
              "timezone": current.timezone, "tags": current.tags, **changes, "fields": fields}
    updated = _checked(merged, default_region)
    store.contacts.upsert(updated, now)
    if opt_out and store.contacts.set_opt_out(contact_id, True, now):
        stopped = stop_contact(store, contact_id, reason=StopReason.OPT_OUT, now=now)
        log.info("contact %s opted out by %s", contact_id, by)
        audit.record(store, by=by, action="contact.opt_out", contact_id=contact_id, target=contact_id,
                     detail=f"{stopped} follow-up(s) stopped", now=now)
    found = store.contacts.get(contact_id)
    assert found is not None
    log.info("contact %s updated by %s", contact_id, by)
    if changes or fields != current.fields:
        audit.record(store, by=by, action="contact.update", contact_id=contact_id, target=contact_id,
                     detail=", ".join(sorted({*changes, *(["fields"] if fields != current.fields else [])})), now=now)
    return found
