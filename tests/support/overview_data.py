"""A book to check the console's overview by hand, written through the repositories (MongoDB or in memory).

Campaign ``relance`` starts at T0 (2026-03-02 10:00 UTC) with five clients; ``vide`` has none.

| client | step messages | replies | invoice |
| --- | --- | --- | --- |
| ct1 | step 0 read (sent T0), step 1 sent T0+2d | two | FA-1 100.00 EUR, paid T0+1d (follow-up stopped: paid) |
| ct2 | step 0 delivered (sent T0) | one | FA-2 250.00 EUR, 50.00 paid T0+2d |
| ct3 | step 0 sent T0+1d | | FA-3 80.00 USD, open |
| ct4 | step 0 drafted, never sent | | FA-4 30.00 EUR, paid T0-1d (before the campaign) |
| ct5 | step 0 failed before Twilio took it | | |

Funnel: enrolled 5, sent 3, delivered 2, read 1, replied 2, paid 1. Due: 200.00 EUR and 80.00 USD.
Collected since the start: 150.00 EUR (100 + 50; FA-4's 30 was before). Sent per day: T0 2,
T0+1d 1, T0+2d 1. Payments per day: T0+1d 1, T0+2d 1 (FA-4's is on T0-1d).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, Step
from shared.domain.reasons import StopReason
from shared.domain.records import InboundRecord
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _message(client: str, step: int) -> OutboundMessage:
    return OutboundMessage(id=f"relance:{client}:{step}", followup_id=f"relance:{client}", contact_id=client,
                           campaign_id="relance", step=step, state=MessageState.READY, kind="freeform",
                           body="Bonjour", language=Language.FR)


def _send(store: Repositories, client: str, step: int, at: datetime, *statuses: str) -> None:
    message = _message(client, step)
    assert store.messages.insert(message, at)
    assert store.messages.start_sending(message.id, now=at)
    assert store.messages.mark_sent(message.id, sid=f"SM{client}{step}", now=at)
    for status in statuses:
        assert store.messages.apply_status(f"SM{client}{step}", status, None, at + timedelta(minutes=5))


def _invoice(store: Repositories, reference: str, client: str, cents: int, currency: str, at: datetime) -> None:
    assert store.invoices.add(Invoice(id=f"in_{reference}", reference=reference, contact_id=client, amount_cents=cents,
                                      amount_due_cents=cents, currency=currency, due_date=date(2026, 2, 1)),
                              source=InvoiceSource.IMPORT, now=at)


def plant_book(store: Repositories) -> None:
    """The book of this module's docstring."""
    for n in range(1, 6):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234560{n}", name=f"Client {n}"), T0 - 2 * DAY)
    _invoice(store, "FA-4", "ct4", 3000, "EUR", T0 - 2 * DAY)
    assert store.invoices.mark_paid("FA-4", source=InvoiceSource.COMMAND, now=T0 - DAY)
    assert store.campaigns.create(Campaign(id="relance", name="Relances mars", steps=[Step(), Step()]), T0)
    assert store.campaigns.create(Campaign(id="vide", name="Vide", steps=[Step()]), T0)
    for n in range(1, 6):
        assert store.followups.enrol(contact_id=f"ct{n}", campaign_id="relance", next_run_at=T0, now=T0)
    _invoice(store, "FA-1", "ct1", 10000, "EUR", T0)
    _invoice(store, "FA-2", "ct2", 25000, "EUR", T0)
    _invoice(store, "FA-3", "ct3", 8000, "USD", T0)
    _send(store, "ct1", 0, T0, "delivered", "read")
    _send(store, "ct2", 0, T0, "delivered")
    _send(store, "ct3", 0, T0 + DAY)
    _send(store, "ct1", 1, T0 + 2 * DAY)
    assert store.messages.insert(_message("ct4", 0), T0)
    failed = _message("ct5", 0)
    assert store.messages.insert(failed, T0)
    assert store.messages.start_sending(failed.id, now=T0)
    assert store.messages.mark_failed(failed.id, error_code=63024, now=T0)
    for sid, client in (("SMin1", "ct1"), ("SMin2", "ct1"), ("SMin3", "ct2")):
        assert store.messages.insert_inbound(InboundRecord(id=f"in:{sid}", twilio_sid=sid, contact_id=client,
                                                           followup_ids=[f"relance:{client}"], body="ok"), T0 + DAY)
    assert store.messages.insert_inbound(InboundRecord(id="in:SMin4", twilio_sid="SMin4", contact_id=None,
                                                       unknown_sender=True, body="qui ?"), T0 + DAY)
    assert store.invoices.mark_paid("FA-1", source=InvoiceSource.COMMAND, now=T0 + DAY)
    assert store.followups.stop("relance:ct1", reason=StopReason.PAID, now=T0 + DAY)
    assert store.invoices.mark_paid("FA-2", source=InvoiceSource.COMMAND, now=T0 + 2 * DAY, amount_cents=5000)
