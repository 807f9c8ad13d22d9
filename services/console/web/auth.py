"""Log-in, log-out and the language switch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import (
    SESSION_COOKIE,
    CheckedForm,
    language,
    redirect,
    render,
    safe_next,
    session_of,
    set_cookie,
)
from shared.usecases import audit
from shared.usecases.users import BadCredentials, LockedOut, current_session, log_in, log_out

i18n.register({
    "login.title": ("Connexion", "Log in"),
    "login.email": ("Adresse e-mail", "Email address"),
    "login.password": ("Mot de passe", "Password"),
    "login.submit": ("Se connecter", "Log in"),
    "login.bad": ("Adresse e-mail ou mot de passe incorrect.", "Wrong email address or password."),
    "login.locked": ("Trop d'essais infructueux pour cette adresse : réessayez après {until}.",
                     "Too many failed attempts for this address: try again after {until}."),
    "login.hint": ("Pas encore de compte ? Sur le serveur : relance users add VOTRE_EMAIL",
                   "No account yet? On the server: relance users add YOUR_EMAIL"),
    "logout.done": ("Vous êtes déconnecté.", "You are logged out."),
})


def router(console: Console) -> APIRouter:
    """``/login``, ``/logout``, ``/language``."""
    pages = APIRouter(include_in_schema=False)
    store = console.store

    @pages.get("/login")
    def login_page(request: Request, next: str = "/", bye: int = 0) -> Response:
        if session_of(request) is not None:
            return redirect(safe_next(next))
        return render(request, "login.html", {"next": safe_next(next), "email": "", "error": None,
                                              "bye": bool(bye)})

    @pages.post("/login")
    def login(request: Request, form: CheckedForm) -> Response:
        email, password = str(form.get("email") or ""), str(form.get("password") or "")
        target = safe_next(str(form.get("next") or "/"))
        lang = language(request)
        try:
            done = log_in(store, email, password, now=console.clock.now())
        except LockedOut as exc:
            error = i18n.translate("login.locked", lang, until=i18n.moment(exc.until, lang))
            return render(request, "login.html", {"next": target, "email": email, "error": error, "bye": False},
                          status=429)
        except BadCredentials:
            return render(request, "login.html", {"next": target, "email": email,
                                                  "error": i18n.translate("login.bad", lang), "bye": False},
                          status=401)
        log_out(store, request.cookies.get(SESSION_COOKIE))  # a session open before is not kept beside the new one
        audit.record(store, by=f"user:{done.session.email}", action="user.login", now=done.session.created_at)
        response = redirect(target)
        lifetime = int((done.session.expires_at - done.session.created_at).total_seconds())
        set_cookie(response, request, SESSION_COOKIE, done.token, max_age=lifetime)
        return response

    @pages.post("/logout")
    def logout(request: Request, form: CheckedForm) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        ending = current_session(store, token, now=console.clock.now())
        log_out(store, token)
        if ending is not None:
            audit.record(store, by=f"user:{ending.email}", action="user.logout", now=console.clock.now())
        response = redirect("/login?bye=1")
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
        return response

    @pages.get("/language")
    def switch_language(request: Request, to: str = "fr", next: str = "/") -> Response:
        """Keep the chosen language in a cookie (a preference only: no CSRF needed), then go back."""
        response = redirect(safe_next(next))
        if to in ("fr", "en"):
            set_cookie(response, request, i18n.COOKIE, to, max_age=365 * 24 * 3600)
        return response

    return pages
