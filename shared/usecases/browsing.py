"""Pages of what the console lists: contacts, invoices, campaigns, follow-ups.

A page holds up to ``limit`` items after the one named by ``after`` (the last key of the page
before), in the order of their key; ``next_after`` is None on the last page. The console makes
``after`` an opaque cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.domain.invoices import Invoice
from shared.domain.models import Campaign, Contact, FollowUp, OutboundMessage
from shared.domain.repositories import Repositories
from shared.domain.states import FollowUpState, MessageState
from shared.errors import InputError, NotFound
from shared.usecases.campaigns import CampaignLine, list_campaigns
from shared.usecases.invoices import find_invoices

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the key to ask the next one after (None: this is the last)."""

    items: list[T]
    next_after: str | None


def check_limit(limit: int) -> int:
    """``limit`` when it is from 1 to MAX_LIMIT (InputError otherwise)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit {limit} is not from 1 to {MAX_LIMIT}")
    return limit


def _page(items: Sequence[T], key: Callable[[T], str], *, after: str | None, limit: int) -> Page[T]:
    """A page of ``items`` (sorted by ``key``) after ``after``."""
    rest = [item for item in items if after is None or key(item) > after]
    chosen = rest[:check_limit(limit)]
    return Page(chosen, key(chosen[-1]) if len(rest) > limit else None)


def _cut(found: list[T], key: Callable[[T], str], limit: int) -> Page[T]:
    """A page from up to ``limit + 1`` items read (one more than asked tells whether a next page exists)."""
    return Page(found[:limit], key(found[limit - 1]) if len(found) > limit else None)


def contacts_page(store: Repositories, *, after: str | None = None, limit: int = 50) -> Page[Contact]:
    """Contacts by id."""
    return _cut(store.contacts.find(after=after, limit=check_limit(limit) + 1), lambda c: c.id, limit)


def get_contact(store: Repositories, contact_id: str) -> Contact:
    """The contact with ``contact_id`` (NotFound when there is none)."""
    contact = store.contacts.get(contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id!r}")
    return contact


def invoices_page(store: Repositories, *, status: str | None = None, phone: str | None = None,
                  default_region: str = "FR", after: str | None = None, limit: int = 50) -> Page[Invoice]:
    """Invoices by reference, filtered as ``relance invoices list`` filters them."""
    found = find_invoices(store, status=status, phone=phone, default_region=default_region, after=after,
                          limit=check_limit(limit) + 1)
    return _cut(found, lambda i: i.reference, limit)


def campaigns_page(store: Repositories, *, after: str | None = None, limit: int = 50) -> Page[CampaignLine]:
    """Campaigns by id, with their follow-up counts."""
    lines = sorted(list_campaigns(store), key=lambda line: line.campaign.id)
    return _page(lines, lambda line: line.campaign.id, after=after, limit=limit)


def get_campaign(store: Repositories, campaign_id: str) -> Campaign:
    """The campaign with ``campaign_id`` (NotFound when there is none)."""
    campaign = store.campaigns.get(campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}: see `relance campaigns list`")
    return campaign


def followups_page(store: Repositories, *, campaign_id: str | None = None, state: str | None = None,
                   after: str | None = None, limit: int = 50) -> Page[FollowUp]:
    """Follow-ups by id, of one campaign and/or in one state."""
    wanted: FollowUpState | None = None
    if state is not None:
        try:
            wanted = FollowUpState(state.strip().lower())
        except ValueError:
            raise InputError(f"state {state!r} is not one of {', '.join(s.value for s in FollowUpState)}") from None
    if campaign_id is not None:
        get_campaign(store, campaign_id)
    found = store.followups.page(campaign_id=campaign_id, state=wanted, after=after, limit=check_limit(limit) + 1)
    return _cut(found, lambda f: f.id, limit)


def messages_page(store: Repositories, *, state: str | None = None, campaign_id: str | None = None,
                  contact_id: str | None = None, after: str | None = None, limit: int = 50) -> Page[OutboundMessage]:
    """Outbound messages by id, in one state, of one campaign and/or to one contact."""
    wanted: MessageState | None = None
    if state is not None:
        try:
            wanted = MessageState(state.strip().lower())
        except ValueError:
            raise InputError(f"state {state!r} is not one of {', '.join(s.value for s in MessageState)}") from None
    if campaign_id is not None:
        get_campaign(store, campaign_id)
    if contact_id is not None:
        get_contact(store, contact_id)
    found = store.messages.page(state=wanted, campaign_id=campaign_id, contact_id=contact_id, after=after,
                                limit=check_limit(limit) + 1)
    return _cut(found, lambda m: m.id, limit)


def get_message(store: Repositories, message_id: str) -> OutboundMessage:
    """The outbound message with ``message_id`` (NotFound when there is none)."""
    message = store.messages.get(message_id)
    if message is None:
        raise NotFound(f"no message {message_id!r}")
    return message
