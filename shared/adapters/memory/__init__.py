"""In-memory twins of the MongoDB repositories: the same interfaces, the same conditional semantics.

For use-case tests that need no server (tests/contract checks both implementations alike).
"""

from __future__ import annotations

import threading

from shared.adapters.memory.api_keys import MemoryApiKeys, MemoryIdempotency
from shared.adapters.memory.audit import MemoryAudit
from shared.adapters.memory.campaigns import MemoryCampaigns
from shared.adapters.memory.contacts import MemoryContacts
from shared.adapters.memory.events import MemoryEvents
from shared.adapters.memory.followups import MemoryFollowUps
from shared.adapters.memory.hooks import MemoryHooks
from shared.adapters.memory.invoices import MemoryInvoices
from shared.adapters.memory.jobs import MemoryJobs
from shared.adapters.memory.messages import MemoryMessages
from shared.adapters.memory.owner import MemoryOwner
from shared.adapters.memory.reports import MemoryReports
from shared.adapters.memory.users import MemoryLoginThrottle, MemorySessions, MemoryUsers
from shared.domain.repositories import Repositories

__all__ = ["MemoryDatabase", "MemoryRepositories", "memory_repositories"]


class MemoryDatabase:
    """The in-memory store as a whole: always answers, needs no index."""

    def ping(self) -> bool:
        """Always True."""
        return True

    def ensure_indexes(self) -> None:
        """Nothing to create: uniqueness is checked by each repository."""


class MemoryRepositories(Repositories):
    """Every in-memory repository, sharing one lock."""

    contacts: MemoryContacts
    campaigns: MemoryCampaigns
    followups: MemoryFollowUps
    messages: MemoryMessages
    events: MemoryEvents
    owner: MemoryOwner
    jobs: MemoryJobs
    invoices: MemoryInvoices
    api_keys: MemoryApiKeys
    idempotency: MemoryIdempotency
    database: MemoryDatabase
    hooks: MemoryHooks
    audit: MemoryAudit
    users: MemoryUsers
    sessions: MemorySessions
    login_throttle: MemoryLoginThrottle
    reports: MemoryReports


def memory_repositories() -> MemoryRepositories:
    """A fresh, empty set of in-memory repositories."""
    lock = threading.RLock()
    campaigns, followups, messages, invoices = (MemoryCampaigns(lock), MemoryFollowUps(lock), MemoryMessages(lock),
                                                MemoryInvoices(lock))
    return MemoryRepositories(
        contacts=MemoryContacts(lock), campaigns=campaigns, followups=followups,
        messages=messages, events=MemoryEvents(lock), owner=MemoryOwner(lock), jobs=MemoryJobs(lock),
        invoices=invoices, database=MemoryDatabase(), hooks=MemoryHooks(lock),
        api_keys=MemoryApiKeys(lock), idempotency=MemoryIdempotency(lock), audit=MemoryAudit(lock),
        users=MemoryUsers(lock), sessions=MemorySessions(lock), login_throttle=MemoryLoginThrottle(lock),
        reports=MemoryReports(lock, campaigns=campaigns, followups=followups, messages=messages, invoices=invoices),
    )
