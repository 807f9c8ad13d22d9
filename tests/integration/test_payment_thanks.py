"""The thank-you after a payment: Stripe events signed by the SDK's own code, posted to the real
webhook app over the real MongoDB-compatible server, then the sending actor's run (FakeSender,
and once through the Twilio simulator over HTTP)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import stripe
from starlette.testclient import TestClient

from devtools.simulator import create_app as create_simulator
from services.webhook import WebhookDeps, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Contact, Language
from shared.domain.rules import Rules
from shared.domain.states import InvoiceStatus
from shared.fakes import FakeSender, RecordingQueue
from shared.twilio_sender import TwilioSender
from shared.usecases.context import App
from shared.usecases.payment_thanks import legacy_thank_you_id, thank_you_id
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "thanks0123456789abcd" * 2
PHONE = "+33612345678"
TEMPLATE_SID = "HX" + "cd" * 16
THANKS_FR = "Merci Marie, nous avons bien reçu votre paiement pour la facture FA-1.\nAtelier Dupont"
ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "thanks-test-token"
SENDER = "whatsapp:+14155238886"


class Payments:
    """The webhook app and an App over the same store and queue (what the sending worker runs)."""

    def __init__(self, store: MongoRepositories, clock: FakeClock, rules: Rules) -> None:
        self.store, self.clock, self.queue = store, clock, RecordingQueue()
        self.rules = rules
        self.app = App.build(rules, store=store, clock=clock, queue=self.queue, drafter=EchoDrafter(),
                             sender=FakeSender(clock=clock))

    def post(self, event_type: str, obj: dict[str, Any], event_id: str = "evt_1") -> int:
        payload = json.dumps({"id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
                              "livemode": False, "data": {"object": obj}})
        at = int(time.time())
        signature = stripe.WebhookSignature._compute_signature(f"{at}.{payload}", SECRET)
        deps = WebhookDeps(store=self.store, queue=self.queue, clock=self.clock, auth_token="0" * 32,
                           public_base_url="https://relance.example.com", redis_ping=lambda: True,
                           stripe_webhook_secret=SECRET, rules=self.rules)
        with TestClient(create_app(deps), base_url="http://testserver") as client:
            response = client.post("/payments/stripe", content=payload, headers={
                "Content-Type": "application/json",
                "Stripe-Signature": f"t={at},{stripe.WebhookSignature.EXPECTED_SCHEME}={signature}"})
        drain(self.app)  # the sending worker
        return response.status_code

    def sent(self) -> list[Any]:
        return list(self.app.sender.sent)  # type: ignore[attr-defined]


def checkout(reference: str = "FA-1", amount: int = 125050, intent: str = "pi_1") -> dict[str, Any]:
    return {"id": "cs_test_1", "object": "checkout.session", "payment_status": "paid", "amount_total": amount,
            "currency": "eur", "payment_intent": intent, "metadata": {"invoice": reference}}


def payment_intent(reference: str, amount: int, intent: str) -> dict[str, Any]:
    return {"id": intent, "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": "eur", "metadata": {"invoice": reference}}


RULES = Rules(business_name="Atelier Dupont")


@pytest.fixture
def payments(store: MongoRepositories, clock: FakeClock) -> Payments:
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR), now)
    for reference, amount in (("FA-1", 125050), ("FA-2", 30000)):
        assert store.invoices.add(Invoice(id=f"in_{reference}", reference=reference, contact_id="ct1",
                                          amount_cents=amount, amount_due_cents=amount),
                                  source=InvoiceSource.IMPORT, now=now)
    return Payments(store, clock, RULES)


def _inside_window(payments: Payments) -> None:
    payments.store.contacts.touch_inbound("ct1", payments.clock.now() - timedelta(hours=2))


def _thanks_id(at: datetime) -> str:
    """Marie's thank-you of the day ``at`` falls on in Paris (her timezone)."""
    return thank_you_id("ct1", at.astimezone(ZoneInfo("Europe/Paris")).date())


def _bodies(payments: Payments) -> list[str]:
    return [(m.body or "").replace("\u202f", " ").replace("\u00a0", " ") for m in payments.sent()]


def test_a_paid_invoice_thanks_the_client_once_inside_the_window(payments: Payments) -> None:
    _inside_window(payments)
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert _bodies(payments) == [THANKS_FR]
    (sent,) = payments.sent()
    assert sent.to == PHONE and sent.content_sid is None
    message = payments.store.messages.get(_thanks_id(payments.clock.now()))
    assert message is not None and (message.purpose, message.kind, message.state) == ("reply", "freeform", "sent")
    # Stripe replays the event, and reports the same payment by another event: one thank-you.
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert payments.post("payment_intent.succeeded", payment_intent("FA-1", 125050, "pi_1"), "evt_2") == 200
    assert len(payments.sent()) == 1


def test_the_thank_you_is_in_english_for_an_english_client(payments: Payments) -> None:
    payments.store.contacts.collection.update_one({"_id": "ct1"}, {"$set": {"language": "en"}})
    _inside_window(payments)
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert _bodies(payments) == ["Thank you Marie, we have received your payment for invoice FA-1.\nAtelier Dupont"]


def test_a_part_payment_sends_no_thank_you_the_payment_that_settles_it_does(payments: Payments) -> None:
    _inside_window(payments)
    assert payments.post("payment_intent.succeeded", payment_intent("FA-2", 10000, "pi_a"), "evt_a") == 200
    status = payments.store.invoices.get("FA-2")
    assert status is not None and status.status == InvoiceStatus.PARTIALLY_PAID
    assert payments.sent() == []
    assert payments.post("payment_intent.succeeded", payment_intent("FA-2", 20000, "pi_b"), "evt_b") == 200
    assert _bodies(payments) == [THANKS_FR.replace("FA-1", "FA-2")]


def test_outside_the_window_the_template_is_sent_when_set(store: MongoRepositories, clock: FakeClock,
                                                          payments: Payments) -> None:
    payments = Payments(store, clock, replace(RULES, thank_you_template_sid=TEMPLATE_SID))
    payments.store.contacts.touch_inbound("ct1", clock.now() - timedelta(hours=30))  # the window closed
    assert payments.post("checkout.session.completed", checkout()) == 200
    (sent,) = payments.sent()
    assert (sent.to, sent.content_sid, sent.content_variables, sent.body) == (
        PHONE, TEMPLATE_SID, {"1": "Marie", "2": "FA-1"}, None)
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert len(payments.sent()) == 1


def test_outside_the_window_without_a_template_nothing_is_sent(payments: Payments) -> None:
    assert payments.post("checkout.session.completed", checkout()) == 200  # never wrote: no window
    assert payments.sent() == [] and payments.queue.sends == []
    assert payments.store.messages.get(_thanks_id(payments.clock.now())) is None
    invoice = payments.store.invoices.get("FA-1")
    assert invoice is not None and invoice.status == InvoiceStatus.PAID  # the payment counts all the same


def test_no_thank_you_to_a_client_who_opted_out_nor_when_turned_off(store: MongoRepositories, clock: FakeClock,
                                                                    payments: Payments) -> None:
    _inside_window(payments)
    store.contacts.set_opt_out("ct1", True, clock.now())
    assert payments.post("checkout.session.completed", checkout()) == 200
    store.contacts.set_opt_out("ct1", False, clock.now())
    off = Payments(store, clock, replace(RULES, thank_you_on_paid=False))
    assert off.post("checkout.session.completed", checkout("FA-2", 30000, "pi_2"), "evt_2") == 200
    assert payments.sent() == [] and off.sent() == []


def test_no_thank_you_past_the_automated_replies_cap(store: MongoRepositories, clock: FakeClock,
                                                     payments: Payments) -> None:
    _inside_window(payments)
    capped = Payments(store, clock, replace(RULES, max_auto_replies_per_day=1))
    assert capped.post("checkout.session.completed", checkout()) == 200
    clock.advance(timedelta(hours=13))  # 00:00 in Paris: another day, within 24 h of the first
    assert capped.post("checkout.session.completed", checkout("FA-2", 30000, "pi_2"), "evt_2") == 200
    assert _bodies(capped) == [THANKS_FR]  # the second would be one too many in 24 h


def test_two_invoices_paid_at_once_are_thanked_once(payments: Payments) -> None:
    """Two Stripe events, one per invoice, a few seconds apart: one thank-you, never two."""
    _inside_window(payments)
    assert payments.post("payment_intent.succeeded", payment_intent("FA-1", 125050, "pi_1"), "evt_1") == 200
    payments.clock.advance(timedelta(seconds=5))
    assert payments.post("payment_intent.succeeded", payment_intent("FA-2", 30000, "pi_2"), "evt_2") == 200
    assert [invoice.status for invoice in payments.store.invoices.find(contact_id="ct1")] == [InvoiceStatus.PAID] * 2
    assert _bodies(payments) == [THANKS_FR]
    assert len(payments.store.messages.conversation("ct1")) == 1


def test_the_thank_you_names_what_was_paid_that_day_and_the_next_day_thanks_again(payments: Payments) -> None:
    # FA-1 paid while Marie had not written (no template): no thank-you then.
    assert payments.post("payment_intent.succeeded", payment_intent("FA-1", 125050, "pi_1"), "evt_1") == 200
    assert payments.sent() == []
    _inside_window(payments)  # she writes; then pays FA-2 the same day
    assert payments.post("payment_intent.succeeded", payment_intent("FA-2", 30000, "pi_2"), "evt_2") == 200
    assert _bodies(payments) == [
        "Merci Marie, nous avons bien reçu votre paiement pour les factures FA-1 et FA-2.\nAtelier Dupont"]
    # The next day, a new invoice paid: thanked again (another day's id).
    payments.clock.advance(timedelta(days=1))
    now = payments.clock.now()
    assert payments.store.invoices.add(Invoice(id="in_FA-3", reference="FA-3", contact_id="ct1", amount_cents=5000,
                                               amount_due_cents=5000), source=InvoiceSource.IMPORT, now=now)
    payments.store.contacts.touch_inbound("ct1", now - timedelta(hours=1))
    assert payments.post("payment_intent.succeeded", payment_intent("FA-3", 5000, "pi_3"), "evt_3") == 200
    assert _bodies(payments)[1:] == [THANKS_FR.replace("FA-1", "FA-3")]
    assert payments.store.messages.get(_thanks_id(now)) is not None


def test_a_retry_after_a_crash_before_the_event_was_stored_thanks_once(payments: Payments) -> None:
    """The invoice was marked paid, then the process stopped: Stripe's retry still thanks, once."""
    _inside_window(payments)
    assert payments.store.invoices.mark_paid("FA-1", source=InvoiceSource.PAYMENT, now=payments.clock.now(),
                                             ref="stripe:pi_1")
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert _bodies(payments) == [THANKS_FR]


def test_the_template_thank_you_reaches_the_twilio_simulator(store: MongoRepositories, clock: FakeClock) -> None:
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR), now)
    assert store.invoices.add(Invoice(id="in_FA-1", reference="FA-1", contact_id="ct1", amount_cents=125050,
                                      amount_due_cents=125050), source=InvoiceSource.IMPORT, now=now)
    payments = Payments(store, clock, replace(RULES, thank_you_template_sid=TEMPLATE_SID))
    simulator = create_simulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01,
                                 callback_attempts=1)
    with serve_asgi(simulator) as sim_url:
        payments.app.sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER,
                                           api_base_url=sim_url)
        assert payments.post("checkout.session.completed", checkout()) == 200
        assert payments.post("checkout.session.completed", checkout()) == 200  # replayed
        with httpx.Client(base_url=sim_url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5) as http:
            messages = http.get("/_sim/messages").json()
    assert [(m["to"], m["content_sid"], m["content_variables"]) for m in messages] == [
        (f"whatsapp:{PHONE}", TEMPLATE_SID, {"1": "Marie", "2": "FA-1"})]
    message = store.messages.get(_thanks_id(clock.now()))
    assert message is not None and message.state == "sent" and message.twilio_sid == messages[0]["sid"]



def test_a_payment_thanked_under_the_id_of_before_is_not_thanked_again_by_a_retry(payments: Payments) -> None:
    """Thanked before the upgrade (id thanks:<invoice>:stripe:<payment>), its run stopped before the event
    was stored; Stripe retries it after the upgrade: no second thank-you under the new id."""
    _inside_window(payments)
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert _bodies(payments) == [THANKS_FR]
    # What the version of before left: the thank-you under the payment's id, and the event not stored.
    messages = payments.store.messages.collection
    old = messages.find_one({"_id": _thanks_id(payments.clock.now())})
    assert old is not None
    messages.delete_one({"_id": old["_id"]})
    old_id = legacy_thank_you_id("FA-1", "stripe:pi_1")
    assert old_id == "thanks:FA-1:stripe:pi_1"
    messages.insert_one({**old, "_id": old_id})
    payments.store.events.collection.delete_many({})
    payments.clock.advance(timedelta(minutes=5))
    assert payments.post("checkout.session.completed", checkout()) == 200
    assert _bodies(payments) == [THANKS_FR]
    assert payments.store.messages.get(_thanks_id(payments.clock.now())) is None
