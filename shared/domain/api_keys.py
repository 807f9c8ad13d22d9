"""The console's API keys and the responses kept for ``Idempotency-Key`` retries, with their repositories' interfaces.

Only a key's SHA-256 is stored; the key itself is shown once, at creation
(:mod:`shared.usecases.api_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel


class ApiKey(BaseModel):
    """A named API key, as stored (its hash, never the key)."""

    name: str
    key_hash: str
    read_only: bool = False
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class KeptResponse:
    """A POST's response kept for its retries (``status`` None: the first request is still running)."""

    id: str  # "<api key name>:<Idempotency-Key>"
    method_path: str
    body_hash: str
    status: int | None
    body: str | None


class ApiKeyRepository(Protocol):
    """The API keys, by name."""

    def add(self, key: ApiKey) -> bool:
        """Store a new key; False when its name is taken (nothing changed)."""

    def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (revoked ones too)."""

    def get(self, name: str) -> ApiKey | None:
        """The key named ``name``."""

    def all(self) -> list[ApiKey]:
        """Every key, by name."""

    def revoke(self, name: str, now: datetime) -> bool:
        """Revoke a key not revoked yet; False when there is none."""

    def touch(self, name: str, now: datetime) -> None:
        """Record that the key was used at ``now``."""


class IdempotencyRepository(Protocol):
    """The responses kept for retried POSTs."""

    def begin(self, kept: KeptResponse, now: datetime) -> bool:
        """Claim a request's id (``status`` None); False when a request with that id came first."""

    def get(self, kept_id: str) -> KeptResponse | None:
        """What is kept under this id."""

    def finish(self, kept_id: str, *, status: int, body: str, now: datetime) -> None:
        """Keep the first request's response."""

    def take_over(self, kept_id: str, *, started_before: datetime, now: datetime) -> bool:
        """Claim again an unfinished request begun before ``started_before`` (its process died); True once."""

    def forget(self, kept_id: str) -> None:
        """Drop a claim whose request failed before it answered (a retry may run it again)."""
