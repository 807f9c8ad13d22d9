"""Refusals from the use cases, said in the page's language.

A use case's :class:`shared.errors.InputError` may carry a ``code`` and ``params`` (its message stays
the CLI's and the API's, in English); a page shows ``err.<code>`` from this catalogue, formatted
with the params. The facts check's problems (:class:`shared.language.factcheck.Problem`) carry
their own codes, shown as ``facts.<code>``. A refusal without a known code is shown as its message,
after a translated lead-in.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.console.web import i18n
from shared.domain.models import Language
from shared.errors import InputError

i18n.register({
    "err.other": ("Refusé : {detail}", "Refused: {detail}"),
    "err.campaign.unknown": ("La campagne « {campaign} » n'existe pas.", "There is no campaign '{campaign}'."),
    "err.invoice.unknown": ("La facture « {reference} » n'existe pas.", "There is no invoice '{reference}'."),
    "err.invoice.currency": ("La facture {reference} est en {currency}, pas en {given}.",
                             "Invoice {reference} is in {currency}, not {given}."),
    "err.payment.positive": ("Un paiement doit être supérieur à 0.", "A payment is more than 0."),
    "err.invoice.nothing_due": ("La facture {reference} est déjà {status} : plus rien n'est dû.",
                                "Invoice {reference} is {status}: nothing is due on it."),
    "err.invoice.changed_since_shown": (
        "La facture {reference} a changé depuis son affichage (ce paiement est peut-être déjà enregistré) : rien "
        "n'a été enregistré ; regardez-la à nouveau.",
        "Invoice {reference} changed since it was shown (this payment may be recorded already): nothing was "
        "recorded; look at it again."),
    "err.invoice.changed": ("La facture {reference} a changé entre-temps : regardez-la à nouveau.",
                            "Invoice {reference} changed meanwhile: look at it again."),
    "err.invoice.not_cancellable": ("La facture {reference} est {status} : elle ne peut pas être annulée.",
                                    "Invoice {reference} is {status}: it cannot be cancelled."),
    "err.filter.status": ("Le statut « {status} » n'existe pas.", "There is no status '{status}'."),
    "err.filter.page": ("La page {page} n'existe pas (1, 2, …).", "There is no page {page} (1, 2, ...)."),
    "err.filter.phone": ("Aucun client n'a ce numéro.", "No client has this phone number."),
    "err.amount.invalid": ("{value} n'est pas un montant (écrivez-le comme 1250.50 ou 1 250,50).",
                           "{value} is not an amount (write it like 1250.50 or 1 250,50)."),
    "err.amount.decimals": ("Le montant {value} a plus de 2 décimales.",
                            "The amount {value} has more than 2 decimals."),
    "err.handover.unknown_number": ("Aucun client n'a ce numéro, et aucun message n'en est venu.",
                                    "No client has this number, and no message came from it."),
    "err.handover.not_contact": ("Ce numéro n'est pas un client : il n'a pas de relance à reprendre ou arrêter. "
                                 "Choisissez « Clore » pour le retirer de la liste.",
                                 "This number is not a client: it has no follow-up to resume or stop. "
                                 "Choose “Close” to take it off the list."),
    "err.phone.empty": ("le téléphone est vide", "phone is empty"),
    "err.phone.invalid": ("le téléphone {value} n'est pas un numéro valide", "phone {value} is not a valid number"),
    "err.date.invalid": ("{value} n'est pas une date (écrivez-la AAAA-MM-JJ ou JJ/MM/AAAA)",
                         "{value} is not a date (write it as YYYY-MM-DD or DD/MM/YYYY)"),
    "err.row.name_empty": ("le nom est vide", "name is empty"),
    "err.row.language": ("la langue {value} n'est pas prise en charge (fr ou en)",
                         "language {value} is not supported (use fr or en)"),
    "err.row.timezone": ("le fuseau horaire {value} n'est pas un fuseau IANA (par ex. Europe/Paris)",
                         "timezone {value} is not an IANA timezone (e.g. Europe/Paris)"),
    "err.row.link": ("le lien de paiement {value} n'est pas une URL http(s)",
                     "payment_link {value} is not an http(s) URL"),
    "err.row.reference_empty": ("la référence de la facture (invoice) est vide", "invoice (the reference) is empty"),
    "err.row.no_client": ("aucun client n'a le téléphone {phone}, et la ligne ne peut pas en créer un ({problems})",
                          "no client has phone {phone} and the row cannot create one ({problems})"),
    "err.row.other_client": ("la facture « {reference} » appartient à un autre client que {phone}",
                             "invoice '{reference}' belongs to another client than {phone}"),
    "err.row.amount_changed": ("la facture « {reference} » est enregistrée pour {amount} {currency} : un montant "
                               "changé demande une nouvelle référence (ou une personne)",
                               "invoice '{reference}' is stored with {amount} {currency}: a changed amount needs a "
                               "new reference (or a person)"),
    "err.file.type": ("{name} : ce type de fichier n'est pas pris en charge (utilisez .csv ou .json).",
                      "{name}: unsupported file type (use .csv or .json)."),
    "err.file.encoding": ("{name} : le texte n'est pas en UTF-8 ; enregistrez-le en « CSV UTF-8 » (ou en JSON UTF-8).",
                          "{name}: not UTF-8 text; save it as 'CSV UTF-8' (or JSON in UTF-8)."),
    "err.file.empty": ("{name} : le fichier est vide (il faut une ligne d'en-tête : {columns}, …).",
                       "{name}: the file is empty (expected a header row: {columns}, …)."),
    "err.file.columns": ("{name} : il manque la colonne {missing} (la première ligne doit être un en-tête avec "
                         "{columns} ; trouvé : {found}).",
                         "{name}: missing required column {missing} (the first row must be a header with {columns}; "
                         "found {found})."),
    "err.file.json": ("{name} : JSON invalide à la ligne {line}, colonne {column}.",
                      "{name}: invalid JSON at line {line}, column {column}."),
    "err.row.line": ("ligne {line} : {problems}", "line {line}: {problems}"),
    "err.row.item": ("élément {line} : {problems}", "item {line}: {problems}"),
    "err.field": ("{field} : {text}", "{field}: {text}"),
    "err.reply.empty": ("Le message est vide.", "The message is empty."),
    "err.reply.too_long": ("Le message fait {length} caractères ; {limit} au plus.",
                           "The message is {length} characters long; at most {limit}."),
    "facts.empty": ("texte vide", "empty text"),
    "facts.too_long": ("{length} caractères, {limit} au plus", "{length} characters, at most {limit}"),
    "facts.language": ("écrit en {found}, attendu en {expected}", "written in {found}, expected {expected}"),
    "facts.placeholder": ("un champ à remplir est resté dans le texte", "a placeholder was left in the text"),
    "facts.email": ("une adresse e-mail absente des données du client", "an e-mail address not in the client's data"),
    "facts.link": ("le lien {value} est absent des données du client", "link {value} is not in the client's data"),
    "facts.date": ("la date {value} est absente des données du client", "date {value} is not in the client's data"),
    "facts.weekday": ("le jour de la semaine ne correspond pas à la date {value}",
                      "the weekday does not match date {value}"),
    "facts.phone": ("un numéro de téléphone absent des données du client", "a phone number not in the client's data"),
    "facts.reference": ("la référence {value} est absente des données du client",
                        "reference {value} is not in the client's data"),
    "facts.percentage": ("le pourcentage {value} % est absent des données du client",
                         "percentage {value}% is not in the client's data"),
    "facts.amount": ("le montant {value} est absent des données du client",
                     "amount {value} is not in the client's data"),
    "facts.currency": ("la devise {value} est absente des données du client",
                       "currency {value} is not in the client's data"),
    "facts.number": ("le nombre {value} est absent des données du client",
                     "number {value} is not in the client's data"),
    "facts.grants.discount": ("propose une remise (« {words} »)", "offers a discount (“{words}”)"),
    "facts.grants.cancelled": ("annule ou abandonne la facture (« {words} »)",
                               "cancels or waives the invoice (“{words}”)"),
    "facts.grants.settled": ("dit que plus rien n'est dû (« {words} »)", "says nothing is left to pay (“{words}”)"),
    "facts.grants.instalments": ("propose un échéancier (« {words} »)", "offers a payment plan (“{words}”)"),
    "facts.grants.extension": ("accorde un délai (« {words} »)", "grants more time (“{words}”)"),
    "facts.grants.legal": ("menace d'une action en justice que la campagne ne mentionne pas (« {words} »)",
                           "threatens legal action the campaign does not mention (“{words}”)"),
})


def known(key: str) -> bool:
    """Whether the catalogue has ``key`` (else :func:`i18n.translate` would show the key itself)."""
    return i18n.translate(key, Language.EN) != key


def facts(problems: Iterable[str], language: Language) -> str:
    """The facts check's problems, each in ``language`` when it carries a known code, joined by ``; ``."""
    shown = []
    for problem in problems:
        code = getattr(problem, "code", None)
        key = f"facts.{code}"
        if code and known(key):
            shown.append(i18n.translate(key, language, **getattr(problem, "params", {})))
        else:
            shown.append(str(problem))
    return "; ".join(shown)


def say(text: str, language: Language) -> str:
    """A message from a use case or an importer (:class:`shared.errors.Coded` when it names itself) in ``language``:
    a file's refused line with each of its problems; the message itself when it carries no known code."""
    code = getattr(text, "code", None)
    params = dict(getattr(text, "params", None) or {})
    if code == "row":
        problems = "; ".join(say(p, language) for p in params.get("problems") or ())
        return i18n.translate(f"err.row.{params.get('unit')}", language, line=params.get("line"), problems=problems) \
            if known(f"err.row.{params.get('unit')}") else str(text)
    if not code or not known(f"err.{code}"):
        return str(text)
    if isinstance(params.get("problems"), list):
        params["problems"] = "; ".join(say(p, language) for p in params["problems"])
    try:
        said = i18n.translate(f"err.{code}", language, **params)
    except (KeyError, IndexError):
        return str(text)
    field = params.get("field")
    return i18n.translate("err.field", language, field=field, text=said) if field else said


def refusal(exc: InputError, language: Language) -> str:
    """What a page says for ``exc``: ``err.<code>`` in ``language`` when known, else its message after a lead-in."""
    code = getattr(exc, "code", None)
    params = dict(getattr(exc, "params", None) or {})
    if "facts" in params:
        params["problems"] = facts(params.pop("facts"), language)
    if "status" in params and known(f"invoice.status.{params['status']}"):
        params["status"] = i18n.translate(f"invoice.status.{params['status']}", language)
    key = f"err.{code}"
    if code and known(key):
        try:
            return i18n.translate(key, language, **params)
        except (KeyError, IndexError):  # a code whose string wants a param this refusal lacks: its message
            pass
    return i18n.translate("err.other", language, detail=str(exc))


# The stored states and reasons the pages show, in the page's language (the value itself when unknown).
i18n.register({
    "state.scheduled": ("programmée", "scheduled"),
    "state.queued": ("en file", "queued"),
    "state.drafting": ("en rédaction", "drafting"),
    "state.awaiting_send": ("prête à partir", "awaiting send"),
    "state.paused": ("en pause", "paused"),
    "state.completed": ("terminée", "completed"),
    "state.stopped": ("arrêtée", "stopped"),
    "state.ready": ("prêt", "ready"),
    "state.awaiting_approval": ("à valider", "awaiting approval"),
    "state.sending": ("en cours d'envoi", "sending"),
    "state.sent": ("envoyé", "sent"),
    "state.delivered": ("remis", "delivered"),
    "state.read": ("lu", "read"),
    "state.failed": ("échec", "failed"),
    "state.undelivered": ("non remis", "undelivered"),
    "state.uncertain": ("incertain (vérifié auprès de Twilio)", "uncertain (checked with Twilio)"),
    "state.cancelled": ("annulé", "cancelled"),
    "state.received": ("reçu", "received"),
    "reason.promise_to_pay": ("promesse de paiement", "promise to pay"),
    "reason.needs_human": ("attend une personne", "needs a person"),
    "reason.paid_claimed": ("dit avoir payé", "says they paid"),
    "reason.awaiting_customer_window": ("attend que le client écrive", "waits for the client to write"),
    "reason.campaign_paused": ("campagne en pause", "campaign paused"),
    "reason.paid": ("payé", "paid"),
    "reason.opt_out": ("désinscrit (STOP)", "opted out (STOP)"),
    "reason.dispute": ("contestation", "dispute"),
    "reason.wrong_person": ("mauvaise personne", "wrong person"),
    "reason.invalid_number": ("numéro invalide", "invalid number"),
    "reason.send_failed": ("envoi impossible", "send failed"),
    "reason.missing_data": ("données manquantes", "missing data"),
    "reason.stopped_by_owner": ("arrêtée par vous", "stopped by you"),
    "reason.question": ("question", "question"),
    "reason.acknowledged": ("accusé de réception", "acknowledged"),
    "reason.other": ("autre", "other"),
    "colon": (" : ", ": "),
    "reason.unknown_sender": ("message d'un numéro inconnu", "message from an unknown number"),
})


# The audit log's actions, in words (the action's code itself when unknown).
i18n.register({
    "audit.approval.approve": ("message validé", "draft approved"),
    "audit.approval.edit": ("message modifié", "draft edited"),
    "audit.approval.reject": ("message refusé", "draft rejected"),
    "audit.campaign.create": ("campagne créée", "campaign created"),
    "audit.campaign.enrol": ("clients inscrits", "clients enrolled"),
    "audit.campaign.pause": ("campagne mise en pause", "campaign paused"),
    "audit.campaign.resume": ("campagne reprise", "campaign resumed"),
    "audit.contact.create": ("client créé", "client created"),
    "audit.contact.opt_out": ("client désinscrit", "client opted out"),
    "audit.contact.update": ("client modifié", "client changed"),
    "audit.contacts.import": ("fichier de contacts importé", "contacts file imported"),
    "audit.invoice.cancel": ("facture annulée", "invoice cancelled"),
    "audit.invoice.create": ("facture créée", "invoice created"),
    "audit.invoice.paid": ("paiement enregistré", "payment recorded"),
    "audit.invoice.update": ("facture modifiée", "invoice changed"),
    "audit.invoices.import": ("fichier de factures importé", "invoices file imported"),
    "audit.reply.manual": ("réponse écrite à la main", "reply written by hand"),
    "audit.handover.close": ("intervention close", "hand-over closed"),
    "audit.handover.resume": ("intervention close, relances reprises", "hand-over closed, follow-ups resumed"),
    "audit.handover.stop": ("intervention close, relances arrêtées", "hand-over closed, follow-ups stopped"),
    "audit.handover.paid": ("paiement confirmé, relances arrêtées", "payment confirmed, follow-ups stopped"),
})


def action(value: str, language: Language) -> str:
    """An audit entry's action in words (its code when unknown)."""
    return i18n.translate(f"audit.{value}", language) if known(f"audit.{value}") else value


def state(value: object, language: Language) -> str:
    """A follow-up's or message's stored state (or a pause/stop reason), in ``language``."""
    text = str(value)
    for key in (f"state.{text}", f"reason.{text}"):
        if known(key):
            return i18n.translate(key, language)
    return text


def handover(text: str, language: Language) -> str:
    """A stored ``needs_human_reason`` in ``language``: the owner's French label, the text itself in English."""
    from shared.domain.reasons import HandOver
    from shared.language.texts import owner_label
    from shared.usecases.conversations import UNKNOWN_REASON

    if text == UNKNOWN_REASON:
        return i18n.translate("reason.unknown_sender", language)
    if language != Language.FR:
        return text
    parsed = HandOver.parse(text)
    return owner_label(parsed) if parsed is not None else text
