"""/api/v1/contacts: the clients (list, read, create, change)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router, by_key
from services.console.guard import Console, answer, decode_cursor, encode_cursor, idempotent
from services.console.schemas import ContactIn, ContactOut, ContactPatch, PageOut
from shared.usecases import browsing
from shared.usecases.contacts import create_contact, update_contact


def router(console: Console) -> APIRouter:
    """The contacts routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/contacts", response_model=PageOut[ContactOut], tags=["contacts"])
    def contacts(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[ContactOut]:
        page = browsing.contacts_page(store, after=decode_cursor("contacts", cursor), limit=limit)
        return PageOut(items=[ContactOut.of(c) for c in page.items], next_cursor=encode_cursor("contacts",
                                                                                               page.next_after))

    @api.post("/contacts", response_model=ContactOut, status_code=201, tags=["contacts"])
    def create(body: ContactIn, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, body, lambda: ContactOut.of(create_contact(
            store, body.model_dump(), now=console.clock.now(), by=by_key(key),
            default_region=console.default_region)), status=201)

    @api.get("/contacts/{contact_id}", response_model=ContactOut, tags=["contacts"])
    def contact(contact_id: str, key: Reader) -> ContactOut:
        return ContactOut.of(browsing.get_contact(store, contact_id))

    @api.patch("/contacts/{contact_id}", response_model=ContactOut, tags=["contacts"])
    def change(contact_id: str, body: ContactPatch, key: Writer) -> Response:
        return answer(lambda: ContactOut.of(update_contact(
            store, contact_id, body.model_dump(exclude_unset=True), now=console.clock.now(), by=by_key(key),
            default_region=console.default_region)))

    return api
