"""The campaign use cases on the in-memory repositories: create, enrol, pause, resume, list, counts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.adapters.memory import MemoryRepositories, memory_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, EnrolRule, Language, Step
from shared.domain.reasons import PauseReason
from shared.domain.states import FollowUpState
from shared.errors import InputError
from shared.usecases.campaigns import (
    counts_by_state,
    create_campaign,
    enrol_campaign,
    list_campaigns,
    pause_campaign,
    resume_campaign,
)
from tests.unit.usecases.replies_world import ALWAYS, FACTS


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryRepositories:
    """Three clients tagged ``clients`` (one opted out, one without a due date) and a supplier."""
    store = memory_repositories()
    now = clock.now()
    for n, tags in enumerate((["clients"], ["clients", "vip"], ["clients"], ["suppliers"]), start=1):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234567{n}", name=f"Client {n}", language=Language.FR,
                                      tags=tags, fields=FACTS), now)
    store.contacts.upsert(Contact(id="ct5", phone="+33612345675", name="Sans date", language=Language.FR,
                                  tags=["clients"], fields={k: v for k, v in FACTS.items() if k != "due_date"}), now)
    contact = store.contacts.get("ct3")
    assert contact is not None
    store.contacts.set_opt_out("ct3", True, now)
    return store


def _campaign(campaign_id: str = "c1") -> Campaign:
    return Campaign(id=campaign_id, name="Relance", send_window=ALWAYS, enrol=EnrolRule(tags=["clients"]),
                    steps=[Step(delay="0s", anchor="due_date")])


def test_create_refuses_a_campaign_its_contacts_cannot_fill(store: MemoryRepositories, clock: FakeClock) -> None:
    with pytest.raises(InputError, match="lacks field 'due_date'"):
        create_campaign(store, _campaign(), now=clock.now())
    assert store.campaigns.get("c1") is None


def test_create_then_a_second_time(store: MemoryRepositories, clock: FakeClock) -> None:
    campaign = Campaign(id="c1", name="Relance", send_window=ALWAYS, enrol=EnrolRule(tags=["vip"]),
                        steps=[Step(delay="0s")])
    assert create_campaign(store, campaign, now=clock.now()).id == "c1"
    with pytest.raises(InputError, match="already exists"):
        create_campaign(store, campaign, now=clock.now())


def test_enrol_skips_opted_out_and_incomplete_contacts_and_is_idempotent(store: MemoryRepositories,
                                                                         clock: FakeClock) -> None:
    store.campaigns.create(_campaign(), clock.now())
    report = enrol_campaign(store, "c1", now=clock.now())
    assert report.enrolled == 2 and report.already_enrolled == 0
    assert len(report.skipped) == 2
    assert any("opted out" in reason for reason in report.skipped)
    assert any("lacks field 'due_date'" in reason for reason in report.skipped)
    assert all("+3361234567" not in reason for reason in report.skipped)  # phones masked
    again = enrol_campaign(store, "c1", now=clock.now() + timedelta(hours=1))
    assert (again.enrolled, again.already_enrolled) == (0, 2)
    assert store.followups.count("c1") == 2


def test_enrol_with_extra_tags_narrows_the_selection(store: MemoryRepositories, clock: FakeClock) -> None:
    store.campaigns.create(_campaign(), clock.now())
    report = enrol_campaign(store, "c1", now=clock.now(), tags=["vip"])
    assert (report.enrolled, report.skipped) == (1, [])
    assert store.followups.get("c1:ct2") is not None


def test_an_unknown_campaign_is_the_users_mistake(store: MemoryRepositories, clock: FakeClock) -> None:
    for call in (enrol_campaign, pause_campaign, resume_campaign):
        with pytest.raises(InputError, match="no campaign 'nope'"):
            call(store, "nope", now=clock.now())


def test_pause_and_resume(store: MemoryRepositories, clock: FakeClock) -> None:
    store.campaigns.create(_campaign(), clock.now())
    enrol_campaign(store, "c1", now=clock.now())
    # ct2 promised to pay: paused for the contact, not with the campaign.
    assert store.followups.pause("c1:ct2", reason=PauseReason.PROMISE_TO_PAY, now=clock.now(),
                                 until=clock.now() + timedelta(days=9))
    paused = pause_campaign(store, "c1", now=clock.now())
    assert (paused.status, paused.changed, paused.paused) == ("paused", True, 1)
    again = pause_campaign(store, "c1", now=clock.now())
    assert (again.changed, again.paused) == (False, 0)
    campaign = store.campaigns.get("c1")
    assert campaign is not None and campaign.status == "paused"
    # The follow-up carries the pause: the actors read it there, never from a (cached) campaign.
    ct1 = store.followups.get("c1:ct1")
    assert ct1 is not None and ct1.state == FollowUpState.PAUSED and ct1.pause_reason == PauseReason.CAMPAIGN_PAUSED
    resumed = resume_campaign(store, "c1", now=clock.now())
    assert (resumed.status, resumed.changed, resumed.resumed) == ("active", True, 1)
    ct1, ct2 = store.followups.get("c1:ct1"), store.followups.get("c1:ct2")
    assert ct1 is not None and ct1.state == FollowUpState.SCHEDULED
    assert ct2 is not None and ct2.state == FollowUpState.PAUSED  # the client's promise holds
    assert resume_campaign(store, "c1", now=clock.now()) == resumed.__class__("c1", "active", False, 0)


def test_list_and_counts(store: MemoryRepositories, clock: FakeClock) -> None:
    store.campaigns.create(_campaign(), clock.now())
    store.campaigns.create(_campaign("c2"), clock.now())
    enrol_campaign(store, "c1", now=clock.now())
    lines = list_campaigns(store)
    assert [(line.campaign.id, line.enrolled) for line in lines] == [("c1", 2), ("c2", 0)]
    counts = counts_by_state(store)
    assert counts["followups"] == {"scheduled": 2}
    assert counts["messages"] == {}


def test_enrol_writes_in_batches(store: MemoryRepositories, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Follow-ups are inserted ENROL_BATCH at a time (one write each), never one per contact."""
    import shared.usecases.campaigns as campaigns

    monkeypatch.setattr(campaigns, "ENROL_BATCH", 2)
    now = clock.now()
    for n in range(6, 11):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+336123456{n:02d}", name=f"Client {n}",
                                      language=Language.FR, tags=["clients"], fields=FACTS), now)
    store.campaigns.create(_campaign(), now)
    writes: list[int] = []
    enrol_many = store.followups.enrol_many

    def counted(batch: list[object], *, now: object) -> list[bool]:
        writes.append(len(batch))
        return enrol_many(batch, now=now)  # type: ignore[arg-type]

    monkeypatch.setattr(store.followups, "enrol_many", counted)
    monkeypatch.setattr(store.followups, "enrol", None)  # never one by one
    report = enrol_campaign(store, "c1", now=now)
    assert (report.enrolled, report.already_enrolled) == (7, 0)
    assert writes == [2, 2, 2, 1]
    assert store.followups.count("c1") == 7


def test_an_invoice_campaign_enrols_again_a_client_who_paid_and_owes_again_in_memory(clock: FakeClock) -> None:
    """The in-memory repositories behave as MongoDB's (tests/integration/test_reenrolment.py)."""
    from shared.domain.invoices import Invoice, InvoiceSource
    from shared.usecases.invoices import record_payment

    store = memory_repositories()
    store.contacts.upsert(Contact(id="ct1", phone="+33612345671", name="Marie", language=Language.FR), clock.now())
    create_campaign(store, {"id": "factures", "name": "Factures", "steps": [{"delay": "1d"}],
                            "enrol": {"invoices": {"overdue_days": 0}}}, now=clock.now())

    def owes(reference: str) -> None:
        assert store.invoices.add(Invoice(id=f"in_{reference}", reference=reference, contact_id="ct1",
                                          amount_cents=5000, amount_due_cents=5000), source=InvoiceSource.IMPORT,
                                  now=clock.now())

    owes("FA-1")
    assert enrol_campaign(store, "factures", now=clock.now()).enrolled == 1
    record_payment(store, "FA-1", now=clock.now())
    owes("FA-2")
    report = enrol_campaign(store, "factures", now=clock.now())
    assert (report.enrolled, report.reenrolled) == (1, 1)
    assert enrol_campaign(store, "factures", now=clock.now()).enrolled == 0
    assert sorted((f.id, f.state) for f in store.followups.summaries_of_contact("ct1")) == [
        ("factures:ct1", "stopped"), ("factures:ct1:1", "scheduled")]


def test_every_campaigns_progress_is_each_ones_progress_in_id_order(clock: FakeClock) -> None:
    from shared.usecases.campaigns import campaign_progress, campaigns_progress

    store = memory_repositories()
    now = clock.now()
    for campaign_id in ("b", "a"):
        assert store.campaigns.create(Campaign(id=campaign_id, name=campaign_id.upper(), steps=[Step()]), now)
    for n in range(3):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234500{n}", name=f"Client {n}"), now)
        store.followups.enrol(contact_id=f"ct{n}", campaign_id="a" if n else "b", next_run_at=now, now=now)
    store.followups.flag("a:ct1", reason="dispute", now=now)
    found = campaigns_progress(store)
    assert [(p.campaign.id, p.enrolled, p.needs_human) for p in found] == [("a", 2, 1), ("b", 1, 0)]
    assert found == [campaign_progress(store, "a"), campaign_progress(store, "b")]
