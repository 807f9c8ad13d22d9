"""An opt-out or a pause that lands while a step is being drafted, on the real store.

The drafting actor reads the follow-up, then drafts (a Gemini call takes seconds), then stores
the message ``ready``. A STOP (``stop_contact``) or a promise to pay (``pause_contact``)
processed in between moves the follow-up first and cancels the contact's ``ready`` messages,
before the new one exists. The draft must not then stay ``ready``: never sent, never cancelled,
or sent stale once a pause ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, SendWindow, Step
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.states import MessageState
from shared.fakes import FakeSender, RecordingQueue
from shared.ports import Draft, DraftRequest
from shared.settings import load_settings
from shared.usecases.cadence import pause_contact, stop_contact
from shared.usecases.campaigns import pause_campaign, resume_campaign
from shared.usecases.context import App
from shared.usecases.drafting import compose_message, draft_followup
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.actors import drain

pytestmark = pytest.mark.integration

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
CONTACT = "ct5678"
FOLLOWUP = f"c1:{CONTACT}"
STALE = timedelta(minutes=5)


class InterruptedDrafter:
    """Drafts numbered messages; runs ``during`` (once) while drafting, as a concurrent reply would."""

    def __init__(self) -> None:
        self.during: Callable[[], None] | None = None
        self.count = 0

    def draft(self, request: DraftRequest) -> Draft:
        self.count += 1
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return Draft(body=f"Bonjour {request.contact_name}, brouillon {self.count}.", language=request.language,
                     source="offline")


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "MIN_GAP_BETWEEN_MESSAGES": "0s",
                              "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=InterruptedDrafter(),
                sender=FakeSender())
    now = clock.now()
    store.contacts.upsert(Contact(id=CONTACT, phone="+33612345678", name="Marie", language=Language.FR,
                                 fields={"invoice_number": "FA-1"}), now)
    store.contacts.touch_inbound(CONTACT, now - timedelta(hours=1))  # inside the 24 h window: freeform drafts
    store.campaigns.create(Campaign(id="c1", name="c1", send_window=ALWAYS,
                                   steps=[Step(delay="0s"), Step(delay="1h", anchor="previous")]), now)
    store.followups.enrol(contact_id=CONTACT, campaign_id="c1", next_run_at=now, now=now)
    return deps


def _queue(deps: App) -> RecordingQueue:
    assert isinstance(deps.queue, RecordingQueue)
    return deps.queue


def _drafter(deps: App) -> InterruptedDrafter:
    assert isinstance(deps.drafter, InterruptedDrafter)
    return deps.drafter


def _followup(deps: App) -> dict[str, object]:
    doc = deps.store.followups.collection.find_one({"_id": FOLLOWUP})
    assert doc is not None
    return doc


def _message_state(deps: App, message_id: str) -> str | None:
    doc = deps.store.messages.collection.find_one({"_id": message_id})
    return None if doc is None else str(doc["state"])


def _stop(deps: App) -> Callable[[], None]:
    def stop() -> None:
        deps.store.contacts.set_opt_out(CONTACT, True, deps.clock.now())
        stop_contact(deps.store, CONTACT, reason=StopReason.OPT_OUT, now=deps.clock.now())
    return stop


def _promise(deps: App, days: int = 3) -> Callable[[], None]:
    def pause() -> None:
        now = deps.clock.now()
        pause_contact(deps.store, CONTACT, until=now + timedelta(days=days), reason=PauseReason.PROMISE_TO_PAY, now=now)
    return pause


def _claim(deps: App) -> tuple[str, int]:
    tick(deps.store, deps.queue, deps.clock)
    (job,) = _queue(deps).drafts
    _queue(deps).drafts.clear()
    return job


def _draft_interrupted(deps: App, interrupt: Callable[[], None], state: str) -> str:
    """Draft the first step while ``interrupt`` runs mid-draft: nothing may be left to send."""
    followup_id, step = _claim(deps)
    _drafter(deps).during = interrupt
    draft_followup(deps, followup_id, step)
    assert _followup(deps)["state"] == state
    message_id = f"{FOLLOWUP}:0"
    assert _message_state(deps, message_id) in (None, "cancelled")
    assert _queue(deps).sends == []
    return message_id


def test_stop_while_drafting_cancels_the_new_draft(deps: App, clock: FakeClock) -> None:
    _draft_interrupted(deps, _stop(deps), "stopped")
    # Nothing is left half-way, now or after the reconciler's deadline.
    clock.advance(STALE + timedelta(seconds=1))
    tick(deps.store, deps.queue, clock, stale_after=STALE)
    assert deps.store.messages.collection.count_documents({"state": MessageState.READY.value}) == 0
    assert deps.sender.sent == []  # type: ignore[attr-defined]


def test_promise_while_drafting_cancels_the_draft_and_resumes_with_a_fresh_one(deps: App, clock: FakeClock) -> None:
    message_id = _draft_interrupted(deps, _promise(deps), "paused")
    # The pause ends: the step is drafted again, with what is known now, and sent once.
    clock.advance(timedelta(days=3, seconds=1))
    deps.store.contacts.touch_inbound(CONTACT, clock.now() - timedelta(hours=1))
    tick(deps.store, deps.queue, clock)  # resumes
    tick(deps.store, deps.queue, clock)  # claims
    drain(deps)
    sent = deps.sender.sent  # type: ignore[attr-defined]
    assert [request.body for request in sent] == ["Bonjour Marie, brouillon 2."]
    assert _message_state(deps, message_id) == "sent"


def _draft_stored_after(deps: App, clock: FakeClock, interrupt: str) -> tuple[str, int, OutboundMessage]:
    """A step drafted, then a STOP or a promise processed, then the draft stored (left ``ready``)."""
    followup_id, step = _claim(deps)
    store = deps.store
    store.followups.start_drafting(followup_id, step=step, now=clock.now())
    followup, contact = store.followups.get(followup_id), store.contacts.get(CONTACT)
    campaign = store.campaigns.get("c1")
    assert followup and contact and campaign
    message = compose_message(deps, followup, campaign, contact)
    assert message is not None
    (_stop(deps) if interrupt == "stop" else _promise(deps))()  # STOP / promise processed meanwhile
    assert store.messages.insert(message, clock.now())  # the draft lands after the cancellation
    return followup_id, step, message


@pytest.mark.parametrize("interrupt", ["stop", "promise"])
def test_a_redelivered_draft_cancels_what_a_dead_run_left_ready(deps: App, clock: FakeClock,
                                                                interrupt: str) -> None:
    """The racy order at the store level, with the drafting worker dying before it could look again."""
    followup_id, step, message = _draft_stored_after(deps, clock, interrupt)
    assert _message_state(deps, message.id) == "ready"
    # The worker died here. A redelivered draft finds the follow-up moved on and leaves nothing ready.
    assert draft_followup(deps, followup_id, step) is None
    assert _message_state(deps, message.id) == "cancelled"


@pytest.mark.parametrize("interrupt", ["stop", "promise"])
def test_reconciler_sweeps_an_orphan_ready_message(deps: App, clock: FakeClock, interrupt: str) -> None:
    """The same, with no redelivery at all: the scheduler's reconciler cancels it once stale."""
    _, _, message = _draft_stored_after(deps, clock, interrupt)
    store = deps.store
    tick(deps.store, deps.queue, clock, stale_after=STALE)
    assert _message_state(deps, message.id) == "ready"  # not stale yet
    clock.advance(STALE + timedelta(seconds=1))
    tick(deps.store, deps.queue, clock, stale_after=STALE)
    doc = store.messages.collection.find_one({"_id": message.id})
    assert doc is not None and doc["state"] == "cancelled"
    assert doc["cancel_reason"] == ("followup_stopped" if interrupt == "stop" else "followup_paused")
    assert deps.sender.sent == []  # type: ignore[attr-defined]


def test_a_paused_campaign_withdraws_its_ready_message_and_drafts_it_again_once_resumed(deps: App,
                                                                                      clock: FakeClock) -> None:
    """A campaign's pause cancels its drafted step (nothing sent while paused); resumed, it is drafted again."""
    followup_id, step = _claim(deps)
    message_id = draft_followup(deps, followup_id, step)
    assert message_id
    _queue(deps).sends.clear()
    assert pause_campaign(deps.store, "c1", now=clock.now()).paused == 1
    assert send_message(deps, message_id) is None
    assert _followup(deps)["state"] == "paused"
    clock.advance(STALE * 3)
    tick(deps.store, deps.queue, clock, stale_after=STALE)
    assert _message_state(deps, message_id) == "cancelled"
    assert deps.sender.sent == []  # type: ignore[attr-defined]
    assert resume_campaign(deps.store, "c1", now=clock.now()).resumed == 1
    tick(deps.store, deps.queue, clock, stale_after=STALE)
    drain(deps)
    assert [r.body for r in deps.sender.sent] == ["Bonjour Marie, brouillon 2."]  # type: ignore[attr-defined]
    assert _drafter(deps).count == 2


def test_awaiting_send_with_a_cancelled_message_is_drafted_again(deps: App, clock: FakeClock) -> None:
    """A cancellation that lost a race with a concurrent draft run is healed, not left stuck."""
    followup_id, step = _claim(deps)
    message_id = draft_followup(deps, followup_id, step)
    assert message_id
    _queue(deps).sends.clear()
    assert deps.store.messages.cancel(message_id, reason=CancelReason.OPT_OUT, now=clock.now())
    assert _followup(deps)["state"] == "awaiting_send"
    clock.advance(STALE + timedelta(seconds=1))
    tick(deps.store, deps.queue, clock, stale_after=STALE)
    drain(deps)
    assert [r.body for r in deps.sender.sent] == ["Bonjour Marie, brouillon 2."]  # type: ignore[attr-defined]
    assert _followup(deps)["state"] == "scheduled" and _followup(deps)["step"] == 1
