"""What Relance writes back on its own: replies to a client, in their language, and owner alerts, in French.

Every client text here is built from the contact's data and fixed sentences, never by a model,
and says only what is true once the reply's plan has been applied: the thank-you for a payment
claim promises no end of reminders unless they were stopped, and the acknowledgement of a
promise names the day reminders resume.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.domain.models import Contact, Language
from shared.domain.reasons import HandOver, HandOverReason
from shared.language.formatting import amount_text, date_text

# What the owner reads (in French, as the rest of the alert) for each hand-over reason; the
# details, in the conversation's record, are one `relance conversation PHONE` away.
OWNER_LABELS: dict[HandOverReason, str] = {
    HandOverReason.DISPUTE: "contestation de la facture",
    HandOverReason.WRONG_PERSON: "mauvaise personne ou mauvais numéro",
    HandOverReason.UNANSWERABLE_QUESTION: "question à laquelle ses données ne répondent pas",
    HandOverReason.UNCLEAR_REPLY: "réponse peu claire",
    HandOverReason.LOW_CONFIDENCE: "réponse incertaine",
    HandOverReason.PROMISE_WITHOUT_DATE: "promesse de paiement sans date précise",
    HandOverReason.PROMISE_IN_THE_PAST: "date de paiement promise déjà passée",
    HandOverReason.CLASSIFIER_FAILED: "lecture automatique impossible",
    HandOverReason.INVALID_CONFIDENCE: "lecture automatique impossible",
    HandOverReason.REPLY_NOT_PROCESSED: "réponse non traitée automatiquement",
    HandOverReason.PAID_CLAIM: "dit avoir payé : vérifiez le paiement",
    HandOverReason.PAID_OPT_OUT: "ne veut plus de messages et dit avoir payé : vérifiez le paiement",
    HandOverReason.THIRD_PROMISE: "troisième promesse de paiement",
    HandOverReason.REPLY_LIMIT: "trop de réponses automatiques en 24 h",
    HandOverReason.REPLY_TOO_LATE: "réponse non envoyée : la fenêtre de 24 h s'est refermée",
    HandOverReason.MISSING_DATA: "contact ou étape de campagne supprimé",
    HandOverReason.LAST_MESSAGE_FAILED: "dernier message non remis",
    HandOverReason.QUARANTINED: "relance impossible à traiter automatiquement",
}


def owner_label(why: HandOver | HandOverReason) -> str:
    """The hand-over reason as the owner reads it (French, without the details)."""
    return OWNER_LABELS[why.reason if isinstance(why, HandOver) else why]


def owner_alert_text(contact: Contact, why: HandOver) -> str:
    """The freeform owner alert: who, why, and the one command that closes the hand-over."""
    phone = contact.phone
    if why.reason == HandOverReason.PAID_CLAIM:
        then = (f"une fois vérifié : relance handled {phone} --paid s'il est reçu (relances arrêtées), "
                "--resume sinon (relances reprises)")
    elif why.reason == HandOverReason.PAID_OPT_OUT:
        then = (f"une fois vérifié : relance handled {phone} --paid s'il est reçu, --stop sinon "
                "(le client ne reçoit plus de messages)")
    else:
        then = (f"une fois traité : relance handled {phone} (--resume pour reprendre les relances, "
                "--stop pour les arrêter)")
    return (f"Relance : {contact.name} ({phone}) a besoin d'une réponse de votre part ({owner_label(why)}). "
            f"Historique : relance conversation {phone} ; {then}")


def owner_alert_variables(contact: Contact, why: HandOver) -> dict[str, str]:
    """The variables of OWNER_ALERT_TEMPLATE_SID: {"1": contact name, "2": reason, "3": contact phone}."""
    # WhatsApp refuses template variables that are empty or hold line breaks or tabs.
    return {"1": " ".join(contact.name.split()) or contact.phone, "2": " ".join(owner_label(why).split()) or "-",
            "3": contact.phone}


def _sign(business_name: str, text: str) -> str:
    return f"{text}\n{business_name}"


def thank_you_text(business_name: str, contact: Contact, *, stopped: bool) -> str:
    """The thank-you sent after a client says they paid.

    ``stopped``: their follow-ups were stopped on their word (PAID_CLAIM_ACTION=stop), so no
    further reminder will come; otherwise they are paused while a person checks the payment,
    and the text promises no more than that.
    """
    en = contact.language == Language.EN
    if stopped:
        text = (f"Thank you {contact.name}, we have noted your payment and will not send you further reminders "
                "about it." if en else
                f"Merci {contact.name}, nous avons bien noté votre règlement et ne vous relancerons plus à ce sujet.")
    else:
        text = (f"Thank you {contact.name}, we have noted your payment. We are checking that it has arrived; "
                "until then, you will not receive reminders about it." if en else
                f"Merci {contact.name}, nous avons bien noté votre règlement. Nous vérifions sa bonne réception ; "
                "d'ici là, vous ne recevrez pas de relance à ce sujet.")
    return _sign(business_name, text)


def promise_text(business_name: str, contact: Contact, promised: str, *, resume: str | None = None) -> str:
    """The acknowledgement of a promise to pay (``promised``: ISO date from the classifier, checked).

    ``resume`` (ISO date): the promised date was further than MAX_PROMISE_DAYS, so reminders
    resume on that day instead of waiting for it; the client is told so, never that we wait.
    """
    shown = date_text(promised, contact.language)
    en = contact.language == Language.EN
    if resume is not None:
        back = date_text(resume, contact.language)
        text = (f"Thank you {contact.name}, noted. As {shown} is some way off, we will contact you again "
                f"from {back}." if en else
                f"Merci {contact.name}, c'est noté. Le {shown} étant éloigné, nous reprendrons contact avec vous "
                f"à partir du {back}.")
    else:
        text = (f"Thank you {contact.name}, noted: we expect your payment by {shown}." if en else
                f"Merci {contact.name}, c'est noté : nous attendons votre règlement pour le {shown}.")
    return _sign(business_name, text)


def invoices_amount_text(business_name: str, contact: Contact, facts: Mapping[str, str]) -> str:
    """The answer to "how much do I owe?" for a client with invoices: the total due, then one line
    per invoice (reference, amount due, due date). ``facts``: :func:`shared.language.invoice_text.invoice_facts`
    of those invoices, which the answer's facts check allows."""
    count, total, lines = int(facts["invoice_count"]), facts["total_due"], facts["invoice_list"]
    if contact.language == Language.EN:
        text = (f"You have {total} left to pay:\n{lines}" if count == 1
                else f"You have {total} left to pay on {count} invoices:\n{lines}")
    else:
        text = (f"Il vous reste {total} à régler :\n{lines}" if count == 1
                else f"Il vous reste {total} à régler sur {count} factures :\n{lines}")
    return _sign(business_name, text)


# The topics a client's invoices answer, and the contact fields they replace (earlier versions kept
# one invoice on the contact, possibly out of date once invoices are kept).
INVOICE_TOPICS = frozenset({"amount", "due_date", "invoice_number", "payment_link", "currency"})
_INVOICE_FIELDS = ("invoice_number", "amount", "currency", "due_date", "payment_link")


def invoice_answer_text(business_name: str, contact: Contact, topic: str, facts: Mapping[str, str]) -> str | None:
    """The answer to a question about ``topic`` (:data:`INVOICE_TOPICS`) for a client with invoices, from
    their ``facts`` (:func:`shared.language.invoice_text.invoice_facts`) only, or None.

    The amount, and for several invoices which ones or when they are due: the total and one line
    per invoice (:func:`invoices_amount_text`); where to pay several: their link(s); anything else,
    for one invoice, as :func:`answer_text` answers from its facts.
    """
    several = int(facts["invoice_count"]) > 1
    if topic == "amount" or (several and topic in ("due_date", "invoice_number")):
        return invoices_amount_text(business_name, contact, facts)
    if several and topic == "payment_link":
        links = facts.get("payment_link") or facts.get("payment_links")
        if not links:
            return None
        en = contact.language == Language.EN
        return _sign(business_name, f"You can pay your invoices here:\n{links}" if en
                     else f"Vous pouvez régler vos factures ici :\n{links}")
    fields = {key: value for key, value in contact.fields.items() if key not in _INVOICE_FIELDS}
    return answer_text(business_name, contact.model_copy(update={"fields": {**fields, **facts}}), topic)


def answer_text(business_name: str, contact: Contact, topic: str) -> str | None:
    """A plain answer to a question about one fact of the contact's data, or None."""
    facts, en = contact.fields, contact.language == Language.EN
    ref = facts.get("invoice_number") or facts.get("quote_number") or ""
    about = (f" {ref}" if ref else "")
    value = facts.get(topic, "")
    if not value:
        return None
    if topic == "amount":
        shown = amount_text(value, facts.get("currency", ""), contact.language)
        text = (f"The amount of invoice{about} is {shown}." if en
                else f"Le montant de la facture{about} est de {shown}.")
    elif topic == "due_date":
        shown = date_text(value, contact.language)
        text = f"Invoice{about} was due on {shown}." if en else f"La facture{about} était à régler le {shown}."
    elif topic == "payment_link":
        text = (f"You can pay invoice{about} here: {value}" if en
                else f"Vous pouvez régler la facture{about} ici : {value}")
    elif topic in ("invoice_number", "quote_number"):
        text = f"It is about {value}." if en else f"Il s'agit de la référence {value}."
    elif topic == "currency":
        text = f"The amount is in {value}." if en else f"Le montant est en {value}."
    else:
        return None
    return _sign(business_name, text)
