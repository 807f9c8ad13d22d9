"""What every page uses: ``render``, the logged-in user (``CurrentUser``), the CSRF check (``CheckedForm``).

A page module is ``services/console/web/<area>.py`` exposing ``router(console) -> APIRouter`` and
registering its strings with :func:`services.console.web.i18n.register`; its templates are in
``services/console/templates/<area>/`` and extend ``base.html``. In a template: ``t("key")``,
``csrf_field()`` in every form, ``amount(value, currency)``, ``day(d)``, ``moment(dt)``, ``user``
(the logged-in email), ``lang``.

Sessions: a random token in the ``relance_session`` cookie (HttpOnly, SameSite=Lax, Secure when
the request came over HTTPS); only its hash is stored (:mod:`shared.usecases.users`). Every POST
of a page carries the CSRF token of its session (or, before log-in, the ``relance_csrf`` cookie's
value): a POST without it gets the 403 page and changes nothing.
"""

from __future__ import annotations

import hmac
import inspect
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from services.console.guard import Console
from services.console.web import i18n, refusals
from shared.domain.models import Language
from shared.domain.users import WebSession
from shared.errors import TransientError
from shared.usecases.users import current_session

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SESSION_COOKIE = "relance_session"
CSRF_COOKIE = "relance_csrf"
CSRF_FIELD = "csrf_token"
# Every page: not cached (it shows clients' data), never framed by another site (clickjacking), no
# script at all (the pages need none), nothing sniffed, no URL leaked in a Referer to another site.
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)

i18n.register({
    "nav.overview": ("Vue d'ensemble", "Overview"),
    "nav.inbox": ("Boîte de réception", "Inbox"),
    "nav.approvals": ("Validations", "Approvals"),
    "nav.campaigns": ("Campagnes", "Campaigns"),
    "nav.clients": ("Clients", "Clients"),
    "nav.invoices": ("Factures", "Invoices"),
    "nav.logout": ("Se déconnecter", "Log out"),
    "nav.menu": ("Menu principal", "Main menu"),
    "csrf.title": ("Formulaire refusé", "Form refused"),
    "csrf.body": ("Ce formulaire a expiré ou ne vient pas de cette console : rien n'a été modifié. "
                  "Rechargez la page et recommencez.",
                  "This form has expired or did not come from this console: nothing was changed. "
                  "Reload the page and try again."),
    "back": ("Retour", "Back"),
    "error.404": ("Page introuvable", "Page not found"),
    "error.404.body": ("Cette page n'existe pas (ou pas encore).", "This page does not exist (or not yet)."),
    "error.503": ("Base de données injoignable", "Database unreachable"),
    "error.503.body": ("La console ne joint pas la base de données : réessayez dans un instant.",
                       "The console cannot reach the database: try again in a moment."),
    "error.500": ("Erreur", "Error"),
    "error.500.body": ("La page n'a pas pu être affichée ; le journal de la console dit pourquoi.",
                       "The page could not be shown; the console's log says why."),
    "error.home": ("Vue d'ensemble", "Overview"),
})


class LoginRequired(Exception):
    """A page asked for without a session: redirect to the log-in page, then back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A POST without the right CSRF token: answered with the 403 page."""


def console_of(request: Request) -> Console:
    """The console the app serves."""
    console: Console = request.app.state.console
    return console


def language(request: Request) -> Language:
    """The request's language: the ``lang`` cookie, else ``Accept-Language``."""
    return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def session_of(request: Request) -> WebSession | None:
    """The request's unexpired session, or None (looked up once per request)."""
    if "web_session" not in request.state._state:
        console = console_of(request)
        request.state.web_session = current_session(console.store, request.cookies.get(SESSION_COOKIE),
                                                    now=console.clock.now())
    found: WebSession | None = request.state.web_session
    return found


def _user(request: Request) -> WebSession:
    session = session_of(request)
    if session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return session


# A page's parameter ``session: CurrentUser``: the logged-in session (no session: redirect to /login?next=...).
CurrentUser = Annotated[WebSession, Depends(_user)]


def safe_next(target: str | None) -> str:
    """``target`` when it is a local path (``/…``, not ``//host`` nor ``/\\host``), else ``/``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            ch in target for ch in "\r\n\t\\"):
        return "/"
    return target


def is_https(request: Request) -> bool:
    """Whether the browser reached the console over HTTPS (behind a trusted proxy: uvicorn's proxy headers)."""
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int | None = None,
               http_only: bool = True) -> None:
    """A cookie with the console's flags: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=http_only, samesite="lax",
                        secure=is_https(request))


def csrf_token(request: Request) -> str:
    """The token this request's forms carry: the session's, else the pre-log-in cookie's (made on first use)."""
    session = session_of(request)
    if session is not None:
        return session.csrf
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


def csrf_ok(request: Request, given: object) -> bool:
    """Whether ``given`` (a form's ``csrf_token`` field) is this request's token: its session's, or before the
    log-in the ``relance_csrf`` cookie's. Every POST of a page checks it (``CheckedForm``, the uploads' form)."""
    session = session_of(request)
    expected = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)
    return (isinstance(given, str) and bool(expected) and len(given) <= 100
            and hmac.compare_digest(given.encode(), str(expected).encode()))


async def _checked_form(request: Request) -> FormData:
    form = await request.form(max_files=0, max_fields=1000)
    if not await run_in_threadpool(csrf_ok, request, form.get(CSRF_FIELD)):
        raise CsrfRefused()
    return form


# A POST page's parameter ``form: CheckedForm``: the form, once its CSRF token is checked (else the 403 page).
CheckedForm = Annotated[FormData, Depends(_checked_form)]


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> HTMLResponse:
    """The page ``template`` in the request's language, with the layout's values."""
    lang = language(request)
    session = session_of(request)
    token = csrf_token(request)

    def t(key: str, **params: object) -> str:
        return i18n.translate(key, lang, **params)

    values: dict[str, Any] = {
        "request": request, "lang": lang.value, "user": session.email if session else None, "t": t,
        "csrf_field": lambda: Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token),
        "csrf_token": token,
        "amount": lambda value, currency=None, cents=False: i18n.amount(value, currency, lang, cents=cents),
        "day": lambda value: i18n.day(value, lang),
        "moment": lambda value, timezone=None: i18n.moment(value, lang, timezone),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "quote": lambda text: quote(text, safe=""),
        "state": lambda value: refusals.state(value, lang),
        "handover": lambda text: refusals.handover(str(text), lang),
        "action": lambda value: refusals.action(str(value), lang),
        "handovers": lambda texts: [refusals.handover(str(text), lang) for text in texts],
        **(context or {}),
    }
    html = _env.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    if session is None and getattr(request.state, "new_csrf", None):
        set_cookie(response, request, CSRF_COOKIE, request.state.new_csrf)
    return response


def redirect(path: str) -> RedirectResponse:
    """A 303 to ``path`` (after a POST, the browser GETs it)."""
    return RedirectResponse(path, status_code=303)


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, nor /metrics or /healthz): errors are answered in HTML."""
    path = request.url.path
    return (not path.startswith(("/api/", "/metrics", "/healthz"))
            and "text/html" in request.headers.get("accept", ""))


def error_page(request: Request, status: int) -> HTMLResponse:
    """The error page for ``status`` (404, 503, else 500's)."""
    key = f"error.{status if status in (404, 503) else 500}"
    try:
        return render(request, "error.html", {"title_key": key, "body_key": key + ".body"}, status=status)
    except TransientError:  # the session could not be read either: the page without it
        request.state.web_session = None
        return render(request, "error.html", {"title_key": key, "body_key": key + ".body"}, status=status)


async def _answer(handler: Any, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    found: Response = await result if inspect.isawaitable(result) else result
    return found


def install_handlers(app: FastAPI) -> None:
    """The pages' own answers: log-in redirects, the CSRF 403 page, and errors in HTML for a browser's page.

    Call it after :func:`services.console.problems.install`: the API's problem documents stay as they are.
    """
    problem_http = app.exception_handlers[HTTPException]
    problem_transient = app.exception_handlers[TransientError]
    problem_unexpected = app.exception_handlers[Exception]

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if wants_page(request) and exc.status_code in (404, 405):
            return await run_in_threadpool(error_page, request, 404)
        return await _answer(problem_http, request, exc)

    @app.exception_handler(TransientError)
    async def _transient(request: Request, exc: TransientError) -> Response:
        response = await _answer(problem_transient, request, exc)
        if wants_page(request):
            page = await run_in_threadpool(error_page, request, 503)
            page.headers["Retry-After"] = "5"
            return page
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        response = await _answer(problem_unexpected, request, exc)  # logs it, without a stack trace
        if wants_page(request):
            return await run_in_threadpool(error_page, request, 500)
        return response

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return redirect(f"/login?next={quote(safe_next(exc.next_path), safe='')}")

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return await run_in_threadpool(render, request, "refused.html", None, status=403)
