"""Fixtures starting the real test servers: Redis and a MongoDB-compatible server.

Both run as separate processes on free loopback ports for the whole session and are stopped
at the end. Set MONGODB_URI to test against a real mongod instead of SecantusDB.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from devtools.embedded import ServerProcess, start_mongo, start_redis
from shared.adapters.mongo import MongoRepositories, connect, mongo_repositories
from shared.clock import FakeClock
from tests.support.cli import Relance, relance_runner


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the servers' data and logs."""
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def redis_server(servers_dir: Path) -> Iterator[ServerProcess]:
    """A real redis-server for the session."""
    server = start_redis(servers_dir / "redis")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_uri(servers_dir: Path) -> Iterator[str]:
    """URI of a real MongoDB-compatible server (MONGODB_URI, else SecantusDB)."""
    given = os.environ.get("MONGODB_URI")
    if given:
        yield given
        return
    server = start_mongo(servers_dir / "mongo", in_memory=True)
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server: ServerProcess) -> Iterator[str]:
    """A clean Redis database for one test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    client.flushall()
    client.close()


@pytest.fixture
def db_name() -> str:
    """A database name of one's own for each test."""
    return f"t_{secrets.token_hex(6)}"


@pytest.fixture
def database(mongo_uri: str, db_name: str) -> Iterator[str]:
    """A MongoDB URI naming a database of this test's own, dropped afterwards."""
    yield urlsplit(mongo_uri)._replace(path=f"/{db_name}").geturl()
    client = connect(mongo_uri)
    client.drop_database(db_name)
    client.close()


@pytest.fixture
def store(mongo_uri: str, db_name: str) -> Iterator[MongoRepositories]:
    """The MongoDB repositories over a fresh database, indexes created, dropped afterwards."""
    client = connect(mongo_uri)
    repo = mongo_repositories(client[db_name])
    repo.ensure_indexes()
    yield repo
    client.drop_database(db_name)
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (starts on a Monday, 11:00 in Paris)."""
    return FakeClock()


@pytest.fixture
def relance(mongo_uri: str, db_name: str, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> Relance:
    """Run the real `relance` entry point on the test database: (exit code, stdout, stderr without the
    log lines); tests/support/cli.py."""
    return relance_runner(mongo_uri, db_name, capsys, monkeypatch)
