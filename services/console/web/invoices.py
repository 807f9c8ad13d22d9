"""The invoices page ``/invoices``: filter by status, search, mark paid, cancel, and import an invoices file."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CheckedForm, CurrentUser, language, redirect, render
from services.console.web.refusals import refusal, say
from services.console.web.uploads import CheckedUpload, uploaded_file
from shared.domain.invoices import Invoice
from shared.domain.states import InvoiceStatus
from shared.errors import InputError
from shared.language.text import strip_accents
from shared.usecases.invoices import cancel_invoice, find_invoices, import_invoice_file, record_payment

MAX_SHOWN = 200

i18n.register({
    "invoices.title": ("Factures", "Invoices"),
    "invoices.search": ("Référence, client ou téléphone", "Reference, client or phone"),
    "invoices.status": ("Statut", "Status"),
    "invoices.all": ("Tous", "All"),
    "invoices.find": ("Chercher", "Search"),
    "invoices.reference": ("Référence", "Reference"),
    "invoices.client": ("Client", "Client"),
    "invoices.amount": ("Montant", "Amount"),
    "invoices.due": ("Reste dû", "Due"),
    "invoices.due_date": ("Échéance", "Due date"),
    "invoices.actions": ("Actions", "Actions"),
    "invoices.none": ("Aucune facture ne correspond : changez la recherche ou le statut.",
                      "No invoice matches: change the search or the status."),
    "invoices.empty": ("Aucune facture pour l'instant : importez un fichier de factures ci-dessous (ou relance "
                       "invoices import FICHIER, ou POST /api/v1/invoices).",
                       "No invoice yet: import an invoices file below (or relance invoices import FILE, or POST "
                       "/api/v1/invoices)."),
    "invoices.more": ("Seules les {count} premières sont affichées : précisez la recherche.",
                      "Only the first {count} are shown: refine the search."),
    "invoices.paid_amount": ("Montant payé (vide : tout)", "Amount paid (empty: all)"),
    "invoices.mark_paid": ("Marquer payée", "Mark paid"),
    "invoices.cancel": ("Annuler la facture", "Cancel the invoice"),
    "invoices.paid_done": ("Paiement enregistré pour {ref}.", "Payment recorded for {ref}."),
    "invoices.cancel_done": ("Facture {ref} annulée.", "Invoice {ref} cancelled."),
    "invoice.status.open": ("ouverte", "open"),
    "invoice.status.partially_paid": ("payée en partie", "partly paid"),
    "invoice.status.paid": ("payée", "paid"),
    "invoice.status.cancelled": ("annulée", "cancelled"),
    "invoice.status.disputed": ("contestée", "disputed"),
    "invoice.status.claimed_paid": ("payée selon le client", "claimed paid"),
    "import.invoices_help": ("CSV ou JSON avec les colonnes phone, invoice et amount (name, due_date, "
                             "payment_link, status… en option), comme relance invoices import. Si une ligne est "
                             "refusée, rien n'est importé.",
                             "CSV or JSON with the columns phone, invoice and amount (name, due_date, payment_link, "
                             "status… optional), as relance invoices import. If a line is refused, nothing is "
                             "imported."),
    "import.invoices_done": ("Import terminé : {created} nouvelle(s), {updated} mise(s) à jour, {unchanged} "
                             "inchangée(s), {clients} nouveau(x) client(s).",
                             "Import done: {created} new, {updated} updated, {unchanged} unchanged, {clients} new "
                             "client(s)."),
})

DONE = {"paid": "invoices.paid_done", "cancelled": "invoices.cancel_done"}


def _folded(text: str) -> str:
    return strip_accents(text).casefold()


def _search(console: Console, invoices: list[Invoice], q: str) -> tuple[list[tuple[Invoice, str, str]], bool]:
    """The invoices (with their client's name and phone) whose reference, client name or phone matches ``q``."""
    store = console.store
    clients: dict[str, tuple[str, str]] = {}
    digits = "".join(ch for ch in q if ch.isdigit())
    shown: list[tuple[Invoice, str, str]] = []
    for invoice in invoices:
        if invoice.contact_id not in clients:
            record = store.contacts.record(invoice.contact_id)
            clients[invoice.contact_id] = (record.name or "?", record.phone or "?") if record else ("?", "?")
        name, phone = clients[invoice.contact_id]
        if q and not (_folded(q) in _folded(invoice.reference) or _folded(q) in _folded(name)
                      or (len(digits) >= 3 and digits.lstrip("0") in phone)):
            continue
        shown.append((invoice, name, phone))
    return shown[:MAX_SHOWN], len(shown) > MAX_SHOWN


def _page(request: Request, console: Console, *, q: str = "", status: str = "", status_code: int = 200,
          **extra: Any) -> Response:
    error = extra.pop("error", None)
    try:
        invoices = find_invoices(console.store, status=status or None)
    except InputError as exc:
        invoices, error, status, status_code = find_invoices(console.store), refusal(exc, language(request)), "", 400
    rows, more = _search(console, invoices, q.strip())
    return render(request, "invoices/index.html", {
        "q": q, "status": status, "statuses": [s.value for s in InvoiceStatus], "rows": rows, "more": more,
        "error": error, **extra}, status=status_code)


def router(console: Console) -> APIRouter:
    """``/invoices``, its actions and ``/invoices/import``."""
    pages = APIRouter(include_in_schema=False)
    store = console.store

    @pages.get("/invoices")
    def invoices(request: Request, session: CurrentUser, q: str = "", status: str = "", done: str = "",
                 ref: str = "") -> Response:
        notice = i18n.translate(DONE[done], language(request), ref=ref[:64]) if done in DONE else None
        return _page(request, console, q=q[:200], status=status, notice=notice)

    @pages.post("/invoices/{reference}/paid")
    def paid(reference: str, request: Request, session: CurrentUser, form: CheckedForm) -> Response:
        amount = str(form.get("amount") or "").strip() or None
        due = str(form.get("due") or "")  # the amount due the page showed: a form sent twice pays once
        try:
            record_payment(store, reference, now=console.clock.now(), amount=amount, queue=console.queue,
                           by=f"user:{session.email}", due_was=int(due) if due.isdigit() and len(due) < 16 else None)
        except InputError as exc:
            return _page(request, console, error=refusal(exc, language(request)), status_code=400)
        return redirect(f"/invoices?done=paid&ref={quote(reference, safe='')}")

    @pages.post("/invoices/{reference}/cancel")
    def cancel(reference: str, request: Request, session: CurrentUser, form: CheckedForm) -> Response:
        try:
            cancel_invoice(store, reference, now=console.clock.now(), queue=console.queue, by=f"user:{session.email}")
        except InputError as exc:
            return _page(request, console, error=refusal(exc, language(request)), status_code=400)
        return redirect(f"/invoices?done=cancelled&ref={quote(reference, safe='')}")

    @pages.post("/invoices/import")
    def import_file(request: Request, session: CurrentUser, form: CheckedUpload) -> Response:
        lang = language(request)
        try:
            with uploaded_file(form, "file", lang) as path:
                done = import_invoice_file(store, path, now=console.clock.now(), by=f"user:{session.email}",
                                           default_region=console.default_region, queue=console.queue,
                                           all_or_nothing=True)
        except InputError as exc:
            return _page(request, console, import_errors=[refusal(exc, language(request))], status_code=400)
        report = done.report
        if not report.applied:
            lines = [say(e, language(request)) for e in report.errors]
            return _page(request, console, import_errors=lines, status_code=400)
        notice = i18n.translate("import.invoices_done", lang, created=report.created, updated=report.updated,
                                unchanged=report.unchanged, clients=report.clients_created)
        return _page(request, console, notice=notice, import_notes=report.notes)

    return pages
