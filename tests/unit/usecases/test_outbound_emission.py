"""The use cases emit outbound webhook events (in memory): which ones, with what data, each once."""

from __future__ import annotations

from shared.clock import FakeClock
from shared.domain.events import status_event_doc
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Language, OutboundMessage
from shared.domain.states import MessageState
from shared.fakes import RecordingQueue
from shared.ports import Intent
from shared.usecases import outbound
from shared.usecases.context import App
from shared.usecases.delivery import process_status, record_sid
from shared.usecases.handover import close_hand_over
from tests.unit.usecases.replies_world import FOLLOWUP_ID, PHONE, reads, reply, sid, world

MID = f"{FOLLOWUP_ID}:0"
SID = "SM" + "d" * 32


def _emitted(app: App) -> list[tuple[str, dict[str, object]]]:
    """(event id, data) of each event an outbound actor was asked to deliver, in order."""
    queue = app.queue
    assert isinstance(queue, RecordingQueue)
    found = []
    for delivery_id, _ in queue.hooks:
        delivery = app.store.hooks.get_delivery(delivery_id)
        assert delivery is not None
        event = app.store.hooks.get_event(delivery.event_id)
        assert event is not None
        found.append((event.id, event.data))
    return found


def _subscribe(app: App, *events: str) -> None:
    outbound.add_subscription(app.store, "https://crm.example.com/relance", events, now=app.clock.now())


def test_a_paid_claim_emits_the_reply_with_its_intent_and_the_hand_over(clock: FakeClock) -> None:
    app = world(clock)
    _subscribe(app, "reply.received", "handover.needed")
    reads(app, Intent.PAID, confidence=0.9)
    reply(app, "c'est réglé")
    emitted = _emitted(app)
    assert [event_id for event_id, _ in emitted] == [f"reply.received:{sid(1)}", f"handover.needed:{sid(1)}"]
    received, handed = emitted[0][1], emitted[1][1]
    assert (received["intent"], received["confidence"], received["message_sid"]) == ("paid", 0.9, sid(1))
    assert received["contact"] == {"id": "ct1", "name": "Marie", "phone": PHONE}
    assert "c'est réglé" not in str(received)  # the reply's text is not sent
    assert handed["reason"] and handed["message_sid"] == sid(1)
    # A second message while the hand-over is open: its reply is emitted, no second hand-over.
    reads(app, Intent.OTHER, confidence=0.2)
    reply(app, "alors ?", 2)
    assert [event_id for event_id, _ in _emitted(app)][2:] == [f"reply.received:{sid(2)}"]


def test_a_failed_message_is_emitted_once_however_often_its_status_is_processed(clock: FakeClock) -> None:
    app = world(clock)
    _subscribe(app, "message.failed")
    message = OutboundMessage(id=MID, followup_id=FOLLOWUP_ID, contact_id="ct1", campaign_id="c1", step=0,
                              state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR)
    assert app.store.messages.insert(message, clock.now())
    assert app.store.messages.start_sending(MID, now=clock.now())
    assert record_sid(app.store, MID, SID, clock.now())
    event_id, event = status_event_doc(SID, "undelivered", 63024)
    assert app.store.events.record(event_id, event, clock.now())
    process_status(app, event_id)
    process_status(app, event_id)  # a redelivered actor message
    ((emitted_id, data),) = _emitted(app)
    assert emitted_id == f"message.failed:{event_id}"
    assert (data["message_id"], data["status"], data["error_code"]) == (MID, "undelivered", 63024)
    assert data["action"] and data["contact"] == {"id": "ct1", "name": "Marie", "phone": PHONE}


def test_nothing_is_stored_or_enqueued_without_a_subscription_to_the_event(clock: FakeClock) -> None:
    app = world(clock)
    _subscribe(app, "invoice.paid")
    reads(app, Intent.PAID)
    reply(app, "c'est réglé")
    assert _emitted(app) == []
    assert app.store.hooks.get_event(f"reply.received:{sid(1)}") is None
    assert app.store.hooks.get_event(f"handover.needed:{sid(1)}") is None


def test_a_person_confirming_a_claimed_payment_emits_the_invoice_paid(clock: FakeClock) -> None:
    app = world(clock)
    _subscribe(app, "invoice.paid")
    now = clock.now()
    assert app.store.invoices.add(Invoice(id="in_FA-9", reference="FA-9", contact_id="ct1", amount_cents=5000,
                                          amount_due_cents=5000), source=InvoiceSource.IMPORT, now=now)
    assert app.store.invoices.claim_paid("FA-9", source=InvoiceSource.REPLY, now=now)
    close_hand_over(app.store, PHONE, action="paid", now=now)
    close_hand_over(app.store, PHONE, action="paid", now=now)  # done twice: nothing more
    assert outbound.requeue_due(app.store, app.queue, now) == [
        "invoice.paid:FA-9:1>" + app.store.hooks.subscriptions()[0].id]
    ((_, data),) = _emitted(app)
    assert data["source"] == "command" and data["invoice"]["reference"] == "FA-9"  # type: ignore[index]
