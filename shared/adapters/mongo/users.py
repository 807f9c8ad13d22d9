"""The console's users, sessions and log-in throttle, in MongoDB (``users``, ``web_sessions``, ``login_throttle``)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.users import User, WebSession


def _user(doc: Doc) -> User:
    return User.model_validate({**doc, "email": doc["_id"]})


class MongoUsers(MongoRepository):
    """See :class:`shared.domain.users.UserRepository`."""

    collection_name = "users"

    def add(self, user: User) -> bool:
        """Store a new user (the email is the ``_id``: a taken one is refused)."""
        try:
            self.collection.insert_one({"_id": user.email, **user.model_dump(exclude={"email"})})
        except DuplicateKeyError:
            return False
        return True

    def get(self, email: str) -> User | None:
        """The user with this email."""
        doc = self.collection.find_one({"_id": email})
        return _user(doc) if doc else None

    def all(self) -> list[User]:
        """Every user, by email."""
        return [_user(doc) for doc in self.collection.find().sort("_id", ASCENDING)]

    def remove(self, email: str) -> bool:
        """Delete the user."""
        return self.collection.delete_one({"_id": email}).deleted_count == 1

    def logged_in(self, email: str, now: datetime) -> None:
        """Record the last log-in."""
        self.collection.update_one({"_id": email}, {"$set": {"last_login_at": now}})


class MongoSessions(MongoRepository):
    """See :class:`shared.domain.users.SessionRepository`."""

    collection_name = "web_sessions"

    def add(self, session: WebSession) -> None:
        """Insert the session (its token's hash is the ``_id``)."""
        self.collection.insert_one({"_id": session.token_hash, **session.model_dump(exclude={"token_hash"})})

    def get(self, token_hash: str, now: datetime) -> WebSession | None:
        """The unexpired session (the TTL index removes expired ones later, this check at once)."""
        doc = self.collection.find_one({"_id": token_hash, "expires_at": {"$gt": now}})
        return WebSession.model_validate({**doc, "token_hash": doc["_id"]}) if doc else None

    def remove(self, token_hash: str) -> None:
        """Delete the session."""
        self.collection.delete_one({"_id": token_hash})

    def remove_for(self, email: str) -> int:
        """Delete the user's sessions."""
        return self.collection.delete_many({"email": email}).deleted_count


class MongoLoginThrottle(MongoRepository):
    """See :class:`shared.domain.users.LoginThrottleRepository` (one document per email that failed)."""

    collection_name = "login_throttle"

    def locked_until(self, email: str, now: datetime) -> datetime | None:
        """The lock-out's end when it is after ``now``."""
        doc = self.collection.find_one({"_id": email, "locked_until": {"$gt": now}})
        return doc["locked_until"] if doc else None

    def fail(self, email: str, *, now: datetime, window_start: datetime) -> int:
        """``$inc`` within the window, else start a new window (conditional updates, no read-modify-write)."""
        for _ in range(3):  # a concurrent first failure may insert the document between the two updates
            if self.collection.update_one({"_id": email, "since": {"$gt": window_start}},
                                          {"$inc": {"failures": 1}, "$set": {"failed_at": now}}).matched_count:
                break
            try:
                self.collection.update_one({"_id": email, "since": {"$not": {"$gt": window_start}}},
                                           {"$set": {"since": now, "failures": 1, "failed_at": now}}, upsert=True)
                break
            except DuplicateKeyError:
                continue
        doc = self.collection.find_one({"_id": email})
        return int(doc["failures"]) if doc else 0

    def lock(self, email: str, *, failures: int, until: datetime, now: datetime) -> bool:
        """Conditional on enough failures and no lock-out in force."""
        result = self.collection.update_one(
            {"_id": email, "failures": {"$gte": failures}, "locked_until": {"$not": {"$gt": now}}},
            {"$set": {"locked_until": until, "failures": 0, "since": now}})
        return result.modified_count == 1

    def clear(self, email: str, now: datetime) -> None:
        """Delete the email's failures unless it is locked out."""
        self.collection.delete_one({"_id": email, "locked_until": {"$not": {"$gt": now}}})
