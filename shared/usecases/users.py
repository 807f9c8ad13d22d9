"""The console's users and their log-in: add, remove, list (``relance users …``), log in, check a session, log out.

Passwords are hashed with Argon2 (argon2-cffi's defaults); a session is a random token kept in
the browser's cookie, of which only the SHA-256 is stored, so a copy of the database opens no
session. After ``MAX_FAILURES`` failed log-ins for one email within ``FAILURE_WINDOW``, that
email is locked out for ``LOCKOUT``, whether or not a user has it (the answer tells nothing
about which emails exist). Every console process reads the same sessions: none keeps state.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared.domain.repositories import Repositories
from shared.domain.users import User, WebSession
from shared.errors import InputError

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
_hasher = PasswordHasher()
# Checked when the email is unknown, so that a wrong email costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class LockedOut(Exception):
    """Too many failed log-ins for this email: refused until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked out until {until.isoformat()}")
        self.until = until


class BadCredentials(Exception):
    """The email or the password is wrong (which one is not told)."""


@dataclass(frozen=True)
class LoggedIn:
    """A new session: ``token`` goes into the cookie (never stored), ``session`` is what is stored."""

    token: str
    session: WebSession


def normalise_email(email: str) -> str:
    """The email as stored (trimmed, lower-cased); InputError when it is not one."""
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InputError(f"{email!r} is not an email address")
    return email


def hash_token(token: str) -> str:
    """The stored form of a session token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_user(store: Repositories, email: str, password: str, *, now: datetime) -> User:
    """Create a user (password at least ``MIN_PASSWORD`` characters, stored as its Argon2 hash)."""
    email = normalise_email(email)
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"the password must have at most {MAX_PASSWORD} characters")
    user = User(email=email, password_hash=_hasher.hash(password), created_at=now)
    if not store.users.add(user):
        raise InputError(f"a user {email!r} exists already")
    return user


def remove_user(store: Repositories, email: str) -> int:
    """Remove a user and end their sessions; how many sessions ended."""
    email = email.strip().lower()
    if not store.users.remove(email):
        raise InputError(f"no user {email!r} (relance users list shows them)")
    return store.sessions.remove_for(email)


def list_users(store: Repositories) -> list[User]:
    """Every user, by email (never a password hash shown)."""
    return store.users.all()


def log_in(store: Repositories, email: str, password: str, *, now: datetime,
           lifetime: timedelta = SESSION_LIFETIME) -> LoggedIn:
    """Open a session for ``email`` when the password matches.

    Raises LockedOut while the email is locked out (the password is not even checked), and
    BadCredentials for a wrong email or password, counting the failure: the ``MAX_FAILURES``-th
    within ``FAILURE_WINDOW`` locks the email out for ``LOCKOUT`` (conditional updates, so two
    processes counting at once lock it once).
    """
    key = email.strip().lower()[:254]
    until = store.login_throttle.locked_until(key, now)
    if until is not None:
        raise LockedOut(until)
    user = store.users.get(key) if key else None
    if not _verify(user.password_hash if user else _DUMMY_HASH, password) or user is None:
        failures = store.login_throttle.fail(key, now=now, window_start=now - FAILURE_WINDOW)
        if failures >= MAX_FAILURES and store.login_throttle.lock(key, failures=MAX_FAILURES, until=now + LOCKOUT,
                                                                   now=now):
            raise LockedOut(now + LOCKOUT)
        raise BadCredentials()
    store.login_throttle.clear(key, now)
    token = secrets.token_urlsafe(32)
    session = WebSession(token_hash=hash_token(token), email=user.email, csrf=secrets.token_urlsafe(32),
                         created_at=now, expires_at=now + lifetime)
    store.sessions.add(session)
    if store.users.get(user.email) is None:  # removed while the password was checked: its sessions ended before
        store.sessions.remove(session.token_hash)  # this one was stored, so this one ends here
        raise BadCredentials()
    store.users.logged_in(user.email, now)
    return LoggedIn(token=token, session=session)


def _verify(password_hash: str, password: str) -> bool:
    if not password or len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def current_session(store: Repositories, token: str | None, *, now: datetime) -> WebSession | None:
    """The unexpired session of this cookie's token, or None (removing a user ends their sessions)."""
    if not token or len(token) > 200:
        return None
    return store.sessions.get(hash_token(token), now)


def log_out(store: Repositories, token: str | None) -> None:
    """End the session of this token (nothing when there is none)."""
    if token and len(token) <= 200:
        store.sessions.remove(hash_token(token))
