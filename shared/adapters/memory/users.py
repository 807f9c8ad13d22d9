"""The console's users, sessions and log-in throttle, in memory."""

from __future__ import annotations

from datetime import datetime

from shared.adapters.memory.base import MemoryRepository
from shared.domain.users import User, WebSession


class MemoryUsers(MemoryRepository):
    """See :class:`shared.domain.users.UserRepository`."""

    def add(self, user: User) -> bool:
        """Store a new user (a taken email is refused)."""
        if user.email in self.docs:
            return False
        self.docs[user.email] = {"_id": user.email, **user.model_dump(exclude={"email"})}
        return True

    def get(self, email: str) -> User | None:
        """The user with this email."""
        doc = self.docs.get(email)
        return User.model_validate({**doc, "email": email}) if doc else None

    def all(self) -> list[User]:
        """Every user, by email."""
        return [User.model_validate({**self.docs[email], "email": email}) for email in sorted(self.docs)]

    def remove(self, email: str) -> bool:
        """Delete the user."""
        return self.docs.pop(email, None) is not None

    def logged_in(self, email: str, now: datetime) -> None:
        """Record the last log-in."""
        if email in self.docs:
            self.docs[email]["last_login_at"] = now


class MemorySessions(MemoryRepository):
    """See :class:`shared.domain.users.SessionRepository`."""

    def add(self, session: WebSession) -> None:
        """Store the session."""
        self.docs[session.token_hash] = {"_id": session.token_hash, **session.model_dump(exclude={"token_hash"})}

    def get(self, token_hash: str, now: datetime) -> WebSession | None:
        """The unexpired session."""
        doc = self.docs.get(token_hash)
        if doc is None or not doc["expires_at"] > now:
            return None
        return WebSession.model_validate({**doc, "token_hash": token_hash})

    def remove(self, token_hash: str) -> None:
        """Delete the session."""
        self.docs.pop(token_hash, None)

    def remove_for(self, email: str) -> int:
        """Delete the user's sessions."""
        gone = [key for key, doc in self.docs.items() if doc["email"] == email]
        for key in gone:
            del self.docs[key]
        return len(gone)


class MemoryLoginThrottle(MemoryRepository):
    """See :class:`shared.domain.users.LoginThrottleRepository`."""

    def locked_until(self, email: str, now: datetime) -> datetime | None:
        """The lock-out's end when it is after ``now``."""
        doc = self.docs.get(email)
        until = doc.get("locked_until") if doc else None
        return until if until is not None and until > now else None

    def fail(self, email: str, *, now: datetime, window_start: datetime) -> int:
        """Count within the window, else start a new one."""
        doc = self.docs.get(email)
        if doc is not None and doc["since"] > window_start:
            doc["failures"] += 1
            doc["failed_at"] = now
        else:
            kept = doc or {"_id": email}
            kept.update({"since": now, "failures": 1, "failed_at": now})
            self.docs[email] = kept
        return int(self.docs[email]["failures"])

    def lock(self, email: str, *, failures: int, until: datetime, now: datetime) -> bool:
        """Conditional on enough failures and no lock-out in force."""
        doc = self.docs.get(email)
        if doc is None or doc["failures"] < failures or self.locked_until(email, now) is not None:
            return False
        doc.update({"locked_until": until, "failures": 0, "since": now})
        return True

    def clear(self, email: str, now: datetime) -> None:
        """Delete the email's failures unless it is locked out."""
        if email in self.docs and self.locked_until(email, now) is None:
            del self.docs[email]
