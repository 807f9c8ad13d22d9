"""The console's API keys: create (the key shown once), revoke, list, and check a presented key.

A key is ``rl_`` and 32 random URL-safe characters; only its SHA-256 is stored, so a stolen
database gives no usable key. ``relance keys …`` and the console call these.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from shared.domain.api_keys import ApiKey
from shared.domain.repositories import Repositories
from shared.errors import InputError

KEY_PREFIX = "rl_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A key's last use is written at most this often (not one write per request).
TOUCH_EVERY = timedelta(minutes=1)


def hash_key(key: str) -> str:
    """The stored form of a key (hex SHA-256)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Repositories, name: str, *, read_only: bool = False, now: datetime) -> str:
    """Store a new key named ``name`` and return the key itself (shown once, never stored)."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise InputError(f"key name {name!r} is not valid: 1 to 64 letters, digits, '.', '_' or '-'")
    key = KEY_PREFIX + secrets.token_urlsafe(24)  # 24 bytes: 32 URL-safe characters
    if not store.api_keys.add(ApiKey(name=name, key_hash=hash_key(key), read_only=read_only, created_at=now)):
        raise InputError(f"an API key named {name!r} exists already")
    return key


def revoke_key(store: Repositories, name: str, *, now: datetime) -> None:
    """Revoke the key named ``name``: it answers 401 from now on."""
    if store.api_keys.revoke(name.strip(), now):
        return
    if store.api_keys.get(name.strip()) is None:
        raise InputError(f"no API key is named {name.strip()!r}")
    raise InputError(f"the API key {name.strip()!r} is revoked already")


def list_keys(store: Repositories) -> list[ApiKey]:
    """Every key (revoked ones too), by name."""
    return store.api_keys.all()


def authenticate(store: Repositories, presented: str, *, now: datetime) -> ApiKey | None:
    """The active key ``presented`` is, or None (unknown, malformed or revoked)."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    digest = hash_key(presented)
    key = store.api_keys.by_hash(digest)
    # The lookup found it by hash; the comparison in constant time guards any adapter that matched loosely.
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        return None
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        store.api_keys.touch(key.name, now)
    return key
