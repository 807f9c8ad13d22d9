"""The console's API keys and kept POST responses, in memory."""

from __future__ import annotations

from datetime import datetime

from shared.adapters.memory.base import MemoryRepository
from shared.domain.api_keys import ApiKey, KeptResponse


class MemoryApiKeys(MemoryRepository):
    """See :class:`shared.domain.api_keys.ApiKeyRepository`."""

    def add(self, key: ApiKey) -> bool:
        """Store a new key (a taken name is refused)."""
        if key.name in self.docs:
            return False
        self.docs[key.name] = {"_id": key.name, **key.model_dump(exclude={"name"})}
        return True

    def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash."""
        found = [doc for doc in self.docs.values() if doc["key_hash"] == key_hash]
        return ApiKey.model_validate({**found[0], "name": found[0]["_id"]}) if found else None

    def get(self, name: str) -> ApiKey | None:
        """The key named ``name``."""
        doc = self.docs.get(name)
        return ApiKey.model_validate({**doc, "name": name}) if doc else None

    def all(self) -> list[ApiKey]:
        """Every key, by name."""
        return [ApiKey.model_validate({**self.docs[name], "name": name}) for name in sorted(self.docs)]

    def revoke(self, name: str, now: datetime) -> bool:
        """Conditional on the key not being revoked yet."""
        doc = self.docs.get(name)
        if doc is None or doc.get("revoked_at") is not None:
            return False
        doc["revoked_at"] = now
        return True

    def touch(self, name: str, now: datetime) -> None:
        """Record the key's last use."""
        if name in self.docs:
            self.docs[name]["last_used_at"] = now


class MemoryIdempotency(MemoryRepository):
    """See :class:`shared.domain.api_keys.IdempotencyRepository`."""

    def begin(self, kept: KeptResponse, now: datetime) -> bool:
        """Claim the id (False when taken)."""
        if kept.id in self.docs:
            return False
        self.docs[kept.id] = {"_id": kept.id, "method_path": kept.method_path, "body_hash": kept.body_hash,
                              "status": None, "body": None, "created_at": now}
        return True

    def get(self, kept_id: str) -> KeptResponse | None:
        """What is kept under this id."""
        doc = self.docs.get(kept_id)
        if doc is None:
            return None
        return KeptResponse(id=kept_id, method_path=doc["method_path"], body_hash=doc["body_hash"],
                            status=doc["status"], body=doc["body"])

    def finish(self, kept_id: str, *, status: int, body: str, now: datetime) -> None:
        """Keep the response (once)."""
        doc = self.docs.get(kept_id)
        if doc is not None and doc["status"] is None:
            doc.update({"status": status, "body": body, "finished_at": now})

    def take_over(self, kept_id: str, *, started_before: datetime, now: datetime) -> bool:
        """Conditional on the claim being unfinished and older than ``started_before``."""
        doc = self.docs.get(kept_id)
        if doc is None or doc["status"] is not None or not doc["created_at"] < started_before:
            return False
        doc["created_at"] = now
        return True

    def forget(self, kept_id: str) -> None:
        """Drop an unfinished claim."""
        doc = self.docs.get(kept_id)
        if doc is not None and doc["status"] is None:
            del self.docs[kept_id]
