"""Importing contacts: the valid rows of a contacts file upserted by phone (``relance contacts import``).

Reading and checking the file is :mod:`shared.importing`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shared.domain.repositories import Repositories
from shared.importing import open_contacts

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
) -> ImportReport:
    """Import a contacts file: valid rows are upserted by phone, bad rows skipped and reported.

    Idempotent: importing the same file again leaves every contact unchanged. The file is
    fully checked (readable, header, required columns) before anything is written.
    """
    source = open_contacts(Path(path))
    total = source.total
    report = ImportReport()
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
