"""/api/v1/messages and /api/v1/conversations: what Relance sent, and each client's conversation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.console.auth_deps import Cursor, Limit, Reader, api_router
from services.console.guard import Console, decode_cursor, encode_cursor
from services.console.schemas import ConversationOut, MessageOut, PageOut, TimelineOut
from shared.phones import normalise_phone
from shared.usecases import browsing
from shared.usecases.conversations import client_timeline, contact_timeline, conversations_page


def router(console: Console) -> APIRouter:
    """The messages and conversations routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/messages", response_model=PageOut[MessageOut], tags=["messages"])
    def messages(key: Reader, state: str | None = None, campaign: str | None = None, contact: str | None = None,
                 limit: Limit = 50, cursor: Cursor = None) -> PageOut[MessageOut]:
        page = browsing.messages_page(store, state=state, campaign_id=campaign, contact_id=contact,
                                      after=decode_cursor("messages", cursor), limit=limit)
        return PageOut(items=[MessageOut.of(m) for m in page.items],
                       next_cursor=encode_cursor("messages", page.next_after))

    @api.get("/messages/{message_id}", response_model=MessageOut, tags=["messages"])
    def message(message_id: str, key: Reader) -> MessageOut:
        return MessageOut.of(browsing.get_message(store, message_id))

    @api.get("/conversations", response_model=PageOut[ConversationOut], tags=["conversations"])
    def conversation_list(key: Reader, needs_human: Annotated[bool, Query(
            description="only the conversations waiting for a person")] = False,
            limit: Limit = 50, cursor: Cursor = None) -> PageOut[ConversationOut]:
        page = conversations_page(store, needs_human=needs_human, after=decode_cursor("conversations", cursor),
                                  limit=limit)
        return PageOut(items=[ConversationOut.of(row) for row in page.items],
                       next_cursor=encode_cursor("conversations", page.next_after))

    @api.get("/conversations/{client}", response_model=TimelineOut, tags=["conversations"])
    def conversation(client: str, key: Reader) -> TimelineOut:
        """A client's timeline, by contact id or phone number (an unknown number's messages too)."""
        if store.contacts.record(client) is not None:
            return TimelineOut.of(contact_timeline(store, client))
        return TimelineOut.of(client_timeline(store, normalise_phone(client, console.default_region)))

    return api
