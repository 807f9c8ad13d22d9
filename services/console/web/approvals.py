"""The approvals pages: ``/approvals`` (the drafts waiting for a person, approved or rejected one by one or
in bulk) and ``/approvals/{id}`` (one draft: approve, edit, reject with a reason). No JavaScript: one
form per action, the bulk form's checkboxes and buttons (a row's own approve button posts the same form
to that row's address). Every decision goes through :mod:`shared.usecases.approvals` (audited there).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CheckedForm, CurrentUser, language, redirect, render
from services.console.web.refusals import facts, refusal
from shared.domain.models import OutboundMessage
from shared.errors import InputError, NotFound
from shared.usecases import approvals
from shared.usecases.approvals import NotWaiting, Refused, WindowClosed

i18n.register({
    "approvals.title": ("Messages à valider", "Drafts to approve"),
    "approvals.intro": ("Les campagnes en « approval: required » attendent votre accord avant chaque envoi. "
                        "Un message validé part comme les autres (plage horaire, désinscription, rythme).",
                        "Campaigns with “approval: required” wait for your approval before each message. "
                        "An approved message goes out as any other (send window, opt-out, pacing)."),
    "approvals.none": ("Aucun message n'attend de validation. Seules les campagnes en « approval: required » en "
                       "demandent : chaque brouillon attend alors ici votre accord.",
                       "No draft waits for approval. Only campaigns with “approval: required” ask for it: each "
                       "draft then waits here for you."),
    "approvals.client": ("Client", "Client"),
    "approvals.campaign": ("Campagne", "Campaign"),
    "approvals.step": ("Étape", "Step"),
    "approvals.step_of": ("{step} sur {count}", "{step} of {count}"),
    "approvals.message": ("Message", "Message"),
    "approvals.since": ("En attente depuis", "Waiting since"),
    "approvals.kind.freeform": ("texte libre (fenêtre de 24 h ouverte)", "free text (24-hour window open)"),
    "approvals.kind.template": ("modèle approuvé", "approved template"),
    "approvals.window_closes": ("La fenêtre de 24 h se ferme le {when} : ensuite ce message sera remplacé par "
                                "le modèle de l'étape.",
                                "The 24-hour window closes on {when}: after that this draft is replaced by the "
                                "step's template."),
    "approvals.edited_by": ("Modifié par {who}", "Edited by {who}"),
    "approvals.select": ("Sélectionner {id}", "Select {id}"),
    "approvals.approve": ("Valider", "Approve"),
    "approvals.open": ("Modifier ou refuser", "Edit or reject"),
    "approvals.approve_selected": ("Valider la sélection", "Approve selected"),
    "approvals.reject_selected": ("Refuser la sélection", "Reject selected"),
    "approvals.reason": ("Motif du refus", "Reason for rejecting"),
    "approvals.reason_help": ("Obligatoire pour refuser ; conservé avec le message.",
                              "Required to reject; kept with the message."),
    "approvals.bulk": ("Plusieurs à la fois", "Several at once"),
    "approvals.next": ("Page suivante", "Next page"),
    "approvals.back": ("Retour aux messages à valider", "Back to the drafts to approve"),
    "approvals.edit": ("Modifier le texte", "Edit the text"),
    "approvals.edit_help": ("Le texte modifié est vérifié comme un brouillon : montants, dates, références et "
                            "liens doivent venir des données du client ; rien que seule l'entreprise peut accorder.",
                            "The edited text is checked as a draft is: amounts, dates, references and links must "
                            "come from the client's data; nothing only the business may grant."),
    "approvals.save": ("Enregistrer", "Save"),
    "approvals.save_approve": ("Enregistrer et valider", "Save and approve"),
    "approvals.reject": ("Refuser", "Reject"),
    "approvals.reject_help": ("Le message ne sera jamais envoyé ; le suivi passe à l'étape suivante (ou se "
                              "termine si c'était la dernière).",
                              "The message is never sent; the follow-up moves on to its next step (or ends if this "
                              "was its last)."),
    "approvals.template_note": ("Ce message est le modèle approuvé de l'étape : son texte ne peut pas être modifié.",
                                "This draft is the step's approved template: its text cannot be changed."),
    "approvals.state": ("Ce message n'attend plus de validation (état : {state}).",
                        "This draft no longer waits for approval (state: {state})."),
    "approvals.done.approved": ("Message validé : il part dès que les règles d'envoi le permettent.",
                                "Draft approved: it goes out as soon as the sending rules allow."),
    "approvals.done.edited": ("Texte enregistré ; le message attend toujours votre validation.",
                              "Text saved; the draft still waits for your approval."),
    "approvals.done.rejected": ("Message refusé : il ne sera pas envoyé.", "Draft rejected: it will not be sent."),
    "approvals.results": ("Résultat", "Result"),
    "approvals.outcome.done": ("fait", "done"),
    "approvals.outcome.not_waiting": ("n'attendait plus de validation", "was no longer waiting"),
    "approvals.outcome.unknown": ("inconnu", "unknown"),
    "approvals.outcome.refused": ("fenêtre de 24 h fermée : remplacé par le modèle, à relire",
                                  "24-hour window closed: replaced by the template, to read again"),
    "approvals.err.unknown": ("Ce message n'existe pas.", "There is no such draft."),
    "approvals.err.not_waiting": ("Ce message n'attend plus de validation : quelqu'un l'a déjà traité, ou le client "
                                  "a répondu, payé ou s'est désinscrit.",
                                  "This draft no longer waits for approval: someone dealt with it already, or the "
                                  "client replied, paid or opted out."),
    "approvals.err.window": ("La fenêtre de 24 h du client s'est fermée : le message a été remplacé par le modèle de "
                             "l'étape (ou retiré s'il n'y en a pas). Relisez-le avant de valider.",
                             "The client's 24-hour window has closed: the draft was replaced by the step's template "
                             "(or withdrawn when there is none). Read it again before approving."),
    "approvals.err.empty": ("Le texte est vide.", "The text is empty."),
    "approvals.err.too_long": ("Le texte fait {length} caractères ; {limit} au plus.",
                               "The text is {length} characters long; at most {limit}."),
    "approvals.err.template": ("Le texte d'un modèle approuvé ne peut pas être modifié.",
                               "An approved template's text cannot be changed."),
    "approvals.err.facts": ("Le texte ne passe pas la vérification des faits ({problems}) : rien n'a été modifié.",
                            "The text fails the facts check ({problems}): nothing was changed."),
    "approvals.err.no_reason": ("Indiquez un motif pour refuser.", "Give a reason to reject."),
    "approvals.err.reason_too_long": ("Le motif fait {length} caractères ; {limit} au plus.",
                                      "The reason is {length} characters long; at most {limit}."),
    "approvals.err.no_ids": ("Cochez au moins un message.", "Tick at least one draft."),
    "approvals.err.too_many": ("{count} messages cochés ; {limit} au plus à la fois.",
                               "{count} drafts ticked; at most {limit} at once."),
})

PAGE_SIZE = 50
DONE = ("approved", "edited", "rejected")


def _error(request: Request, exc: InputError) -> str:
    """The refusal in the reader's language."""
    lang = language(request)
    if isinstance(exc, NotFound):
        return i18n.translate("approvals.err.unknown", lang)
    if isinstance(exc, WindowClosed):
        return i18n.translate("approvals.err.window", lang)
    if isinstance(exc, NotWaiting):
        return i18n.translate("approvals.err.not_waiting", lang)
    if isinstance(exc, Refused) and exc.code in ("empty", "too_long", "template", "facts", "no_reason",
                                                 "reason_too_long", "no_ids", "too_many"):
        params = dict(exc.params)
        if "facts" in params:
            params["problems"] = facts(params.pop("facts"), lang)  # type: ignore[arg-type]
        return i18n.translate(f"approvals.err.{exc.code}", lang, **params)
    return refusal(exc, lang)


def _status(exc: InputError) -> int:
    if isinstance(exc, NotFound):
        return 404
    return 409 if isinstance(exc, NotWaiting | WindowClosed) else 400


def _by(session: Any) -> str:
    return f"user:{session.email}"


def router(console: Console) -> APIRouter:
    """``/approvals`` and ``/approvals/{id}``."""
    pages = APIRouter(include_in_schema=False)
    store = console.store

    def listing(request: Request, *, after: str | None = None, error: str | None = None,
                results: list[approvals.BulkItem] | None = None, reason: str = "", status: int = 200) -> Response:
        page = approvals.list_waiting(store, after=after, limit=PAGE_SIZE)
        done = request.query_params.get("done")
        return render(request, "approvals/index.html", {
            "drafts": page.items, "next_after": page.next_after, "error": error, "results": results,
            "reason": reason, "done": done if done in DONE else None, "path": _path}, status=status)

    def detail(request: Request, message_id: str, *, error: str | None = None, body: str | None = None,
               reason: str = "", status: int = 200) -> Response:
        message = store.messages.get(message_id)
        if message is None or message.purpose != "step":
            return listing(request, error=i18n.translate("approvals.err.unknown", language(request)), status=404)
        contact = store.contacts.get(message.contact_id or "")
        campaign = store.campaigns.get(message.campaign_id or "")
        done = request.query_params.get("done")
        return render(request, "approvals/detail.html", {
            "message": message, "waiting": _waiting(message), "contact": contact, "campaign": campaign,
            "body": message.body if body is None else body, "reason": reason, "error": error,
            "done": done if done in DONE else None, "path": _path}, status=status)

    @pages.get("/approvals")
    def index(request: Request, session: CurrentUser, after: str | None = None) -> Response:
        return listing(request, after=after)

    @pages.post("/approvals/bulk")
    def bulk(request: Request, session: CurrentUser, form: CheckedForm) -> Response:
        action = str(form.get("action") or "")
        reason = str(form.get("reason") or "")
        ids = [str(value) for value in form.getlist("ids")]
        try:
            results = approvals.bulk(store, console.queue, "reject" if action == "reject" else "approve", ids,
                                     by=_by(session), now=console.clock.now(), reason=reason, rules=console.rules)
        except InputError as exc:
            return listing(request, error=_error(request, exc), reason=reason, status=_status(exc))
        return listing(request, results=results)

    @pages.get("/approvals/{message_id}")
    def one(request: Request, message_id: str, session: CurrentUser) -> Response:
        return detail(request, message_id)

    @pages.post("/approvals/{message_id}/approve")
    def approve(request: Request, message_id: str, session: CurrentUser, form: CheckedForm) -> Response:
        try:
            approvals.approve(store, console.queue, message_id, by=_by(session), now=console.clock.now(),
                              rules=console.rules)
        except InputError as exc:
            return detail(request, message_id, error=_error(request, exc), status=_status(exc))
        return redirect("/approvals?done=approved")

    @pages.post("/approvals/{message_id}/edit")
    def edit(request: Request, message_id: str, session: CurrentUser, form: CheckedForm) -> Response:
        body = str(form.get("body") or "")
        then_approve = form.get("then") == "approve"
        try:
            approvals.edit(store, console.rules, message_id, body, by=_by(session), now=console.clock.now(),
                           then_approve=then_approve, queue=console.queue)
        except InputError as exc:
            return detail(request, message_id, error=_error(request, exc), body=body, status=_status(exc))
        if then_approve:
            return redirect("/approvals?done=approved")
        return redirect(f"{_path(message_id)}?done=edited")

    @pages.post("/approvals/{message_id}/reject")
    def reject(request: Request, message_id: str, session: CurrentUser, form: CheckedForm) -> Response:
        reason = str(form.get("reason") or "")
        try:
            approvals.reject(store, message_id, reason=reason, by=_by(session), now=console.clock.now())
        except InputError as exc:
            return detail(request, message_id, error=_error(request, exc), reason=reason, status=_status(exc))
        return redirect("/approvals?done=rejected")

    return pages


def _path(message_id: str) -> str:
    """The address of a draft's page (its id quoted: ``c1:ct1:0``)."""
    return f"/approvals/{quote(message_id, safe='')}"


def _waiting(message: OutboundMessage) -> bool:
    return message.state.value == "awaiting_approval"
