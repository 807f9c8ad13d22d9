"""The console's pages (Jinja2, server-rendered, no JavaScript needed, French and English): docs/console.md.

:mod:`services.console.web.core` has what every page uses; each area is a module here with its
``router(console)``, included below with one line.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.console.guard import Console
from services.console.web import approvals, auth, campaigns, clients, core, inbox, invoices, overview


def install(app: FastAPI, console: Console) -> None:
    """The pages of ``app``: one ``include_router`` line per area."""
    core.install_handlers(app)
    app.include_router(auth.router(console))
    app.include_router(overview.router(console))
    app.include_router(approvals.router(console))
    app.include_router(inbox.router(console))
    app.include_router(clients.router(console))
    app.include_router(invoices.router(console))
    app.include_router(campaigns.router(console))
