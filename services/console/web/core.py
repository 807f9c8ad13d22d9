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

from services.console.guard import Console
from services.console.web import i18n
from shared.domain.models import Language
from shared.domain.users import WebSession
from shared.usecases.users import current_session

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SESSION_COOKIE = "relance_session"
CSRF_COOKIE = "relance_csrf"
CSRF_FIELD = "csrf_token"
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


def _csrf_ok(request: Request, given: object) -> bool:
    session = session_of(request)
    expected = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)
    return (isinstance(given, str) and bool(expected) and len(given) <= 100
            and hmac.compare_digest(given.encode(), str(expected).encode()))


async def _checked_form(request: Request) -> FormData:
    form = await request.form(max_files=0, max_fields=1000)
    if not await run_in_threadpool(_csrf_ok, request, form.get(CSRF_FIELD)):
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
        **(context or {}),
    }
    html = _env.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    if session is None and getattr(request.state, "new_csrf", None):
        set_cookie(response, request, CSRF_COOKIE, request.state.new_csrf)
    return response


def redirect(path: str) -> RedirectResponse:
    """A 303 to ``path`` (after a POST, the browser GETs it)."""
    return RedirectResponse(path, status_code=303)


def install_handlers(app: FastAPI) -> None:
    """The pages' own answers: log-in redirects and the CSRF 403 page (before the API's problem documents)."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return redirect(f"/login?next={quote(safe_next(exc.next_path), safe='')}")

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return await run_in_threadpool(render, request, "refused.html", None, status=403)
