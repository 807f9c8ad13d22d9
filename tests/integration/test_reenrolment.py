"""An invoice campaign enrols again a client whose follow-up there stopped as paid, once they owe
again (a new overdue invoice, a refund): on the real MongoDB-compatible server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Contact, Language
from shared.domain.reasons import StopReason
from shared.domain.states import FollowUpState
from shared.usecases.campaigns import create_campaign, enrol_campaign, enrol_invoice_campaigns
from shared.usecases.invoices import record_payment

pytestmark = pytest.mark.integration

CAMPAIGN = {"id": "factures", "name": "Factures en retard",
            "steps": [{"delay": "3d", "anchor": "oldest_due_date"}, {"delay": "7d", "anchor": "previous"}],
            "enrol": {"invoices": {"overdue_days": 3}}}


def _client(store: MongoRepositories, clock: FakeClock, contact_id: str = "ct1", phone: str = "+33612345678") -> None:
    store.contacts.upsert(Contact(id=contact_id, phone=phone, name="Marie", language=Language.FR), clock.now())


def _owes(store: MongoRepositories, clock: FakeClock, reference: str, contact_id: str = "ct1") -> None:
    due = clock.now().date() - timedelta(days=10)
    assert store.invoices.add(Invoice(id=f"in_{reference}", reference=reference, contact_id=contact_id,
                                      amount_cents=10000, amount_due_cents=10000, due_date=due),
                              source=InvoiceSource.IMPORT, now=clock.now())


def _followups(store: MongoRepositories, contact_id: str = "ct1") -> list[tuple[str, str, str | None]]:
    return sorted((s.id, s.state, s.stop_reason) for s in store.followups.summaries_of_contact(contact_id))


@pytest.fixture
def campaign(store: MongoRepositories, clock: FakeClock) -> str:
    create_campaign(store, CAMPAIGN, now=clock.now())
    return "factures"


def test_a_client_who_paid_and_owes_again_is_reminded_again_once(store: MongoRepositories, clock: FakeClock,
                                                                 campaign: str) -> None:
    _client(store, clock)
    _owes(store, clock, "FA-1")
    assert enrol_invoice_campaigns(store, now=clock.now())[campaign].enrolled == 1
    record_payment(store, "FA-1", now=clock.now())
    assert _followups(store) == [("factures:ct1", "stopped", "paid")]
    # Paid, nothing owed: the hourly enrolment enrols nobody.
    assert enrol_invoice_campaigns(store, now=clock.now())[campaign].enrolled == 0
    # A month later a new invoice is overdue: a new follow-up, the ended one kept as it was.
    clock.advance(timedelta(days=30))
    _owes(store, clock, "FA-2")
    report = enrol_invoice_campaigns(store, now=clock.now())[campaign]
    assert (report.enrolled, report.reenrolled, report.already_enrolled) == (1, 1, 0)
    assert _followups(store) == [("factures:ct1", "stopped", "paid"), ("factures:ct1:1", "scheduled", None)]
    new = store.followups.get("factures:ct1:1")
    assert new is not None and (new.step, new.generation) == (0, 1)
    # The next hours, and two enrolments at once: still one running.
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: enrol_campaign(store, campaign, now=clock.now()), range(2)))
    assert [r.enrolled for r in reports] == [0, 0]
    assert len(store.followups.of_contact("ct1", [FollowUpState.SCHEDULED])) == 1
    # Paid again, then owes again: a third.
    record_payment(store, "FA-2", now=clock.now())
    clock.advance(timedelta(days=30))
    _owes(store, clock, "FA-3")
    assert enrol_invoice_campaigns(store, now=clock.now())[campaign].reenrolled == 1
    assert [f[0] for f in _followups(store)] == ["factures:ct1", "factures:ct1:1", "factures:ct1:2"]


def test_a_refund_reopening_the_invoice_enrols_the_client_again(store: MongoRepositories, clock: FakeClock,
                                                                campaign: str) -> None:
    _client(store, clock)
    _owes(store, clock, "FA-1")
    enrol_invoice_campaigns(store, now=clock.now())
    record_payment(store, "FA-1", now=clock.now())
    assert store.invoices.reopen("FA-1", source=InvoiceSource.PAYMENT, now=clock.now())
    assert enrol_invoice_campaigns(store, now=clock.now())[campaign].reenrolled == 1
    assert store.followups.get("factures:ct1:1") is not None


def test_no_new_follow_up_after_a_dispute_a_hand_over_still_open_or_an_opt_out(
        store: MongoRepositories, clock: FakeClock, campaign: str) -> None:
    for n, contact_id in enumerate(("disputed", "handover", "optout"), start=1):
        _client(store, clock, contact_id, f"+3361234567{n}")
        _owes(store, clock, f"FA-{n}", contact_id)
    enrol_invoice_campaigns(store, now=clock.now())
    # A dispute stopped the first one (a person settles it; it stays stopped when the invoice is owed again).
    assert store.followups.stop("factures:disputed", reason=StopReason.DISPUTE, now=clock.now())
    # The second was paid while a hand-over is open; the third paid, then opted out.
    for n in (2, 3):
        record_payment(store, f"FA-{n}", now=clock.now())
    store.followups.flag_contact("handover", reason="question: the client asked something", now=clock.now())
    assert store.followups.claim_hand_over("handover", inbound_sid="SM" + "1" * 32, now=clock.now())
    store.contacts.set_opt_out("optout", True, clock.now())
    for n, contact_id in ((4, "handover"), (5, "optout")):
        _owes(store, clock, f"FA-{n}", contact_id)
    report = enrol_invoice_campaigns(store, now=clock.now())[campaign]
    assert (report.enrolled, report.reenrolled) == (0, 0)
    assert store.followups.collection.count_documents({}) == 3
    # The hand-over closed: the client who owes again is enrolled again.
    store.followups.clear_hand_over("handover", action="stop", now=clock.now())
    assert enrol_invoice_campaigns(store, now=clock.now())[campaign].reenrolled == 1
    assert store.followups.get("factures:handover:1") is not None


def test_a_running_follow_up_is_never_doubled(store: MongoRepositories, clock: FakeClock, campaign: str) -> None:
    _client(store, clock)
    _owes(store, clock, "FA-1")
    enrol_invoice_campaigns(store, now=clock.now())
    _owes(store, clock, "FA-2")  # a second invoice while the follow-up runs: it joins its next step
    report = enrol_invoice_campaigns(store, now=clock.now())[campaign]
    assert (report.enrolled, report.already_enrolled) == (0, 1)
    assert store.followups.collection.count_documents({}) == 1
