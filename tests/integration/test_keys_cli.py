"""`relance keys create|list|revoke` through the real entry point on the real MongoDB-compatible server."""

from __future__ import annotations

import hashlib
import re

import pytest

from shared.adapters.mongo import MongoRepositories
from tests.support.cli import Relance

pytestmark = pytest.mark.integration


def test_a_key_is_printed_once_stored_as_its_hash_listed_and_revoked(relance: Relance,
                                                                     store: MongoRepositories) -> None:
    code, out, err = relance("keys", "create", "ci", "--read-only")
    assert (code, err) == (0, "")
    key = out.splitlines()[-1]
    assert re.fullmatch(r"rl_[A-Za-z0-9_-]{32}", key), out
    doc = store.api_keys.collection.find_one({"_id": "ci"})
    assert doc is not None and doc["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(doc)
    assert relance("keys", "create", "ci") == (1, "", "error: an API key named 'ci' exists already\n")
    code, out, _ = relance("keys", "list")
    assert code == 0 and out.startswith("ci  read-only  created ") and "last used never used" in out
    assert key not in out
    assert relance("keys", "revoke", "ci") == (0, "API key 'ci' revoked\n", "")
    assert relance("keys", "revoke", "ci") == (1, "", "error: the API key 'ci' is revoked already\n")
    assert relance("keys", "revoke", "nobody") == (1, "", "error: no API key is named 'nobody'\n")
    assert " revoked " in relance("keys", "list")[1]
    assert relance("keys", "create", "bad name!")[2].startswith("error: key name 'bad name!' is not valid")


def test_no_keys_yet(relance: Relance) -> None:
    assert relance("keys", "list") == (0, "no API keys (relance keys create NAME)\n", "")
