"""The API keys and the kept POST responses: both implementations alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain.api_keys import ApiKey, KeptResponse
from shared.domain.repositories import Repositories

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _key(name: str, key_hash: str, **changes: object) -> ApiKey:
    return ApiKey.model_validate({"name": name, "key_hash": key_hash, "created_at": NOW, **changes})


def test_a_key_is_added_once_per_name_and_found_by_hash_and_name(repos: Repositories) -> None:
    assert repos.api_keys.add(_key("ci", "h1", read_only=True))
    assert not repos.api_keys.add(_key("ci", "h2"))
    assert repos.api_keys.add(_key("admin", "h3"))
    found = repos.api_keys.by_hash("h1")
    assert found is not None and found.name == "ci" and found.read_only and found.created_at == NOW
    assert repos.api_keys.by_hash("h2") is None
    assert repos.api_keys.get("admin") is not None and repos.api_keys.get("nobody") is None
    assert [key.name for key in repos.api_keys.all()] == ["admin", "ci"]


def test_a_key_is_revoked_once_and_its_use_recorded(repos: Repositories) -> None:
    repos.api_keys.add(_key("ci", "h1"))
    assert repos.api_keys.revoke("ci", NOW)
    assert not repos.api_keys.revoke("ci", NOW + timedelta(hours=1))
    assert not repos.api_keys.revoke("nobody", NOW)
    repos.api_keys.touch("ci", NOW + timedelta(minutes=5))
    key = repos.api_keys.get("ci")
    assert key is not None and key.revoked_at == NOW and key.last_used_at == NOW + timedelta(minutes=5)


def test_a_kept_response_is_claimed_once_finished_once_and_forgotten_only_unfinished(repos: Repositories) -> None:
    claim = KeptResponse(id="ci:1", method_path="POST /api/v1/x", body_hash="b", status=None, body=None)
    assert repos.idempotency.begin(claim, NOW)
    assert not repos.idempotency.begin(claim, NOW)
    assert repos.idempotency.get("ci:1") == claim
    repos.idempotency.finish("ci:1", status=200, body='{"a": 1}', now=NOW)
    repos.idempotency.finish("ci:1", status=500, body="{}", now=NOW)
    repos.idempotency.forget("ci:1")
    assert repos.idempotency.get("ci:1") == KeptResponse(id="ci:1", method_path="POST /api/v1/x", body_hash="b",
                                                         status=200, body='{"a": 1}')
    assert not repos.idempotency.take_over("ci:1", started_before=NOW + timedelta(hours=1), now=NOW)  # finished
    other = KeptResponse(id="ci:2", method_path="POST /api/v1/x", body_hash="b", status=None, body=None)
    repos.idempotency.begin(other, NOW)
    repos.idempotency.forget("ci:2")
    assert repos.idempotency.get("ci:2") is None


def test_an_abandoned_claim_is_taken_over_once_and_only_once_old_enough(repos: Repositories) -> None:
    claim = KeptResponse(id="ci:1", method_path="POST /api/v1/x", body_hash="b", status=None, body=None)
    repos.idempotency.begin(claim, NOW)
    assert not repos.idempotency.take_over("ci:1", started_before=NOW, now=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=5)
    assert repos.idempotency.take_over("ci:1", started_before=NOW + timedelta(seconds=1), now=later)
    assert not repos.idempotency.take_over("ci:1", started_before=NOW + timedelta(seconds=1), now=later)
    assert not repos.idempotency.take_over("ci:9", started_before=later, now=later)
