"""The MongoDB repositories: the only code in the project that imports pymongo.

``connection`` (the client, error translation), ``indexes``, and one module per aggregate.
"""

from __future__ import annotations

from pymongo.database import Database

from shared.adapters.mongo.api_keys import MongoApiKeys, MongoIdempotency
from shared.adapters.mongo.audit import MongoAudit
from shared.adapters.mongo.campaigns import MongoCampaigns
from shared.adapters.mongo.connection import Client, Doc, MongoDatabase, connect
from shared.adapters.mongo.contacts import MongoContacts
from shared.adapters.mongo.events import MongoEvents
from shared.adapters.mongo.followups import MongoFollowUps
from shared.adapters.mongo.hooks import MongoHooks
from shared.adapters.mongo.invoices import MongoInvoices
from shared.adapters.mongo.jobs import MongoJobs
from shared.adapters.mongo.messages import MongoMessages
from shared.adapters.mongo.owner import MongoOwner
from shared.adapters.mongo.reports import MongoReports
from shared.adapters.mongo.users import MongoLoginThrottle, MongoSessions, MongoUsers
from shared.domain.repositories import Repositories

__all__ = ["Client", "MongoRepositories", "connect", "mongo_repositories", "open_repositories"]


class MongoRepositories(Repositories):
    """The repositories over one MongoDB database (their raw collections reachable for tests)."""

    contacts: MongoContacts
    campaigns: MongoCampaigns
    followups: MongoFollowUps
    messages: MongoMessages
    events: MongoEvents
    owner: MongoOwner
    jobs: MongoJobs
    invoices: MongoInvoices
    api_keys: MongoApiKeys
    idempotency: MongoIdempotency
    database: MongoDatabase
    hooks: MongoHooks
    audit: MongoAudit
    users: MongoUsers
    sessions: MongoSessions
    login_throttle: MongoLoginThrottle
    reports: MongoReports


def mongo_repositories(db: Database[Doc]) -> MongoRepositories:
    """Every repository over ``db``."""
    return MongoRepositories(contacts=MongoContacts(db), campaigns=MongoCampaigns(db), followups=MongoFollowUps(db),
                             messages=MongoMessages(db), events=MongoEvents(db), owner=MongoOwner(db),
                             jobs=MongoJobs(db), invoices=MongoInvoices(db), database=MongoDatabase(db),
                             hooks=MongoHooks(db), api_keys=MongoApiKeys(db), idempotency=MongoIdempotency(db),
                             audit=MongoAudit(db),
                             users=MongoUsers(db), sessions=MongoSessions(db), login_throttle=MongoLoginThrottle(db),
                             reports=MongoReports(db))


def open_repositories(uri: str, database: str, *, timeout_ms: int = 5000,
                      socket_timeout_ms: int | None = None) -> tuple[Client, MongoRepositories]:
    """Connect (lazily) and build the repositories over ``database``; the caller closes the client."""
    client = connect(uri, timeout_ms=timeout_ms, socket_timeout_ms=socket_timeout_ms)
    return client, mongo_repositories(client[database])
