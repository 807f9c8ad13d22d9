"""/api/v1/contacts: the clients."""

from __future__ import annotations

from fastapi import APIRouter

from services.console.auth_deps import Cursor, Limit, Reader, api_router
from services.console.guard import Console, decode_cursor, encode_cursor
from services.console.schemas import ContactOut, PageOut
from shared.usecases import browsing


def router(console: Console) -> APIRouter:
    """The contacts routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/contacts", response_model=PageOut[ContactOut], tags=["contacts"])
    def contacts(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[ContactOut]:
        page = browsing.contacts_page(store, after=decode_cursor("contacts", cursor), limit=limit)
        return PageOut(items=[ContactOut.of(c) for c in page.items], next_cursor=encode_cursor("contacts",
                                                                                               page.next_after))

    @api.get("/contacts/{contact_id}", response_model=ContactOut, tags=["contacts"])
    def contact(contact_id: str, key: Reader) -> ContactOut:
        return ContactOut.of(browsing.get_contact(store, contact_id))

    return api
