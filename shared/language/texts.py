"""What Relance writes back on its own: replies to a client, in their language, and owner alerts, in French.

Every client text here is built from the contact's data and fixed sentences, never by a model,
and says only what is true once the reply's plan has been applied: the thank-you for a payment
claim promises no end of reminders unless they were stopped, and the acknowledgement of a
promise names the day reminders resume.
"""

from __future__ import annotations

from shared.domain.models import Contact, Language
from shared.language.formatting import amount_text, date_text

# Hand-over reasons written by the replies actor (the follow-up's ``needs_human_reason``).
PAID_CLAIM = "says the invoice is paid: check the payment"
PAID_OPT_OUT = "opted out, says the invoice is paid: check the payment"
THIRD_PROMISE = "third promise to pay"
REPLY_LIMIT = "automated reply limit reached"

# What the owner reads (in French, as the rest of the alert) for a hand-over reason, by its start;
# the details, in the conversation's record, are one `relance conversation PHONE` away.
OWNER_REASONS = (
    ("dispute", "contestation de la facture"),
    ("wrong_person", "mauvaise personne ou mauvais numéro"),
    ("question the data cannot answer", "question à laquelle ses données ne répondent pas"),
    ("unclear reply", "réponse peu claire"),
    ("low confidence", "réponse incertaine"),
    ("promise to pay without a usable date", "promesse de paiement sans date précise"),
    ("promised date in the past", "date de paiement promise déjà passée"),
    ("classifier failed", "lecture automatique impossible"),
    ("invalid confidence", "lecture automatique impossible"),
    ("reply not processed automatically", "réponse non traitée automatiquement"),
    (PAID_CLAIM, "dit avoir payé : vérifiez le paiement"),
    (PAID_OPT_OUT, "ne veut plus de messages et dit avoir payé : vérifiez le paiement"),
    (THIRD_PROMISE, "troisième promesse de paiement"),
    (REPLY_LIMIT, "trop de réponses automatiques en 24 h"),
)


def owner_reason(reason: str) -> str:
    """The hand-over reason as the owner reads it (French); an unknown one as it is."""
    return next((french for start, french in OWNER_REASONS if reason.startswith(start)), reason)


def owner_alert_text(contact: Contact, reason: str) -> str:
    """The freeform owner alert: who, why, and the one command that closes the hand-over."""
    phone = contact.phone
    if reason.startswith(PAID_CLAIM):
        then = (f"une fois vérifié : relance handled {phone} --paid s'il est reçu (relances arrêtées), "
                "--resume sinon (relances reprises)")
    elif reason.startswith(PAID_OPT_OUT):
        then = (f"une fois vérifié : relance handled {phone} --paid s'il est reçu, --stop sinon "
                "(le client ne reçoit plus de messages)")
    else:
        then = (f"une fois traité : relance handled {phone} (--resume pour reprendre les relances, "
                "--stop pour les arrêter)")
    return (f"Relance : {contact.name} ({phone}) a besoin d'une réponse de votre part ({owner_reason(reason)}). "
            f"Historique : relance conversation {phone} ; {then}")


def owner_alert_variables(contact: Contact, reason: str) -> dict[str, str]:
    """The variables of OWNER_ALERT_TEMPLATE_SID: {"1": contact name, "2": reason, "3": contact phone}."""
    # WhatsApp refuses template variables that are empty or hold line breaks or tabs.
    return {"1": " ".join(contact.name.split()) or contact.phone, "2": " ".join(owner_reason(reason).split()) or "-",
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
