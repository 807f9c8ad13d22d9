"""Approved Content templates: their variables filled from a contact, and the text a person reads."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.domain.models import INVOICE_VARIABLES, Contact, TemplateRef

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template_variables(template: TemplateRef, contact: Contact, facts: Mapping[str, str] | None = None
                       ) -> dict[str, str]:
    """The template's ContentVariables, filled from the contact, or for an invoice campaign (``facts``:
    its invoice facts) the invoice variables from the invoices only, never from the contact's old fields.

    WhatsApp refuses a variable holding a line break or a tab, or an empty one: a list is written
    on one line (``"FA-1 : 500,00 € ; FA-2 : …"`` → lines joined by ``; ``), and an invoice
    variable with nothing to say is ``-``.
    """
    values: dict[str, str] = {}
    for slot, source in template.variables.items():
        if facts is not None and source in INVOICE_VARIABLES:
            value = facts.get(source) or (facts.get("payment_links", "") if source == "payment_link" else "")
            values[slot] = one_line(value) or "-"
        elif source == "name":
            values[slot] = one_line(contact.name)
        else:
            values[slot] = one_line((facts or {}).get(source) or contact.fields.get(source, ""))
    return values


def one_line(value: str) -> str:
    """``value`` as a template variable may hold it: its lines joined by ``; ``, no tab, no run of spaces."""
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in value.splitlines())
    return "; ".join(line for line in lines if line)


def render_preview(template: TemplateRef, contact: Contact, variables: dict[str, str]) -> str:
    """The template's text in the contact's language with its variables filled in."""
    text = template.preview.get(contact.language) or next(iter(template.preview.values()), "")
    if not text:
        return f"[template {template.content_sid}]"
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
