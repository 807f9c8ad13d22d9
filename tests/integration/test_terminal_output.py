"""A client cannot drive the operator's terminal: control characters in names and messages are escaped.

The client's texts go the real way (a stored webhook event, the real ``process_inbound``), and the
operator reads them through the real ``relance`` entry point on the real MongoDB-compatible server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from services.terminal import printable
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step, TemplateRef
from shared.fakes import FakeSender, RecordingQueue
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.replies import process_inbound
from tests.support.cli import Relance, relance_runner
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration

PHONE = "+33612345678"
STRANGER = "+33799999999"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start="00:00", end="23:59")  # type: ignore[arg-type]
# Clear the screen and paint red; a fake prompt after a carriage return; a window title (OSC … BEL);
# the 8-bit CSI; a right-to-left override that reverses what follows it.
NAME = "\x1b[2J\x1b[31mMarie\x1b[0m"
BODY = "Bonjour\r$ relance handled --stop \x1b]0;pwned\x07 \x9b2J fin \u202eeuqirtceleé 👍"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J", "\\x1b[2J"),
    ("a\rb\nc\td", "a\\rb\\nc\\td"),
    ("\x00\x07\x7f\x85\x9b", "\\x00\\x07\\x7f\\x85\\x9b"),
    ("\u202eabc\u202c \u2066x\u2069 \u200f\u061c", "\\u202eabc\\u202c \\u2066x\\u2069 \\u200f\\u061c"),
    ("Léa Müller 👍 👨\u200d👩\u200d👧 « ok » — 1 250,50 €", "Léa Müller 👍 👨\u200d👩\u200d👧 « ok » — 1 250,50 €"),
])
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "BUSINESS_NAME": "Atelier Dupont"})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender(), classifier=None)
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name=NAME, language=Language.FR,
                                 fields={"invoice_number": "FA-1\x1b[8m"}), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(delay="0s", template=TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"}))]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now + timedelta(days=1), now=now)
    return deps


@pytest.fixture
def relance(mongo_uri: str, db_name: str, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> Relance:
    """``relance`` with its log lines kept (what reaches the terminal, all of it)."""
    return relance_runner(mongo_uri, db_name, capsys, monkeypatch, keep_logs=True)


def _inbound(deps: App, phone: str, body: str, n: int) -> None:
    sid = "SM" + f"{n:032d}"
    event = {"kind": "inbound", "sid": sid, "state": "received", "from": f"whatsapp:{phone}", "body": body,
             "num_media": 0}
    deps.store.events.record(f"inbound:{sid}", event, deps.clock.now())
    process_inbound(deps, f"inbound:{sid}")


def test_names_and_messages_are_shown_escaped(deps: App, clock: FakeClock,
                                              relance: Callable[..., tuple[int, str, str]]) -> None:
    clock.advance(timedelta(minutes=5))
    _inbound(deps, PHONE, BODY, 1)
    _inbound(deps, STRANGER, "\x1b[1A\x1b[2K" + BODY, 2)  # an unknown number: listed too

    code, listed, _ = relance("conversations")
    assert code == 0
    assert f"{PHONE}  \\x1b[2J\\x1b[31mMarie\\x1b[0m  [c1: " in listed
    assert f"{STRANGER}  unknown number  [1 message]" in listed

    code, shown, _ = relance("conversation", PHONE)
    assert code == 0
    assert shown.startswith(f"\\x1b[2J\\x1b[31mMarie\\x1b[0m {PHONE} (fr, Europe/Paris)\n")
    assert "  invoice_number: FA-1\\x1b[8m\n" in shown
    # The whole body on one line (line breaks and carriage returns are spaces there), every other
    # control visible; accents and emoji as they are.
    assert ("← received: Bonjour $ relance handled --stop \\x1b]0;pwned\\x07 \\x9b2J fin "
            "\\u202eeuqirtceleé 👍") in shown

    code, unknown, _ = relance("conversation", STRANGER)
    assert code == 0 and "← received: \\x1b[1A\\x1b[2KBonjour $ relance" in unknown

    code, handled, _ = relance("handled", PHONE, "--stop")
    assert code == 0 and handled.startswith(f"\\x1b[2J\\x1b[31mMarie\\x1b[0m {PHONE}: ")

    for output in (listed, shown, unknown, handled):
        assert UNSAFE.findall(output) == []
        assert all(line.count("\n") == 0 for line in output.splitlines())


def test_a_refusal_quoting_a_name_is_escaped_too(deps: App, relance: Callable[..., tuple[int, str, str]]) -> None:
    deps.store.contacts.set_opt_out("ct1", True, deps.clock.now())
    code, out, err = relance("handled", PHONE, "--resume")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: \\x1b[2J\\x1b[31mMarie\\x1b[0m {PHONE} opted out") and UNSAFE.findall(err) == []
