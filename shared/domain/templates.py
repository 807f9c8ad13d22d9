"""Approved Content templates: their variables filled from a contact, and the text a person reads."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.domain.models import Contact, TemplateRef

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template_variables(template: TemplateRef, contact: Contact, facts: Mapping[str, str] | None = None
                       ) -> dict[str, str]:
    """The template's ContentVariables, filled from ``facts`` (an invoice campaign's invoice facts)
    first, else from the contact."""
    values: dict[str, str] = {}
    for slot, source in template.variables.items():
        if facts is not None and source in facts:
            values[slot] = facts[source]
        else:
            values[slot] = contact.name if source == "name" else contact.fields.get(source, "")
    return values


def render_preview(template: TemplateRef, contact: Contact, variables: dict[str, str]) -> str:
    """The template's text in the contact's language with its variables filled in."""
    text = template.preview.get(contact.language) or next(iter(template.preview.values()), "")
    if not text:
        return f"[template {template.content_sid}]"
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
