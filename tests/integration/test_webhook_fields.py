"""Every identifier Twilio posts is checked for its shape before anything is stored.

Twilio's signature runs over names and values concatenated without separators, so a captured
signed body can be re-cut into other fields under the same signature. On the real store and
real Redis: re-cut bodies, malformed or foreign identifiers are refused (400) and leave nothing
behind; the project's Twilio simulator sends what the checks accept.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from devtools import simulator
from services.webhook import EMPTY_TWIML, WebhookDeps, create_app
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.states import FAILED_STATUSES, MessageState
from shared.ports import OutboundRequest
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from shared.twilio_sender import TwilioSender
from tests.support.servers import serve_asgi, wait_until
from tests.support.webhook_forms import ACCOUNT_SID, CLIENT, FORM_TYPE, SENDER, inbound_form, sid, sign, status_form

pytestmark = pytest.mark.integration

TOKEN = "0123456789abcdef0123456789abcdef"
BASE = "https://relance.example.com"
INBOUND, STATUS = "/whatsapp/webhook", "/whatsapp/status"
OUR_SENDER = "whatsapp:+33700000001"  # a sender of our own, not the sandbox's default


@dataclass
class Hook:
    """The webhook on the real store and Redis, with TWILIO_ACCOUNT_SID and a sender configured."""

    client: TestClient
    store: MongoRepositories
    redis: redis.Redis

    def post(self, path: str, form: dict[str, str], *, query: str = "",
             signed_form: dict[str, str] | None = None) -> httpx.Response:
        """Post ``form`` signed as Twilio would have signed ``signed_form`` (default: the form itself)."""
        url = path + (f"?{query}" if query else "")
        signature = sign(BASE + url, form if signed_form is None else signed_form, TOKEN)
        return self.client.post(url, content=urlencode(form),
                                headers={"Content-Type": FORM_TYPE, "X-Twilio-Signature": signature})

    def assert_untouched(self) -> None:
        assert self.store.events.collection.count_documents({}) == 0  # no event, no pending note
        assert self.store.messages.collection.count_documents({}) == 0
        assert self.redis.dbsize() == 0  # nothing enqueued


def make_deps(store: MongoRepositories, queue: Any, clock: FakeClock, **changes: Any) -> WebhookDeps:
    deps = WebhookDeps(store=store, queue=queue, clock=clock, auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: True, account_sid=ACCOUNT_SID, sender=OUR_SENDER)
    return replace(deps, **changes)


@pytest.fixture
def hook(store: MongoRepositories, redis_url: str, clock: FakeClock) -> Iterator[Hook]:
    broker = make_broker(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        with TestClient(create_app(make_deps(store, DramatiqQueue(broker), clock))) as test_client:
            yield Hook(test_client, store, client)
    finally:
        broker.close()
        client.close()


def ours_inbound(seed: object, **extra: str) -> dict[str, str]:
    return inbound_form(sid(seed), To=OUR_SENDER, **extra)


def ours_status(seed: object, status: str = "delivered", **extra: str) -> dict[str, str]:
    return status_form(sid(seed), status, From=OUR_SENDER, **extra)


# --------------------------------------------------------------------------- re-cut bodies
def absorb_next(form: dict[str, str], name: str) -> dict[str, str]:
    """``form`` re-cut: the field after ``name`` (in signing order) moved into ``name``'s value.

    Twilio signs URL + name1 + value1 + name2 + value2 … over the sorted names: this form
    concatenates to the same string, so it carries the same valid signature.
    """
    names = sorted(form)
    following = names[names.index(name) + 1]
    recut = {k: v for k, v in form.items() if k != following}
    recut[name] = form[name] + following + form[following]
    return recut


RECUTS: dict[str, tuple[str, Callable[[], dict[str, str]], str]] = {
    # A new MessageSid: the old webhook stored a second copy of the message, processed again.
    "MessageSid swallows MessageType": (
        INBOUND, lambda: ours_inbound("recut 1"), "MessageSid"),
    "AccountSid swallows ApiVersion": (INBOUND, lambda: ours_inbound("recut 2"), "AccountSid"),
    "To swallows WaId": (INBOUND, lambda: ours_inbound("recut 3"), "To"),
    # A status that is none of Twilio's: a new status event for the same message.
    "MessageStatus swallows SmsSid": (STATUS, lambda: ours_status("recut 4"), "MessageStatus"),
    "ChannelPrefix swallows From": (STATUS, lambda: ours_status("recut 5"), "ChannelPrefix"),
}


@pytest.mark.parametrize("case", list(RECUTS))
def test_a_recut_signed_body_is_refused_and_stores_nothing(hook: Hook, case: str) -> None:
    path, make_form, name = RECUTS[case]
    original = make_form()
    recut = absorb_next(original, name)
    validator = RequestValidator(TOKEN)
    assert validator.compute_signature(BASE + path, recut) == validator.compute_signature(BASE + path, original)
    response = hook.post(path, recut, signed_form=original)
    assert response.status_code == 400, response.text
    hook.assert_untouched()
    assert hook.post(path, original).status_code == 200  # the body Twilio signed goes through


def test_a_recut_that_only_moves_text_is_a_duplicate_of_the_message_stored(hook: Hook) -> None:
    """What the shapes cannot refuse (free text cut at a capital letter) keeps its MessageSid."""
    original = ours_inbound("text recut", body="STOPCancel")
    recut = {**original, "Body": "STOP", "Cancel": ""}
    assert RequestValidator(TOKEN).compute_signature(BASE + INBOUND, recut) == \
        RequestValidator(TOKEN).compute_signature(BASE + INBOUND, original)
    assert hook.post(INBOUND, original).status_code == 200
    messages_enqueued = hook.redis.hlen("relance:replies.msgs")
    assert hook.post(INBOUND, recut, signed_form=original).status_code == 200
    assert hook.store.events.collection.count_documents({"kind": "inbound"}) == 1
    assert hook.store.events.collection.find_one({"_id": f"inbound:{original['MessageSid']}"})["body"] == "STOPCancel"  # type: ignore[index]
    assert hook.redis.hlen("relance:replies.msgs") == messages_enqueued


# --------------------------------------------------------------------------- each identifier
BAD_INBOUND: dict[str, tuple[dict[str, str], str]] = {
    "MessageSid too short": ({"MessageSid": "SM1"}, "MessageSid must be"),
    "MessageSid one hex short": ({"MessageSid": "SM" + "a" * 31}, "MessageSid must be"),
    "MessageSid of a call": ({"MessageSid": "CA" + "a" * 32}, "MessageSid must be"),
    "MessageSid not hex": ({"MessageSid": "SM" + "g" * 32}, "MessageSid must be"),
    "MessageSid with a newline": ({"MessageSid": "SM" + "a" * 32 + "\n"}, "MessageSid must be"),
    "SmsSid differs": ({"SmsSid": sid("other")}, "SmsSid differs from MessageSid"),
    "SmsMessageSid differs": ({"SmsMessageSid": sid("other")}, "SmsMessageSid differs from MessageSid"),
    "AccountSid malformed": ({"AccountSid": "AC123"}, "AccountSid must be"),
    "AccountSid of another account": ({"AccountSid": "AC" + "f" * 32}, "AccountSid is not ours"),
    "AccountSid missing": ({"AccountSid": ""}, "missing field(s): AccountSid"),
    "From without whatsapp:": ({"From": "+33612345678"}, "From must look like"),
    "From without +": ({"From": "whatsapp:33612345678"}, "From must look like"),
    "From with a leading 0": ({"From": "whatsapp:+0612345678"}, "From must look like"),
    "From with Arabic digits": ({"From": "whatsapp:+33٦١٢٣٤٥٦٧٨"}, "From must look like"),
    "From too long": ({"From": "whatsapp:+3361234567890123"}, "From must look like"),
    "To another number": ({"To": "whatsapp:+14155238886"}, "To is not our WhatsApp sender"),
    "To missing": ({"To": ""}, "missing field(s): To"),
    "MessagingServiceSid malformed": ({"MessagingServiceSid": "MG1"}, "MessagingServiceSid must be"),
    "OriginalRepliedMessageSid malformed": ({"OriginalRepliedMessageSid": "x"}, "OriginalRepliedMessageSid must be"),
}


@pytest.mark.parametrize("case", list(BAD_INBOUND))
def test_an_inbound_message_with_a_bad_identifier_is_400_and_stores_nothing(hook: Hook, case: str) -> None:
    changes, reason = BAD_INBOUND[case]
    form = {k: v for k, v in {**ours_inbound(case), **changes}.items() if v or k not in changes}
    if "MessageSid" in changes:  # Twilio repeats it in SmsSid and SmsMessageSid
        form["SmsSid"] = form["SmsMessageSid"] = changes["MessageSid"]
    response = hook.post(INBOUND, form)
    assert response.status_code == 400 and response.text.startswith(reason), response.text
    hook.assert_untouched()


BAD_STATUS: dict[str, tuple[dict[str, str], str, str]] = {
    "MessageStatus unknown": ({"MessageStatus": "deliveredx"}, "", "MessageStatus is not one of"),
    "From another sender": ({"From": "whatsapp:+14155238886"}, "", "From is not our WhatsApp sender"),
    "To malformed": ({"To": "whatsapp:+33 6 12 34 56 78"}, "", "To must look like"),
    "AccountSid of another account": ({"AccountSid": "AC" + "e" * 32}, "", "AccountSid is not ours"),
    "MessageSid malformed": ({"MessageSid": "SMx", "SmsSid": "SMx"}, "", "MessageSid must be"),
    "mid with a space": ({}, "mid=c1+ct%3A0", "mid is not one of our message ids"),
    "mid with a path": ({}, "mid=..%2F..%2Fx", "mid is not one of our message ids"),
    "mid empty": ({}, "mid=", "mid is not one of our message ids"),
    "mid too long": ({}, "mid=" + "a" * 65, "mid is not one of our message ids"),
    "mid with an empty part": ({}, "mid=c1%3A%3A0", "mid is not one of our message ids"),
}


@pytest.mark.parametrize("case", list(BAD_STATUS))
def test_a_status_callback_with_a_bad_identifier_is_400_and_stores_nothing(hook: Hook, case: str) -> None:
    changes, query, reason = BAD_STATUS[case]
    response = hook.post(STATUS, {**ours_status(case, "failed", ErrorCode="63016"), **changes}, query=query)
    assert response.status_code == 400 and response.text.startswith(reason), response.text
    hook.assert_untouched()


@pytest.mark.parametrize("status", ["queued", "sent", "delivered", "read", "failed", "undelivered", "READ"])
def test_twilio_statuses_and_our_message_ids_are_accepted(hook: Hook, status: str) -> None:
    for n, mid in enumerate(["c1:ct_0123456789abcdef:0", "c1:ct_0123456789abcdef:2:t", f"reply:{sid(1)}",
                             f"alert:{sid(2)}:t"]):
        response = hook.post(STATUS, ours_status(f"{status} {n}", status), query=urlencode({"mid": mid}))
        assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    # A failure is stored for the replies worker; another status only moves its message (none here).
    stored = 4 if status.lower() in FAILED_STATUSES else 0
    assert hook.store.events.collection.count_documents({"kind": "status"}) == stored


def test_without_a_configured_account_any_well_formed_account_is_accepted(store: MongoRepositories,
                                                                          clock: FakeClock) -> None:
    from shared.fakes import RecordingQueue

    deps = make_deps(store, RecordingQueue(), clock, account_sid="")
    form = ours_inbound("any account", AccountSid="AC" + "b" * 32, MessageSid=sid("any", "MM"))
    form["SmsSid"] = form["SmsMessageSid"] = form["MessageSid"]
    with TestClient(create_app(deps)) as client:
        ok = client.post(INBOUND, content=urlencode(form), headers={
            "Content-Type": FORM_TYPE, "X-Twilio-Signature": sign(BASE + INBOUND, form, TOKEN)})
    assert ok.status_code == 200
    assert store.events.get(f"inbound:{form['MessageSid']}") is not None


# --------------------------------------------------------------------------- the simulator conforms
def test_the_simulator_sends_what_the_webhook_accepts(store: MongoRepositories, redis_url: str,
                                                      clock: FakeClock) -> None:
    """Inbound messages stored, and every status callback of a send applied, signed by the simulator."""
    mid = "c1:ct_0123456789abcdef:0"
    contact = "ct_0123456789abcdef"
    store.messages.insert(OutboundMessage(id=mid, followup_id=f"c1:{contact}", contact_id=contact, campaign_id="c1",
                                          step=0, state=MessageState.READY, kind="freeform", body="Bonjour Marie",
                                          language=Language.FR), clock.now())
    store.messages.start_sending(mid, now=clock.now())  # its SID is never stored here: delivered adopts it
    broker = make_broker(redis_url)
    deps = make_deps(store, DramatiqQueue(broker), clock)
    try:
        with serve_asgi(create_app(deps)) as webhook_url:
            deps.public_base_url = webhook_url  # what the simulator signs: the URL it posts to
            sim_app = simulator.create_app(account_sid=ACCOUNT_SID, auth_token=TOKEN, webhook_base_url=webhook_url,
                                           whatsapp_number=OUR_SENDER, callback_delay=0.01, callback_attempts=1)
            with serve_asgi(sim_app) as sim_url:
                answer = httpx.post(f"{sim_url}/_sim/inbound", json={"from": CLIENT.removeprefix("whatsapp:"),
                                                                    "body": "Bonjour"}, timeout=10).json()
                assert answer["status_code"] == 200, answer
                sender = TwilioSender(account_sid=ACCOUNT_SID, auth_token=TOKEN, from_number=OUR_SENDER,
                                      api_base_url=sim_url)
                callback = f"{webhook_url}/whatsapp/status?{urlencode({'mid': mid})}"
                sent = sender.send(OutboundRequest(to=CLIENT.removeprefix("whatsapp:"), status_callback=callback,
                                                   body="Bonjour Marie"))
                wait_until(lambda: _callback_states(store, mid) == ["delivered", "read"], 20,
                           "the simulator's status callbacks")
                reply = httpx.post(f"{sim_url}/_sim/inbound", json={"from": CLIENT.removeprefix("whatsapp:"),
                                                                   "body": "Merci"}, timeout=10).json()
                assert reply["status_code"] == 200, reply  # To: the sender the client last heard from
    finally:
        broker.close()
    assert store.events.get(f"inbound:{answer['sid']}") is not None
    assert store.events.get(f"inbound:{reply['sid']}") is not None
    message = store.messages.get(mid)
    assert message is not None and (message.state, message.twilio_sid) == (MessageState.READ, sent.sid)


def _callback_states(store: MongoRepositories, message_id: str) -> list[str]:
    doc = store.messages.collection.find_one({"_id": message_id}) or {}
    return [entry["state"] for entry in doc.get("history", []) if entry.get("source") == "callback"]


def test_relance_simulator_posts_inbound_messages_to_our_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    """`relance simulator` gives the simulator TWILIO_WHATSAPP_NUMBER: its inbound To is our sender."""
    from services.cli import cmd_simulator

    started: dict[str, Any] = {}
    monkeypatch.setattr(simulator, "run", lambda **kwargs: started.update(kwargs))
    settings = load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TOKEN,
                              "TWILIO_WHATSAPP_NUMBER": OUR_SENDER}, env_file=None)
    args = argparse.Namespace(host="127.0.0.1", port=0, webhook_base_url="", callback_delay=0.05)
    assert cmd_simulator(settings, args) == 0
    app = simulator.create_app(**{k: v for k, v in started.items() if k not in ("host", "port")})
    assert app.state.simulator.whatsapp_number == OUR_SENDER
    assert started["whatsapp_number"] == OUR_SENDER
    assert SENDER != OUR_SENDER
