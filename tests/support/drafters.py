"""Test drafters behind the project's Drafter interface."""

from __future__ import annotations

from shared.ports import Draft, DraftRequest


class EchoDrafter:
    """A drafter that writes a short message from the facts."""

    def __init__(self) -> None:
        self.requests: list[DraftRequest] = []

    def draft(self, request: DraftRequest) -> Draft:
        self.requests.append(request)
        return Draft(body=f"Bonjour {request.contact_name}, facture {request.facts.get('invoice_number')}.",
                     language=request.language, source="offline")
