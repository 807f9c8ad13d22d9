"""The console's HTTP API: ``/api/v1`` over the use cases, OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``.

Stateless: every request reads MongoDB; several console processes may serve one store.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import Route

from services.console import (
    api_approvals,
    api_campaigns,
    api_contacts,
    api_handovers,
    api_hooks,
    api_invoices,
    api_messages,
    problems,
    web,
)
from services.console.auth_deps import Reader, api_router
from services.console.body_limit import BodyLimit
from services.console.guard import Console
from services.console.problems import Problem
from services.console.schemas import StatsOut
from services.webhook_metrics import RequestTimer, metrics_endpoint
from shared.metrics import observe_console_request
from shared.usecases.campaigns import counts_by_state


def create_app(console: Console) -> FastAPI:
    """The console application over ``console``'s store."""
    app = FastAPI(title="Relance console API", version="1", openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)
    app.state.console = console
    problems.install(app)
    web.install(app, console)  # the pages (services/console/web/)

    api = api_router()
    store = console.store

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        if not store.ping():
            return problems.problem_response(503, "the database is unreachable")
        return JSONResponse({"status": "ok"})

    @api.get("/stats", response_model=StatsOut, tags=["stats"])
    def stats(key: Reader) -> StatsOut:
        counts = counts_by_state(store)
        return StatsOut(followups=counts["followups"], messages=counts["messages"])

    routers = [api]
    routers.append(api_contacts.router(console))
    routers.append(api_invoices.router(console))
    routers.append(api_campaigns.router(console))
    routers.append(api_messages.router(console))
    routers.append(api_hooks.router(console))
    routers.append(api_approvals.router(console))
    routers.append(api_handovers.router(console))
    for router in routers:
        app.include_router(router)

    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str, key: Reader) -> Response:
        raise Problem(404, f"no endpoint /api/v1/{rest}: /api/docs lists them")

    # GET /metrics: this process's request latencies (the webhook serves the installation's gauges).
    app.add_route("/metrics", metrics_endpoint(None, dict, console.metrics_token), methods=["GET"],
                  include_in_schema=False)
    # The API's own routes: FastAPI wraps an included router.
    served = [*app.routes, *(route for router in routers for route in router.routes)]
    app.add_middleware(RequestTimer, routes=[path for route in served if (path := getattr(route, "path", ""))],
                       observe=observe_console_request,
                       templates=[(route.path_regex, route.path) for route in served
                                  if isinstance(route, Route | APIRoute) and "{" in route.path
                                  and ":path}" not in route.path])  # not the catch-all that answers 401
    app.add_middleware(BodyLimit)  # outermost: a body too large is refused before anything reads it
    return app
