"""A client, a campaign and a follow-up on the in-memory repositories, and a scripted classifier:
what the replies and hand-over use-case tests run on, without any server."""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from typing import Any

from shared.adapters.memory import memory_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, FollowUp, Language, OutboundMessage, SendWindow, Step
from shared.domain.reasons import ReplyResult
from shared.domain.rules import Rules
from shared.fakes import FakeSender, RecordingQueue
from shared.language.drafts import OfflineDrafter
from shared.ports import Classification, ClassifyRequest, Intent
from shared.usecases.context import App
from shared.usecases.replies import process_inbound

PHONE = "+33612345678"
OWNER = "+33700000001"
FOLLOWUP_ID = "c1:ct1"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
FACTS = {"invoice_number": "FA-2026-001", "amount": "1250.50", "currency": "EUR", "due_date": "2026-02-15",
         "payment_link": "https://pay.example.com/i/1"}


class ScriptedClassifier:
    """Reads every reply as the test says next (``other`` at 0 until told)."""

    source = "test"

    def __init__(self) -> None:
        self.next = Classification(intent=Intent.OTHER, confidence=0.0, source="test")
        self.calls = 0

    def classify(self, request: ClassifyRequest) -> Classification:
        self.calls += 1
        return self.next


def world(clock: FakeClock, **rules: Any) -> App:
    """Marie (French), enrolled in a three-step campaign, her follow-up scheduled; the owner's number set."""
    base = Rules(business_name="Atelier Dupont", owner_number=OWNER)
    store = memory_repositories()
    app = App.build(replace(base, **rules), store=store, clock=clock, queue=RecordingQueue(),
                    drafter=OfflineDrafter(), sender=FakeSender(clock=clock), classifier=ScriptedClassifier())
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR, fields=FACTS), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(delay="0s"), Step(delay="2d", anchor="previous"), Step(delay="2d", anchor="previous")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    return app


def reads(app: App, intent: Intent, confidence: float = 0.95, **fields: Any) -> None:
    """The classifier reads the next reply as ``intent``."""
    classifier = app.classifier
    assert isinstance(classifier, ScriptedClassifier)
    classifier.next = Classification(intent=intent, confidence=confidence, source="test", **fields)


def sid(n: int) -> str:
    """A client's MessageSid."""
    return f"SMfeed{n:028d}"


def reply(app: App, text: str, n: int = 1, *, phone: str = PHONE, **extra: Any) -> ReplyResult | None:
    """A message from ``phone``, stored as the webhook does and processed by the replies use case."""
    event = {"kind": "inbound", "sid": sid(n), "state": "received", "from": f"whatsapp:{phone}", "body": text,
             "num_media": 0, **extra}
    app.store.events.record(f"inbound:{sid(n)}", event, app.clock.now())
    return process_inbound(app, f"inbound:{sid(n)}")


def followup(app: App) -> FollowUp:
    found = app.store.followups.get(FOLLOWUP_ID)
    assert found is not None
    return found


def queued(app: App) -> list[str]:
    """The ids of the messages asked to be sent, in order."""
    queue = app.queue
    assert isinstance(queue, RecordingQueue)
    return [message_id for message_id, _ in queue.sends]


def message(app: App, message_id: str) -> OutboundMessage:
    found = app.store.messages.get(message_id)
    assert found is not None, message_id
    return found
