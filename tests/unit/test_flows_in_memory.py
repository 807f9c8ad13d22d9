"""Whole flows on the in-memory repositories: the actors and the scheduler, no server at all.

The same functions the workers run, over ``shared.adapters.memory`` (whose behaviour the contract
suite holds to the MongoDB one): milliseconds instead of a database round trip per step.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest

from shared.adapters.cached import CachedCampaigns
from shared.adapters.memory import MemoryRepositories, memory_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.domain.reasons import PauseReason
from shared.domain.states import FollowUpState, MessageState
from shared.fakes import FakeSender, RecordingQueue
from shared.ports import Draft, DraftRequest
from shared.settings import load_settings
from shared.usecases.campaigns import pause_campaign, resume_campaign
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.replies import process_inbound
from shared.usecases.scheduling import tick
from tests.support.actors import drain

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
PHONE = "+33612345678"


class StopWhileDrafting:
    """A drafter during whose work the client's STOP arrives and is processed (as a concurrent worker would)."""

    def __init__(self) -> None:
        self.deps: App | None = None

    def draft(self, request: DraftRequest) -> Draft:
        if self.deps is not None:
            deps, self.deps = self.deps, None
            sid = "SM" + "5" * 32
            deps.store.events.record(f"inbound:{sid}", {"kind": "inbound", "sid": sid, "state": "received",
                                                        "from": f"whatsapp:{PHONE}", "body": "STOP"}, deps.clock.now())
            assert str(process_inbound(deps, f"inbound:{sid}")) == "opt_out stopped=1"
        return Draft(body=f"Bonjour {request.contact_name}, un rappel.", language=request.language, source="offline")


@pytest.fixture
def deps(clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "MIN_GAP_BETWEEN_MESSAGES": "0s",
                              "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""})
    store = memory_repositories()
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=StopWhileDrafting(),
                sender=FakeSender(clock=clock))
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR,
                                  fields={"invoice_number": "FA-1"}), now)
    store.contacts.touch_inbound("ct1", now - timedelta(hours=1))  # inside the 24-hour window: freeform
    store.campaigns.create(Campaign(id="c1", name="c1", send_window=ALWAYS,
                                    steps=[Step(delay="0s"), Step(delay="1h", anchor="previous")]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    return deps


def test_the_store_is_the_in_memory_one(deps: App) -> None:
    assert isinstance(deps.store, MemoryRepositories)


def test_a_stop_while_a_step_is_being_drafted_cancels_the_draft(deps: App, clock: FakeClock) -> None:
    queue, sender = deps.queue, deps.sender
    assert isinstance(queue, RecordingQueue) and isinstance(sender, FakeSender)
    tick(deps.store, queue, clock)
    ((followup_id, step),) = queue.drafts
    queue.drafts.clear()
    deps.drafter.deps = deps  # type: ignore[attr-defined]
    assert draft_followup(deps, followup_id, step) is None
    followup = deps.store.followups.get(followup_id)
    assert followup is not None and (followup.state, followup.stop_reason) == (FollowUpState.STOPPED, "opt_out")
    message = deps.store.messages.get(f"{followup_id}:0")
    assert message is not None and message.state == MessageState.CANCELLED
    assert queue.sends == [] and sender.sent == []
    clock.advance(timedelta(minutes=6))  # past the reconciler's deadline: nothing comes back to life
    report = tick(deps.store, queue, clock)
    assert report.total() == 0 and queue.sends == queue.drafts == []


def test_a_whole_cadence_runs_to_its_end(deps: App, clock: FakeClock) -> None:
    queue, sender = deps.queue, deps.sender
    assert isinstance(queue, RecordingQueue) and isinstance(sender, FakeSender)
    tick(deps.store, queue, clock)
    drain(deps)
    assert [r.to for r in sender.sent] == [PHONE]
    followup = deps.store.followups.get("c1:ct1")
    assert followup is not None and (followup.state, followup.step) == (FollowUpState.SCHEDULED, 1)
    clock.advance(timedelta(hours=1))
    tick(deps.store, queue, clock)
    drain(deps)
    assert len(sender.sent) == 2
    followup = deps.store.followups.get("c1:ct1")
    assert followup is not None and followup.state == FollowUpState.COMPLETED
    assert deps.store.messages.count_by_state() == {"sent": 2}


class PauseWhileDrafting:
    """A drafter during whose work the campaign is paused (``relance campaigns pause`` in another process)."""

    def __init__(self, store: MemoryRepositories, clock: FakeClock) -> None:
        self.store, self.clock = store, clock
        self.armed = True
        self.count = 0

    def draft(self, request: DraftRequest) -> Draft:
        self.count += 1
        if self.armed:
            self.armed = False
            assert pause_campaign(self.store, "c1", now=self.clock.now()).paused == 1
        return Draft(body=f"Bonjour {request.contact_name}, un rappel.", language=request.language, source="offline")


def test_a_campaign_paused_while_a_step_is_drafted_withdraws_the_draft_and_sends_the_step_once_resumed(
        deps: App, clock: FakeClock) -> None:
    """The workers read the campaign from their cache: the pause reaches them through the follow-up
    (drafting's ``await_send`` fails and the draft is withdrawn); the resume drafts the step again."""
    store = deps.store
    assert isinstance(store, MemoryRepositories)
    cached = replace(store, campaigns=CachedCampaigns(store.campaigns))
    drafter = PauseWhileDrafting(store, clock)
    deps = replace(deps, store=cached, drafter=drafter)
    queue, sender = deps.queue, deps.sender
    assert isinstance(queue, RecordingQueue) and isinstance(sender, FakeSender)
    assert deps.store.campaigns.get("c1") is not None  # cached as active
    tick(deps.store, queue, clock)
    drain(deps)
    assert sender.sent == []
    followup = store.followups.get("c1:ct1")
    assert followup is not None and (followup.state, followup.pause_reason) == (FollowUpState.PAUSED,
                                                                               PauseReason.CAMPAIGN_PAUSED)
    message = store.messages.get("c1:ct1:0")
    assert message is not None and message.state == MessageState.CANCELLED  # withdrawn: never sent
    clock.advance(timedelta(minutes=30))  # the sweeps leave it alone
    tick(deps.store, queue, clock)
    drain(deps)
    assert sender.sent == []
    assert resume_campaign(store, "c1", now=clock.now()).resumed == 1
    tick(deps.store, queue, clock)
    drain(deps)
    assert [r.to for r in sender.sent] == [PHONE] and drafter.count == 2  # drafted again, sent once
