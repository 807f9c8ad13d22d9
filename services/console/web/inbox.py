"""The inbox ``/inbox`` and a conversation's page ``/conversations/{phone}``, with its actions.

The inbox lists the conversations waiting for a person first (with the reason and since when),
then the recent ones. A conversation's page shows the whole timeline (messages in and out with
their statuses, follow-ups, invoices), the client's audit entries, and the forms: close the
hand-over, resume, stop, reply by hand. Each action goes through the use cases of the API and the
CLI (:mod:`shared.usecases.inbox`, :mod:`shared.usecases.manual_reply`) and is audited as
``user:<email>``; a refusal shows the page again with the message next to its form.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CheckedForm, CurrentUser, language, redirect, render
from services.console.web.refusals import facts, refusal
from shared.domain.reasons import HandledAction
from shared.errors import InputError, NotFound
from shared.phones import normalise_phone
from shared.usecases import inbox
from shared.usecases.conversations import conversations
from shared.usecases.manual_reply import Refusal, ReplyRefused, reply_by_hand

i18n.register({
    "inbox.title": ("Boîte de réception", "Inbox"),
    "inbox.waiting": ("À traiter par une personne", "Waiting for a person"),
    "inbox.waiting_none": ("Aucune conversation n'attend une personne. Quand un client conteste, pose une question "
                           "sans réponse ou dit avoir payé, sa conversation arrive ici.",
                           "No conversation is waiting for a person. When a client disputes, asks what the data "
                           "cannot answer or says they paid, the conversation comes here."),
    "inbox.recent": ("Conversations récentes", "Recent conversations"),
    "inbox.recent_none": ("Aucune conversation pour l'instant : les réponses des clients s'affichent ici dès "
                          "qu'une campagne leur a écrit (page Campagnes).",
                          "No conversation yet: the clients' replies show here once a campaign has written to them "
                          "(Campaigns page)."),
    "inbox.client": ("Client", "Client"),
    "inbox.reason": ("Raison", "Reason"),
    "inbox.since": ("Depuis", "Since"),
    "inbox.followups": ("Relances", "Follow-ups"),
    "inbox.last_reply": ("Dernier message du client", "Client's last message"),
    "inbox.unknown": ("numéro inconnu", "unknown number"),
    "inbox.unknown_messages": ("{count} message(s) non traité(s)", "{count} message(s) not handled"),
    "conv.title": ("Conversation avec {name}", "Conversation with {name}"),
    "conv.back": ("← Boîte de réception", "← Inbox"),
    "conv.missing": ("Aucun client avec ce numéro, et aucun message reçu de ce numéro.",
                     "No client with this number, and no message received from it."),
    "conv.bad_phone": ("Ce numéro de téléphone n'est pas valide.", "This phone number is not valid."),
    "conv.opted_out": ("Ce client a demandé à ne plus recevoir de messages (STOP).",
                       "This client asked to receive no more messages (STOP)."),
    "conv.unreadable": ("Fiche client illisible : {problem}", "Unreadable client record: {problem}"),
    "conv.not_contact": ("Ce numéro n'est pas un client : importez-le dans un fichier de contacts pour le relancer.",
                         "This number is not a client: import it in a contacts file to follow it up."),
    "conv.waiting": ("Attend une personne depuis le {since} : {reasons}",
                     "Waiting for a person since {since}: {reasons}"),
    "conv.not_waiting": ("Aucune intervention en attente.", "Nothing waiting for a person."),
    "conv.window_open": ("Fenêtre WhatsApp de 24 h ouverte jusqu'au {until} : la réponse part en texte libre.",
                         "24-hour WhatsApp window open until {until}: the reply goes as free text."),
    "conv.window_closed": ("Hors de la fenêtre WhatsApp de 24 h : seul le modèle approuvé peut partir.",
                           "Outside the 24-hour WhatsApp window: only the approved template can go."),
    "conv.timeline": ("Messages", "Messages"),
    "conv.timeline_none": ("Aucun message.", "No message."),
    "conv.in": ("Reçu", "Received"),
    "conv.out": ("Envoyé", "Sent"),
    "conv.media": ("[pièce jointe]", "[attachment]"),
    "conv.error": ("erreur {code}", "error {code}"),
    "purpose.step": ("relance, étape {step}", "follow-up, step {step}"),
    "purpose.reply": ("réponse automatique", "automated reply"),
    "purpose.alert": ("alerte", "alert"),
    "purpose.manual": ("écrit à la main", "written by hand"),
    "conv.template": ("modèle", "template"),
    "conv.followups": ("Relances", "Follow-ups"),
    "conv.followup": ("{campaign} : {state}, prochaine étape {step}", "{campaign}: {state}, next step {step}"),
    "conv.invoices": ("Factures", "Invoices"),
    "conv.invoice": ("Facture", "Invoice"),
    "conv.due": ("Reste dû", "Still due"),
    "conv.due_date": ("Échéance", "Due date"),
    "conv.status": ("Statut", "Status"),
    "conv.audit": ("Journal des actions", "Audit log"),
    "conv.audit_none": ("Aucune action enregistrée.", "No action recorded."),
    "conv.who": ("Qui", "Who"),
    "conv.what": ("Quoi", "What"),
    "conv.when": ("Quand", "When"),
    "conv.actions": ("Intervention", "Hand-over"),
    "conv.close": ("Clore (relances inchangées)", "Close (follow-ups unchanged)"),
    "conv.resume": ("Clore et reprendre les relances", "Close and resume the follow-ups"),
    "conv.stop": ("Clore et arrêter les relances", "Close and stop the follow-ups"),
    "conv.reply": ("Répondre à la main", "Reply by hand"),
    "conv.reply_text": ("Votre message", "Your message"),
    "conv.reply_send": ("Envoyer", "Send"),
    "conv.reply_hint": ("Vérifié comme tout message : montants, dates, références et liens du client seulement ; "
                        "ni remise, ni échéancier, ni délai.",
                        "Checked as any message: the client's own amounts, dates, references and links only; "
                        "no discount, payment plan or extra time."),
    "conv.no_reply": ("Impossible d'écrire à ce client.", "This client cannot be written to."),
    "done.handover.close": ("Intervention close.", "Hand-over closed."),
    "done.handover.resume": ("Intervention close, relances reprises.", "Hand-over closed, follow-ups resumed."),
    "done.handover.stop": ("Intervention close, relances arrêtées.", "Hand-over closed, follow-ups stopped."),
    "done.reply": ("Message enregistré : il part dans un instant.", "Message stored: it goes out in a moment."),
    "done.duplicate": ("Ce message était déjà enregistré : il n'est pas envoyé deux fois.",
                       "This message was stored already: it is not sent twice."),
    "refused.opted_out": ("Ce client a envoyé STOP : aucun message ne lui est envoyé tant qu'il n'écrit pas START.",
                          "This client sent STOP: nothing is sent to them until they write START."),
    "refused.outside_window_no_template": (
        "Le client n'a pas écrit depuis plus de 24 h : WhatsApp n'accepte alors qu'un modèle approuvé. "
        "Renseignez MANUAL_REPLY_TEMPLATE_SID (un modèle approuvé : variable 1 le nom du client, "
        "variable 2 votre texte).",
        "The client has not written in the last 24 hours: WhatsApp then accepts only an approved template. "
        "Set MANUAL_REPLY_TEMPLATE_SID (an approved template: variable 1 the client's name, "
        "variable 2 your text)."),
    "refused.facts_check": ("Message refusé par la vérification des faits : {detail}",
                            "Message refused by the facts check: {detail}"),
    "refused.other": ("Refusé : {detail}", "Refused: {detail}"),
})

ACTIONS = {"close": HandledAction.KEEP, "resume": HandledAction.RESUME, "stop": HandledAction.STOP}
REFUSAL_STATUS = {Refusal.EMPTY: 422, Refusal.TOO_LONG: 422, Refusal.FACTS: 422, Refusal.OPTED_OUT: 409,
                  Refusal.OUTSIDE_WINDOW: 409}


def _path(phone: str) -> str:
    return f"/conversations/{quote(phone, safe='')}"


def router(console: Console) -> APIRouter:
    """``/inbox``, ``/conversations/{phone}`` and its two forms."""
    pages = APIRouter(include_in_schema=False)
    store = console.store

    def by(session: Any) -> str:
        return f"user:{session.email}"

    def phone_of(raw: str) -> str | None:
        try:
            return normalise_phone(raw, console.default_region)
        except InputError:
            return None

    def page(request: Request, raw: str, *, status: int = 200, **extra: Any) -> Response:
        """The conversation page of ``raw`` (its 404 page when there is none), with ``extra`` (a form's error)."""
        phone = phone_of(raw)
        if phone is None:
            return render(request, "inbox/missing.html", {"message_key": "conv.bad_phone"}, status=404)
        try:
            view = inbox.conversation(store, phone, now=console.clock.now())
        except NotFound:
            return render(request, "inbox/missing.html", {"message_key": "conv.missing"}, status=404)
        context = {"view": view, "phone": phone, "path": _path(phone), "form_token": secrets.token_urlsafe(16),
                   "done": request.query_params.get("done"), "reply_text": "", "reply_error": None,
                   "handover_error": None, "template_set": bool(console.rules.manual_reply_template_sid), **extra}
        return render(request, "inbox/conversation.html", context, status=status)

    @pages.get("/inbox")
    def inbox_page(request: Request, session: CurrentUser) -> Response:
        waiting = inbox.waiting(store, limit=100)
        shown = {item.phone for item in waiting}
        recent = [row for row in conversations(store, limit=50) if row.phone not in shown]
        return render(request, "inbox/index.html", {"waiting": waiting, "recent": recent, "path_of": _path})

    @pages.get("/conversations/{phone}")
    def conversation_page(phone: str, request: Request, session: CurrentUser) -> Response:
        return page(request, phone)

    @pages.post("/conversations/{phone}/handover")
    def handover(phone: str, request: Request, session: CurrentUser, form: CheckedForm) -> Response:
        number = phone_of(phone)
        action = ACTIONS.get(str(form.get("action") or ""))
        if number is None or action is None:
            return page(request, phone, status=400, handover_error=i18n.translate(
                "refused.other", language(request), detail=str(form.get("action") or "?")))
        try:
            closed = inbox.close(store, number, action=action, by=by(session), now=console.clock.now())
        except NotFound:
            return page(request, phone)
        except InputError as exc:
            return page(request, phone, status=400,
                        handover_error=refusal(exc, language(request)))
        return redirect(f"{_path(number)}?done={inbox.AUDIT_ACTIONS[closed.action]}")

    @pages.post("/conversations/{phone}/reply")
    def reply(phone: str, request: Request, session: CurrentUser, form: CheckedForm) -> Response:
        number = phone_of(phone)
        text = str(form.get("body") or "")
        if number is None:
            return page(request, phone)
        token = str(form.get("form_token") or "")[:100] or None
        try:
            done = reply_by_hand(store, console.queue, console.rules, number, body=text, by=by(session),
                                 now=console.clock.now(), request_key=token)
        except NotFound:
            return page(request, phone)
        except ReplyRefused as exc:
            lang = language(request)
            if exc.reason == Refusal.FACTS:
                error = i18n.translate("refused.facts_check", lang, detail=facts(exc.params["facts"], lang))  # type: ignore[arg-type]
            elif exc.reason in (Refusal.OPTED_OUT, Refusal.OUTSIDE_WINDOW):
                error = i18n.translate(f"refused.{exc.reason.value}", lang)
            else:
                error = refusal(exc, lang)
            return page(request, phone, status=REFUSAL_STATUS[exc.reason], reply_text=text, reply_error=error)
        return redirect(f"{_path(number)}?done={'reply' if done.created else 'duplicate'}#reply")

    return pages
