"""Statements a drafted follow-up must never make on the business's behalf, in French and English.

A model with the client's messages in its prompt may be talked into granting a discount,
declaring the invoice cancelled or settled, offering instalments or more time, or threatening
legal action. None of these is the model's to say: :func:`find_statements` finds them so that
:func:`shared.language.factcheck.check_draft` refuses the draft (the offline draft replaces it).

What is refused is the topic, not only the offer: "nous ne pouvons pas accorder de remise" is
refused too (the safe side, since the offline draft replaces it). The exception is payment
status, where "we have not yet received your payment" is the reminder itself: only a claim
that the invoice *is* settled is refused, and not inside a condition ("if it has already been
paid, please disregard this message").

Legal steps are the business's own decision: they are allowed when the campaign mentions them
(:func:`grants_legal`, on its name, description or the step's tone).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from shared.language.text import fold_same_length, lower_same_length

__all__ = ["Statement", "StatementKind", "find_statements", "grants_legal"]


class StatementKind(StrEnum):
    """A class of statement a draft may not make; its value is the problem phrase."""

    DISCOUNT = "offers a discount"
    CANCELLED = "cancels or waives the invoice"
    SETTLED = "says nothing is left to pay"
    INSTALMENTS = "offers a payment plan"
    EXTENSION = "grants more time"
    LEGAL = "threatens legal action the campaign does not mention"


@dataclass(frozen=True)
class Statement:
    """One forbidden statement found in a text: its class and the words that gave it away."""

    kind: StatementKind
    start: int
    end: int
    words: str  # as written in the text, at most 40 characters


def _patterns(*sources: str) -> re.Pattern[str]:
    """One pattern for several alternatives written on the folded text; a space is any run of spaces."""
    body = "|".join(f"(?:{s})" for s in sources)
    return re.compile(body.replace(" ", r"\s+"))


_W = r"[a-z']+"  # a word, in the folded text
# Words that make a settlement claim conditional or a goal ("if it has been paid", "pour que…").
_CONDITION = re.compile(
    r"\b(?:si|s'il|s'ils|sauf si|au cas|des que|une fois|lorsque|quand|pour que|afin que|jusqu'a ce que"
    r"|avant que|if|unless|whether|in case|once|when|until|before|so that|make sure|ensure)\b"
)
_SENTENCE_END = re.compile(r"[.!?;:\n]")

_RULES: dict[StatementKind, re.Pattern[str]] = {
    StatementKind.DISCOUNT: _patterns(
        # French
        r"\bremises?\b(?! en\b)", r"\brabais\b", r"\bristournes?\b", r"\bescomptes?\b", r"\breductions?\b",
        r"\bgeste (?:commercial|de bonne volonte)", r"\bfaire un geste\b", r"\bgratuit(?:e|es|s|ement)?\b",
        r"\bofferte?s?\b", r"\b(?:prix|tarif) (?:reduit|special|preferentiel)",
        r"\b(?:un|d'un|cet|votre) avoir\b", r"\breduire (?:le |la |votre )?(?:montant|prix|facture|total)",
        r"\bmoins cher\b",
        # English
        r"\bdiscount\w*", r"\brebates?\b", r"\bgoodwill\b", r"\bcomplimentary\b", r"\bcredit notes?\b",
        r"\bfree of charge\b", r"\bfor free\b", r"\bprice cut\b", r"\bspecial (?:price|rate|offer|deal)\b",
        r"\bdeduct\w*", r"\breduc(?:e|ed|ing) (?:the |your )?(?:amount|invoice|bill|price|total|balance|fee)",
        r"\breduced (?:price|rate|amount|fee|total)\b",
        r"\boff (?:the|your) (?:total|invoice|bill|price|amount|balance)\b", r"%\s*off\b",
    ),
    StatementKind.CANCELLED: _patterns(
        r"\bannul\w*", r"\brenon[cç]\w*", r"\bexoner\w*", r"\bpass\w* l'eponge\b", r"\bl'ardoise\b",
        r"\babandon\w* (?:de |la |votre |notre |les |des )?(?:creance|facture|dette|poursuite|montant|somme|frais)",
        r"\beffac\w* (?:la |votre |de la |les |vos )?(?:dette|facture|ardoise|montant|creance|solde)",
        r"\bdispens\w* (?:de|du) (?:paiement|payer|regler|reglement)", r"\bclassee? sans suite\b",
        r"\b(?:ne |n')(?:vous |nous )?(?:sera|seront|est|sont) plus (?:du|due|dus|dues|exigee?s?|reclamee?s?)\b",
        r"\bcancel\w*", r"\bvoid(?:ed)?\b", r"\bwaiv\w*", r"\bwrit(?:e|ten|ing|es)[ -]off\b", r"\bexempt\w*",
        r"\bforgiv\w* (?:the |your |this )?(?:debt|invoice|balance|amount|fees?|charges?|payment)",
        r"\bdebt forgiveness\b", r"\bon the house\b", r"\bwip(?:e|ed|ing) (?:the |your )?(?:slate|debt|balance)",
        r"\bdrop(?:ped|ping)? (?:the |your |this )?(?:invoice|charges?|fees?|debt|claim|amount)\b",
        r"\b(?:invoice|debt|fees?|charges?|amount|balance) (?:has been|have been|is|are|will be) "
        r"(?:removed|deleted|withdrawn|scrapped|wiped)\b",
    ),
    StatementKind.SETTLED: _patterns(
        # French
        r"\bplus rien (?:a|de) (?:payer|regler|devoir)\b",
        r"\brien (?:de plus |d'autre )?a (?:payer|regler|verser)\b",
        r"\bne (?:nous |me )?devez (?:plus )?rien\b",
        r"\bplus (?:aucun|aucune|de|d') ?(?:montant|somme|solde|dette|impaye|reste)",
        r"\baucun(?:e)? (?:montant|solde|somme|paiement|reglement) n'est (?:plus )?(?:du|exige|a regler|attendu)",
        r"\b(?:integralement|entierement|totalement|completement) (?:regle|paye|solde|acquitte)e?s?\b",
        r"\bsoldees?\b", r"\bacquittees?\b",
        r"\b(?:est|sont|a|ont)(?: (?:bien|deja|desormais|maintenant|donc))? (?:ete )?"
        r"(?:(?:bien|deja|integralement|entierement|totalement) )?(?:reglee?s?|payee?s?|soldee?s?|acquittee?s?)\b",
        r"\b(?:avons|a) (?:bien |deja )?(?:recu|encaisse|enregistre) (?:votre|le|ce|son) "
        r"(?:paiement|reglement|virement|cheque|versement)",
        r"\b(?:paiement|reglement|virement|cheque|versement) (?:a|ont) (?:bien )?ete (?:recu|encaisse|enregistre)",
        r"\b(?:etes|est) (?:desormais |maintenant |bien )?a jour\b",
        # English
        r"\bpaid in full\b", r"\bfully (?:paid|settled)\b", r"\bpaid off\b", r"\bsettled in full\b",
        r"\b(?:is|are|was|were|'s)(?: (?:now|already|fully|completely|all))? (?:paid|settled|cleared)\b",
        r"\b(?:has|have)(?: (?:now|already|just))? been(?: (?:fully|completely))? (?:paid|settled|cleared)\b",
        r"\bnothing (?:more |else |further |left |remaining |still )?(?:to pay|owed|owing|outstanding|due)\b",
        r"\b(?:no longer|don't|do not|no more) owe\b", r"\bno (?:longer|more) (?:due|outstanding|payable)\b",
        r"\b(?:no|zero) (?:outstanding |remaining )?balance\b", r"\bbalance is (?:now )?(?:zero|nil|cleared)\b",
        r"\b(?:we have|we've|we) (?:now |already |just )?received your (?:payment|transfer|cheque|check)\b",
        r"\bpayment (?:has been|was) received\b",
        r"\b(?:no need|(?:no longer|don't|do not) (?:need|have)) to pay\b",
        r"\bno payment (?:is )?(?:needed|required|due)\b",
        r"\baccount is (?:now )?(?:up to date|clear|settled|in good standing)\b",
    ),
    StatementKind.INSTALMENTS: _patterns(
        r"\becheanciers?\b",
        r"\ben (?:plusieurs|deux|trois|quatre|cinq|six|dix|douze|\d+) (?:fois|versements|mensualites|echeances"
        r"|paiements|tranches)\b",
        r"\bechelonn\w*", r"\betal(?:er|ement|ons|ez|ant|e|ee|es)\b", r"\bmensualites?\b", r"\bfractionn\w*",
        r"\bplan (?:de )?(?:paiement|reglement|remboursement|apurement)\b",
        r"\bpaiements? partiels?\b", r"\bfacilites? de (?:paiement|reglement)\b",
        r"\bversements? (?:mensuels?|successifs?|reguliers?)\b", r"\b(?:par|en) tranches?\b", r"\baccord de paiement\b",
        r"\binstal+ments?\b", r"\bpayment (?:plan|schedule|arrangements?)\b", r"\brepayment plan\b",
        r"\bpay (?:it |this )?in (?:parts|instal+ments?|(?:two|three|four|several|\d+) "
        r"(?:parts|payments|instal+ments?|months|tranches))\b",
        r"\bsplit (?:the |your |this )?(?:payment|amount|invoice|bill|balance|cost)",
        r"\bspread (?:the |your |this )?(?:payments?|amount|cost|balance)", r"\bmonthly payments?\b",
        r"\bpartial payments?\b", r"\bpart[- ]payments?\b",
    ),
    StatementKind.EXTENSION: _patterns(
        r"\bdelais? (?:supplementaires?|de grace|additionnels?)", r"\b(?:nouveau|nouvel|autre) delai\b",
        r"\bnouvelle (?:echeance|date limite|date butoir|date de paiement)\b",
        r"\b(?:accord|octroi|octroy|consent)\w*(?: " + _W + r"){0,3}? (?:un |d'un |quelques |encore )?"
        r"(?:delai|prolongation|sursis)\b",
        r"\b(?:laissons|accordons|donnons|octroyons|offrons|consentons)(?: " + _W + r"){0,2}? (?:\d+|quelques|encore"
        r"|deux|trois|huit|quinze|un|une) (?:jours?|semaines?|mois|delai|temps)\b",
        r"\bprolong\w*", r"\bprorog\w*", r"\bsursis\b", r"\breport (?:de|d'|du)\b", r"\breport(?:er|ons|ee?s?|ez)\b",
        r"\brepouss\w*", r"\b(?:plus|davantage|un peu) de temps\b",
        r"\b(?:\d+|quelques|deux|trois|huit|quinze) (?:jours|semaines|mois) (?:supplementaires|de plus|de delai)\b",
        r"\brien ne presse\b", r"\bpas d'urgence\b", r"\bprenez (?:votre|le) temps\b",
        r"\bextension\b", r"\bextend\w*", r"\bgrace period\b", r"\b(?:more|extra|additional|further) time\b",
        r"\b(?:\d+|a few|few|some|two|three|another) (?:more|extra|additional|further) (?:days|weeks|months)\b",
        r"\banother (?:week|month|\d+ days)\b", r"\bnew (?:deadline|due date|payment date)\b",
        r"\bpostpon\w*", r"\bdefer\w*", r"\bpush(?:ed|ing)? back\b", r"\bno (?:rush|hurry)\b", r"\btake your time\b",
    ),
    StatementKind.LEGAL: _patterns(
        r"\b(?:mise|mettre|mettons|mettrons|mis) en demeure\b", r"\ben demeure\b", r"\bhuissiers?\b",
        r"\bcommissaires? de justice\b", r"\bcontentieu\w*",
        r"\bpoursuites?\b(?! de\b| du\b| des\b| d')", r"\btribuna\w*", r"\binjonctions?\b", r"\bavocats?\b",
        r"\brecouvrement\b", r"\bjustice\b", r"\bjudiciaire\w*", r"\bjuridique\w*",
        r"\b(?:porter|deposer|deposerons|porterons) (?:une )?plainte\b",
        r"\b(?:action|voie|procedure|mesure|suite)s? legales?\b", r"\bsaisies? (?:sur|de vos|des|du) "
        r"(?:salaire|biens|compte)",
        r"\blegal\w*", r"\b(?:to|in|before|through|the) courts?\b",
        r"\bcourt (?:action|proceedings|order|claim|case|judg(?:e)?ment)s?\b",
        r"\b(?:lawyer|attorney|solicitor|barrister|bailiff)s?\b",
        r"\bdebt collect\w*", r"\bcollections? agenc\w*", r"\bsu(?:e|ing|ed)\b", r"\blawsuits?\b",
        r"\blitigation\b", r"\bproceedings\b", r"\bsmall claims\b", r"\bformal notice\b", r"\bletter before action\b",
        r"\benforcement\b", r"\bccj\b", r"\bcredit (?:reference |rating )?agenc\w*",
        r"\bcredit (?:file|bureau|rating|score)\b", r"\bjudg(?:e)?ments?\b", r"\bseiz\w*", r"\bprosecut\w*",
    ),
}

# "soldé" is "solde" (the balance) once its accent is dropped: that one is read with its accent.
_SETTLED_ACCENTED = re.compile(r"\b(?:sold|acquitt)(?:é|ée|és|ées)\b")


def _conditional(folded: str, start: int) -> bool:
    """Whether the sentence holding ``start`` is a condition or a goal up to that point."""
    ends = list(_SENTENCE_END.finditer(folded, 0, start))
    clause = folded[ends[-1].end() if ends else 0 : start]
    return bool(_CONDITION.search(clause))


def find_statements(text: str, *, legal_allowed: bool = False) -> list[Statement]:
    """The forbidden statements of ``text``, at most one per class (its first), in text order.

    ``legal_allowed`` (the campaign mentions legal steps) lets legal statements through. Spans
    are in the NFC form of ``text`` (accents composed), which is how the words are quoted.
    """
    text = unicodedata.normalize("NFC", text)
    folded = fold_same_length(text)
    found: list[Statement] = []
    for kind, pattern in _RULES.items():
        if kind == StatementKind.LEGAL and legal_allowed:
            continue
        spans = [(m.start(), m.end()) for m in pattern.finditer(folded)]
        if kind == StatementKind.SETTLED:
            spans += [(m.start(), m.end()) for m in _SETTLED_ACCENTED.finditer(lower_same_length(text))]
            spans = [s for s in spans if not _conditional(folded, s[0])]
        if spans:
            start, end = min(spans)
            words = " ".join(text[start:end].split())[:40]
            found.append(Statement(kind=kind, start=start, end=end, words=words))
    found.sort(key=lambda s: s.start)
    return found


def grants_legal(*campaign_texts: str) -> bool:
    """Whether the campaign's own words (name, description, step tone) mention a legal step."""
    return any(_RULES[StatementKind.LEGAL].search(fold_same_length(t)) for t in campaign_texts if t)
