"""The console's clients list: search by name or phone, and filter by where each client stands.

A client's status: it has follow-ups running or paused (``followups``), one of them waits for a
person (``needs_human``), it opted out (``opted_out``), it owes an invoice (``invoices_due``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers

from shared.domain.invoices import Invoice
from shared.domain.models import Contact
from shared.domain.records import FollowUpSummary
from shared.domain.repositories import Repositories
from shared.domain.states import OPEN, UNPAID
from shared.errors import InputError
from shared.language.text import name_key

STATUSES = ("followups", "needs_human", "opted_out", "invoices_due")
MAX_CLIENTS = 50  # a page
_SCAN = 1000


@dataclass(frozen=True)
class ClientLine:
    """One client as the list shows it: its follow-ups, whether a person is needed, what it owes."""

    contact: Contact
    followups: list[FollowUpSummary]
    needs_human: bool
    invoices_due: int
    due: dict[str, int] = field(default_factory=dict)  # currency → cents


@dataclass(frozen=True)
class ClientSearch:
    """One page of the clients found (``page`` from 1; ``more``: a next page exists)."""

    lines: list[ClientLine]
    more: bool
    page: int = 1
    total: int = 0


def _phone_prefixes(query: str, default_region: str) -> list[str]:
    """E.164 beginnings a phone query can mean: ``"06 12"`` → ``+612``, ``+33612`` (FR); none under 3 digits."""
    digits = re.sub(r"\D", "", query).lstrip("0")  # 0033…, or a national 06…
    if len(digits) < 3:
        return []
    code = str(phonenumbers.country_code_for_region(default_region.upper()) or "")
    return sorted({f"+{digits}"} | ({f"+{code}{digits}"} if code and not digits.startswith(code) else set()))


def _open_followup_contacts(store: Repositories) -> set[str]:
    found: set[str] = set()
    for state in OPEN:
        after: str | None = None
        while True:
            page = store.followups.page(state=state, after=after, limit=_SCAN)
            found.update(f.contact_id for f in page)
            if len(page) < _SCAN:
                break
            after = page[-1].id
    return found


def find_clients(store: Repositories, *, query: str = "", status: str | None = None, page: int = 1,
                 limit: int = MAX_CLIENTS, default_region: str = "FR") -> ClientSearch:
    """Clients whose name starts with ``query`` (accents and case aside) or whose phone starts with its digits
    (a national number read in ``default_region``), in ``status`` (one of :data:`STATUSES`), by name,
    ``limit`` a page (``page`` from 1); InputError for an unknown status or page.

    The contacts are sorted and searched on their stored name key (``ContactRepository.names``: a search
    reads only what it finds); the page's contacts, follow-ups and invoices are read for its clients only,
    except for the status filters that need them.
    """
    if status and status not in STATUSES:
        raise InputError(f"status {status!r} is not one of {', '.join(STATUSES)}", code="filter.status", status=status)
    if page < 1:
        raise InputError(f"page {page} is not a page number (1, 2, ...)", code="filter.page", page=page)
    wanted: set[str] | None = None
    if status == "followups":
        wanted = _open_followup_contacts(store)
    elif status == "needs_human":
        wanted = {f.contact_id for f in store.followups.recent_summaries(needs_human=True, limit=10 * _SCAN)}
    elif status == "invoices_due":
        wanted = {invoice.contact_id for invoice in store.invoices.find(statuses=UNPAID)}
    names = store.contacts.names(prefix=name_key(query), phone_prefixes=_phone_prefixes(query, default_region))
    chosen = [n for n in names if (wanted is None or n.id in wanted) and (status != "opted_out" or n.opted_out)]
    shown = [n.id for n in chosen[(page - 1) * limit:page * limit]]
    followups_of: dict[str, list[FollowUpSummary]] = {}
    for followup in store.followups.summaries_of_contacts(shown):
        followups_of.setdefault(followup.contact_id, []).append(followup)
    unpaid_of: dict[str, list[Invoice]] = {}
    for invoice in store.invoices.find(contact_ids=shown, statuses=UNPAID):
        unpaid_of.setdefault(invoice.contact_id, []).append(invoice)
    lines = []
    for contact in store.contacts.get_many(shown):
        followups, unpaid = followups_of.get(contact.id, []), unpaid_of.get(contact.id, [])
        due: dict[str, int] = {}
        for invoice in unpaid:
            due[invoice.currency] = due.get(invoice.currency, 0) + invoice.amount_due_cents
        lines.append(ClientLine(contact, followups, any(f.needs_human for f in followups), len(unpaid), due))
    return ClientSearch(lines, len(chosen) > page * limit, page, len(chosen))
