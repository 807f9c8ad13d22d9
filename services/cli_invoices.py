"""``relance invoices …``: import (and sync), list, paid, cancel. Registered by :mod:`services.cli`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.terminal import printable
from shared.clock import SystemClock
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.domain.repositories import Repositories
    from shared.ports import TaskQueue


def add_parser(sub: Any) -> None:
    """Add ``invoices`` and its tasks to the ``relance`` sub-commands."""
    p = sub.add_parser("invoices", help="manage invoices (docs/invoices.md)")
    isub = p.add_subparsers(dest="invoices_command", required=True, metavar="TASK")
    q = isub.add_parser("import", help="import invoices from a CSV or JSON file")
    q.add_argument("file", type=Path)
    q.add_argument("--sync", action="store_true", help="the file is the complete list of unpaid invoices: "
                                                       "close as paid every unpaid invoice it does not list")
    q.set_defaults(func=cmd_invoices_import)
    q = isub.add_parser("list", help="list invoices")
    q.add_argument("--status", help="only invoices in this status (open, partially_paid, paid, cancelled, "
                                    "disputed, claimed_paid)")
    q.add_argument("--phone", help="only this client's invoices")
    q.set_defaults(func=cmd_invoices_list)
    q = isub.add_parser("paid", help="record a payment of an invoice (all that is due, or --amount)")
    q.add_argument("reference")
    q.add_argument("--amount", help="a partial payment: lowers the amount due")
    q.set_defaults(func=cmd_invoices_paid)
    q = isub.add_parser("cancel", help="cancel an unpaid invoice")
    q.add_argument("reference")
    q.set_defaults(func=cmd_invoices_cancel)


def _store(settings: Settings) -> Repositories:
    """The store, its indexes created and the contacts' invoice fields migrated."""
    from services.bootstrap import build_store
    from shared.usecases.invoices import migrate_contact_invoices

    _, store = build_store(settings)
    store.ensure_indexes()
    migrate_contact_invoices(store, now=SystemClock().now())
    return store


def _queue(settings: Settings) -> TaskQueue:
    """Where a reminder withdrawn because its invoices changed is asked to be drafted again (Redis)."""
    from services.bootstrap import build_task_queue

    return build_task_queue(settings)


def cmd_invoices_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import invoices; bad rows are listed with their line and skipped (exit 1 when any was)."""
    from shared.usecases.invoices import import_invoice_file

    store = _store(settings)
    done = import_invoice_file(store, args.file, now=SystemClock().now(), by="cli",
                               default_region=settings.default_country, sync=args.sync, queue=_queue(settings))
    report = done.report
    for error in report.errors:
        print(printable(f"skipped {error}"), file=sys.stderr)
    for note in report.notes:
        print(printable(f"note: {note}"), file=sys.stderr)
    print(f"invoices: {report.created} new, {report.updated} updated, {report.unchanged} unchanged, "
          f"{len(report.errors)} skipped; {report.clients_created} new client(s)")
    if args.sync:
        if report.sync_refused:
            print(printable(f"sync not applied: {report.sync_refused}"), file=sys.stderr)
        else:
            closed = report.closed_by_sync
            print(printable(f"sync: {len(closed)} invoice(s) closed as paid" + (f": {', '.join(closed)}" if closed
                                                                                 else "")))
    for campaign_id, enrolled in done.enrolled.items():
        if enrolled:
            print(f"campaign {campaign_id}: {enrolled} client(s) enrolled")
    return 0 if not report.errors and not report.sync_refused else 1


def cmd_invoices_list(settings: Settings, args: argparse.Namespace) -> int:
    """List invoices, by reference."""
    from shared.usecases.invoices import list_invoices

    lines = list_invoices(_store(settings), status=args.status, phone=args.phone,
                          default_region=settings.default_country)
    if not lines:
        print("no invoices")
    for line in lines:
        print(printable(line))
    return 0


def cmd_invoices_paid(settings: Settings, args: argparse.Namespace) -> int:
    """Record a payment (whole, or a part with --amount)."""
    from shared.usecases.invoices import invoice_line, record_payment

    invoice = record_payment(_store(settings), args.reference, now=SystemClock().now(), amount=args.amount,
                             queue=_queue(settings))
    print(printable(invoice_line(invoice, "recorded")))
    return 0


def cmd_invoices_cancel(settings: Settings, args: argparse.Namespace) -> int:
    """Cancel an unpaid invoice."""
    from shared.usecases.invoices import cancel_invoice, invoice_line

    invoice = cancel_invoice(_store(settings), args.reference, now=SystemClock().now(), queue=_queue(settings))
    print(printable(invoice_line(invoice, "recorded")))
    return 0
