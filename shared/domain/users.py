"""The console's users, their log-in sessions and the failed log-ins that lock an email out; their repositories.

A password is stored as its Argon2 hash, a session as the SHA-256 of its random token
(:mod:`shared.usecases.users`): a copy of the database gives neither a password nor a session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel


class User(BaseModel):
    """A person who logs in to the console's pages (by email, lower-cased)."""

    email: str
    password_hash: str
    created_at: datetime
    last_login_at: datetime | None = None


class WebSession(BaseModel):
    """A logged-in browser: only its token's hash is stored; ``csrf`` is the token its forms carry."""

    token_hash: str
    email: str
    csrf: str
    created_at: datetime
    expires_at: datetime


class UserRepository(Protocol):
    """The console's users, by email."""

    def add(self, user: User) -> bool:
        """Store a new user; False when the email is taken (nothing changed)."""

    def get(self, email: str) -> User | None:
        """The user with this email."""

    def all(self) -> list[User]:
        """Every user, by email."""

    def remove(self, email: str) -> bool:
        """Remove a user; False when there is none."""

    def logged_in(self, email: str, now: datetime) -> None:
        """Record a successful log-in at ``now``."""


class SessionRepository(Protocol):
    """The console's log-in sessions, by their token's hash (shared by every console process)."""

    def add(self, session: WebSession) -> None:
        """Store a new session."""

    def get(self, token_hash: str, now: datetime) -> WebSession | None:
        """The session with this hash, unless it has expired at ``now``."""

    def remove(self, token_hash: str) -> None:
        """End a session (log-out)."""

    def remove_for(self, email: str) -> int:
        """End every session of a user; how many."""


class LoginThrottleRepository(Protocol):
    """Failed log-ins per email, counted in a window, and the lock-out they lead to."""

    def locked_until(self, email: str, now: datetime) -> datetime | None:
        """When the email's lock-out ends, if it is locked out at ``now``."""

    def fail(self, email: str, *, now: datetime, window_start: datetime) -> int:
        """Count a failed log-in; the failures since ``window_start`` (a window older than that starts again)."""

    def lock(self, email: str, *, failures: int, until: datetime, now: datetime) -> bool:
        """Lock the email out until ``until`` after ``failures`` failures or more, unless locked; whether it did."""

    def clear(self, email: str, now: datetime) -> None:
        """Forget the failures of an email not locked out at ``now`` (a successful log-in)."""
