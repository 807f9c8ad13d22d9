"""Errors as ``application/problem+json`` (RFC 9457): type, title, status, detail; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared.errors import Conflict, InputError, NotFound, TransientError

log = logging.getLogger(__name__)
PROBLEM_TYPE = "about:blank"
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 422: "Unprocessable Content", 500: "Internal Server Error", 503: "Service Unavailable"}


class Problem(Exception):
    """An error the console answers as a problem document."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """The problem document for ``status``."""
    return {"type": PROBLEM_TYPE, "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **extra}


def problem_response(status: int, detail: str, *, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    """A problem document as a response."""
    return JSONResponse(problem_body(status, detail, **extra), status_code=status, media_type=MEDIA_TYPE,
                        headers=headers)


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = [{"location": ".".join(str(part) for part in error.get("loc", ())), "message": str(error.get("msg", ""))}
              for error in exc.errors()]
    first = errors[0] if errors else {"location": "request", "message": "invalid"}
    return f"{first['location']}: {first['message']}", errors


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, headers=exc.headers)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return problem_response(409, str(exc))

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return problem_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        return problem_response(422, detail, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(TransientError)
    async def _transient(request: Request, exc: TransientError) -> JSONResponse:
        log.warning("console: %s %s answered 503: %s", request.method, request.url.path, exc)
        return problem_response(503, "the database is unreachable: try again shortly", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("console: %s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return problem_response(500, "the request failed; the console's log says why")
