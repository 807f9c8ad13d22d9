"""A client enrolled in a campaign on the in-memory repositories, the offline drafter and a fake
Twilio: what the drafting, sending and reconciling use-case tests run on, without any server."""

from __future__ import annotations

from datetime import time, timedelta

from shared.adapters.memory import memory_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, FollowUp, Language, OutboundMessage, SendWindow, Step
from shared.domain.rules import Rules
from shared.fakes import FakeSender, RecordingQueue
from shared.language.drafts import OfflineDrafter
from shared.usecases.context import App

PHONE = "+33612345678"
FOLLOWUP_ID = "c1:ct1"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
FACTS = {"invoice_number": "FA-2026-001", "amount": "1250.50", "currency": "EUR", "due_date": "2026-02-15",
         "payment_link": "https://pay.example.com/i/1"}


def with_marie(clock: FakeClock, *, min_gap: timedelta = timedelta(0), wrote: timedelta = timedelta(hours=1)) -> App:
    """The in-memory repositories, the offline drafter and a fake Twilio, with Marie (``ct1``, French, her
    invoice's facts; she wrote ``wrote`` ago) and no campaign yet."""
    rules = Rules(business_name="Atelier Dupont", min_gap=min_gap, daily_cap_per_contact=0,
                  holidays_country=None)
    store = memory_repositories()
    app = App.build(rules, store=store, clock=clock, queue=RecordingQueue(), drafter=OfflineDrafter(),
                    sender=FakeSender(clock=clock))
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR, fields=FACTS), now)
    store.contacts.touch_inbound("ct1", now - wrote)
    return app


def world(clock: FakeClock, *, window: SendWindow = ALWAYS) -> App:
    """Marie (French, she wrote an hour ago: freeform), enrolled in a two-step campaign, her step 0 claimed."""
    app = with_marie(clock)
    store, now = app.store, clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=window,
                                    steps=[Step(delay="0s"), Step(delay="2d", anchor="previous")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    assert [ref.id for ref in store.followups.claim([FOLLOWUP_ID], now)] == [FOLLOWUP_ID]
    return app


def recording(app: App) -> RecordingQueue:
    queue = app.queue
    assert isinstance(queue, RecordingQueue)
    return queue


def fake_twilio(app: App) -> FakeSender:
    sender = app.sender
    assert isinstance(sender, FakeSender)
    return sender


def followup(app: App) -> FollowUp:
    found = app.store.followups.get(FOLLOWUP_ID)
    assert found is not None
    return found


def message(app: App, message_id: str) -> OutboundMessage:
    found = app.store.messages.get(message_id)
    assert found is not None, message_id
    return found
