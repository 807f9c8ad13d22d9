"""Invoice campaigns on the in-memory repositories: one reminder per client, true to their invoices.

The drafting, sending and payment use cases the workers and the webhook run; the drafter records
what it was asked (the facts), so that a test sees what a reminder could say.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.memory import memory_repositories
from shared.campaign_files import load_campaign
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import (
    Campaign,
    Contact,
    EnrolRule,
    InvoiceSelector,
    Language,
    SendWindow,
    Step,
    TemplateRef,
)
from shared.domain.states import FollowUpState, InvoiceStatus, MessageState
from shared.errors import InputError
from shared.fakes import FakeSender, RecordingQueue
from shared.language.drafts import OfflineDrafter
from shared.ports import Draft, DraftRequest
from shared.settings import load_settings
from shared.usecases.campaigns import enrol_campaign
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.invoices import cancel_invoice, record_payment
from shared.usecases.payments import PaymentEvent, PaymentKind, apply_payment_event
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.actors import drain

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))


class RecordingDrafter:
    """The offline drafter, keeping each request it was given."""

    def __init__(self) -> None:
        self.requests: list[DraftRequest] = []

    def draft(self, request: DraftRequest) -> Draft:
        self.requests.append(request)
        return OfflineDrafter().draft(request)


@pytest.fixture
def deps(clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "MIN_GAP_BETWEEN_MESSAGES": "0s",
                              "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": ""})
    store = memory_repositories()
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=RecordingDrafter(),
                     sender=FakeSender(clock=clock))
    now = clock.now()
    for cid, phone, name in (("ct1", "+33612345678", "Marie"), ("ct2", "+33698765432", "Paul"),
                             ("ct3", "+33611112222", "Inès")):
        store.contacts.upsert(Contact(id=cid, phone=phone, name=name, language=Language.FR, tags=["clients"],
                                      fields={"invoice_number": "OLD-1", "contract": "C-77"}), now)
        store.contacts.touch_inbound(cid, now - timedelta(hours=1))  # inside the 24-hour window: freeform
    store.campaigns.create(Campaign(
        id="inv", name="Factures", send_window=ALWAYS,
        enrol=EnrolRule(tags=["clients"], invoices=InvoiceSelector(overdue_days=3, min_amount=10)),
        steps=[Step(delay="0s"), Step(delay="2d", anchor="previous"), Step(delay="3d", anchor="previous")]), now)
    return deps


def _invoice(deps: App, ref: str, contact_id: str, cents: int, *, due: date | None, link: str | None = None) -> None:
    assert deps.store.invoices.add(Invoice(id=f"in_{ref}", reference=ref, contact_id=contact_id, amount_cents=cents,
                                           amount_due_cents=cents, due_date=due, payment_link=link),
                                   source=InvoiceSource.IMPORT, now=deps.clock.now())


def _today(clock: FakeClock) -> date:
    return clock.now().date()


@pytest.fixture
def owed(deps: App, clock: FakeClock) -> App:
    """Marie owes two overdue invoices, Paul one overdue and one too small, Inès one not overdue yet."""
    today = _today(clock)
    _invoice(deps, "FA-101", "ct1", 50_000, due=today - timedelta(days=20), link="https://pay.example.com/101")
    _invoice(deps, "FA-102", "ct1", 125_050, due=today - timedelta(days=5), link="https://pay.example.com/102")
    _invoice(deps, "FA-201", "ct2", 8_000, due=today - timedelta(days=10))
    _invoice(deps, "FA-202", "ct2", 500, due=today - timedelta(days=10))  # under min_amount
    _invoice(deps, "FA-301", "ct3", 9_000, due=today - timedelta(days=1))  # not 3 days overdue
    report = enrol_campaign(deps.store, "inv", now=clock.now())
    assert report.enrolled == 2
    return deps


def _sent_bodies(deps: App) -> dict[str, list[str]]:
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    bodies: dict[str, list[str]] = {}
    for request in sender.sent:
        bodies.setdefault(request.to, []).append(request.body or "")
    return bodies


def _start(deps: App, clock: FakeClock) -> None:
    tick(deps.store, deps.queue, clock)
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    while queue.drafts:
        draft_followup(deps, *queue.drafts.pop(0))


def test_only_clients_owing_selected_overdue_invoices_are_enrolled(owed: App) -> None:
    assert owed.store.followups.get("inv:ct1") is not None
    assert owed.store.followups.get("inv:ct2") is not None
    assert owed.store.followups.get("inv:ct3") is None


def test_one_grouped_reminder_names_each_invoice_and_nothing_of_anyone_else(owed: App, clock: FakeClock) -> None:
    tick(owed.store, owed.queue, clock)
    drain(owed)
    bodies = _sent_bodies(owed)
    assert len(bodies["+33612345678"]) == 1 and len(bodies["+33698765432"]) == 1
    drafter = owed.drafter
    assert isinstance(drafter, RecordingDrafter)
    marie = next(r for r in drafter.requests if r.contact_name == "Marie")
    facts = "\n".join(marie.facts.values())
    assert "FA-101" in facts and "FA-102" in facts and marie.facts["invoice_count"] == "2"
    assert "1\u00a0750,50\u00a0€" in marie.facts["total_due"]
    assert not any(ref in facts for ref in ("FA-201", "FA-202", "FA-301", "OLD-1"))
    assert marie.facts["contract"] == "C-77"  # the contact's other facts stay
    paul = next(r for r in drafter.requests if r.contact_name == "Paul")
    assert paul.facts["invoice_number"] == "FA-201" and "FA-202" not in "\n".join(paul.facts.values())
    message = owed.store.messages.get("inv:ct1:0")
    assert message is not None and message.invoices == ["FA-101", "FA-102"]


def test_a_payment_between_drafting_and_sending_cancels_the_send(owed: App, clock: FakeClock) -> None:
    _start(owed, clock)
    message = owed.store.messages.get("inv:ct2:0")
    assert message is not None and message.state == MessageState.READY
    event = PaymentEvent(provider="stripe", event_id="evt_1", type="checkout.session.completed",
                         kind=PaymentKind.PAID, reference="FA-201", amount_cents=8_000, currency="EUR")
    apply_payment_event(owed.store, event, now=clock.now(), queue=owed.queue)
    drain(owed)
    assert "+33698765432" not in _sent_bodies(owed)
    followup = owed.store.followups.get("inv:ct2")
    assert followup is not None and (followup.state, followup.stop_reason) == (FollowUpState.STOPPED, "paid")
    assert owed.store.messages.get("inv:ct2:0").state == MessageState.CANCELLED  # type: ignore[union-attr]


def test_sending_rereads_the_invoices_when_nothing_settled_the_follow_up(owed: App, clock: FakeClock) -> None:
    _start(owed, clock)
    # Paid behind Relance's back (no settle): the sending use case's own re-read catches it.
    assert owed.store.invoices.mark_paid("FA-201", source=InvoiceSource.SYNC, now=clock.now())
    drain(owed)
    assert "+33698765432" not in _sent_bodies(owed)
    followup = owed.store.followups.get("inv:ct2")
    assert followup is not None and followup.state == FollowUpState.STOPPED


def test_one_invoice_paid_among_others_redrafts_the_reminder(owed: App, clock: FakeClock) -> None:
    _start(owed, clock)
    assert owed.store.invoices.mark_paid("FA-101", source=InvoiceSource.SYNC, now=clock.now())
    drain(owed)  # the send re-reads, withdraws the draft, drafts it again, sends that
    bodies = _sent_bodies(owed)["+33612345678"]
    assert len(bodies) == 1 and "FA-102" in bodies[0] and "FA-101" not in bodies[0]
    message = owed.store.messages.get("inv:ct1:0")
    assert message is not None and message.invoices == ["FA-102"] and message.state == MessageState.SENT


def test_a_part_payment_by_command_redrafts_with_the_new_amount(owed: App, clock: FakeClock) -> None:
    _start(owed, clock)
    record_payment(owed.store, "FA-201", now=clock.now(), amount="30", queue=owed.queue)
    assert owed.store.messages.get("inv:ct2:0").state == MessageState.CANCELLED  # type: ignore[union-attr]
    drain(owed)
    (body,) = _sent_bodies(owed)["+33698765432"]
    assert "50,00" in body and "80,00" not in body


def test_the_last_invoice_cancelled_stops_the_follow_up_between_steps(owed: App, clock: FakeClock) -> None:
    tick(owed.store, owed.queue, clock)
    drain(owed)
    cancel_invoice(owed.store, "FA-201", now=clock.now())
    followup = owed.store.followups.get("inv:ct2")
    assert followup is not None and (followup.state, followup.stop_reason) == (FollowUpState.STOPPED, "paid")
    clock.advance(timedelta(days=3))
    tick(owed.store, owed.queue, clock)
    drain(owed)
    assert len(_sent_bodies(owed)["+33698765432"]) == 1


def test_an_invoice_added_while_it_runs_joins_the_next_step(owed: App, clock: FakeClock) -> None:
    tick(owed.store, owed.queue, clock)
    drain(owed)
    _invoice(owed, "FA-203", "ct2", 4_200, due=_today(clock))
    clock.advance(timedelta(days=2))
    owed.store.contacts.touch_inbound("ct2", clock.now())  # they wrote: freeform again
    tick(owed.store, owed.queue, clock)
    drain(owed)
    first, _second = _sent_bodies(owed)["+33698765432"]
    assert "FA-203" not in first
    drafter = owed.drafter
    assert isinstance(drafter, RecordingDrafter)
    latest = [r for r in drafter.requests if r.contact_name == "Paul"][-1]
    assert "FA-201" in latest.facts["invoice_list"] and "FA-203" in latest.facts["invoice_list"]
    assert owed.store.messages.get("inv:ct2:1").invoices == ["FA-201", "FA-203"]  # type: ignore[union-attr]


def test_a_follow_up_whose_invoices_closed_before_its_step_sends_nothing(owed: App, clock: FakeClock) -> None:
    assert owed.store.invoices.mark_paid("FA-201", source=InvoiceSource.SYNC, now=clock.now())
    tick(owed.store, owed.queue, clock)
    drain(owed)
    assert "+33698765432" not in _sent_bodies(owed)
    followup = owed.store.followups.get("inv:ct2")
    assert followup is not None and (followup.state, followup.stop_reason) == (FollowUpState.STOPPED, "paid")


def test_the_template_outside_the_window_is_filled_from_the_invoices(deps: App, clock: FakeClock) -> None:
    now = clock.now()
    sid = "HX" + "ab" * 16
    deps.store.contacts.upsert(Contact(id="ct9", phone="+33655554444", name="Zoé", tags=["late"]), now)
    template = TemplateRef(content_sid=sid, variables={"1": "name", "2": "invoice_list", "3": "total_due"},
                           preview={Language.FR: "Bonjour {{1}}, {{2}} ; total {{3}}"})
    deps.store.campaigns.create(Campaign(id="tpl", name="t", send_window=ALWAYS, enrol=EnrolRule(
        tags=["late"], invoices=InvoiceSelector()), steps=[Step(template=template)]), now)
    _invoice(deps, "FA-901", "ct9", 10_000, due=_today(clock))
    _invoice(deps, "FA-902", "ct9", 2_000, due=None)
    assert enrol_campaign(deps.store, "tpl", now=now).enrolled == 1
    tick(deps.store, deps.queue, clock)
    drain(deps)
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    (sent,) = sender.sent
    variables = sent.content_variables or {}
    assert variables["1"] == "Zoé" and "FA-901" in variables["2"] and "FA-902" in variables["2"]
    assert variables["3"] == "120,00\u00a0€"


def test_a_step_anchored_on_the_oldest_due_date(deps: App, clock: FakeClock) -> None:
    now = clock.now()
    deps.store.contacts.upsert(Contact(id="ct8", phone="+33655550000", name="Léa", tags=["a"]), now)
    deps.store.campaigns.create(Campaign(id="due", name="d", send_window=ALWAYS, enrol=EnrolRule(
        tags=["a"], invoices=InvoiceSelector()), steps=[Step(delay="10d", anchor="oldest_due_date")]), now)
    _invoice(deps, "FA-801", "ct8", 10_000, due=_today(clock) - timedelta(days=2))
    _invoice(deps, "FA-802", "ct8", 10_000, due=_today(clock) + timedelta(days=30))
    enrol_campaign(deps.store, "due", now=now)
    followup = deps.store.followups.get("due:ct8")
    assert followup is not None and followup.next_run_at is not None
    local = followup.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert local.date() == _today(clock) + timedelta(days=8)


def test_a_campaign_of_contact_fields_stops_when_its_invoice_is_paid(deps: App, clock: FakeClock) -> None:
    now = clock.now()
    deps.store.campaigns.create(Campaign(id="old", name="o", send_window=ALWAYS, enrol=EnrolRule(tags=["clients"]),
                                         steps=[Step(delay="1d")]), now)
    enrol_campaign(deps.store, "old", now=now)
    _invoice(deps, "OLD-1", "ct1", 10_000, due=None)
    record_payment(deps.store, "OLD-1", now=now)
    assert deps.store.followups.get("old:ct1").state == FollowUpState.STOPPED  # type: ignore[union-attr]
    assert deps.store.followups.get("old:ct2").state == FollowUpState.SCHEDULED  # type: ignore[union-attr]


def test_a_send_started_before_the_payment_is_not_withdrawn(owed: App, clock: FakeClock) -> None:
    _start(owed, clock)
    queue = owed.queue
    assert isinstance(queue, RecordingQueue)
    for message_id, _ in list(queue.sends):
        if message_id == "inv:ct2:0":
            assert send_message(owed, message_id) is not None
    apply_payment_event(owed.store, PaymentEvent(provider="stripe", event_id="evt_2", type="payment_intent.succeeded",
                                                 kind=PaymentKind.PAID, reference="FA-201"), now=clock.now())
    assert owed.store.messages.get("inv:ct2:0").state == MessageState.SENT  # type: ignore[union-attr]
    assert owed.store.invoices.get("FA-201").status == InvoiceStatus.PAID  # type: ignore[union-attr]


INVOICE_CAMPAIGN = """\
id: t1
name: T
steps:
  - delay: 0s
    template:
      content_sid: HXabababababababababababababababab
      variables: {"1": name, "2": invoice_list, "3": total_due}
  - {delay: 2d, anchor: oldest_due_date, relation: before}
enrol: {tags: [x], invoices: {overdue_days: 2, min_amount: "12,5"}}
"""


def test_an_invoice_campaign_file_reads_its_selector_and_needs_no_invoice_field_on_contacts(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(INVOICE_CAMPAIGN, encoding="utf-8")
    campaign = load_campaign(path)
    assert campaign.enrol.invoices is not None and campaign.enrol.invoices.min_amount_cents == 1250
    assert campaign.referenced_fields() == set()  # invoice_list, total_due, the anchor: from the invoices
    path.write_text(INVOICE_CAMPAIGN.replace(', invoices: {overdue_days: 2, min_amount: "12,5"}', ""), encoding="utf-8")
    with pytest.raises(InputError, match="anchor 'oldest_due_date' needs an invoice campaign"):
        load_campaign(path)
    path.write_text(INVOICE_CAMPAIGN.replace('"12,5"', '"-3"'), encoding="utf-8")
    with pytest.raises(InputError, match=r"enrol\.invoices\.min_amount"):
        load_campaign(path)


def test_the_scheduler_enrols_a_client_once_an_invoice_becomes_overdue_enough(deps: App, clock: FakeClock) -> None:
    _invoice(deps, "FA-501", "ct3", 9_000, due=_today(clock) - timedelta(days=1))
    tick(deps.store, deps.queue, clock)
    assert deps.store.followups.get("inv:ct3") is None  # 1 day overdue, the campaign waits for 3
    clock.advance(timedelta(days=2, minutes=1))
    tick(deps.store, deps.queue, clock)
    followup = deps.store.followups.get("inv:ct3")
    assert followup is not None and followup.state == FollowUpState.SCHEDULED
    _invoice(deps, "FA-502", "ct2", 9_000, due=_today(clock) - timedelta(days=30))
    clock.advance(timedelta(minutes=10))
    tick(deps.store, deps.queue, clock)
    assert deps.store.followups.get("inv:ct2") is None  # looked for once an hour
    clock.advance(timedelta(hours=1))
    tick(deps.store, deps.queue, clock)
    assert deps.store.followups.get("inv:ct2") is not None
