"""The MongoDB client, and the translation of every driver error into the project's own.

An outage (the server unreachable, a dropped or timed-out connection, a primary stepping
down, a write the server could not take) is :class:`~shared.errors.TransientError`: the
caller retries. Anything else the driver raises is :class:`~shared.errors.StoreError`. The
translation wraps every public method of every repository (:class:`MongoRepository`), so no
path lets a driver exception out. Error texts are not copied: they can quote a document's values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from bson.errors import BSONError
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    CursorNotFound,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WriteError,
)

from shared.adapters import own_methods
from shared.errors import ConfigError, RelanceError, StoreError, TransientError

Doc = dict[str, Any]
Client = MongoClient[Doc]
P = ParamSpec("P")
R = TypeVar("R")

DUPLICATE_KEY = 11000  # MongoDB's error code for a unique index violation
HISTORY_CAP = 50  # transitions kept in a document's history
# Server error codes that mean "not now" (shutting down, stepping down, a network error between
# members, an interrupted or timed-out operation): retried like an unreachable server.
TRANSIENT_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436})


def connect(uri: str, *, timeout_ms: int = 5000, socket_timeout_ms: int | None = None) -> Client:
    """A client returning timezone-aware UTC datetimes (it connects lazily).

    ``socket_timeout_ms``: how long one operation may wait on a silent server (a hung link)
    before failing as unreachable; None waits as long as the OS does. A malformed URI is a
    :class:`ConfigError`.
    """
    try:
        return MongoClient(
            uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=socket_timeout_ms,
            appname="relance",
        )
    except ConfigurationError as exc:
        raise ConfigError(f"MONGODB_URI is not a usable MongoDB URI ({type(exc).__name__})") from None


def translate(exc: PyMongoError | BSONError) -> RelanceError:
    """The project's error for a driver error: TransientError for an outage, StoreError otherwise."""
    name = type(exc).__name__
    if isinstance(exc, ConnectionFailure | ServerSelectionTimeoutError | ExecutionTimeout | WriteConcernError
                  | CursorNotFound):
        return TransientError(f"MongoDB unreachable: {name}")
    if isinstance(exc, DuplicateKeyError):
        return StoreError("MongoDB refused a duplicate the code did not expect")
    if isinstance(exc, BulkWriteError):
        codes = {error.get("code") for error in exc.details.get("writeErrors", [])}
        if codes - {DUPLICATE_KEY}:
            return TransientError(f"MongoDB refused {len(exc.details.get('writeErrors', []))} write(s)")
        return StoreError("MongoDB refused a duplicate the code did not expect")
    if isinstance(exc, WriteError):
        return TransientError(f"MongoDB refused a write ({name}, code {exc.code})")
    if isinstance(exc, OperationFailure):
        retryable = exc.has_error_label("RetryableWriteError") or exc.has_error_label("TransientTransactionError")
        if retryable or exc.code in TRANSIENT_CODES:
            return TransientError(f"MongoDB unavailable ({name}, code {exc.code})")
        return StoreError(f"MongoDB refused an operation ({name}, code {exc.code})")
    return StoreError(f"MongoDB refused an operation ({name})")


@contextmanager
def translated() -> Iterator[None]:
    """Raise any driver error inside as the project's error (see :func:`translate`)."""
    try:
        yield
    except (PyMongoError, BSONError) as exc:
        raise translate(exc) from None


def _translating(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated():
            return method(*args, **kwargs)

    return run


class MongoRepository:
    """Base of the MongoDB repositories: one collection, every public method translated."""

    collection_name = ""

    def __init__(self, db: Database[Doc]) -> None:
        self.db = db
        # The raw collection, for the adapter and for tests that look at stored documents.
        self.collection: Collection[Doc] = db[self.collection_name]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(own_methods(cls, MongoRepository)):
            setattr(cls, name, _translating(value))


def history(state: str, now: datetime, **extra: Any) -> Doc:
    """The ``$push`` of one transition onto a document's history (the latest HISTORY_CAP kept)."""
    return {"$each": [{"state": state, "at": now, **extra}], "$slice": -HISTORY_CAP}


class MongoDatabase(MongoRepository):
    """The database as a whole: ping and indexes."""

    def __init__(self, db: Database[Doc]) -> None:  # no collection of its own
        self.db = db

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            self.db.command("ping")
            return True
        except PyMongoError:
            return False

    def ensure_indexes(self) -> None:
        """Create every index (idempotent: safe at each process start)."""
        from shared.adapters.mongo.indexes import ensure_indexes

        ensure_indexes(self.db)
