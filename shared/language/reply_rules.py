"""The reply rules: what words in a client's reply say, in French and English.

Two kinds of rules live here:

- the keywords read before anything else, deterministically: STOP, ARRÊT, UNSUBSCRIBE,
  DÉSINSCRIRE, "ne plus recevoir" or a STOP button opt out (:func:`is_opt_out`), START opts in
  again (:func:`is_opt_in`);
- the patterns the offline classifier (:mod:`shared.language.classifier`) reads a reply with:
  payment claims (:func:`claims_payment`), promises, partial payments, opt-outs in natural
  language, wrong person, disputes, acknowledgements, and attempts to instruct the classifier
  (:func:`looks_like_injection`).

The patterns are written for :func:`normalise`'s output: folded (case, accents, emojis), SMS
spellings expanded, small typos corrected towards the words the rules are written with.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from shared.language.dates import DATE_WORDS
from shared.language.questions import DOCUMENT, OTHER_METHOD, QUESTION_WORDS, REQUEST, TOPICS
from shared.language.text import any_of, correct_typo, fold, plain_words
from shared.language.vocabulary import SMS_SPELLINGS

__all__ = [
    "ACK_PHRASES",
    "CANNOT_PAY",
    "DISPUTE",
    "FILLER",
    "FUTURE_PAY",
    "GREETING",
    "NO",
    "NOT_PAID",
    "OPT_IN_KEYWORDS",
    "OPT_OUT",
    "OPT_OUT_KEYWORDS",
    "OPT_OUT_PHRASES",
    "OPT_OUT_REMINDERS",
    "PAID",
    "PARTIAL",
    "PRESENT_PAY",
    "WEAK_DISPUTE",
    "WHO_IS_THIS",
    "WILL_LOOK",
    "WISHES",
    "WRONG_PERSON",
    "YES",
    "claims_payment",
    "is_opt_in",
    "is_opt_out",
    "looks_like_injection",
    "normalise",
]

# ------------------------------------------------------------------------------ keywords

OPT_OUT_KEYWORDS = {
    "stop", "stop all", "stopall", "arret", "arreter", "unsubscribe", "desinscrire", "desabonner",
    "cancel", "end", "quit", "optout", "opt out",
}
OPT_OUT_PHRASES = ("ne plus recevoir", "plus recevoir de message", "plus recevoir ces message", "desinscri",
                   "desabonn")
OPT_IN_KEYWORDS = {"start", "unstop", "subscribe"}


def is_opt_out(text: str, button_payload: str = "") -> bool:
    """True when the message asks to stop, whatever its case, accents or punctuation."""
    if plain_words(button_payload) in OPT_OUT_KEYWORDS:
        return True
    words = plain_words(text)
    return words in OPT_OUT_KEYWORDS or any(p in words for p in OPT_OUT_PHRASES)


def is_opt_in(text: str) -> bool:
    """True when the message asks to receive messages again (START)."""
    return plain_words(text) in OPT_IN_KEYWORDS


# ------------------------------------------------------------------------------- the rules

_PAY_PART = r"paye|payee|payes|payees|regle|reglee|regles|reglees|solde|soldee|acquitte|acquittee"
_PAY_ANY = rf"{_PAY_PART}|payer|paie|vire|viree|virer|verse|envoye"
_MEANS = r"virement|paiement|payement|reglement|transfert|cheque|versement|mandat"
_EN_MEANS = r"payment|transfer|bank transfer|wire|money|funds|cheque|check"

PAID = any_of([
    # j'ai payé / j'ai payer / on a réglé / g viré
    rf"\b(?:j ai|j avais|on a|nous avons|ai|avons|je l ai|je les ai|on l a)"
    rf" (?:(?:deja|bien|enfin|tout|hier|aussi|finalement|tout juste|meme) )*(?:{_PAY_ANY})\b",
    # j'ai fait le virement / j'ai envoyé le chèque
    rf"\b(?:j ai|on a|nous avons|ai|avons) (?:(?:deja|bien|enfin|hier) )*(?:fait|fais|effectue|envoye|lance|passe|"
    rf"realise|emis|depose|poste) (?:le |un |mon |notre |les |la |l )?(?:{_MEANS})\b",
    # virement effectué / paiement envoyé / vir fait
    rf"\b(?:{_MEANS})s?(?: bancaire)?(?: (?:a|est|ont|sont|bien|deja|ete|ok|c est|est bien|a bien))*"
    rf" (?:effectue|effectuee|fait|faite|envoye|envoyee|passe|parti|partie|realise|realisee|emis|valide|"
    rf"validee|execute|executee|termine|terminee|poste|depose|en cours|en route|ok)\b",
    # c'est payé / la facture est réglée / déjà payé
    rf"\b(?:c est|c|c etait|ca a ete|ca|tout est|elle est|elle a ete|est|a ete|sont|ont ete|deja|bien)"
    rf" (?:(?:deja|bien|tout) )*(?:{_PAY_PART})\b",
    rf"^(?:(?:deja|bien|facture|tout) )*(?:{_PAY_PART})\b",
    r"\bc (?:est )?(?:fait|regle|bon c est fait)\b", r"^fait$",
    r"\b(?:preuve|justificatif|confirmation|avis|recu|capture) (?:de |du |d )?(?:paiement|virement|reglement)\b",
    r"\bci joint (?:le |la )?(?:justificatif|preuve|recu|capture)\b",
    # English
    r"\b(?:i|we|i ve|we ve|i have|we have|have|has|had|just|already|been|was|is|it s|it is|it was|"
    r"all|invoice|bill) (?:(?:already|just|now|been|all|fully|finally) )*(?:paid|settled|wired|transferred)\b",
    r"^(?:(?:already|just|all|fully) )*(?:paid|settled)\b", r"(?<!\bbe )(?<!\bget )(?<!\bgot )(?<!\bbeing )\bpaid\b",
    r"\bje (?:viens|venons) (?:juste |tout juste )?(?:de |d )(?:vous )?(?:payer|regler|virer|faire le virement|envoyer"
    r" le (?:virement|paiement|cheque))\b",
    rf"\b(?:i|we) (?:(?:already|just) )?(?:did|made|sent|completed|processed|initiated|paid|wired|transferred)"
    rf" (?:(?:the|a|my|our|it|you|over|by) )*(?:{_EN_MEANS})\b",
    rf"\b(?:sent|made|did|wired) (?:the|a|my) (?:{_EN_MEANS})\b",
    rf"\b(?:{_EN_MEANS}) (?:(?:has|have|was|is|been|already|just) )*(?:sent|made|done|completed|complete|"
    rf"processed|transferred|paid|issued|on its way|on the way|in progress|mailed|posted|gone through)\b",
    r"\b(?:proof of payment|payment confirmation|payment receipt|receipt attached|here is the receipt)\b",
    r"^(?:all |it s |it is )?done\b",
])
NOT_PAID = any_of([
    rf"\b(?:pas|jamais|rien|non) (?:(?:encore|du tout|toujours|vraiment) )*(?:{_PAY_PART}|fait|vire)\b",
    rf"\b(?:n ai|n avons|n a) (?:pas|jamais|rien) (?:(?:encore|pu|toujours) )*(?:{_PAY_ANY}|fait)\b",
    r"\b(?:not|haven t|have not|hasn t|has not|didn t|did not|never|yet to|un)"
    r" ?(?:(?:yet|been|already|really) )*(?:paid|pay|settled|sent|transferred)\b",
])
CANNOT_PAY = any_of([
    r"\b(?:peux|pourrai|pourrais|peut) pas (?:vous )?(?:payer|regler)\b", r"\bpas les moyens\b",
    r"\bimpossible de (?:payer|regler)\b", r"\bdifficultes? (?:financieres?|de paiement)\b",
    r"\b(?:can t|cannot|can not|unable to|couldn t|won t be able to) (?:afford|pay)\b",
    r"\b(?:financial|money) (?:difficulties|problems|trouble)\b", r"\bbroke\b",
    r"\bnot able to (?:pay|afford)\b", r"\bpas en mesure de (?:vous )?(?:payer|regler)\b",
])
FUTURE_PAY = any_of([
    r"\b(?:je |j |on |nous )?(?:vais|va|allons|vas|compte|comptons|pense|prevois|pourrai|pourrais|devrais)"
    r" (?:vous |le |la |les |l |bien |tout )*(?:payer|regler|virer|verser|solder|envoyer|effectuer|faire (?:le|un|mon)"
    r" (?:virement|paiement|reglement|cheque))\b",
    r"\b(?:paierai|payerai|reglerai|virerai|verserai|solderai|enverrai|effectuerai|paierons|reglerons|payerons)\b",
    rf"\bferai (?:le |un |mon |l )?(?:{_MEANS}|necessaire)\b",
    rf"\b(?:{_MEANS}) (?:(?:est|sera|bien) )*(?:prevu|programme|planifie)\b",
    rf"\b(?:prevu|programme|planifie) (?:le |un |mon |l )?(?:{_MEANS})\b",
    rf"\bsera (?:{_PAY_PART}|fait|effectue|envoye|vire)\b",
    r"\b(?:i ll|i will|we ll|we will|will|going to|gonna|plan to|planning to|intend to|expect to|i can|we can|"
    r"i shall|should be able to|i ll be able to|i m able to|able to)"
    r" (?:(?:be able to|definitely|surely|make sure to|try to|have to) )*(?:pay|settle|send|transfer|wire|clear|make"
    r" (?:the|a) (?:payment|transfer)|do the (?:payment|transfer))\b",
    r"\b(?:payment|transfer|wire) (?:will|is scheduled|scheduled|planned|is planned|coming|will go out|will be)\b",
    r"\bwill be (?:paid|settled|sent|transferred)\b",
])
PRESENT_PAY = any_of([
    r"\b(?:je|j|on|nous|i|we) (?:vous |le |la |les |l |it |you |the )*(?:paie|paye|payons|regle|reglons|vire|"
    r"fais|verse|solde|envoie|effectue|pay|send|transfer|wire|settle)\b",
    rf"^(?:{_MEANS}|paiement|payment|transfer) ",
    r"\b(?:i m|i am|we re|we are) (?:paying|sending|transferring|settling|wiring)\b",
    r"\bsans faute\b", r"\bpromis\b", r"\bi promise\b",
])
PARTIAL = any_of([
    r"\b(?:la moitie|moitie|une partie|acompte|le reste|en plusieurs fois|plusieurs fois|"
    r"en (?:deux|2|trois|3|quatre|4) fois|echelonn\w*|mensualites?)\b",
    r"\b(?:half|part of|partial|partially|the rest|remaining|remainder|instal?lments?|deposit)\b",
])
OPT_OUT = any_of([
    r"\b(?:arretez|arrete|arreter|cessez|cesse|stoppez|stop) (?:de |d |svp |s il vous plait |tout de suite )*"
    r"(?:me |m |nous )?(?:ecrire|envoyer|contacter|harceler|spammer|appeler|deranger|embeter|solliciter|texter)\b",
    r"\b(?:ne |n )?(?:me |m |nous )(?:ecrivez|contactez|envoyez|derangez|appelez|harcelez|sollicitez)"
    r" (?:plus|jamais)\b",
    r"\b(?:laissez|laisse|lache|lachez|fichez|foutez) (?:moi|nous) (?:tranquille|la paix|en paix)\b",
    r"\bje (?:ne )?veux plus (?:(?:rien|jamais) )*(?:recevoir|etre contacte|etre contactee|de message|de messages|"
    r"de vos messages|de sms|vous lire|entendre)\b",
    r"\b(?:plus jamais|plus) de (?:messages?|sms|whatsapp)\b",
    r"\b(?:retirez|supprimez|effacez|enlevez) (?:moi|mon numero|mes coordonnees|mes donnees)\b",
    r"\bharcel\w*\b", r"\bdesinscri\w*\b", r"\bdesabonn\w*\b",
    r"\b(?:stop|quit|cease) (?:messaging|texting|contacting|writing|sending|bothering|harassing|spamming|calling)\b",
    r"\b(?:don t|do not|never) (?:message|text|contact|write to|bother|call|send|whatsapp) (?:me|us)\b",
    r"\bleave (?:me|us) alone\b", r"\b(?:remove|delete) (?:me|my number|my details)\b", r"\btake me off\b",
    r"\bunsubscribe\b", r"\bopt (?:me )?out\b", r"\bno more (?:messages|texts|whatsapp)\b",
    r"\bi don t want (?:(?:any|more|any more|your) )*(?:messages|texts|to hear|to receive)\b",
    r"^(?:stop|arret|arreter|stop all|stopall|end|quit)$",
])
OPT_OUT_REMINDERS = any_of([
    r"\b(?:arretez|arrete|arreter|cessez|stoppez|stop) (?:de |avec )?(?:me |m )?(?:relancer|les relances|vos relances"
    r"|relances|les rappels|rappels)\b",
    r"\b(?:ne |n )?(?:me |m )relancez plus\b", r"\bplus de relances?\b",
    r"\b(?:stop|quit) (?:the |your |these )?(?:reminders|reminding)\b", r"\bno more reminders\b",
])
WRONG_PERSON = any_of([
    r"\b(?:mauvais|faux) (?:numero|destinataire|contact|correspondant|personne)\b",
    r"\berreur de (?:numero|destinataire|personne|contact)\b",
    r"\btrompe\w* de (?:numero|personne|destinataire|contact)\b",
    r"\b(?:ce|c|ceci|ca) (?:n )?(?:est|etait) pas (?:moi|mon nom|ma facture|mon numero|a moi)\b",
    r"\b(?:this|it) (?:was|is) (?:his|her|their) number\b", r"\bc (?:etait|est) (?:son numero|le numero de)\b",
    r"\bdecede\w*\b", r"\bpassed away\b",
    r"\bpas (?:la bonne personne|le bon numero|le bon destinataire|le bon contact)\b",
    r"\bje ne suis pas (?:concerne|concernee|client|cliente|votre client|votre cliente|la personne|cette personne|"
    r"m|mme|mr|monsieur|madame|mademoiselle)\b",
    r"\bje (?:ne )?(?:connais|connait) (?:pas|personne|rien)"
    r" (?:de ce nom|cette (?:entreprise|societe|personne|boite|dame)|ce (?:nom|monsieur|numero|commerce|garage"
    r"|prestataire|client)|votre (?:entreprise|societe|boite|client)|vos services|la personne|personne)\b",
    r"\bjamais ete (?:client|cliente|chez vous)\b", r"\bce numero (?:n est plus|a change|appartient)\b",
    r"\bn (?:est|utilise) plus (?:ce numero|son numero|le numero)\b",
    r"\bwrong (?:number|person|contact|recipient|guy|girl)\b", r"\b(?:you have|you ve got|got) the wrong\b",
    r"\b(?:this|that|it) (?:is|s) not me\b",
    r"\b(?:not|isn t|is not) (?:my invoice|my bill|my number|my name|me|mine)\b",
    r"\bi (?:am|m) not (?:the person|your client|your customer|a client|a customer|mr|mrs|ms|miss)\b",
    r"\bnever (?:been|was) (?:a |your )?(?:client|customer)\b",
    r"\b(?:no longer|not) (?:his|her|their) number\b", r"\bnew (?:owner|user) of this number\b",
    r"\bi don t know (?:(?:this|your|any|who) )*(?:company|business|person|you|who this is|anyone)\b",
    r"\bnever heard of\b",
])
WHO_IS_THIS = any_of([
    r"\b(?:qui (?:est ce|etes vous|es tu|parle|c est|me contacte|m ecrit)|c est qui|vous etes qui|t es qui)\b",
    r"\bwho (?:is this|are you|s this|is it|is that|is writing|s writing)\b",
])
DISPUTE = any_of([
    r"\bconteste\w*\b", r"\bcontestation\b", r"\b(?:pas|pa) d accord\b", r"\bdesaccord\b", r"\barnaque\w*\b",
    r"\bescro\w*\b", r"\bvoleurs?\b", r"\blitige\b", r"\bavocat\b", r"\btribunal\b", r"\bmise en demeure\b",
    r"\breclamation\b", r"\b(?:pas|jamais|rien|n ai pas|n ai jamais|n ai rien) commande\b",
    r"\b(?:jamais|pas|rien) (?:recu|eu|vu) (?:(?:la|le|les|ma|mon|mes|de|d|aucune?) )*(?:prestation|marchandise|"
    r"commande|colis|produit|service|travaux|travail|livraison|intervention|article|piece|reparation)s?\b",
    r"\b(?:mauvais|faux) montant\b", r"\bmontant (?:est )?(?:faux|errone|incorrect|exagere)\b",
    r"\bmontant (?:n est |est )?pas (?:bon|correct|juste)\b", r"\bpas le bon (?:montant|prix)\b",
    r"\btrop cher\b", r"\bsurfactur\w*\b",
    r"\bfacture (?:(?:est|n est|pas) )*(?:fausse|erronee|incorrecte|annulee)\b",
    r"\b(?:ne (?:paierai|payerai|reglerai|vais) pas|refuse de (?:payer|regler)|ne vais pas (?:payer|regler)|"
    r"pas question de payer)\b",
    r"\bpas (?:satisfait|satisfaite|content|contente)\b", r"\btravail (?:mal fait|pas fait|bacle|pas termine)\b",
    r"\bmalfacon\b", r"\brembours\w*\b",
    r"\b(?:ce n est|c est) pas (?:correct|juste|le prix|le montant|ce qui|ce qu on)\b", r"\bpas correct\b",
    r"\binexact\b", r"\bannul\w*\b",
    r"\bdisput\w*\b", r"\bcontest\b", r"\bdisagree\b", r"\b(?:don t|do not) agree\b", r"\bscam\w*\b",
    r"\bfraud\w*\b", r"\brip ?off\b", r"\blawyer\b", r"\blegal action\b", r"\bcomplaint\b",
    r"\b(?:never|didn t|did not) order\w*\b",
    r"\b(?:never|didn t|did not|haven t) (?:receive|received|get|got) (?:(?:the|my|any|your) )*(?:service|goods|order|"
    r"item|product|delivery|work|package|parcel|repair)s?\b",
    r"\bwrong (?:amount|price|total|invoice)\b", r"\b(?:amount|price|total|invoice) (?:is|s) (?:wrong|incorrect|"
    r"not right|not correct|too high)\b", r"\bincorrect\b", r"\bovercharg\w*\b", r"\btoo (?:much|expensive)\b",
    r"\b(?:not|isn t|is not) (?:correct|right(?! now| away)|what we agreed)\b",
    r"\b(?:won t|will not|refuse to|not going to) pay\b", r"\bnot paying\b", r"\brefund\w*\b",
    r"\b(?:not|never) satisfied\b", r"\bpoor (?:work|service)\b",
    r"\bcancel\w*\b",
])
WEAK_DISPUTE = any_of([
    r"\berreurs?\b", r"\berrone\w*\b", r"\bpas normal\b", r"\bincomprehensible\b", r"\btromp\w*\b",
    r"\berrors?\b", r"\bmistakes?\b", r"\bmistaken\b", r"\bnot normal\b",
])
_INJECTION = any_of([
    r"\b(?:ignore\w*|disregard\w*|forget|oublie\w*)\b.{0,40}\b(?:instructions?|consignes?|regles|rules|prompts?"
    r"|directives?|system prompt|prompt systeme)\b",
    r"\b(?:system prompt|prompt systeme|developer mode|jailbreak|you are now|tu es maintenant|vous etes maintenant"
    r"|act as|agis comme|new instructions?|nouvelles? (?:instructions?|consignes?)|as an ai|en tant qu ia)\b",
    r"\b(?:respond|answer|reply|reponds|repondez|output|return)\b.{0,20}\b(?:json|intent|with paid)\b",
    r"\b(?:question topic|question_topic|promised date|promised_date|intent|confidence)\b",
    r"\b(?:say|dis|dites|write|ecris|ecrivez|tell)\b.{0,30}\b(?:invoice|facture|montant|amount)\b.{0,25}"
    r"\b(?:cancel\w*|annul\w*|offert\w*|free|gratuit\w*|0|zero)\b",
    r"\b(?:classify|classe|classez|mark|marque|marquez|set)\b.{0,30}\b(?:as|comme|en) (?:paid|paye|payee)\b.{0,30}"
    r"\b(?:instruction\w*|system|systeme|intent)\b",
])
_INJECTION_RAW = re.compile(r"</?\s*(?:system|facts|client_reply|history|instructions?|prompt)\b|```|\{\s*\"", re.I)

ACK_PHRASES = any_of([
    r"\bmerci(?: beaucoup| bien| infiniment| a vous| pour (?:le|votre) (?:message|rappel|info\w*))?\b",
    r"\bbien (?:recu|note|compris|vu)\b", r"\b(?:c est|c|message|rappel) (?:bien )?(?:note|recu|compris)\b",
    r"\b(?:recu|note|vu|entendu|compris|parfait|super|top|cool|nickel|tres bien|ca marche|ok|d accord|"
    r"pas de (?:souci|soucis|probleme)|sans (?:souci|probleme)|je (?:note|prends note)|bonne (?:journee|soiree)|"
    r"bon(?:ne)? (?:fin de )?(?:semaine|week end|journee|soiree))\b",
    r"\b(?:thanks?(?: you| u| a lot| so much)?|many thanks|noted|received|got it|understood|great|perfect|sure|"
    r"alright|all right|fine|no problem|will do|sounds good|good|nice|cheers|have a (?:nice|good|great) day)\b",
])
WILL_LOOK = any_of([
    r"\bje (?:regarde|verifie|vais (?:regarder|verifier|voir)|m en occupe|fais le necessaire|reviens vers vous)\b",
    r"\b(?:je|on) (?:vous )?(?:tiens|tient) au courant\b",
    r"\b(?:i ll|i will|let me|we ll) (?:check|look|have a look|get back|take care|sort it|handle it)\b",
    r"\bi m (?:on it|looking into it|checking)\b",
])
GREETING = re.compile(r"\b(?:bonjour|bonsoir|salut|coucou|hello|hi|hey|good (?:morning|afternoon|evening))\b")
YES = re.compile(r"^(?:oui|ouais|yes|yep|yeah|yup|si)$")
NO = re.compile(r"^(?:non|no|nope|nan)$")
FILLER = frozenset(
    """je j vous v nous on il elle le la les l de des du d un une et ou a au aux ce ca c est pour avec sur
    dans en que qui se s y ai as avez svp please bien tres tout toute madame monsieur mme m mr merci
    i you we it the a an to of and for in on is are be my your me moi toi sir madam dear please just so
    bonjour bonsoir hello hi hey salut cordialement regards best ok oui yes
    """.split()
)
WISHES = re.compile(
    r"\b(?:bonne|bon|have a (?:nice|good|great)|enjoy (?:your|the)|passez une bonne|excellente?) (?:fin de )?"
    r"(?:semaine|journee|soiree|week end|day|evening|mois|fin de semaine)\b"
)

# ----------------------------------------------------------------------------- normalising

# Words the rules are written with: a token one typo away from one of them is corrected (with the
# patterns' own words and the calendar's, DATE_WORDS).
_BASE_VOCAB = frozenset(
    """
    paye payee payes payees payer payez paie paies paient paierai paierais paierez paierons payerai
    regle reglee regles reglees regler reglerai reglement solde soldee acquitte acquittee virement
    virements virer virerai effectue effectuee effectuer envoye envoyee envoyer enverrai transfert
    versement cheque paiement payement facture factures montant combien echeance reference numero
    conteste contester contestation accord erreur arnaque escroquerie litige mauvais commande prestation
    marchandise livraison arretez arreter cessez ecrire ecrivez contacter contactez relancer relancez
    relances messages tranquille harcelement merci parfait entendu compris bonjour bonsoir cordialement
    recu devise monnaie coordonnees bancaires paid payment transfer transferred settled already invoice
    amount dispute disagree wrong number person messaging texting contacting unsubscribe thanks thank
    received noted understood currency deadline
    """.split()
)


def _pattern_words(patterns: Iterable[re.Pattern[str]]) -> frozenset[str]:
    """The words the rules are written with (so that a typo fix never turns one into another)."""
    words: set[str] = set()
    for pattern in patterns:
        source = re.sub(r"\\[A-Za-z]", " ", pattern.pattern)
        words.update(re.findall(r"[a-z]{4,}", source))
    return frozenset(words)


_VOCAB = _BASE_VOCAB | _pattern_words([
    PAID, NOT_PAID, CANNOT_PAY, FUTURE_PAY, PRESENT_PAY, PARTIAL, OPT_OUT, OPT_OUT_REMINDERS,
    WRONG_PERSON, WHO_IS_THIS, DISPUTE, WEAK_DISPUTE, ACK_PHRASES, WILL_LOOK, GREETING,
    QUESTION_WORDS, REQUEST, *TOPICS.values(), OTHER_METHOD, DOCUMENT,
]) | DATE_WORDS


@functools.lru_cache(maxsize=8192)
def _correct(token: str) -> str:
    """The vocabulary word a typo stands for, else the token (see :func:`correct_typo`)."""
    return correct_typo(token, _VOCAB)


def _dates_to_slashes(text: str) -> str:
    """``2026-12-15`` → ``15/12/2026``; ``15.12`` / ``15-12-26`` → ``15/12`` / ``15/12/26``."""
    text = re.sub(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", r"\3/\2/\1", text)
    return re.sub(
        r"(?<![\d.,])(\d{1,2})[.\-](\d{1,2})(?:[.\-](\d{4}|\d{2}))?(?![\d.,]|\s?(?:€|eur|\$|£|k\b|%))",
        lambda m: "/".join(g for g in m.groups() if g),
        text,
    )


def normalise(text: str) -> str:
    """The text the rules read: folded, punctuation as spaces (``/`` kept), SMS and typos fixed."""
    folded = _dates_to_slashes(fold(text))
    folded = re.sub(r"\bn\s?°|\bno\.(?=\s?\d)|#(?=\s?\w)", " numero ", folded)
    folded = folded.replace("'", " ")
    folded = re.sub(r"[^a-z0-9/]+", " ", folded)
    folded = re.sub(r"(?<!\d)/|/(?!\d)", " ", folded)
    words: list[str] = []
    for token in folded.split():
        mapped = SMS_SPELLINGS.get(token, token)
        words.extend(_correct(part) for part in mapped.split())
    return " ".join(words)


def claims_payment(text: str) -> bool:
    """Whether a reply says the invoice is paid (the offline rules' reading, whatever else it says)."""
    folded = normalise(text)
    return bool(PAID.search(folded)) and not NOT_PAID.search(folded)


def looks_like_injection(text: str) -> bool:
    """Whether a reply tries to instruct the classifier ("ignore your instructions…")."""
    return bool(_INJECTION_RAW.search(text) or _INJECTION.search(normalise(text)))
