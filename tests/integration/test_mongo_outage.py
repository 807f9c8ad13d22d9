"""A MongoDB outage is a TransientError on every path, and never a reason to hand a client's reply to a person.

Before the repositories, some paths (raw collection calls in the actors) let the driver's own
error escape: a reply that met a dropped connection was counted as failing, and after a few such
blips handed to a person although nothing was wrong with it.
"""

from __future__ import annotations

import inspect
import socket
import types
import typing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_origin

import pytest
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect

from shared.adapters.mongo import MongoRepositories, open_repositories
from shared.clock import FakeClock
from shared.domain.api_keys import ApiKey, KeptResponse
from shared.domain.invoices import Invoice
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, SendWindow, Step, TemplateRef
from shared.domain.records import Enrolment, InboundRecord
from shared.domain.repositories import Repositories
from shared.domain.states import EventState, FollowUpState, MessageState
from shared.errors import TransientError
from shared.fakes import FakeSender, RecordingQueue
from shared.ports import Classification, ClassifyRequest, Intent
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.failures import EVENT_ATTEMPTS
from shared.usecases.replies import process_inbound_or_hand_over
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PHONE = "+33612345678"
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start="00:00", end="23:59")  # type: ignore[arg-type]


# ------------------------------------------------------------ every method, MongoDB unreachable

def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SAMPLES: dict[Any, Any] = {
    str: "x", int: 1, bool: True, datetime: NOW, timedelta: timedelta(minutes=5),
    Contact: Contact(id="ct1", phone=PHONE, name="Marie"),
    Campaign: Campaign(id="c1", name="c1", steps=[Step()]),
    OutboundMessage: OutboundMessage(id="m1", followup_id=None, contact_id="ct1", campaign_id=None, step=-1,
                                     state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR),
    InboundRecord: InboundRecord(id="in:SM1", twilio_sid="SM1", contact_id="ct1"),
    Enrolment: Enrolment(contact_id="ct1", campaign_id="c1", next_run_at=NOW),
    Invoice: Invoice(id="in_1", reference="FA-1", contact_id="ct1", amount_cents=100, amount_due_cents=100),
    ApiKey: ApiKey(name="k", key_hash="h", created_at=NOW),
    KeptResponse: KeptResponse(id="k:1", method_path="POST /x", body_hash="h", status=None, body=None),
}
INVOICE_DETAILS = {"due_date": NOW.date()}


def _sample(hint: Any) -> Any:
    """A value of the annotated type for a required argument."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _sample(next(arg for arg in get_args(hint) if arg is not type(None)))
    if hint in SAMPLES:
        return SAMPLES[hint]
    if (isinstance(hint, type) and issubclass(hint, (FollowUpState, MessageState, EventState))) or (
            isinstance(hint, type) and issubclass(hint, str) and hasattr(hint, "__members__")):
        return next(iter(hint))  # type: ignore[call-overload]
    if origin is typing.Literal:
        return get_args(hint)[0]
    if origin in (list, tuple) or str(origin) in ("<class 'collections.abc.Sequence'>",
                                                   "<class 'collections.abc.Iterable'>"):
        (inner, *_) = get_args(hint)
        if get_origin(inner) is tuple:
            return [("inbound:SM1", {"kind": "inbound", "sid": "SM1", "state": "received"})]
        return [_sample(inner)]
    if origin is dict or str(origin) == "<class 'collections.abc.Mapping'>":
        return {"kind": "inbound", "sid": "SM1", "state": "received"}
    raise AssertionError(f"no sample for {hint}")


def _calls(repos: Repositories) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    for name in ("contacts", "campaigns", "followups", "messages", "events", "owner", "jobs", "invoices", "api_keys",
                 "idempotency", "database"):
        repository = getattr(repos, name)
        for method_name, method in inspect.getmembers(repository, inspect.ismethod):
            if method_name.startswith("_") or method_name == "ping":  # ping answers False, by design
                continue
            hints = typing.get_type_hints(inspect.unwrap(method))
            arguments = {param: "delivered" if param == "status" else INVOICE_DETAILS if param == "changes"
                         else _sample(hints[param])
                         for param, spec in inspect.signature(method).parameters.items()
                         if spec.default is inspect.Parameter.empty and spec.kind != spec.VAR_KEYWORD}
            yield f"{name}.{method_name}", method, arguments


def _outcome(name: str, method: Any, arguments: dict[str, Any]) -> str | None:
    """What is wrong with one call to a repository whose server cannot be reached (None: TransientError)."""
    try:
        method(**arguments)
    except TransientError:
        return None
    except Exception as exc:
        return f"{name}: {type(exc).__module__}.{type(exc).__name__}"
    return f"{name}: no error"


def test_every_repository_method_raises_transient_error_when_mongodb_is_unreachable() -> None:
    client, repos = open_repositories(f"mongodb://127.0.0.1:{_dead_port()}/relance", "relance", timeout_ms=100)
    calls = list(_calls(repos))
    try:
        # At once: each call waits for server selection to give up (pymongo checks twice a second at most).
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            wrong = [problem for problem in pool.map(lambda call: _outcome(*call), calls) if problem]
        assert not repos.ping()
    finally:
        client.close()
    assert wrong == []
    called = [name for name, _, _ in calls]
    assert len(called) >= 70 and "messages.apply_status" in called and "database.ensure_indexes" in called
    assert {"invoices.add", "invoices.mark_paid", "invoices.pay_part", "invoices.update_details"} <= set(called)


# ------------------------------------------------------------ a blip while a reply is processed

class BlippingClassifier:
    """Reads every reply as a dispute; while it does, the connection to MongoDB drops (``blips`` left)."""

    def __init__(self) -> None:
        self.blips = 0
        self.armed = False

    def classify(self, request: ClassifyRequest) -> Classification:
        if self.blips:
            self.blips -= 1
            self.armed = True  # the next write meets the dropped connection
        return Classification(intent=Intent.DISPUTE, confidence=0.95, source="test")


def test_a_reply_that_meets_a_mongodb_outage_waits_and_is_never_handed_to_a_person(
        store: MongoRepositories, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = BlippingClassifier()
    update_one = Collection.update_one

    def blip(self: Collection[Any], *args: Any, **kwargs: Any) -> Any:
        """The driver's own failure on a connection the network dropped (what pymongo raises then)."""
        if classifier.armed:
            classifier.armed = False
            raise AutoReconnect("connection closed")
        return update_one(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "update_one", blip)
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com",
                              "OWNER_WHATSAPP_NUMBER": "+33700000001"})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender(clock=clock), classifier=classifier)
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", fields={"invoice_number": "FA-1"}), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(template=TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"})), Step(delay="2d")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    assert store.followups.claim(["c1:ct1"], now)
    deps.queue.draft_followup("c1:ct1", 0)  # type: ignore[attr-defined]
    drain(deps)
    sid = "SM" + "8" * 32
    store.events.record(f"inbound:{sid}", {"kind": "inbound", "sid": sid, "state": "received",
                                           "from": f"whatsapp:{PHONE}", "body": "Je conteste cette facture"}, now)

    classifier.blips = EVENT_ATTEMPTS + 1  # more blips than it takes to give a failing reply up
    for _ in range(EVENT_ATTEMPTS + 1):
        with pytest.raises(TransientError):
            process_inbound_or_hand_over(deps, f"inbound:{sid}")
    event = store.events.get(f"inbound:{sid}")
    assert event is not None and (event.state, event.failures) == (EventState.RECEIVED, 0)  # waits, nothing counted
    followup = store.followups.get("c1:ct1")
    assert followup is not None and followup.state == FollowUpState.SCHEDULED and not followup.needs_human
    assert store.messages.get(f"alert:{sid}") is None  # no owner alert

    # MongoDB answers again: the reply is read for what it says, once.
    assert str(process_inbound_or_hand_over(deps, f"inbound:{sid}")) == "needs_human: dispute"
    assert store.events.get(f"inbound:{sid}").state == EventState.PROCESSED  # type: ignore[union-attr]
