"""What a client's reply, and a person's decision on it, do to the client's invoices.

- "I paid" marks the invoices reminders name (``open``, ``partially_paid``) ``claimed_paid``;
- a dispute marks every unpaid one (``open``, ``partially_paid``, ``claimed_paid``) ``disputed``;
  both with source ``reply``;
- ``relance handled --paid`` marks the ``claimed_paid`` ones paid; ``--resume`` (not paid after
  all, or the dispute settled) reopens the ``claimed_paid`` and ``disputed`` ones, so that
  reminders name them again; both with source ``command``.

Each change is a named conditional transition: applied again (a redelivered message, the same
command twice) it finds nothing left to move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.domain.invoices import REMINDED, Invoice, InvoiceSource, covered_invoices
from shared.domain.models import InvoiceSelector
from shared.domain.repositories import Repositories
from shared.domain.states import InvoiceStatus

log = logging.getLogger(__name__)

_I = InvoiceStatus
DISPUTABLE = (_I.OPEN, _I.PARTIALLY_PAID, _I.CLAIMED_PAID)
REOPENED_ON_RESUME = (_I.CLAIMED_PAID, _I.DISPUTED)


def _move_all(store: Repositories, contact_id: str, statuses: tuple[InvoiceStatus, ...] | frozenset[InvoiceStatus],
              move: Callable[[str], bool], what: str) -> list[str]:
    moved = [invoice.reference for invoice in store.invoices.find(contact_id=contact_id, statuses=statuses)
             if move(invoice.reference)]
    if moved:
        log.debug("contact=%s: %d invoice(s) %s", contact_id, len(moved), what)
    return moved


def claim_paid(store: Repositories, contact_id: str, *, now: datetime) -> list[str]:
    """The client says they paid: their reminded invoices → ``claimed_paid`` (source reply); the references moved."""
    return _move_all(store, contact_id, REMINDED,
                     lambda ref: store.invoices.claim_paid(ref, source=InvoiceSource.REPLY, now=now), "claimed paid")


def dispute(store: Repositories, contact_id: str, *, now: datetime) -> list[str]:
    """The client contests what they owe: their unpaid invoices → ``disputed`` (source reply); the references moved."""
    return _move_all(store, contact_id, DISPUTABLE,
                     lambda ref: store.invoices.dispute(ref, source=InvoiceSource.REPLY, now=now), "disputed")


def confirm_claimed(store: Repositories, contact_id: str, *, now: datetime) -> list[str]:
    """A person confirms the claimed payment: the ``claimed_paid`` invoices → ``paid`` (source command)."""
    return _move_all(store, contact_id, (_I.CLAIMED_PAID,),
                     lambda ref: store.invoices.mark_paid(ref, source=InvoiceSource.COMMAND, now=now), "marked paid")


def reopen_claims(store: Repositories, contact_id: str, *, now: datetime) -> list[str]:
    """A person resumes the reminders: the ``claimed_paid`` and ``disputed`` invoices → ``open`` (source command)."""
    return _move_all(store, contact_id, REOPENED_ON_RESUME,
                     lambda ref: store.invoices.reopen(ref, source=InvoiceSource.COMMAND, now=now), "reopened")


def amount_due_invoices(store: Repositories, contact_id: str) -> list[Invoice]:
    """The invoices an answer about "the amount" names: those reminders cover (oldest due first)."""
    return covered_invoices(InvoiceSelector(), store.invoices.find(contact_id=contact_id, statuses=REMINDED))
