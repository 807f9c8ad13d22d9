"""Owner alerts: the owner's 24-hour window, the alert template, and 63016 refusals, on the real stores."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest

from services.webhook_events import status_event
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step, TemplateRef
from shared.errors import SendRejected
from shared.fakes import FakeSender, RecordingQueue
from shared.ports import Classification, ClassifyRequest, Intent, OutboundRequest
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.delivery import process_status, resend_alert_with_template
from shared.usecases.replies import process_inbound
from shared.usecases.scheduling import tick
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start="00:00", end="23:59")  # type: ignore[arg-type]
STEP_TEMPLATE = TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"})
ALERT_TEMPLATE = "HX" + "cd" * 16
PHONE = "+33612345678"
OWNER = "+33700000001"
ALERT_ID = "alert:SM" + "9" * 32


class DisputeClassifier:
    """Reads every reply as a dispute, so that each one is handed to the owner."""

    def classify(self, request: ClassifyRequest) -> Classification:
        return Classification(intent=Intent.DISPUTE, confidence=0.95, source="test")


def _settings(deps: App, *, template: bool) -> None:
    env = {"PUBLIC_BASE_URL": "https://relance.example.com", "BUSINESS_NAME": "Atelier Dupont",
           "OWNER_WHATSAPP_NUMBER": OWNER}
    if template:
        env["OWNER_ALERT_TEMPLATE_SID"] = ALERT_TEMPLATE
    deps.rules = load_settings(env).rules()


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    deps = App.build(load_settings({}).rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender(), classifier=DisputeClassifier())
    _settings(deps, template=False)
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie Curie", language=Language.FR,
                                 fields={"invoice_number": "FA-2026-001"}), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(delay="0s", template=STEP_TEMPLATE), Step(delay="2d", anchor="previous", template=STEP_TEMPLATE)]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    tick(store, deps.queue, clock)
    drain(deps)
    assert len(_sent(deps)) == 1  # the first step, as a template
    return deps


def _sent(deps: App) -> list[OutboundRequest]:
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    return sender.sent


def _inbound(deps: App, sender: str, sid: str, text: str = "...") -> str | None:
    event = {"kind": "inbound", "sid": sid, "state": "received", "from": f"whatsapp:{sender}", "body": text,
             "num_media": 0}
    deps.store.events.record(f"inbound:{sid}", event, deps.clock.now())
    result = process_inbound(deps, f"inbound:{sid}")
    outcome = None if result is None else str(result)
    drain(deps)
    return outcome


def _dispute(deps: App) -> str | None:
    """The client disputes the invoice: the conversation is handed to the owner (alert ALERT_ID)."""
    return _inbound(deps, PHONE, "SM" + "9" * 32, "je conteste cette facture")


def _owner_writes(deps: App, sid: str = "SM" + "0" * 32) -> str | None:
    return _inbound(deps, OWNER, sid, "ok")


def _to_owner(deps: App) -> list[OutboundRequest]:
    return [r for r in _sent(deps) if r.to == OWNER]


def _state(deps: App, message_id: str) -> str | None:
    doc = deps.store.messages.collection.find_one({"_id": message_id})
    return None if doc is None else str(doc["state"])


def _fail_next_send_with_63016(deps: App) -> None:
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    sender.fail_with = SendRejected(63016, "outside the allowed window", 400)


def _failed_callback(deps: App, message_id: str, code: int = 63016, status: str = "failed") -> str | None:
    """Twilio accepted the message, then reports it failed (as the webhook stores it)."""
    sid = deps.store.messages.collection.find_one({"_id": message_id})["twilio_sid"]  # type: ignore[index]
    event_id, event = status_event({"MessageSid": sid, "MessageStatus": status, "ErrorCode": str(code)})
    assert deps.store.events.record(event_id, event, deps.clock.now())
    deps.store.messages.apply_status(sid, status, code, deps.clock.now())
    outcome = process_status(deps, event_id)
    assert process_status(deps, event_id) is None  # acted on once only
    drain(deps)
    return outcome


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "OWNER_ALERT_TEMPLATE_SID" in r.getMessage()]


# ------------------------------------------------------------------ the owner's window
def test_an_inbound_from_the_owner_opens_their_window_and_is_not_flagged(deps: App, clock: FakeClock) -> None:
    assert deps.store.owner.last_inbound(OWNER) is None
    written_at = clock.now()
    assert _owner_writes(deps) == "owner"
    doc = deps.store.messages.collection.find_one({"_id": "in:SM" + "0" * 32})
    assert doc is not None and doc["unknown_sender"] is False and doc["from_owner"] is True
    assert doc["outcome"] == "owner"
    assert deps.store.owner.last_inbound(OWNER) == written_at
    assert _sent(deps)[1:] == []  # nothing is sent back to the owner

    clock.advance(timedelta(hours=3))
    later = clock.now()
    assert _owner_writes(deps, "SM" + "1" * 32) == "owner"
    assert deps.store.owner.last_inbound(OWNER) == later
    # An older message processed late never moves the window back.
    deps.store.owner.touch_inbound(OWNER, later - timedelta(hours=2))
    assert deps.store.owner.last_inbound(OWNER) == later
    # Another unknown number is still flagged.
    assert _inbound(deps, "+33799999999", "SM" + "2" * 32) == "unknown_sender"


def test_an_owner_who_is_also_a_contact_keeps_the_contact_behaviour(deps: App, clock: FakeClock) -> None:
    deps.store.contacts.upsert(Contact(id="ct-owner", phone=OWNER, name="Paul", language=Language.FR), clock.now())
    assert _owner_writes(deps) == "recorded (no open follow-up)"
    doc = deps.store.messages.collection.find_one({"_id": "in:SM" + "0" * 32})
    assert doc is not None and doc["contact_id"] == "ct-owner" and doc["unknown_sender"] is False
    contact = deps.store.contacts.get("ct-owner")
    assert contact is not None and contact.last_inbound_at == clock.now()
    assert deps.store.owner.last_inbound(OWNER) == clock.now()


# ------------------------------------------------------------------ which kind of alert
def test_inside_the_owner_window_the_alert_is_freeform(deps: App, clock: FakeClock) -> None:
    _settings(deps, template=True)  # even with a template: freeform while the owner's window is open
    _owner_writes(deps)
    clock.advance(timedelta(hours=23))
    assert _dispute(deps) == "needs_human: dispute"
    (alert,) = _to_owner(deps)
    assert alert.content_sid is None and alert.content_variables is None
    assert alert.body is not None and "Marie Curie" in alert.body and PHONE in alert.body
    assert "(contestation de la facture)" in alert.body and "dispute" not in alert.body  # all in French
    # What to look at, and how to close the hand-over once dealt with.
    assert f"relance conversation {PHONE}" in alert.body and f"relance handled {PHONE}" in alert.body
    assert _state(deps, ALERT_ID) == "sent"


def test_outside_the_owner_window_the_template_is_used(deps: App, clock: FakeClock) -> None:
    _settings(deps, template=True)
    _owner_writes(deps)
    clock.advance(timedelta(hours=24, seconds=1))  # the owner's window has just closed
    assert _dispute(deps) == "needs_human: dispute"
    (alert,) = _to_owner(deps)
    assert alert.body is None and alert.content_sid == ALERT_TEMPLATE
    assert alert.content_variables == {"1": "Marie Curie", "2": "contestation de la facture", "3": PHONE}
    doc = deps.store.messages.collection.find_one({"_id": ALERT_ID})
    assert doc is not None and doc["kind"] == "template" and doc["state"] == "sent"


def test_the_owner_never_wrote_and_a_template_is_set(deps: App) -> None:
    _settings(deps, template=True)
    _dispute(deps)
    (alert,) = _to_owner(deps)
    assert alert.content_sid == ALERT_TEMPLATE and alert.content_variables is not None


# ------------------------------------------------------------------ 63016 without a template
def test_outside_without_template_freeform_is_tried_and_63016_warns(deps: App, clock: FakeClock,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    _fail_next_send_with_63016(deps)
    with caplog.at_level(logging.INFO):
        assert _dispute(deps) == "needs_human: dispute"
    assert _to_owner(deps) == []  # freeform was tried; Twilio refused it
    doc = deps.store.messages.collection.find_one({"_id": ALERT_ID})
    assert doc is not None and doc["kind"] == "freeform" and doc["state"] == "failed" and doc["error_code"] == 63016
    (warning,) = _warnings(caplog)
    assert "TWILIO_WHATSAPP_NUMBER" in warning and "once a day" in warning
    assert OWNER not in caplog.text and PHONE not in caplog.text  # numbers are masked
    assert deps.store.messages.collection.find_one({"_id": ALERT_ID + ":t"}) is None
    # Nothing else broke: the hand-over happened, and the next conversation goes on.
    followup = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert followup is not None and followup["state"] == "stopped" and followup["needs_human"] is True
    assert _owner_writes(deps) == "owner"
    assert deps.queue.sends == []  # type: ignore[attr-defined]


def test_63016_in_a_failed_callback_without_template_warns_once(deps: App,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    _dispute(deps)
    assert len(_to_owner(deps)) == 1  # Twilio accepted the freeform alert…
    with caplog.at_level(logging.INFO):
        assert _failed_callback(deps, ALERT_ID) == "owner_window_closed"  # …then failed it
    assert len(_warnings(caplog)) == 1
    assert _state(deps, ALERT_ID) == "failed"
    assert len(_to_owner(deps)) == 1 and deps.store.messages.collection.find_one({"_id": ALERT_ID + ":t"}) is None


# ------------------------------------------------------------------ 63016 with a template
def test_63016_at_send_time_resends_the_alert_once_as_the_template(deps: App, clock: FakeClock,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    _settings(deps, template=True)
    _owner_writes(deps)  # we believe the owner's window is open: freeform…
    clock.advance(timedelta(hours=1))
    _fail_next_send_with_63016(deps)  # …but Twilio says it is closed
    with caplog.at_level(logging.INFO):
        _dispute(deps)
    (alert,) = _to_owner(deps)
    assert alert.body is None and alert.content_sid == ALERT_TEMPLATE
    assert alert.content_variables == {"1": "Marie Curie", "2": "contestation de la facture", "3": PHONE}
    assert _state(deps, ALERT_ID) == "failed" and _state(deps, ALERT_ID + ":t") == "sent"
    assert _warnings(caplog) == []
    # The re-send has a fixed id: asking again sends nothing more.
    failed = deps.store.messages.get(ALERT_ID)
    assert failed is not None
    assert resend_alert_with_template(deps, failed) == ALERT_ID + ":t"
    drain(deps)
    assert len(_to_owner(deps)) == 1


def test_63016_in_a_failed_callback_resends_the_alert_once_as_the_template(deps: App, clock: FakeClock) -> None:
    _settings(deps, template=True)
    _owner_writes(deps)
    clock.advance(timedelta(hours=2))
    _dispute(deps)
    (freeform,) = _to_owner(deps)
    assert freeform.content_sid is None and freeform.body is not None
    assert _failed_callback(deps, ALERT_ID) == "template_resend"
    # A second failure callback for the same SID: the re-send exists already, nothing more goes out.
    assert _failed_callback(deps, ALERT_ID, status="undelivered") == "template_resend"
    first, template = _to_owner(deps)
    assert first is freeform and template.content_sid == ALERT_TEMPLATE and template.body is None
    assert _state(deps, ALERT_ID) == "failed" and _state(deps, ALERT_ID + ":t") == "sent"
    # The template re-send refused in its turn is recorded, never re-sent again.
    assert _failed_callback(deps, ALERT_ID + ":t", code=63016) == "owner_window_closed"
    assert _failed_callback(deps, ALERT_ID + ":t", code=63112, status="undelivered") == "recorded"
    assert len(_to_owner(deps)) == 2


def test_the_same_hand_over_alerts_the_owner_once(deps: App) -> None:
    _settings(deps, template=True)
    _dispute(deps)
    assert process_inbound(deps, "inbound:SM" + "9" * 32) is None  # the event redelivered
    drain(deps)
    assert len(_to_owner(deps)) == 1


# ------------------------------------------------------------------ one alert per hand-over
class ScriptedClassifier:
    """Reads each reply as the test says next."""

    def __init__(self) -> None:
        self.next = Classification(intent=Intent.DISPUTE, confidence=0.95, source="test")

    def classify(self, request: ClassifyRequest) -> Classification:
        return self.next


def _reads(deps: App, intent: Intent, **extra: object) -> None:
    classifier = deps.classifier
    assert isinstance(classifier, ScriptedClassifier)
    classifier.next = Classification(intent=intent, confidence=0.95, source="test", **extra)  # type: ignore[arg-type]


def _to_client(deps: App) -> list[OutboundRequest]:
    return [r for r in _sent(deps) if r.to == PHONE]


def test_a_flagged_clients_further_messages_are_recorded_without_a_new_alert(deps: App, clock: FakeClock) -> None:
    deps.classifier = ScriptedClassifier()
    _reads(deps, Intent.OTHER)
    assert _inbound(deps, PHONE, "SM" + "9" * 32, "???") == "needs_human: unclear reply"
    assert len(_to_owner(deps)) == 1
    fields = ("state", "pause_reason", "paused_until", "needs_human", "needs_human_reason", "hand_over_sid")
    before = deps.store.followups.collection.find_one({"_id": "c1:ct1"}, {k: 1 for k in fields})
    assert before is not None and before["hand_over_sid"] == "SM" + "9" * 32
    for n, (intent, text) in enumerate([(Intent.OTHER, "Allô ? Vous êtes là ?"),
                                        (Intent.QUESTION, "C'est quoi la référence ?"),
                                        (Intent.PAID, "bon, c'est payé"),
                                        (Intent.PROMISE_TO_PAY, "je paie demain"),
                                        (Intent.DISPUTE, "de toute façon je conteste")], start=1):
        clock.advance(timedelta(minutes=5))
        _reads(deps, intent, question_topic="invoice_number" if intent == Intent.QUESTION else None,
               promised_date=date(2026, 3, 3) if intent == Intent.PROMISE_TO_PAY else None)
        assert _inbound(deps, PHONE, f"SMfeed{n:028d}", text) == "recorded (hand-over open)"
        inbound = deps.store.messages.collection.find_one({"_id": f"in:SMfeed{n:028d}"})
        assert inbound is not None and inbound["classification"]["intent"] == intent.value  # read, for the record
    assert len(_to_owner(deps)) == 1 and _to_client(deps)[1:] == []  # no new alert, no automated reply
    # Nothing moved.
    assert deps.store.followups.collection.find_one({"_id": "c1:ct1"}, {k: 1 for k in fields}) == before
    # STOP is still honoured.
    assert _inbound(deps, PHONE, "SMfeed" + "6" * 28, "STOP") == "opt_out stopped=1"
    contact = deps.store.contacts.get("ct1")
    assert contact is not None and contact.opted_out
    assert len(_to_owner(deps)) == 1


def test_after_relance_handled_a_new_hand_over_alerts_the_owner_again(deps: App, clock: FakeClock) -> None:
    from shared.usecases.handover import close_hand_over

    deps.classifier = ScriptedClassifier()
    _reads(deps, Intent.OTHER)
    first, second, third = ("SMfeed" + str(n) * 28 for n in (1, 2, 3))
    assert _inbound(deps, PHONE, first, "???") == "needs_human: unclear reply"
    assert _inbound(deps, PHONE, second, "???") == "recorded (hand-over open)"
    assert [m["_id"] for m in deps.store.messages.collection.find({"purpose": "alert"})] == [f"alert:{first}"]
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and (doc["state"], doc["hand_over_sid"]) == ("paused", first)

    close_hand_over(deps.store, PHONE, action="resume", now=clock.now())
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and doc["state"] == "scheduled" and "hand_over_sid" not in doc
    clock.advance(timedelta(minutes=5))
    _reads(deps, Intent.DISPUTE)
    assert _inbound(deps, PHONE, third, "je conteste") == "needs_human: dispute"
    assert [m["_id"] for m in deps.store.messages.collection.find({"purpose": "alert"}).sort("created_at", 1)] == [
        f"alert:{first}", f"alert:{third}"]
    assert len(_to_owner(deps)) == 2


def test_an_opt_out_in_words_is_honoured_while_a_hand_over_is_open(deps: App, clock: FakeClock) -> None:
    deps.classifier = ScriptedClassifier()
    _reads(deps, Intent.OTHER)
    assert _inbound(deps, PHONE, "SMfeed" + "1" * 28, "???") == "needs_human: unclear reply"
    _reads(deps, Intent.OPT_OUT)
    assert _inbound(deps, PHONE, "SMfeed" + "2" * 28, "laissez-moi tranquille") == "opt_out stopped=1 (hand-over open)"
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and (doc["state"], doc["stop_reason"], doc["needs_human"]) == ("stopped", "opt_out", True)
    assert len(_to_owner(deps)) == 1


def test_the_same_message_redelivered_mid_hand_over_still_alerts_once(deps: App, clock: FakeClock) -> None:
    """A crash after the flag but before the alert: the redelivered message is the hand-over's own."""
    deps.classifier = ScriptedClassifier()
    _dispute(deps)
    deps.store.messages.collection.delete_one({"_id": ALERT_ID})  # as if the worker died before storing the alert
    deps.store.events.collection.update_one({"_id": "inbound:SM" + "9" * 32}, {"$set": {"state": "received"}})
    assert str(process_inbound(deps, "inbound:SM" + "9" * 32)) == "needs_human: dispute"
    drain(deps)
    assert _state(deps, ALERT_ID) == "sent"
