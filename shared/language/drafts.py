"""The offline drafter: fixed French and English follow-ups filled from the contact's facts.

It is used without a Gemini key, and whenever a Gemini draft fails or does not pass the facts
check. It is deterministic, never raises, always fits ``max_chars``, and writes facts so that
:func:`shared.language.factcheck.check_draft` accepts them: amounts and dates it can read
unambiguously are reformatted for the contact's language, anything else is copied as given
(:mod:`shared.language.formatting`). An invoice campaign's reminder covering several invoices
(``invoice_count`` > 1) is written by :mod:`shared.language.grouped_drafts`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.domain.models import Language
from shared.language.formatting import amount_text, atomic, date_text
from shared.language.grouped_drafts import grouped_variants, is_grouped
from shared.ports import Draft, DraftRequest

__all__ = ["OfflineDrafter"]


@dataclass(frozen=True)
class _Facts:
    invoice: str
    quote: str
    amount: str
    due: str
    link: str


def _facts(request: DraftRequest) -> _Facts:
    facts = request.facts

    def get(name: str) -> str:
        value = facts.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    currency = get("currency")
    amount = get("amount")
    due = get("due_date")
    return _Facts(
        invoice=atomic(get("invoice_number")),
        quote=atomic(get("quote_number")),
        amount=amount_text(amount, currency, request.language) if amount else "",
        due=date_text(due, request.language) if due else "",
        link=get("payment_link").split()[0] if get("payment_link") else "",
    )


def _stage(request: DraftRequest) -> str:
    if request.step_count > 1 and request.step_index >= request.step_count - 1:
        return "last"
    return "first" if request.step_index <= 0 else "middle"


def _tone(request: DraftRequest) -> str:
    tone = request.tone.strip().lower()
    return tone if tone in ("courteous", "friendly", "firm") else "courteous"


# ------------------------------------------------------------------------------ French


def _fr(request: DraftRequest, f: _Facts, stage: str, tone: str) -> list[list[str]]:
    """Paragraph variants in French, from the fullest to the shortest."""
    name = atomic(request.contact_name)
    business = atomic(request.business_name)
    quote = bool(f.quote) and not f.invoice
    if quote:
        subject = f"le devis {f.quote}"
    else:
        subject = f"la facture {f.invoice}" if f.invoice else "votre facture"
    details = ""
    if f.amount:
        details += f" d'un montant de {f.amount}"
    if f.due:
        details += f" (échéance : {f.due})" if not quote else f" (date limite : {f.due})"
    what = subject + details

    greeting = f"Bonjour {name}," if name else "Bonjour,"
    if tone == "friendly":
        greeting = f"Bonjour {name} !" if name else "Bonjour !"
    if quote:
        core = {
            "first": f"Nous revenons vers vous au sujet du devis {f.quote}{details}. "
            "Avez-vous pu en prendre connaissance ?",
            "middle": f"Sauf erreur de notre part, nous n'avons pas encore reçu votre retour sur "
            f"{what}. Pouvez-vous nous indiquer si vous souhaitez y donner suite ?",
            "last": f"Ceci est notre dernière relance au sujet du devis {f.quote}{details}. "
            "Sans réponse de votre "
            "part, nous considérerons qu'il n'est plus d'actualité.",
        }[stage]
        short = {
            "first": f"Avez-vous pu consulter {what} ?",
            "middle": f"Nous attendons votre retour sur {what}.",
            "last": f"Dernière relance : {what}.",
        }[stage]
        link = f"Lien : {f.link}" if f.link else ""
        closing = "Si vous nous avez déjà répondu, merci de ne pas tenir compte de ce message."
    else:
        core = {
            "first": f"Nous nous permettons de vous rappeler que {what} est en attente de règlement.",
            "middle": f"Sauf erreur de notre part, nous n'avons pas encore reçu le règlement de "
            f"{what}. Merci de bien vouloir procéder au paiement dans les meilleurs délais.",
            "last": f"Ceci est notre dernière relance concernant {what}, toujours en attente de "
            "règlement. Merci de régulariser la situation sans attendre.",
        }[stage]
        if tone == "friendly" and stage == "first":
            core = f"Petit rappel : {what} est en attente de règlement."
        if tone == "firm" and stage != "last":
            core = (
                f"Malgré nos précédents messages, {what} n'est toujours pas réglée. "
                "Nous vous demandons de procéder au paiement sans délai."
                if stage == "middle"
                else f"Nous vous rappelons que {what} est en attente de règlement. "
                "Merci de procéder au paiement sans délai."
            )
        short = {
            "first": f"Rappel : {what} est en attente de règlement.",
            "middle": f"Relance : {what} reste à régler.",
            "last": f"Dernière relance : {what} reste à régler.",
        }[stage]
        link = f"Vous pouvez régler ici : {f.link}" if f.link else ""
        closing = (
            "Si le règlement a déjà été effectué, merci de ne pas tenir compte de ce message."
        )
    thanks = {
        "courteous": "Nous vous remercions par avance.",
        "friendly": "Merci beaucoup et bonne journée !",
        "firm": "Merci de votre diligence.",
    }[tone]
    sign = {"courteous": "Cordialement,", "friendly": "À bientôt,", "firm": "Cordialement,"}[tone]
    signature = f"{sign}\n{business}" if business else sign.rstrip(",")
    short_sign = business or ""
    return [
        [greeting, core, link, f"{thanks} {closing}" if stage != "last" else thanks, signature],
        [greeting, core, link, thanks, signature],
        [greeting, core, link, signature],
        [greeting, short, link, short_sign],
        [short, link, short_sign],
    ]


# ----------------------------------------------------------------------------- English


def _en(request: DraftRequest, f: _Facts, stage: str, tone: str) -> list[list[str]]:
    """Paragraph variants in English, from the fullest to the shortest."""
    name = atomic(request.contact_name)
    business = atomic(request.business_name)
    quote = bool(f.quote) and not f.invoice
    if quote:
        subject = f"quote {f.quote}"
    else:
        subject = f"invoice {f.invoice}" if f.invoice else "your invoice"
    details = ""
    if f.amount:
        details += f" for {f.amount}"
    if f.due:
        details += f" (due date: {f.due})" if not quote else f" (deadline: {f.due})"
    what = subject + details

    greeting = f"Hello {name}," if name else "Hello,"
    if tone == "friendly":
        greeting = f"Hi {name}!" if name else "Hi!"
    if quote:
        core = {
            "first": f"We are following up on {what}. Have you had a chance to look at it?",
            "middle": f"We have not yet heard back from you about {what}. "
            "Could you let us know whether you would like to go ahead?",
            "last": f"This is our last reminder about {what}. If we do not hear from you, "
            "we will consider that it is no longer needed.",
        }[stage]
        short = {
            "first": f"Have you had a chance to look at {what}?",
            "middle": f"We are still waiting for your answer about {what}.",
            "last": f"Last reminder: {what}.",
        }[stage]
        link = f"Link: {f.link}" if f.link else ""
        closing = "If you have already answered, please disregard this message."
    else:
        core = {
            "first": f"This is a reminder that {what} is awaiting payment.",
            "middle": f"Unless we are mistaken, we have not yet received payment for {what}. "
            "Please settle it as soon as possible.",
            "last": f"This is our last reminder about {what}, which is still awaiting payment. "
            "Please settle it without further delay.",
        }[stage]
        if tone == "friendly" and stage == "first":
            core = f"Just a quick reminder that {what} is awaiting payment."
        if tone == "firm" and stage != "last":
            core = (
                f"Despite our previous messages, {what} is still unpaid. "
                "We ask you to settle it without delay."
                if stage == "middle"
                else f"We remind you that {what} is awaiting payment. Please settle it without delay."
            )
        short = {
            "first": f"Reminder: {what} is awaiting payment.",
            "middle": f"Reminder: {what} is still unpaid.",
            "last": f"Last reminder: {what} is still unpaid.",
        }[stage]
        link = f"You can pay here: {f.link}" if f.link else ""
        closing = "If you have already paid, please disregard this message."
    thanks = {
        "courteous": "Thank you in advance.",
        "friendly": "Thanks a lot and have a nice day!",
        "firm": "Thank you for your prompt attention.",
    }[tone]
    sign = {"courteous": "Kind regards,", "friendly": "Best,", "firm": "Regards,"}[tone]
    signature = f"{sign}\n{business}" if business else sign.rstrip(",")
    short_sign = business or ""
    return [
        [greeting, core, link, f"{thanks} {closing}" if stage != "last" else thanks, signature],
        [greeting, core, link, thanks, signature],
        [greeting, core, link, signature],
        [greeting, short, link, short_sign],
        [short, link, short_sign],
    ]


def _join(paragraphs: list[str]) -> str:
    return "\n\n".join(p for p in paragraphs if p)


def _shorten(text: str, limit: int) -> str:
    """Keep the words that fit (facts are single words: their spaces are non-breaking)."""
    if limit <= 0:
        return ""
    kept: list[str] = []
    length = 0
    for line_index, line in enumerate(text.split("\n")):
        words = line.split(" ")
        for word_index, word in enumerate(words):
            sep = "" if not kept else ("\n" if word_index == 0 and line_index > 0 else " ")
            if not word:
                if sep == "\n" and length + 1 <= limit:
                    kept.append("\n")
                    length += 1
                continue
            if length + len(sep) + len(word) > limit:
                return "".join(kept).strip()
            kept.append(sep + word)
            length += len(sep) + len(word)
    return "".join(kept).strip()


class OfflineDrafter:
    """Writes a fixed follow-up from the facts, in French or English (implements ``Drafter``)."""

    def draft(self, request: DraftRequest) -> Draft:
        """Return the follow-up for this step and tone; never raises, never exceeds ``max_chars``."""
        language = request.language if request.language in (Language.FR, Language.EN) else (
            Language.FR
        )
        try:
            body = self._body(request)
        except Exception:  # pragma: no cover - a last resort: never fail the caller
            body = "Bonjour," if language == Language.FR else "Hello,"
            body = body[: max(request.max_chars, 0)]
        return Draft(body=body, language=language, source="offline")

    def _body(self, request: DraftRequest) -> str:
        stage, tone = _stage(request), _tone(request)
        if is_grouped(request):
            return _fit(grouped_variants(request, stage, tone), request.max_chars)
        facts = _facts(request)
        build = _en if request.language == Language.EN else _fr
        levels = [facts, replace(facts, due=""), replace(facts, due="", amount="")]
        variants = build(request, facts, stage, tone)
        # When even the short versions are too long: drop the date, then the amount, then the
        # signature, then the link; as a last resort cut the short sentence word by word.
        for level in levels[1:]:
            variants += build(request, level, stage, tone)[-2:]
        for level in levels:
            variants.append(build(request, level, stage, tone)[-1][:2])
        for level in levels:
            variants.append(build(request, level, stage, tone)[-1][:1])
        return _fit(variants, request.max_chars)


def _fit(variants: list[list[str]], limit: int) -> str:
    """The first variant that fits ``limit``, else the last one cut word by word."""
    for paragraphs in variants:
        text = _join(paragraphs)
        if len(text) <= limit:
            return text
    return _shorten(_join(variants[-1]), limit)
