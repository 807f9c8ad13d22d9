"""API keys on the in-memory repositories: the key shown once, only its hash kept, and which keys open the API."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import memory_repositories
from shared.errors import InputError
from shared.usecases.api_keys import authenticate, create_key, list_keys, revoke_key

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_a_key_is_random_shown_once_and_kept_as_its_hash() -> None:
    store = memory_repositories()
    first, second = create_key(store, "a", now=NOW), create_key(store, "b", now=NOW)
    assert first != second and first.startswith("rl_") and len(first) == 35
    (kept, _) = list_keys(store)
    assert kept.key_hash == hashlib.sha256(first.encode()).hexdigest() and first not in kept.model_dump_json()


def test_only_an_active_key_opens_the_api_and_its_use_is_written_once_a_minute() -> None:
    store = memory_repositories()
    key = create_key(store, "ops", now=NOW)
    assert authenticate(store, key + "x", now=NOW) is None
    assert authenticate(store, "Bearer " + key, now=NOW) is None
    assert authenticate(store, key[3:], now=NOW) is None
    found = authenticate(store, key, now=NOW + timedelta(seconds=5))
    assert found is not None and found.name == "ops" and not found.read_only
    authenticate(store, key, now=NOW + timedelta(seconds=30))
    assert list_keys(store)[0].last_used_at == NOW + timedelta(seconds=5)
    authenticate(store, key, now=NOW + timedelta(minutes=2))
    assert list_keys(store)[0].last_used_at == NOW + timedelta(minutes=2)
    revoke_key(store, "ops", now=NOW + timedelta(minutes=3))
    assert authenticate(store, key, now=NOW + timedelta(minutes=4)) is None


@pytest.mark.parametrize("name", ["", " ", "with space", "-leading", "x" * 65, "é"])
def test_a_bad_name_is_refused_and_nothing_stored(name: str) -> None:
    store = memory_repositories()
    with pytest.raises(InputError, match="is not valid"):
        create_key(store, name, now=NOW)
    assert list_keys(store) == []
