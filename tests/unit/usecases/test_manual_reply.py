"""A person writes to a client by hand: the window, the template, the facts check, STOP, and one message
per request, sent by the sending use case like any other (in memory, the fake Twilio)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.states import MessageState
from shared.errors import NotFound
from shared.fakes import FakeSender
from shared.ports import OutboundRequest
from shared.usecases import audit
from shared.usecases.context import App
from shared.usecases.manual_reply import ManualReply, Refusal, ReplyRefused, reply_by_hand
from shared.usecases.sending import send_message
from tests.support.actors import drain
from tests.unit.usecases.replies_world import PHONE, reply, world

TEMPLATE = "HX" + "b" * 32


def _marie_wrote(app: App) -> None:
    """Marie wrote (her 24-hour window is open)."""
    app.store.contacts.touch_inbound("ct1", app.clock.now())


def _reply(app: App, body: str, *, key: str | None = None, by: str = "user:ana@example.com") -> ManualReply:
    return reply_by_hand(app.store, app.queue, app.rules, PHONE, body=body, by=by, now=app.clock.now(),
                         request_key=key)


def _sent(app: App) -> list[OutboundRequest]:
    sender = app.sender
    assert isinstance(sender, FakeSender)
    return sender.sent


def test_inside_the_window_the_text_goes_as_written_once_and_is_audited(clock: FakeClock) -> None:
    app = world(clock)
    _marie_wrote(app)
    done = _reply(app, "Bonjour Marie, je regarde votre dossier et je vous rappelle.", key="k1")
    again = _reply(app, "Bonjour Marie, je regarde votre dossier et je vous rappelle.", key="k1")
    assert (done.created, again.created, again.message_id) == (True, False, done.message_id)
    drain(app)
    (request,) = _sent(app)
    assert request.to == PHONE and request.body == "Bonjour Marie, je regarde votre dossier et je vous rappelle."
    stored = app.store.messages.get(done.message_id)
    assert stored is not None and (stored.purpose, stored.kind, stored.state, stored.written_by) == (
        "manual", "freeform", MessageState.SENT, "user:ana@example.com")
    (entry,) = audit.for_contact(app.store, "ct1")
    assert (entry.by, entry.action, entry.target) == ("user:ana@example.com", "reply.manual", done.message_id)
    assert "Bonjour" not in (entry.detail or "")


def test_the_same_text_without_a_key_is_one_message_until_the_client_writes_again(clock: FakeClock) -> None:
    app = world(clock)
    _marie_wrote(app)
    first = _reply(app, "Bien reçu, merci.")
    assert not _reply(app, "Bien reçu, merci.", by="user:bob@example.com").created
    clock.advance(timedelta(minutes=5))
    _marie_wrote(app)
    assert _reply(app, "Bien reçu, merci.").message_id != first.message_id


def test_outside_the_window_without_a_template_it_is_refused_naming_the_setting(clock: FakeClock) -> None:
    app = world(clock)
    with pytest.raises(ReplyRefused) as refused:
        _reply(app, "Bonjour Marie")
    assert refused.value.reason == Refusal.OUTSIDE_WINDOW and "MANUAL_REPLY_TEMPLATE_SID" in str(refused.value)
    assert app.store.messages.count() == 0 and audit.recent(app.store) == []


def test_outside_the_window_the_approved_template_carries_the_text(clock: FakeClock) -> None:
    app = world(clock)
    app.rules = replace(app.rules, manual_reply_template_sid=TEMPLATE)
    done = _reply(app, "Pouvez-vous\nme rappeler ?")
    drain(app)
    (request,) = _sent(app)
    assert (request.content_sid, request.content_variables, request.body) == (
        TEMPLATE, {"1": "Marie", "2": "Pouvez-vous; me rappeler ?"}, None)
    assert done.kind == "template"


def test_a_client_who_sent_stop_gets_nothing(clock: FakeClock) -> None:
    app = world(clock)
    reply(app, "STOP")
    with pytest.raises(ReplyRefused) as refused:
        _reply(app, "Bonjour Marie")
    assert refused.value.reason == Refusal.OPTED_OUT and "STOP" in str(refused.value)


def test_a_stop_between_the_reply_and_its_send_cancels_it(clock: FakeClock) -> None:
    app = world(clock)
    _marie_wrote(app)
    done = _reply(app, "Bonjour Marie")
    app.store.contacts.set_opt_out("ct1", True, clock.now())
    send_message(app, done.message_id)
    assert _sent(app) == []
    stored = app.store.messages.get(done.message_id)
    assert stored is not None and stored.state == MessageState.CANCELLED


@pytest.mark.parametrize(("text", "reason"), [
    ("Vous devez 990 € avant le 30/03/2026.", Refusal.FACTS),
    ("Nous vous accordons une remise de 10 % si vous payez cette semaine.", Refusal.FACTS),
    ("   ", Refusal.EMPTY),
    ("x" * 701, Refusal.TOO_LONG),
])
def test_the_facts_check_and_the_length_apply_as_to_any_draft(clock: FakeClock, text: str, reason: Refusal) -> None:
    app = world(clock)
    _marie_wrote(app)
    with pytest.raises(ReplyRefused) as refused:
        _reply(app, text)
    assert refused.value.reason == reason
    assert app.store.messages.count() == 0


def test_the_clients_own_facts_pass(clock: FakeClock) -> None:
    app = world(clock)
    _marie_wrote(app)
    assert _reply(app, "Votre facture FA-2026-001 de 1250,50 € : https://pay.example.com/i/1").created


def test_an_unknown_number_is_not_found(clock: FakeClock) -> None:
    app = world(clock)
    with pytest.raises(NotFound):
        reply_by_hand(app.store, app.queue, app.rules, "+33699999999", body="Bonjour", by="key:ci", now=clock.now())
