"""The console's users, sessions and log-in throttle: MongoDB and in memory alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain.repositories import Repositories
from shared.domain.users import User, WebSession

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _user(email: str) -> User:
    return User(email=email, password_hash="$argon2id$…", created_at=NOW)


def _session(token_hash: str, email: str, expires: datetime) -> WebSession:
    return WebSession(token_hash=token_hash, email=email, csrf="c", created_at=NOW, expires_at=expires)


def test_users_are_unique_by_email_listed_and_removed(repos: Repositories) -> None:
    assert repos.users.add(_user("b@example.com"))
    assert not repos.users.add(_user("b@example.com"))
    assert repos.users.add(_user("a@example.com"))
    assert [u.email for u in repos.users.all()] == ["a@example.com", "b@example.com"]
    repos.users.logged_in("a@example.com", NOW + MINUTE)
    found = repos.users.get("a@example.com")
    assert found is not None and found.last_login_at == NOW + MINUTE and found.password_hash == "$argon2id$…"
    assert repos.users.remove("a@example.com")
    assert not repos.users.remove("a@example.com")
    assert repos.users.get("a@example.com") is None


def test_sessions_expire_and_end(repos: Repositories) -> None:
    repos.sessions.add(_session("h1", "a@example.com", NOW + 10 * MINUTE))
    repos.sessions.add(_session("h2", "a@example.com", NOW + 10 * MINUTE))
    repos.sessions.add(_session("h3", "b@example.com", NOW + 10 * MINUTE))
    found = repos.sessions.get("h1", NOW)
    assert found is not None and found.email == "a@example.com" and found.expires_at == NOW + 10 * MINUTE
    assert repos.sessions.get("h1", NOW + 10 * MINUTE) is None  # expired at its expiry
    assert repos.sessions.get("nope", NOW) is None
    repos.sessions.remove("h3")
    assert repos.sessions.get("h3", NOW) is None
    assert repos.sessions.remove_for("a@example.com") == 2
    assert repos.sessions.get("h2", NOW) is None


def test_failures_count_within_the_window_then_lock_once(repos: Repositories) -> None:
    email = "a@example.com"
    assert repos.login_throttle.locked_until(email, NOW) is None
    assert [repos.login_throttle.fail(email, now=NOW + n * MINUTE, window_start=NOW + n * MINUTE - 15 * MINUTE)
            for n in range(3)] == [1, 2, 3]
    assert not repos.login_throttle.lock(email, failures=5, until=NOW + 30 * MINUTE, now=NOW + 3 * MINUTE)
    # A failure after the window (15 minutes after the first) starts a new count.
    later = NOW + 16 * MINUTE
    assert repos.login_throttle.fail(email, now=later, window_start=later - 15 * MINUTE) == 1
    assert repos.login_throttle.fail(email, now=later, window_start=later - 15 * MINUTE) == 2
    assert repos.login_throttle.lock(email, failures=2, until=later + 15 * MINUTE, now=later)
    assert not repos.login_throttle.lock(email, failures=0, until=later + 60 * MINUTE, now=later)  # locked already
    assert repos.login_throttle.locked_until(email, later) == later + 15 * MINUTE
    assert repos.login_throttle.locked_until("other@example.com", later) is None
    repos.login_throttle.clear(email, later)  # a lock-out in force is not cleared
    assert repos.login_throttle.locked_until(email, later + 14 * MINUTE) == later + 15 * MINUTE
    assert repos.login_throttle.locked_until(email, later + 15 * MINUTE) is None
    assert repos.login_throttle.fail(email, now=later + 20 * MINUTE, window_start=later + 5 * MINUTE) == 1
    repos.login_throttle.clear(email, later + 20 * MINUTE)
    assert repos.login_throttle.fail(email, now=later + 21 * MINUTE, window_start=later + 6 * MINUTE) == 1
