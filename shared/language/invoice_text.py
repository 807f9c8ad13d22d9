"""A client's invoices as facts a reminder may state: count, total due per currency, the list, the links.

:func:`invoice_facts` is what an invoice campaign's step is drafted from (the Gemini draft, the
offline one and a template's variables) and what the facts check allows: the facts of this
client's covered invoices and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from shared.domain.invoices import Invoice, cents_text
from shared.domain.models import Language
from shared.language.formatting import format_amount, format_date

__all__ = ["INVOICE_LIST_LIMIT", "invoice_facts", "total_due_text"]

# A reminder names this many invoices, then "and N more".
INVOICE_LIST_LIMIT = 5


def _amount(cents: int, currency: str, language: Language) -> str:
    return format_amount(Decimal(cents_text(cents)), currency, language)


def total_due_text(invoices: Sequence[Invoice], language: Language) -> str:
    """What is due in all, per currency (``1 250,50 € + 80,00 USD``), in the order currencies first appear."""
    totals: dict[str, int] = {}
    for invoice in invoices:
        totals[invoice.currency] = totals.get(invoice.currency, 0) + invoice.amount_due_cents
    return " + ".join(_amount(cents, currency, language) for currency, cents in totals.items())


def _line(invoice: Invoice, language: Language) -> str:
    amount = _amount(invoice.amount_due_cents, invoice.currency, language)
    if invoice.due_date is None:
        return f"{invoice.reference} : {amount}" if language == Language.FR else f"{invoice.reference}: {amount}"
    due = format_date(invoice.due_date, language)
    if language == Language.FR:
        return f"{invoice.reference} : {amount} (échéance : {due})"
    return f"{invoice.reference}: {amount} (due {due})"


def invoice_facts(invoices: Sequence[Invoice], language: Language, *, limit: int = INVOICE_LIST_LIMIT
                  ) -> dict[str, str]:
    """The facts of a reminder covering ``invoices`` (oldest first), in the client's language.

    Always ``invoice_count``, ``total_due`` and ``invoice_list`` (one line per invoice, at most
    ``limit``, then "and N more"); ``payment_link`` when every invoice has the same link, else
    ``payment_links`` (one line ``REF : url`` per listed invoice that has one). One invoice also
    gives the keys a contact's fields used to: ``invoice_number``, ``amount`` (what is due),
    ``currency``, ``due_date`` (ISO).
    """
    shown = list(invoices[:limit])
    lines = [_line(invoice, language) for invoice in shown]
    more = len(invoices) - len(shown)
    if more > 0:
        lines.append(f"… et {more} autre(s)" if language == Language.FR else f"… and {more} more")
    facts = {
        "invoice_count": str(len(invoices)),
        "total_due": total_due_text(invoices, language),
        "invoice_list": "\n".join(lines),
    }
    links = list(dict.fromkeys(i.payment_link for i in invoices if i.payment_link))
    if len(links) == 1 and all(i.payment_link for i in invoices):
        facts["payment_link"] = links[0]
    elif links:
        # Not one link for all: each link says which invoice it pays.
        sep = " : " if language == Language.FR else ": "
        link_lines = [f"{i.reference}{sep}{i.payment_link}" for i in shown if i.payment_link]
        if link_lines:
            facts["payment_links"] = "\n".join(link_lines)
    if len(invoices) == 1:
        only = invoices[0]
        facts.update(invoice_number=only.reference, amount=cents_text(only.amount_due_cents), currency=only.currency)
        if only.due_date is not None:
            facts["due_date"] = only.due_date.isoformat()
    return facts
