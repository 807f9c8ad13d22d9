"""What every /api/v1 router shares: the Reader/Writer key dependencies, the list parameters and the
error responses declared in the OpenAPI document.

Each ``services/console/api_<area>.py`` exposes ``router(console) -> APIRouter`` built with
:func:`api_router` and uses these names; ``create_app`` includes each router with one line.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.console import problems
from services.console.guard import check_key
from shared.domain.api_keys import ApiKey
from shared.usecases import browsing

# Declares the scheme in the OpenAPI document (the docs page's Authorize button); the check is check_key's.
_bearer = HTTPBearer(auto_error=False, description="an API key from `relance keys create NAME`")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Limit = Annotated[int, Query(ge=1, le=browsing.MAX_LIMIT, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=1000, description="the next_cursor of the previous page")]
PROBLEM: dict[str, Any] = {"content": {problems.MEDIA_TYPE: {}}, "description": "a problem document (RFC 9457)"}
ERRORS: dict[int | str, dict[str, Any]] = {status: PROBLEM for status in (400, 401, 403, 404, 409, 422)}
PREFIX = "/api/v1"


def _reader(request: Request, _: Bearer) -> ApiKey:
    return check_key(request.app.state.console, request.headers.get("Authorization"), write=False)


def _writer(request: Request, _: Bearer) -> ApiKey:
    return check_key(request.app.state.console, request.headers.get("Authorization"), write=True)


Reader = Annotated[ApiKey, Depends(_reader)]
Writer = Annotated[ApiKey, Depends(_writer)]


def api_router() -> APIRouter:
    """A router under /api/v1 declaring the problem responses every route may give."""
    return APIRouter(prefix=PREFIX, responses=ERRORS)


def by_key(key: ApiKey) -> str:
    """Who acts, as the use cases record it: ``key:<name>``."""
    return f"key:{key.name}"
