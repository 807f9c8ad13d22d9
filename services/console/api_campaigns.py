"""/api/v1/campaigns and /api/v1/followups: campaigns (create, progress, enrol, pause, resume), their follow-ups."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router, by_key
from services.console.guard import Console, decode_cursor, encode_cursor, idempotent
from services.console.schemas import (
    CampaignDetailOut,
    CampaignIn,
    CampaignOut,
    EnrolIn,
    EnrolOut,
    FollowUpOut,
    PageOut,
    StatusChangeOut,
)
from shared.usecases import browsing
from shared.usecases.campaigns import (
    campaign_progress,
    create_campaign,
    enrol_campaign,
    pause_campaign,
    resume_campaign,
)


def router(console: Console) -> APIRouter:
    """The campaigns and follow-ups routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/campaigns", response_model=PageOut[CampaignOut], tags=["campaigns"])
    def campaigns(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[CampaignOut]:
        page = browsing.campaigns_page(store, after=decode_cursor("campaigns", cursor), limit=limit)
        return PageOut(items=[CampaignOut.of(line) for line in page.items],
                       next_cursor=encode_cursor("campaigns", page.next_after))

    @api.post("/campaigns", response_model=CampaignDetailOut, status_code=201, tags=["campaigns"])
    def create(body: CampaignIn, request: Request, key: Writer) -> Response:
        def run() -> CampaignDetailOut:
            campaign = create_campaign(store, body.root, now=console.clock.now(), label="campaign", by=by_key(key))
            return CampaignDetailOut.of(campaign_progress(store, campaign.id))
        return idempotent(console, request, key, body, run, status=201)

    @api.get("/campaigns/{campaign_id}", response_model=CampaignDetailOut, tags=["campaigns"])
    def campaign(campaign_id: str, key: Reader) -> CampaignDetailOut:
        return CampaignDetailOut.of(campaign_progress(store, campaign_id))

    @api.post("/campaigns/{campaign_id}/enrol", response_model=EnrolOut, tags=["campaigns"])
    def enrol(campaign_id: str, request: Request, key: Writer, body: EnrolIn | None = None) -> Response:
        tags = body.tags if body is not None else []

        def run() -> EnrolOut:
            report = enrol_campaign(store, campaign_id, now=console.clock.now(), tags=tags or None, by=by_key(key))
            return EnrolOut(campaign_id=campaign_id, enrolled=report.enrolled,
                            already_enrolled=report.already_enrolled, skipped=report.skipped)
        return idempotent(console, request, key, body, run)

    @api.post("/campaigns/{campaign_id}/pause", response_model=StatusChangeOut, tags=["campaigns"])
    def pause(campaign_id: str, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, None, lambda: StatusChangeOut.of(pause_campaign(
            store, campaign_id, now=console.clock.now(), by=by_key(key))))

    @api.post("/campaigns/{campaign_id}/resume", response_model=StatusChangeOut, tags=["campaigns"])
    def resume(campaign_id: str, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, None, lambda: StatusChangeOut.of(resume_campaign(
            store, campaign_id, now=console.clock.now(), by=by_key(key))))

    @api.get("/followups", response_model=PageOut[FollowUpOut], tags=["follow-ups"])
    def followups(key: Reader, campaign: str | None = None, state: str | None = None, limit: Limit = 50,
                  cursor: Cursor = None) -> PageOut[FollowUpOut]:
        page = browsing.followups_page(store, campaign_id=campaign, state=state,
                                       after=decode_cursor("followups", cursor), limit=limit)
        return PageOut(items=[FollowUpOut.of(f) for f in page.items],
                       next_cursor=encode_cursor("followups", page.next_after))

    return api
