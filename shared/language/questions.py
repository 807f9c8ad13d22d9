"""What a client's question asks about: the amount, the due date, the payment link, bank details…

The patterns read the reply as :func:`shared.language.reply_rules.normalise` gives it. A question
is answered only from the contact's data (:mod:`shared.language.texts`); these rules say which fact
it asks for, and when it asks for something the data cannot give (why, another payment method,
a copy of the invoice).
"""

from __future__ import annotations

import re

from shared.language.text import any_of

__all__ = [
    "CURRENCY_QUESTION",
    "DOCUMENT",
    "OTHER_METHOD",
    "QUESTION_WORDS",
    "REQUEST",
    "TOPICS",
    "TOPIC_ALIASES",
    "WHY",
    "topics",
]

QUESTION_WORDS = re.compile(
    r"^(?:combien|quand|comment|quel|quelle|quels|quelles|pourquoi|ou|est ce que|pouvez vous|pourriez vous|"
    r"peux tu|puis je|je peux|on peut|c est combien|how|what|when|which|where|why|can you|could you|can i|do i|"
    r"is it|should i|would you|may i)\b"
)
REQUEST = re.compile(
    r"\b(?:envoyez|envoyer|envoie|renvoyez|renvoyer|renvoie|transmettez|donnez|donner|communiquez|rappelez|"
    r"redonnez|j aimerais|je voudrais|je veux|besoin (?:du|de la|d)|send|resend|give|forward|share|i d like|"
    r"i would like|i need|need the|svp|please)\b"
)
WHY = re.compile(r"\b(?:pourquoi|why)\b")
TOPICS: dict[str, re.Pattern[str]] = {
    "amount": any_of([
        r"\bcombien\b", r"\bmontant\b", r"\bhow much\b", r"\bamount\b", r"\btotal\b", r"\bprix\b", r"\bprice\b",
        r"\bcost\w*\b", r"\bcoute\w*\b", r"\ble solde\b", r"\bbalance\b", r"\breste a payer\b",
        r"\b(?:je vous dois|i owe|do i owe)\b", r"\bsomme\b",
    ]),
    "due_date": any_of([
        r"\becheance\b", r"\bdate limite\b", r"\bdue date\b", r"\bdeadline\b", r"\bdue\b",
        r"\b(?:avant|pour|jusqu a) quand\b", r"\b(?:until|by) when\b", r"\bquand\b", r"\bwhen\b",
        r"\b(?:a|de) quelle date\b", r"\b(?:what|which) date\b", r"\bquelle date\b", r"\bdate de paiement\b",
    ]),
    "payment_link": any_of([
        r"\blien\b", r"\blink\b", r"\burl\b",
        r"\bcomment (?:(?:je|puis je|peut on|on|faire pour|dois je|faut il|est ce que je) )*(?:peux |peut |dois )?"
        r"(?:vous )?(?:payer|regler|faire le paiement|proceder au paiement)\b",
        r"\b(?:how|where) (?:can|do|should|could|may) (?:i|we) (?:pay|make (?:the|a) payment|settle)\b",
        r"\bou (?:(?:je|puis je|peut on|on) )*(?:peux |peut )?(?:payer|regler)\b", r"\bpayer en ligne\b",
        r"\bpay online\b", r"\b(?:moyens?|modes?|page|site) de (?:paiement|reglement)\b",
        r"\bpayment (?:method|page|options?)\b",
    ]),
    "iban": any_of([
        r"\brib\b", r"\biban\b", r"\bbic\b", r"\bswift\b", r"\bcoordonnees bancaires\b", r"\bbank details\b",
        r"\b(?:numero de|account) (?:compte|number)\b", r"\bcompte bancaire\b", r"\bbank account\b",
        r"\bsort code\b", r"\brouting number\b",
    ]),
    "invoice_number": any_of([
        r"\bnumero (?:de |d )?(?:la )?facture\b", r"\bfacture numero\b", r"\breference\b", r"\bref\b",
        r"\b(?:quelle|laquelle|de quelle|pour quelle) facture\b", r"\b(?:which|what) invoice\b",
        r"\binvoice (?:number|no|ref|reference|numero)\b",
        r"\bc est (?:pour )?quoi (?:cette facture|ce message|ca)\b", r"\bc est pour quoi\b",
        r"\bwhat (?:is|s) (?:this|it) (?:for|about)\b", r"\bde quoi (?:s agit il|il s agit)\b",
        r"\bje ne sais pas de quoi\b", r"\bi don t know what (?:this|it) is\b",
    ]),
    "quote_number": any_of([
        r"\b(?:quel|lequel|de quel|pour quel) devis\b", r"\bnumero (?:de |du )?devis\b", r"\bdevis numero\b",
        r"\b(?:which|what) quote\b", r"\bquote (?:number|no|ref|reference)\b",
    ]),
    "currency": any_of([
        r"\bdevise\b", r"\bmonnaie\b", r"\bcurrency\b",
    ]),
}
CURRENCY_QUESTION = re.compile(r"\b(?:en|in) (?:euros?|dollars?|livres?|pounds?|francs?|cfa|eur|usd|gbp)\b")
OTHER_METHOD = re.compile(
    r"\b(?:par carte|carte bancaire|en carte|by card|credit card|debit card|cb|cheque|check|especes|cash|"
    r"liquide|paypal|lydia|wero|twint|apple pay|google pay|en plusieurs fois|en (?:deux|2|trois|3) fois|"
    r"instal?lments?)\b"
)
DOCUMENT = re.compile(
    r"\b(?:copie|pdf|duplicata|la facture par mail|renvoyer la facture|renvoyez la facture|envoyer la facture|"
    r"envoyez (?:moi )?la facture|copy of the invoice|send (?:me )?the invoice|resend the invoice)\b"
    r"(?! number| no\b| ref| numero)"
    r"|\b(?:pas|jamais) recu (?:la |le |votre |vos |de |aucune? )?(?:facture|devis|mail|email|courrier)s?\b"
    r"|\b(?:never|didn t|did not|haven t) (?:receive|received|get|got) (?:the |your |any |an )?"
    r"(?:invoice|bill|quote|email)s?\b"
)

# The fact keys that answer a topic, in order of preference.
TOPIC_ALIASES = {
    "invoice_number": ("invoice_number", "quote_number"),
    "quote_number": ("quote_number", "invoice_number"),
    "iban": ("iban", "rib", "bank_details"),
}


def topics(text: str, raw_question: bool) -> list[str]:
    """The topics a normalised reply asks about (``raw_question``: the reply has a question mark)."""
    found = [name for name, pattern in TOPICS.items() if pattern.search(text)]
    if raw_question and CURRENCY_QUESTION.search(text) and "currency" not in found:
        found.append("currency")
    if "quote_number" in found and "invoice_number" in found:
        found.remove("invoice_number")
    if "payment_link" in found and "iban" in found:
        found.remove("payment_link")  # "comment payer, vous avez un RIB ?" asks for bank details
    return found
