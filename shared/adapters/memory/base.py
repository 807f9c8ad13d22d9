"""What the in-memory repositories share: documents kept as MongoDB would keep them, one lock.

Each repository keeps its documents by ``_id`` in a dict, shaped like the MongoDB adapter's,
so that the same conditional updates read the same fields. Every method runs under the
bundle's lock: a conditional update is atomic here as ``update_one`` is on the server.
Documents are copied in and out, as a driver would, so a caller never holds a stored one.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from shared.adapters import own_methods

Doc = dict[str, Any]
P = ParamSpec("P")
R = TypeVar("R")
HISTORY_CAP = 50  # as the MongoDB adapter keeps


def _locked(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with args[0]._lock:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return run


class MemoryRepository:
    """Base of the in-memory repositories: a dict of documents, every public method under the lock."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self.docs: dict[str, Doc] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(own_methods(cls, MemoryRepository)):
            setattr(cls, name, _locked(value))

    def _insert(self, doc: Doc) -> bool:
        """Store a copy of ``doc`` unless its ``_id`` exists; True when stored."""
        if doc["_id"] in self.docs:
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        return True

    def _get(self, key: str) -> Doc | None:
        doc = self.docs.get(key)
        return copy.deepcopy(doc) if doc is not None else None

    def _where(self, match: Callable[[Doc], bool]) -> list[Doc]:
        """Copies of the documents ``match`` accepts, in insertion order."""
        return [copy.deepcopy(doc) for doc in self.docs.values() if match(doc)]


def push_history(doc: Doc, state: str, now: datetime, **extra: Any) -> None:
    """Record a transition in the document's history (the latest HISTORY_CAP kept)."""
    doc["history"] = [*doc.get("history", []), {"state": state, "at": now, **extra}][-HISTORY_CAP:]


def before(value: Any, bound: datetime) -> bool:
    """MongoDB's ``{"$lt": bound}`` on a field: only a date earlier than ``bound`` (null or missing is not)."""
    return isinstance(value, datetime) and value < bound


def none_or_before(value: Any, bound: datetime) -> bool:
    """MongoDB's ``{"$or": [{field: None}, {field: {"$lt": bound}}]}``."""
    return value is None or before(value, bound)


def by(key: str, *, reverse: bool = False) -> Callable[[Iterable[Doc]], list[Doc]]:
    """Sort documents on one field, as MongoDB does (missing or null first when ascending)."""
    def sort(given: Iterable[Doc]) -> list[Doc]:
        docs = list(given)
        present = [doc for doc in docs if doc.get(key) is not None]
        absent = [doc for doc in docs if doc.get(key) is None]
        ordered = sorted(present, key=lambda doc: doc[key], reverse=reverse)
        return ordered + absent if reverse else absent + ordered
    return sort


def limited(docs: list[Doc], limit: int) -> list[Doc]:
    """The first ``limit`` documents (0: all, as MongoDB's ``limit(0)``)."""
    return docs[:limit] if limit > 0 else docs


def set_fields(doc: Doc, fields: Doc) -> bool:
    """MongoDB's ``$set``: write ``fields``; True when a value changed (what ``modified_count`` counts)."""
    changed = any(key not in doc or doc[key] != value for key, value in fields.items())
    doc.update(fields)
    return changed
