"""A body too large for any request of the console is refused by its size before it is read (the real
MongoDB-compatible server behind the app): no key or session needed to be refused, nothing changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.console import Console, create_app
from services.console.body_limit import MAX_BODY_BYTES
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.usecases.api_keys import create_key

pytestmark = pytest.mark.integration


def test_a_body_over_the_limit_is_refused_before_it_is_read(store: MongoRepositories, clock: FakeClock) -> None:
    key = {"Authorization": f"Bearer {create_key(store, 'ops', now=clock.now())}"}
    huge = b'{"name": "' + b"a" * MAX_BODY_BYTES + b'", "phone": "+33612345678", "language": "fr"}'
    with TestClient(create_app(Console(store, clock)), raise_server_exceptions=False, follow_redirects=False) as web:
        for headers in ({}, key):  # FastAPI reads a declared body before the key is checked
            refused = web.post("/api/v1/contacts", content=huge,
                               headers={**headers, "content-type": "application/json"})
            assert refused.status_code == 413, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "over 1024 KiB" in refused.json()["detail"]
        login = web.post("/login", data={"email": "a@example.com", "password": "x" * MAX_BODY_BYTES})
        assert login.status_code == 413  # a form is read whole too, before its CSRF token is checked
        assert store.contacts.by_phone("+33612345678") is None
        small = huge.replace(b"a" * MAX_BODY_BYTES, b"Marie")
        created = web.post("/api/v1/contacts", content=small, headers={**key, "content-type": "application/json"})
        assert created.status_code == 201, created.text


def test_a_body_without_content_length_is_counted_as_it_streams(store: MongoRepositories, clock: FakeClock) -> None:
    """Chunked, no Content-Length: refused (413) once past the limit, for the API and for the pages."""
    key = {"Authorization": f"Bearer {create_key(store, 'ops', now=clock.now())}"}

    def chunks(head: bytes, tail: bytes) -> Iterator[bytes]:
        yield head
        for _ in range(MAX_BODY_BYTES // 16_384 + 1):
            yield b"a" * 16_384
        yield tail

    with TestClient(create_app(Console(store, clock)), raise_server_exceptions=False, follow_redirects=False) as web:
        refused = web.post("/api/v1/contacts", content=chunks(b'{"name": "', b'", "phone": "+33612345678"}'),
                           headers={**key, "content-type": "application/json"})
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "over 1024 KiB" in refused.json()["detail"]
        login = web.post("/login", content=chunks(b"email=a%40example.com&password=", b""),
                         headers={"content-type": "application/x-www-form-urlencoded"})
        assert login.status_code == 413, login.text
        assert store.contacts.by_phone("+33612345678") is None
        small = web.post("/api/v1/contacts", content=iter([b'{"name": "Marie", ', b'"phone": "+33612345678", ',
                                                           b'"language": "fr"}']),
                         headers={**key, "content-type": "application/json"})
        assert small.status_code == 201, small.text
