"""The console's API keys and kept POST responses, in MongoDB (``api_keys``, ``idempotency``)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo.connection import Doc, MongoRepository
from shared.domain.api_keys import ApiKey, KeptResponse


def _key(doc: Doc) -> ApiKey:
    return ApiKey.model_validate({**doc, "name": doc["_id"]})


class MongoApiKeys(MongoRepository):
    """See :class:`shared.domain.api_keys.ApiKeyRepository`."""

    collection_name = "api_keys"

    def add(self, key: ApiKey) -> bool:
        """Store a new key (the name is the ``_id``: a taken name is refused)."""
        doc = key.model_dump(exclude={"name"})
        try:
            self.collection.insert_one({"_id": key.name, **doc})
        except DuplicateKeyError:
            return False
        return True

    def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash."""
        doc = self.collection.find_one({"key_hash": key_hash})
        return _key(doc) if doc else None

    def get(self, name: str) -> ApiKey | None:
        """The key named ``name``."""
        doc = self.collection.find_one({"_id": name})
        return _key(doc) if doc else None

    def all(self) -> list[ApiKey]:
        """Every key, by name."""
        return [_key(doc) for doc in self.collection.find().sort("_id", ASCENDING)]

    def revoke(self, name: str, now: datetime) -> bool:
        """Conditional on the key not being revoked yet."""
        result = self.collection.update_one({"_id": name, "revoked_at": None}, {"$set": {"revoked_at": now}})
        return result.modified_count == 1

    def touch(self, name: str, now: datetime) -> None:
        """Record the key's last use."""
        self.collection.update_one({"_id": name}, {"$set": {"last_used_at": now}})


class MongoIdempotency(MongoRepository):
    """See :class:`shared.domain.api_keys.IdempotencyRepository`."""

    collection_name = "idempotency"

    def begin(self, kept: KeptResponse, now: datetime) -> bool:
        """Insert the claim; the ``_id`` is the lock between two concurrent retries."""
        try:
            self.collection.insert_one({"_id": kept.id, "method_path": kept.method_path, "body_hash": kept.body_hash,
                                        "status": None, "body": None, "created_at": now})
        except DuplicateKeyError:
            return False
        return True

    def get(self, kept_id: str) -> KeptResponse | None:
        """What is kept under this id."""
        doc = self.collection.find_one({"_id": kept_id})
        if doc is None:
            return None
        return KeptResponse(id=doc["_id"], method_path=doc["method_path"], body_hash=doc["body_hash"],
                            status=doc.get("status"), body=doc.get("body"))

    def finish(self, kept_id: str, *, status: int, body: str, now: datetime) -> None:
        """Keep the response (once: a finished one is not overwritten)."""
        self.collection.update_one({"_id": kept_id, "status": None},
                                   {"$set": {"status": status, "body": body, "finished_at": now}})

    def take_over(self, kept_id: str, *, started_before: datetime, now: datetime) -> bool:
        """Conditional on the claim being unfinished and older than ``started_before``."""
        result = self.collection.update_one({"_id": kept_id, "status": None, "created_at": {"$lt": started_before}},
                                            {"$set": {"created_at": now}})
        return result.modified_count == 1

    def forget(self, kept_id: str) -> None:
        """Drop an unfinished claim."""
        self.collection.delete_one({"_id": kept_id, "status": None})
