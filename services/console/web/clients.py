"""The clients page ``/clients``: search by name or phone, filter by status, and import a contacts file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CurrentUser, language, render
from services.console.web.refusals import refusal, say
from services.console.web.uploads import CheckedUpload, uploaded_file
from shared.errors import InputError
from shared.usecases import audit
from shared.usecases.clients import MAX_CLIENTS, STATUSES, find_clients
from shared.usecases.contacts import ImportReport, import_contacts

i18n.register({
    "clients.title": ("Clients", "Clients"),
    "clients.search": ("Nom ou téléphone", "Name or phone"),
    "clients.status": ("Statut", "Status"),
    "clients.all": ("Tous", "All"),
    "clients.status.followups": ("Relances en cours", "Follow-ups running"),
    "clients.status.needs_human": ("Attend une personne", "Needs a person"),
    "clients.status.opted_out": ("Désinscrits", "Opted out"),
    "clients.status.invoices_due": ("Factures dues", "Invoices due"),
    "clients.find": ("Chercher", "Search"),
    "clients.name": ("Client", "Client"),
    "clients.phone": ("Téléphone", "Phone"),
    "clients.followups": ("Relances", "Follow-ups"),
    "clients.due": ("Dû", "Due"),
    "clients.none": ("Aucun client ne correspond : changez la recherche ou le statut.",
                     "No client matches: change the search or the status."),
    "clients.empty": ("Aucun client pour l'instant : importez un fichier de contacts ci-dessous (ou relance contacts "
                      "import FICHIER, ou POST /api/v1/contacts).",
                      "No client yet: import a contacts file below (or relance contacts import FILE, or POST "
                      "/api/v1/contacts)."),
    "clients.pages": ("Page {page} sur {pages} ({total} clients)", "Page {page} of {pages} ({total} clients)"),
    "clients.previous": ("← Page précédente", "← Previous page"),
    "clients.next": ("Page suivante →", "Next page →"),
    "clients.opted_out": ("désinscrit", "opted out"),
    "clients.person": ("attend une personne", "needs a person"),
    "clients.invoices": ("{count} facture(s)", "{count} invoice(s)"),
    "import.contacts_help": ("CSV ou JSON avec les colonnes name et phone (language, timezone, tags et vos "
                             "champs en option). Si une ligne est refusée, rien n'est importé.",
                             "CSV or JSON with the columns name and phone (language, timezone, tags and your "
                             "fields optional). If a line is refused, nothing is imported."),
    "import.contacts_done": ("Import terminé : {inserted} nouveau(x), {updated} mis à jour, {unchanged} inchangé(s).",
                             "Import done: {inserted} new, {updated} updated, {unchanged} unchanged."),
})


def _page(request: Request, console: Console, *, q: str, status: str | None, page: str = "1",
          **extra: Any) -> Response:
    try:
        number = int(page) if page.strip().isdigit() else 0
        found = find_clients(console.store, query=q, status=status or None, page=number or _bad_page(page),
                             default_region=console.default_region)
    except InputError as exc:
        return render(request, "clients/index.html", {"q": q, "status": "", "statuses": STATUSES, "lines": [],
                                                      "more": False, "page": 1, "pages": 1, "total": 0,
                                                      "error": refusal(exc, language(request)), **extra}, status=400)
    pages = max(1, -(-found.total // MAX_CLIENTS))
    return render(request, "clients/index.html", {"q": q, "status": status or "", "statuses": STATUSES,
                                                  "lines": found.lines, "more": found.more, "page": found.page,
                                                  "pages": pages, "total": found.total, **extra},
                  status=400 if extra.get("error") or extra.get("import_errors") else 200)


def _bad_page(page: str) -> int:
    raise InputError(f"page {page[:20]!r} is not a page number (1, 2, ...)", code="filter.page", page=page[:20])


def router(console: Console) -> APIRouter:
    """``/clients`` and ``/clients/import``."""
    pages = APIRouter(include_in_schema=False)

    @pages.get("/clients")
    def clients(request: Request, session: CurrentUser, q: str = "", status: str = "", page: str = "1") -> Response:
        return _page(request, console, q=q[:200], status=status or None, page=page)

    @pages.post("/clients/import")
    def import_file(request: Request, session: CurrentUser, form: CheckedUpload) -> Response:
        lang = language(request)
        now = console.clock.now()
        try:
            with uploaded_file(form, "file", lang) as path:
                report: ImportReport = import_contacts(console.store, path, now=now,
                                                       default_region=console.default_region, all_or_nothing=True)
                name = path.name
        except InputError as exc:
            return _page(request, console, q="", status=None, import_errors=[refusal(exc, language(request))])
        if not report.applied:
            lines = [say(e, language(request)) for e in report.errors]
            return _page(request, console, q="", status=None, import_errors=lines)
        audit.record(console.store, by=f"user:{session.email}", action="contacts.import", target=name,
                     detail=f"{report.inserted} new, {report.updated} updated", now=now)
        notice = i18n.translate("import.contacts_done", lang, inserted=report.inserted, updated=report.updated,
                                unchanged=report.unchanged)
        return _page(request, console, q="", status=None, notice=notice)

    return pages
