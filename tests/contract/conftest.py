"""Both repository implementations, for one contract suite: MongoDB on the test server, and in memory.

Each test gets ``repos`` over a fresh MongoDB database (the real SecantusDB or mongod of
tests/conftest.py), over fresh in-memory twins, and over the twins with the actors' campaign
cache (:mod:`shared.adapters.cached`) in front. A difference between them is a failure of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.cached import CachedCampaigns
from shared.adapters.memory import MemoryRepositories, memory_repositories
from shared.adapters.mongo import MongoRepositories, connect, mongo_repositories
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, Step
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState

HOUR = timedelta(hours=1)


@pytest.fixture(params=["mongo", "memory", "cached"])
def repos(request: pytest.FixtureRequest) -> Iterator[Repositories]:
    """The repositories under test: MongoDB (a fresh database, indexes created) or the in-memory twins."""
    if request.param == "memory":
        yield memory_repositories()
        return
    if request.param == "cached":
        twins = memory_repositories()
        yield replace(twins, campaigns=CachedCampaigns(twins.campaigns))
        return
    uri, name = request.getfixturevalue("mongo_uri"), request.getfixturevalue("db_name")
    client = connect(uri)
    repositories = mongo_repositories(client[name])
    repositories.ensure_indexes()
    yield repositories
    client.drop_database(name)
    client.close()


def plant(repos: Repositories, repository: str, doc: dict[str, Any]) -> None:
    """Store a document as it is (a record an earlier version or a person wrote), whichever the implementation."""
    if isinstance(repos, MongoRepositories):
        getattr(repos, repository).collection.insert_one(doc)
    else:
        assert isinstance(repos, MemoryRepositories)
        _memory(repos, repository).docs[doc["_id"]] = doc


def stored(repos: Repositories, repository: str, key: str) -> dict[str, Any] | None:
    """A stored document as it is (for what no repository method returns), whichever the implementation."""
    if isinstance(repos, MongoRepositories):
        return getattr(repos, repository).collection.find_one({"_id": key})
    assert isinstance(repos, MemoryRepositories)
    doc = _memory(repos, repository).docs.get(key)
    return dict(doc) if doc is not None else None


def _memory(repos: MemoryRepositories, repository: str) -> Any:
    found = getattr(repos, repository)
    return found.inner if isinstance(found, CachedCampaigns) else found


def contact(n: int = 1, **changes: Any) -> Contact:
    """A contact (``ct<n>``, ``+3361234567<n>``)."""
    data: dict[str, Any] = {"id": f"ct{n}", "phone": f"+3361234560{n}", "name": f"Client {n}",
                            "fields": {"invoice_number": f"FA-{n}"}, "tags": ["clients"]}
    return Contact.model_validate({**data, **changes})


def campaign(campaign_id: str = "c1", steps: int = 2) -> Campaign:
    """A campaign of ``steps`` steps."""
    return Campaign(id=campaign_id, name=campaign_id, steps=[Step() for _ in range(steps)])


def outbound(message_id: str = "c1:ct1:0", *, contact_id: str | None = "ct1", purpose: str = "step",
             followup_id: str | None = "c1:ct1", step: int = 0, **changes: Any) -> OutboundMessage:
    """A ready outbound message."""
    data: dict[str, Any] = {"id": message_id, "followup_id": followup_id, "contact_id": contact_id,
                            "campaign_id": "c1" if followup_id else None, "step": step, "purpose": purpose,
                            "state": MessageState.READY, "kind": "freeform", "body": "Bonjour", "language": Language.FR}
    return OutboundMessage.model_validate({**data, **changes})
