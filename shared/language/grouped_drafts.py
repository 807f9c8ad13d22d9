"""The offline drafter's grouped reminder: one message for all of a client's covered invoices.

An invoice campaign's facts (:func:`shared.language.invoice_text.invoice_facts`) with an
``invoice_count`` above one are written as: a greeting, a sentence saying how many invoices
await payment and for what total (``total_due``), the ``invoice_list`` lines, the payment link
(``payment_link``) or links (``payment_links`` lines), thanks and a closing, the signature.

:func:`grouped_variants` gives the paragraph lists from the fullest to the shortest; the
drafter keeps the first that fits ``max_chars``. Values are copied from the facts as given
(they are already formatted for the client's language) and kept whole: a list or link line
and the total are never split.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.models import Language
from shared.language.formatting import atomic
from shared.ports import DraftRequest

__all__ = ["grouped_variants", "is_grouped"]


def _fact(request: DraftRequest, name: str) -> str:
    value = request.facts.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _count(request: DraftRequest) -> int:
    try:
        return int(_fact(request, "invoice_count"))
    except ValueError:
        return 0


def is_grouped(request: DraftRequest) -> bool:
    """Whether the facts are those of a reminder covering several invoices (``invoice_count`` > 1)."""
    return _count(request) > 1


@dataclass(frozen=True)
class _Group:
    count: int
    total: str  # atomic
    lines: tuple[str, ...]  # one per listed invoice, atomic; without the "and N more" line
    link: str  # one shared link
    links: tuple[str, ...]  # "REF : url" lines, atomic, when the invoices have their own


def _lines(value: str) -> list[str]:
    return [atomic(line) for line in value.splitlines() if line.strip()]


def _group(request: DraftRequest) -> _Group:
    listed = [line for line in _lines(_fact(request, "invoice_list")) if not line.startswith("…")]
    link = _fact(request, "payment_link")
    return _Group(
        count=_count(request),
        total=atomic(_fact(request, "total_due")),
        lines=tuple(listed),
        link=link.split()[0] if link else "",
        links=tuple(_lines(_fact(request, "payment_links"))) if not link else (),
    )


@dataclass(frozen=True)
class _Words:
    """The sentences of one language, stage and tone."""

    intro: str  # "{n} invoices … {total}", without its final punctuation
    ask: str  # after the list; may be empty
    short: str  # the short form of the intro, with its punctuation
    short_no_total: str
    more: str  # "… and {m} more"
    colon: str  # before the list
    one_link: str  # "{link}"
    many_links: str  # heading of the links' lines
    thanks: str
    closing: str
    greeting: str
    sign: str


def _fr(request: DraftRequest, stage: str, tone: str, n: int, total: str) -> _Words:
    name = atomic(request.contact_name)
    amount = f", pour un total de {total}" if total else ""
    intro = {
        "first": f"Nous nous permettons de vous rappeler que {n} factures sont en attente de règlement{amount}",
        "middle": f"Sauf erreur de notre part, nous n'avons pas encore reçu le règlement de {n} factures{amount}",
        "last": f"Ceci est notre dernière relance concernant {n} factures toujours en attente de "
        f"règlement{amount}",
    }[stage]
    if tone == "friendly" and stage == "first":
        intro = f"Petit rappel : {n} factures sont en attente de règlement{amount}"
    if tone == "firm" and stage == "first":
        intro = f"Nous vous rappelons que {n} factures sont en attente de règlement{amount}"
    if tone == "firm" and stage == "middle":
        intro = f"Malgré nos précédents messages, {n} factures ne sont toujours pas réglées{amount}"
    ask = {
        "first": "",
        "middle": "Merci de bien vouloir procéder au paiement dans les meilleurs délais.",
        "last": "Merci de régulariser la situation sans attendre.",
    }[stage]
    if tone == "firm" and stage != "last":
        ask = "Nous vous demandons de procéder au paiement sans délai."
    short = {"first": "Rappel", "middle": "Relance", "last": "Dernière relance"}[stage]
    state = "en attente de règlement" if stage == "first" else "restent à régler"
    greeting = f"Bonjour {name}," if name else "Bonjour,"
    if tone == "friendly":
        greeting = f"Bonjour {name} !" if name else "Bonjour !"
    return _Words(
        intro=intro,
        ask=ask,
        short=f"{short} : {n} factures {state}, total {total}." if total else f"{short} : {n} factures {state}.",
        short_no_total=f"{short} : {n} factures {state}.",
        more="… et {m} autre(s)",
        colon=" :",
        one_link="Vous pouvez régler ici : {link}",
        many_links="Pour régler :",
        thanks={"courteous": "Nous vous remercions par avance.", "friendly": "Merci beaucoup et bonne journée !",
                "firm": "Merci de votre diligence."}[tone],
        closing="Si le règlement a déjà été effectué, merci de ne pas tenir compte de ce message.",
        greeting=greeting,
        sign={"courteous": "Cordialement,", "friendly": "À bientôt,", "firm": "Cordialement,"}[tone],
    )


def _en(request: DraftRequest, stage: str, tone: str, n: int, total: str) -> _Words:
    name = atomic(request.contact_name)
    amount = f", for a total of {total}" if total else ""
    intro = {
        "first": f"This is a reminder that {n} invoices are awaiting payment{amount}",
        "middle": f"Unless we are mistaken, we have not yet received payment for {n} invoices{amount}",
        "last": f"This is our last reminder about {n} invoices still awaiting payment{amount}",
    }[stage]
    if tone == "friendly" and stage == "first":
        intro = f"Just a quick reminder that {n} invoices are awaiting payment{amount}"
    if tone == "firm" and stage == "first":
        intro = f"We remind you that {n} invoices are awaiting payment{amount}"
    if tone == "firm" and stage == "middle":
        intro = f"Despite our previous messages, {n} invoices are still unpaid{amount}"
    ask = {
        "first": "",
        "middle": "Please settle them as soon as possible.",
        "last": "Please settle them without further delay.",
    }[stage]
    if tone == "firm" and stage != "last":
        ask = "We ask you to settle them without delay."
    short = {"first": "Reminder", "middle": "Reminder", "last": "Last reminder"}[stage]
    state = "awaiting payment" if stage == "first" else "still unpaid"
    greeting = f"Hello {name}," if name else "Hello,"
    if tone == "friendly":
        greeting = f"Hi {name}!" if name else "Hi!"
    return _Words(
        intro=intro,
        ask=ask,
        short=f"{short}: {n} invoices {state}, total {total}." if total else f"{short}: {n} invoices {state}.",
        short_no_total=f"{short}: {n} invoices {state}.",
        more="… and {m} more",
        colon=":",
        one_link="You can pay here: {link}",
        many_links="To pay:",
        thanks={"courteous": "Thank you in advance.", "friendly": "Thanks a lot and have a nice day!",
                "firm": "Thank you for your prompt attention."}[tone],
        closing="If you have already paid, please disregard this message.",
        greeting=greeting,
        sign={"courteous": "Kind regards,", "friendly": "Best,", "firm": "Regards,"}[tone],
    )


def grouped_variants(request: DraftRequest, stage: str, tone: str) -> list[list[str]]:
    """Paragraph lists for a reminder covering several invoices, from the fullest to the shortest.

    Shortening drops the closing, the thanks, the request to pay, then the long sentences and the
    list's lines from the last (an "and N more" line counts the rest); then the payment links
    beyond the first, the greeting, the signature, the total. The last list holds the shortest text.
    """
    g = _group(request)
    build = _en if request.language == Language.EN else _fr
    w = build(request, stage, tone, g.count, g.total)
    business = atomic(request.business_name)
    signature = f"{w.sign}\n{business}" if business else w.sign.rstrip(",")

    def listing(shown: int) -> str:
        lines = list(g.lines[:shown])
        rest = g.count - len(lines)
        if lines and rest > 0:
            lines.append(atomic(w.more.format(m=rest)))
        return "\n".join(lines)

    def links(shown: int) -> str:
        if g.link:
            return w.one_link.format(link=g.link)
        if not g.links or shown <= 0:
            return ""
        return "\n".join([w.many_links, *g.links[:shown]])

    def body(shown: int) -> str:
        if shown and g.lines:
            return f"{w.intro}{w.colon}\n{listing(shown)}"
        return f"{w.intro}."

    all_lines, all_links = len(g.lines), max(len(g.links), 1)
    thanks_closing = f"{w.thanks} {w.closing}" if stage != "last" else w.thanks
    variants = [
        [w.greeting, body(all_lines), w.ask, links(all_links), thanks_closing, signature],
        [w.greeting, body(all_lines), w.ask, links(all_links), w.thanks, signature],
        [w.greeting, body(all_lines), w.ask, links(all_links), signature],
        [w.greeting, body(all_lines), links(all_links), signature],
    ]
    for shown in range(all_lines, -1, -1):
        if shown < all_lines:
            variants.append([w.greeting, body(shown), links(all_links), signature])
        short = f"{w.short[:-1]}{w.colon}\n{listing(shown)}" if shown and g.lines else w.short
        variants.append([w.greeting, short, links(all_links), business])
    for kept in range(all_links, 0, -1):
        variants.append([w.greeting, w.short, links(kept), business])
        variants.append([w.short, links(kept), business])
        variants.append([w.short, links(kept)])
    variants.append([w.short])
    variants.append([w.short_no_total, links(1)])
    variants.append([w.short_no_total])
    return variants
