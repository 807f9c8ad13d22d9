"""The console's HTTP API: ``/api/v1`` over the use cases, OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``.

Stateless: every request reads MongoDB; several console processes may serve one store.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Route

from services.console import api_handovers, problems, web
from services.console.guard import Console, check_key, decode_cursor, encode_cursor, idempotent
from services.console.problems import Problem
from services.console.schemas import (
    CampaignOut,
    ContactOut,
    FollowUpOut,
    InvoiceOut,
    PageOut,
    PaymentIn,
    StatsOut,
    StatusChangeOut,
)
from services.webhook_metrics import RequestTimer, metrics_endpoint
from shared.domain.api_keys import ApiKey
from shared.metrics import observe_console_request
from shared.usecases import browsing
from shared.usecases.campaigns import counts_by_state, pause_campaign, resume_campaign
from shared.usecases.invoices import cancel_invoice, get_invoice, record_payment

# Declares the scheme in the OpenAPI document (the docs page's Authorize button); the check is check_key's.
_bearer = HTTPBearer(auto_error=False, description="an API key from `relance keys create NAME`")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Limit = Annotated[int, Query(ge=1, le=browsing.MAX_LIMIT, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=1000, description="the next_cursor of the previous page")]
PROBLEM: dict[str, Any] = {"content": {problems.MEDIA_TYPE: {}}, "description": "a problem document (RFC 9457)"}
ERRORS: dict[int | str, dict[str, Any]] = {status: PROBLEM for status in (400, 401, 403, 404, 422)}


def _reader(request: Request, _: Bearer) -> ApiKey:
    return check_key(request.app.state.console, request.headers.get("Authorization"), write=False)


def _writer(request: Request, _: Bearer) -> ApiKey:
    return check_key(request.app.state.console, request.headers.get("Authorization"), write=True)


Reader = Annotated[ApiKey, Depends(_reader)]
Writer = Annotated[ApiKey, Depends(_writer)]


def create_app(console: Console) -> FastAPI:
    """The console application over ``console``'s store."""
    app = FastAPI(title="Relance console API", version="1", openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)
    app.state.console = console
    problems.install(app)
    web.install(app, console)  # the pages (services/console/web/)

    api = APIRouter(prefix="/api/v1", responses=ERRORS)
    store = console.store

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        if not store.ping():
            return problems.problem_response(503, "the database is unreachable")
        return JSONResponse({"status": "ok"})

    @api.get("/contacts", response_model=PageOut[ContactOut], tags=["contacts"])
    def contacts(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[ContactOut]:
        page = browsing.contacts_page(store, after=decode_cursor("contacts", cursor), limit=limit)
        return PageOut(items=[ContactOut.of(c) for c in page.items], next_cursor=encode_cursor("contacts",
                                                                                               page.next_after))

    @api.get("/contacts/{contact_id}", response_model=ContactOut, tags=["contacts"])
    def contact(contact_id: str, key: Reader) -> ContactOut:
        return ContactOut.of(browsing.get_contact(store, contact_id))

    @api.get("/invoices", response_model=PageOut[InvoiceOut], tags=["invoices"])
    def invoices(key: Reader, status: str | None = None, phone: str | None = None, limit: Limit = 50,
                 cursor: Cursor = None) -> PageOut[InvoiceOut]:
        page = browsing.invoices_page(store, status=status, phone=phone, default_region=console.default_region,
                                      after=decode_cursor("invoices", cursor), limit=limit)
        return PageOut(items=[InvoiceOut.of(i) for i in page.items], next_cursor=encode_cursor("invoices",
                                                                                               page.next_after))

    @api.get("/invoices/{reference}", response_model=InvoiceOut, tags=["invoices"])
    def invoice(reference: str, key: Reader) -> InvoiceOut:
        return InvoiceOut.of(get_invoice(store, reference))

    @api.post("/invoices/{reference}/paid", response_model=InvoiceOut, tags=["invoices"])
    def paid(reference: str, request: Request, key: Writer, body: PaymentIn | None = None) -> Response:
        amount = body.amount if body is not None else None
        return idempotent(console, request, key, body, lambda: InvoiceOut.of(record_payment(
            store, reference, now=console.clock.now(), amount=amount, queue=console.queue)))

    @api.post("/invoices/{reference}/cancel", response_model=InvoiceOut, tags=["invoices"])
    def cancel(reference: str, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, None, lambda: InvoiceOut.of(cancel_invoice(
            store, reference, now=console.clock.now(), queue=console.queue)))

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

    @api.get("/stats", response_model=StatsOut, tags=["stats"])
    def stats(key: Reader) -> StatsOut:
        counts = counts_by_state(store)
        return StatsOut(followups=counts["followups"], messages=counts["messages"])

    app.include_router(api)
    app.include_router(api_handovers.router(console))

    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str, key: Reader) -> Response:
        raise Problem(404, f"no endpoint /api/v1/{rest}: /api/docs lists them")

    # GET /metrics: this process's request latencies (the webhook serves the installation's gauges).
    app.add_route("/metrics", metrics_endpoint(None, dict, console.metrics_token), methods=["GET"],
                  include_in_schema=False)
    served = [*app.routes, *api.routes]  # the API's own routes: FastAPI wraps an included router
    app.add_middleware(RequestTimer, routes=[path for route in served if (path := getattr(route, "path", ""))],
                       observe=observe_console_request,
                       templates=[(route.path_regex, route.path) for route in served
                                  if isinstance(route, Route | APIRoute) and "{" in route.path
                                  and ":path}" not in route.path])  # not the catch-all that answers 401
    return app
