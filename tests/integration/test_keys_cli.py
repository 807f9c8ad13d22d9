"""`relance keys create|list|revoke` through the real entry point on the real MongoDB-compatible server."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from services.cli import main
from shared.adapters.mongo import MongoRepositories
from shared.settings import Settings, load_settings

pytestmark = pytest.mark.integration
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
Relance = Callable[..., tuple[int, str, str]]


@pytest.fixture
def relance(mongo_uri: str, db_name: str, capsys: pytest.CaptureFixture[str]) -> Relance:
    settings: Settings = load_settings({"MONGODB_URI": urlsplit(mongo_uri)._replace(path=f"/{db_name}").geturl()})

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv), load=lambda: settings)
        out, err = capsys.readouterr()
        return code, out, "".join(line for line in err.splitlines(keepends=True) if not LOG_LINE.match(line))

    return run


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
