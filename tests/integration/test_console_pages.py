"""The console's pages on the real MongoDB-compatible server, through TestClient: log-in, bad password,
lock-out, CSRF refusal, session expiry, log-out, the language switch, and the ``next`` redirect."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from services.console import Console, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.errors import TransientError
from shared.usecases.users import add_user, hash_token

pytestmark = pytest.mark.integration
EMAIL, PASSWORD = "owner@example.com", "correct horse battery"


@pytest.fixture
def web(store: MongoRepositories, clock: FakeClock) -> Iterator[TestClient]:
    add_user(store, EMAIL, PASSWORD, now=clock.now())
    with TestClient(create_app(Console(store, clock)), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        yield client


def csrf(client: TestClient, path: str = "/login") -> str:
    """The CSRF token of the form on ``path`` (a GET keeps the cookies it sets)."""
    page = client.get(path, follow_redirects=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def log_in(client: TestClient, email: str = EMAIL, password: str = PASSWORD, next_path: str = "/") -> object:
    return client.post("/login", data={"email": email, "password": password, "next": next_path,
                                       "csrf_token": csrf(client)})


def test_a_page_without_a_session_redirects_to_the_login_with_next(web: TestClient) -> None:
    answer = web.get("/?x=1")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2F%3Fx%3D1"
    page = web.get(answer.headers["location"])
    assert page.status_code == 200 and 'name="password"' in page.text and 'value="/?x=1"' in page.text


def test_log_in_sets_a_session_cookie_of_which_only_the_hash_is_stored(web: TestClient,
                                                                        store: MongoRepositories) -> None:
    answer = log_in(web, email="  Owner@Example.com ", next_path="/?tab=2")
    assert answer.status_code == 303 and answer.headers["location"] == "/?tab=2"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("relance_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    token = web.cookies["relance_session"]
    stored = store.sessions.collection.find_one({})
    assert stored is not None and stored["_id"] == hash_token(token) and token not in str(stored)
    overview = web.get("/")
    assert overview.status_code == 200 and EMAIL in overview.text
    assert store.users.get(EMAIL).last_login_at is not None


def test_next_accepts_only_local_paths(web: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        answer = log_in(web, next_path=target)
        assert answer.headers["location"] == "/", target
        web.cookies.clear()


def test_a_bad_password_or_unknown_email_is_refused_alike(web: TestClient, store: MongoRepositories) -> None:
    wrong = log_in(web, password="not the password")
    unknown = log_in(web, email="nobody@example.com")
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "Adresse e-mail ou mot de passe incorrect." in answer.text
    assert "relance_session" not in web.cookies
    assert store.sessions.collection.count_documents({}) == 0
    assert web.get("/").status_code == 303
    assert store.audit.recent(10) == []  # no log-in: nothing audited


def test_five_failures_lock_the_email_out_for_15_minutes(web: TestClient, clock: FakeClock) -> None:
    for _ in range(4):
        assert log_in(web, password="wrong password").status_code == 401
    fifth = log_in(web, password="wrong password")
    assert fifth.status_code == 429 and "Trop d'essais" in html.unescape(fifth.text)
    # Locked: even the right password is refused, and the page says so.
    locked = log_in(web)
    assert locked.status_code == 429 and "relance_session" not in web.cookies
    # An unknown email is locked out the same way: the page tells nothing about which emails exist.
    for _ in range(5):
        last = log_in(web, email="ghost@example.com", password="wrong password")
    assert last.status_code == 429 and "Trop d'essais" in html.unescape(last.text)
    clock.advance(timedelta(minutes=14))
    assert log_in(web).status_code == 429
    clock.advance(timedelta(minutes=2))
    assert log_in(web).status_code == 303


def test_failures_spread_over_more_than_15_minutes_do_not_lock(web: TestClient, clock: FakeClock) -> None:
    for _ in range(4):
        assert log_in(web, password="wrong password").status_code == 401
    clock.advance(timedelta(minutes=16))
    for _ in range(4):
        assert log_in(web, password="wrong password").status_code == 401
    assert log_in(web).status_code == 303


def test_a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(web: TestClient,
                                                                           store: MongoRepositories) -> None:
    csrf(web)
    refused = web.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": "forged"})
    assert refused.status_code == 403 and "Formulaire refusé" in refused.text
    missing = web.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert missing.status_code == 403
    assert store.sessions.collection.count_documents({}) == 0
    assert log_in(web).status_code == 303
    # Logged in, the session's own token is wanted: the pre-log-in cookie's is not enough.
    stale = web.cookies["relance_csrf"]
    assert web.post("/logout", data={"csrf_token": stale}).status_code == 403
    assert web.get("/").status_code == 200
    assert store.sessions.collection.count_documents({}) == 1


def test_log_out_ends_the_session_everywhere(web: TestClient, store: MongoRepositories) -> None:
    log_in(web)
    token = web.cookies["relance_session"]
    answer = web.post("/logout", data={"csrf_token": csrf(web, "/")})
    assert answer.status_code == 303 and answer.headers["location"] == "/login?bye=1"
    assert store.sessions.collection.count_documents({}) == 0
    # Both are in the audit log, under the user's name.
    assert [(e.by, e.action) for e in reversed(store.audit.recent(10))] == [
        (f"user:{EMAIL}", "user.login"), (f"user:{EMAIL}", "user.logout")]
    web.cookies.set("relance_session", token)  # a copy of the old cookie opens nothing
    assert web.get("/").status_code == 303


def test_a_session_expires_after_12_hours(web: TestClient, clock: FakeClock) -> None:
    log_in(web)
    clock.advance(timedelta(hours=11, minutes=59))
    assert web.get("/").status_code == 200
    clock.advance(timedelta(minutes=2))
    answer = web.get("/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_sessions_are_shared_by_console_processes(web: TestClient, store: MongoRepositories,
                                                  clock: FakeClock) -> None:
    log_in(web)
    with TestClient(create_app(Console(store, clock)), follow_redirects=False) as other:
        other.cookies.set("relance_session", web.cookies["relance_session"])
        assert other.get("/").status_code == 200


def test_secure_cookie_over_https(store: MongoRepositories, clock: FakeClock) -> None:
    add_user(store, EMAIL, PASSWORD, now=clock.now())
    with TestClient(create_app(Console(store, clock)), base_url="https://console.example",
                    follow_redirects=False) as client:
        answer = log_in(client)
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("relance_session="))
        assert "Secure" in cookie


def test_language_from_the_browser_then_switched_by_the_link(web: TestClient) -> None:
    english = web.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
    assert "<html lang=\"en\">" in english.text and "Log in" in english.text
    french = web.get("/login", headers={"Accept-Language": "de-DE,fr;q=0.8,en;q=0.5"})
    assert "<html lang=\"fr\">" in french.text and "Connexion" in french.text
    link = re.search(r'href="(/language\?[^"]+)"', french.text)
    assert link and "to=en" in link.group(1)
    switched = web.get(link.group(1).replace("&amp;", "&"))
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    assert web.cookies["relance_lang"] == "en"
    after = web.get("/login", headers={"Accept-Language": "fr"})
    assert "<html lang=\"en\">" in after.text and "Email address" in after.text
    log_in(web)
    overview = web.get("/")
    assert "Overview" in overview.text and "Log out" in overview.text
    assert web.get("/language?to=fr&next=//evil.example").headers["location"] == "/"


def test_the_api_still_wants_its_bearer_key(web: TestClient) -> None:
    log_in(web)
    answer = web.get("/api/v1/stats")
    assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"


def test_a_browser_gets_error_pages_and_the_api_its_problem_documents(web: TestClient, store: MongoRepositories,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}
    log_in(web)
    missing = web.get("/no-such-page", headers=browser)
    assert missing.status_code == 404 and "Page not found" in missing.text and "Log out" in missing.text
    api = web.get("/api/v1/no-such-thing", headers=browser)
    assert api.status_code == 401 and api.headers["content-type"] == "application/problem+json"
    assert web.get("/no-such-page").headers["content-type"] == "application/problem+json"  # not a browser

    def unreachable() -> None:
        raise TransientError("mongo down")

    monkeypatch.setattr(store.reports, "campaign_funnels", unreachable)
    down = web.get("/", headers=browser)
    assert down.status_code == 503 and "Database unreachable" in down.text and down.headers["Retry-After"] == "5"
    assert "Traceback" not in down.text and "mongo down" not in down.text


def test_a_new_log_in_ends_the_session_open_before(web: TestClient, store: MongoRepositories) -> None:
    log_in(web)
    first = web.cookies["relance_session"]
    assert web.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf(web, "/")}
                    ).status_code == 303
    assert web.cookies["relance_session"] != first
    assert store.sessions.collection.count_documents({}) == 1
