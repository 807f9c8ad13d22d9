"""The in-memory Twilio fake (shared.fakes.FakeSender) lists what Twilio would list.

The same checks run against the fake and against TwilioSender through the real SDK and the
simulator: unit tests that reconcile or backfill through the fake can only be trusted if its
filters (``to``, ``from_``, ``date_sent_after`` on the send time, a queued message having
none) behave as Twilio's do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devtools.simulator import create_app
from shared.clock import SystemClock
from shared.fakes import FakeSender
from shared.ports import OutboundRequest, Sender
from shared.twilio_sender import TwilioSender
from tests.support.servers import serve_asgi

ACCOUNT_SID = "AC" + "6" * 32
AUTH_TOKEN = "contract-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"
OTHER = "+33798765432"


@dataclass
class Twilio:
    """A Sender and the means to play Twilio's side: hold messages queued, receive a message."""

    sender: Sender
    hold: Callable[[], object]
    release: Callable[[], object]
    receive: Callable[[str, str], str]
    settle: Callable[[], None]  # wait until the messages not held are sent


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    app = create_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01, callback_attempts=1)
    with serve_asgi(app) as url:
        yield url


@contextlib.contextmanager
def _simulated(sim_url: str) -> Iterator[Twilio]:
    with httpx.Client(base_url=sim_url, timeout=5) as control:
        control.post("/_sim/reset").raise_for_status()

        def post(path: str, body: dict[str, str]) -> dict[str, Any]:
            answer = control.post(path, json=body)
            if path != "/_sim/inbound":  # 502 there: the webhook is unreachable, the message kept anyway
                answer.raise_for_status()
            return dict(answer.json())

        def settle() -> None:
            deadline = time.monotonic() + 5
            while any(m["status"] == "queued" and not m["held"] for m in control.get("/_sim/messages").json()):
                assert time.monotonic() < deadline
                time.sleep(0.02)

        yield Twilio(
            sender=TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER,
                                api_base_url=sim_url),
            hold=lambda: post("/_sim/hold", {}),
            release=lambda: post("/_sim/release", {}),
            # Nobody listens at that webhook: the message is kept by Twilio all the same.
            receive=lambda phone, body: str(post("/_sim/inbound", {"from": phone, "body": body,
                                                                   "webhook_url": "http://127.0.0.1:9/x"})["sid"]),
            settle=settle,
        )


def _fake() -> Twilio:
    fake = FakeSender(clock=SystemClock(), from_number=SENDER)

    def hold() -> None:
        fake.hold_queued = True

    def release() -> None:
        fake.hold_queued = False
        fake.release()

    return Twilio(sender=fake, hold=hold, release=release, receive=lambda phone, body: fake.add_inbound(phone, body),
                  settle=lambda: None)


@pytest.fixture(params=["fake", "simulator"])
def twilio(request: pytest.FixtureRequest, sim_url: str) -> Iterator[Twilio]:
    if request.param == "fake":
        yield _fake()
    else:
        with _simulated(sim_url) as simulated:
            yield simulated


def _send(twilio: Twilio, to: str = CLIENT, body: str = "Bonjour") -> str:
    return twilio.sender.send(OutboundRequest(to=to, status_callback="", body=body)).sid


def test_list_filters_on_recipient_and_sender(twilio: Twilio) -> None:
    first, second = _send(twilio), _send(twilio, body="Encore")
    _send(twilio, to=OTHER)
    twilio.settle()
    listed = twilio.sender.list_messages(to=CLIENT, from_=SENDER)
    assert [m["sid"] for m in listed] == [second, first]  # newest first
    assert [m["body"] for m in listed] == ["Encore", "Bonjour"]
    assert all(m["to"] == f"whatsapp:{CLIENT}" and m["from"] == SENDER for m in listed)
    assert [m["sid"] for m in twilio.sender.list_messages(to=f"whatsapp:{CLIENT}")] == [second, first]
    assert twilio.sender.list_messages(to=CLIENT, from_="+15550001111") == []
    assert len(twilio.sender.list_messages(to=CLIENT, limit=1)) == 1


def test_date_sent_after_compares_the_send_time_and_leaves_queued_messages_out(twilio: Twilio) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    sent = _send(twilio)
    twilio.settle()
    twilio.hold()
    queued = _send(twilio, body="En attente")
    assert [m["sid"] for m in twilio.sender.list_messages(to=CLIENT, date_sent_after=before)] == [sent]
    assert twilio.sender.list_messages(to=CLIENT, date_sent_after=datetime.now(UTC) + timedelta(minutes=1)) == []
    undated = twilio.sender.list_messages(to=CLIENT, from_=SENDER)
    assert [m["sid"] for m in undated] == [queued, sent]
    assert (undated[0]["status"], undated[0]["date_sent"]) == ("queued", None)
    twilio.release()
    twilio.settle()
    assert {m["sid"] for m in twilio.sender.list_messages(to=CLIENT, date_sent_after=before)} == {sent, queued}


def test_inbound_messages_are_listed_to_our_sender(twilio: Twilio) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    sid = twilio.receive(CLIENT, "STOP")
    _send(twilio)
    twilio.settle()
    (inbound,) = twilio.sender.list_messages(to=SENDER, date_sent_after=before)
    assert (inbound["sid"], inbound["direction"], inbound["from"], inbound["body"]) == (
        sid, "inbound", f"whatsapp:{CLIENT}", "STOP")
    assert inbound["date_sent"] is not None and inbound["num_media"] == 0
    assert twilio.sender.list_messages(to=SENDER, from_=OTHER) == []
    assert [m["direction"] for m in twilio.sender.list_messages(to=CLIENT)] == ["outbound-api"]


def test_a_template_is_listed_with_its_values_in_the_body(twilio: Twilio) -> None:
    request = OutboundRequest(to=CLIENT, status_callback="", body="aperçu", content_sid="HX" + "a" * 32,
                              content_variables={"2": "FA-1", "1": "Marie"})
    sid = twilio.sender.send(request).sid
    (listed,) = twilio.sender.list_messages(to=CLIENT)
    assert listed["sid"] == sid and listed["body"] == "Marie\nFA-1"
