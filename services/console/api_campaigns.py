"""/api/v1/campaigns and /api/v1/followups: campaigns, their follow-ups, pause and resume."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router
from services.console.guard import Console, decode_cursor, encode_cursor, idempotent
from services.console.schemas import CampaignOut, FollowUpOut, PageOut, StatusChangeOut
from shared.usecases import browsing
from shared.usecases.campaigns import pause_campaign, resume_campaign


def router(console: Console) -> APIRouter:
    """The campaigns and follow-ups routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/campaigns", response_model=PageOut[CampaignOut], tags=["campaigns"])
    def campaigns(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[CampaignOut]:
        page = browsing.campaigns_page(store, after=decode_cursor("campaigns", cursor), limit=limit)
        return PageOut(items=[CampaignOut.of(line) for line in page.items],
                       next_cursor=encode_cursor("campaigns", page.next_after))

    @api.post("/campaigns/{campaign_id}/pause", response_model=StatusChangeOut, tags=["campaigns"])
    def pause(campaign_id: str, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, None, lambda: StatusChangeOut.of(pause_campaign(
            store, campaign_id, now=console.clock.now())))

    @api.post("/campaigns/{campaign_id}/resume", response_model=StatusChangeOut, tags=["campaigns"])
    def resume(campaign_id: str, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, None, lambda: StatusChangeOut.of(resume_campaign(
            store, campaign_id, now=console.clock.now())))

    @api.get("/followups", response_model=PageOut[FollowUpOut], tags=["follow-ups"])
    def followups(key: Reader, campaign: str | None = None, state: str | None = None, limit: Limit = 50,
                  cursor: Cursor = None) -> PageOut[FollowUpOut]:
        page = browsing.followups_page(store, campaign_id=campaign, state=state,
                                       after=decode_cursor("followups", cursor), limit=limit)
        return PageOut(items=[FollowUpOut.of(f) for f in page.items],
                       next_cursor=encode_cursor("followups", page.next_after))

    return api
