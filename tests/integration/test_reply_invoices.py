"""Replies and invoices, on the real MongoDB-compatible server: "I paid" marks the reminded
invoices claimed_paid, a dispute marks the unpaid ones disputed, `relance handled --paid` or
`--resume` settles them, and "how much?" is answered from the client's invoices."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from shared.adapters.mongo import MongoRepositories
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
    message_id_for,
)
from shared.domain.states import InvoiceStatus
from shared.fakes import FakeSender, RecordingQueue
from shared.language.drafts import OfflineDrafter
from shared.language.factcheck import check_draft
from shared.language.formatting import format_amount
from shared.language.invoice_text import invoice_facts
from shared.ports import Classification, ClassifyRequest, DraftRequest, Intent
from shared.settings import load_settings
from shared.usecases.campaigns import enrol_campaign
from shared.usecases.context import App
from shared.usecases.conversations import handled_lines
from shared.usecases.handover import close_hand_over
from shared.usecases.payments import PaymentEvent, PaymentKind, apply_payment_event
from shared.usecases.replies import process_inbound
from shared.usecases.scheduling import tick
from tests.support.actors import drain
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration
ST = InvoiceStatus
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start="00:00", end="23:59")  # type: ignore[arg-type]
TEMPLATE = TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"})
PHONE = "+33612345678"
OWNER = "+33700000001"
LEA = "+33611112222"
# FA-1 open, FA-2 part-paid, FA-3 paid, FA-4 cancelled, FA-5 disputed already; FA-9 another client's.
INVOICES = {"FA-1": (ST.OPEN, 125050, 125050, date(2026, 2, 15)),
            "FA-2": (ST.PARTIALLY_PAID, 30000, 10000, date(2026, 2, 20)),
            "FA-3": (ST.PAID, 5000, 0, date(2026, 1, 10)),
            "FA-4": (ST.CANCELLED, 7000, 7000, date(2026, 1, 12)),
            "FA-5": (ST.DISPUTED, 9000, 9000, date(2026, 1, 20))}


class ScriptedClassifier:
    def __init__(self) -> None:
        self.next = Classification(intent=Intent.OTHER, confidence=0.0, source="test")

    def classify(self, request: ClassifyRequest) -> Classification:
        return self.next


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "BUSINESS_NAME": "Atelier Dupont",
                              "OWNER_WHATSAPP_NUMBER": OWNER})
    app = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                    sender=FakeSender(), classifier=ScriptedClassifier())
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR), now)
    store.contacts.upsert(Contact(id="ct2", phone="+33698765432", name="Paul", language=Language.FR), now)
    for reference, (status, amount, due, due_date) in INVOICES.items():
        _add(store, clock, reference, "ct1", amount, due_date, status=status, due=due)
    _add(store, clock, "FA-9", "ct2", 40000, date(2026, 2, 1))
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(delay="0s", template=TEMPLATE), Step(delay="2d", anchor="previous", template=TEMPLATE)]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now, now=now)
    tick(store, app.queue, clock)
    drain(app)
    return app


def _add(store: MongoRepositories, clock: FakeClock, reference: str, contact_id: str, amount: int, due_date: date,
         *, status: InvoiceStatus = ST.OPEN, due: int | None = None) -> None:
    due = amount if due is None else due
    open_status = ST.PARTIALLY_PAID if 0 < due < amount else ST.OPEN
    assert store.invoices.add(Invoice(id=f"in_{reference}", reference=reference, contact_id=contact_id,
                                      amount_cents=amount, amount_due_cents=due, due_date=due_date,
                                      status=open_status), source=InvoiceSource.IMPORT, now=clock.now())
    moves = {ST.PAID: store.invoices.mark_paid, ST.CANCELLED: store.invoices.cancel,
             ST.DISPUTED: store.invoices.dispute}
    if status in moves:
        assert moves[status](reference, source=InvoiceSource.COMMAND, now=clock.now())


def _reply(app: App, intent: Intent, text: str, sid: str = "SM" + "7" * 32, phone: str = PHONE,
           **reading: object) -> str:
    app.classifier.next = Classification(intent=intent, confidence=0.95, source="test", **reading)  # type: ignore[attr-defined,arg-type]
    event = {"kind": "inbound", "sid": sid, "state": "received", "from": f"whatsapp:{phone}", "body": text,
             "num_media": 0}
    app.store.events.record(f"inbound:{sid}", event, app.clock.now())
    result = process_inbound(app, f"inbound:{sid}")
    drain(app)
    return str(result)


def _statuses(store: MongoRepositories) -> dict[str, tuple[str, int]]:
    return {i.reference: (i.status.value, i.amount_due_cents) for i in store.invoices.find()}


def _sources(store: MongoRepositories, reference: str) -> list[tuple[str, str]]:
    invoice = store.invoices.get(reference)
    assert invoice is not None
    return [(change.what, change.source.value) for change in invoice.history]


def _sent_to(app: App, phone: str) -> list[str]:
    return [(m.body or "").replace("\u202f", " ").replace("\u00a0", " ")
            for m in app.sender.sent if m.to == phone]  # type: ignore[attr-defined]


BEFORE = {"FA-1": ("open", 125050), "FA-2": ("partially_paid", 10000), "FA-3": ("paid", 0),
          "FA-4": ("cancelled", 7000), "FA-5": ("disputed", 9000), "FA-9": ("open", 40000)}


# ------------------------------------------------------------------ "I paid"
@pytest.mark.parametrize("action", ["pause_and_verify", "stop"])
def test_i_paid_marks_the_reminded_invoices_claimed_paid_once(deps: App, action: str) -> None:
    deps.rules = replace(deps.rules, paid_claim_action=action)  # type: ignore[arg-type]
    assert _statuses(deps.store) == BEFORE
    outcome = _reply(deps, Intent.PAID, "c'est réglé")
    assert outcome.startswith("paid_claimed paused=1" if action == "pause_and_verify" else "paid stopped=1")
    # Open and part-paid: claimed paid (the amount due kept); paid, cancelled, disputed, and
    # another client's invoice: as they were.
    assert _statuses(deps.store) == {**BEFORE, "FA-1": ("claimed_paid", 125050), "FA-2": ("claimed_paid", 10000)}
    assert _sources(deps.store, "FA-1") == [("created", "import"), ("claim_paid", "reply")]
    # The event redelivered (processed again after a crash): nothing moves twice.
    deps.store.events.collection.update_one({"_id": "inbound:SM" + "7" * 32}, {"$set": {"state": "received"}})
    process_inbound(deps, "inbound:SM" + "7" * 32)
    drain(deps)
    assert _sources(deps.store, "FA-1") == [("created", "import"), ("claim_paid", "reply")]
    assert _sources(deps.store, "FA-2")[-1] == ("claim_paid", "reply") and len(_sources(deps.store, "FA-2")) == 2


def test_an_opt_out_that_claims_payment_marks_the_invoices_claimed_paid(deps: App) -> None:
    outcome = _reply(deps, Intent.OPT_OUT, "J'ai déjà payé, arrêtez de m'écrire")
    assert outcome.startswith("opt_out paused=1")
    assert _statuses(deps.store) == {**BEFORE, "FA-1": ("claimed_paid", 125050), "FA-2": ("claimed_paid", 10000)}


def test_a_plain_opt_out_leaves_the_invoices(deps: App) -> None:
    assert _reply(deps, Intent.OPT_OUT, "ne m'écrivez plus").startswith("opt_out stopped=1")
    assert _statuses(deps.store) == BEFORE


def test_a_dispute_marks_every_unpaid_invoice_disputed(deps: App) -> None:
    assert _reply(deps, Intent.DISPUTE, "je conteste cette facture").startswith("needs_human")
    assert _statuses(deps.store) == {**BEFORE, "FA-1": ("disputed", 125050), "FA-2": ("disputed", 10000)}
    assert _sources(deps.store, "FA-2")[-1] == ("dispute", "reply")
    assert _sources(deps.store, "FA-5") == [("created", "import"), ("dispute", "command")]  # disputed before


# ------------------------------------------------------------------ relance handled
def test_handled_paid_marks_the_claimed_invoices_paid(deps: App, clock: FakeClock) -> None:
    _reply(deps, Intent.PAID, "virement fait")
    closed = close_hand_over(deps.store, PHONE, action="paid", now=clock.now())
    assert sorted(closed.invoices) == ["FA-1", "FA-2"]
    assert "  invoice(s) marked paid: FA-1, FA-2" in handled_lines(closed)
    # The disputed one is not the client's claim: it stays for a person.
    assert _statuses(deps.store) == {**BEFORE, "FA-1": ("paid", 0), "FA-2": ("paid", 0)}
    assert _sources(deps.store, "FA-1")[-1] == ("mark_paid", "command")
    again = close_hand_over(deps.store, PHONE, action="paid", now=clock.now())
    assert again.invoices == () and _sources(deps.store, "FA-1")[-1] == ("mark_paid", "command")


def test_handled_resume_reopens_the_claimed_and_disputed_invoices(deps: App, clock: FakeClock) -> None:
    _reply(deps, Intent.PAID, "virement fait")
    closed = close_hand_over(deps.store, PHONE, action="resume", now=clock.now())
    assert sorted(closed.invoices) == ["FA-1", "FA-2", "FA-5"]
    assert "  invoice(s) reopened: FA-1, FA-2, FA-5" in handled_lines(closed)
    assert _statuses(deps.store) == {**BEFORE, "FA-1": ("open", 125050), "FA-2": ("open", 10000),
                                     "FA-5": ("open", 9000)}
    assert _sources(deps.store, "FA-1")[-1] == ("reopen", "command")
    assert close_hand_over(deps.store, PHONE, action="resume", now=clock.now()).invoices == ()


@pytest.mark.parametrize("action", ["stop", "keep"])
def test_handled_stop_or_keep_leaves_the_invoices(deps: App, clock: FakeClock, action: str) -> None:
    _reply(deps, Intent.PAID, "virement fait")
    closed = close_hand_over(deps.store, PHONE, action=action, now=clock.now())
    assert closed.invoices == ()
    assert _statuses(deps.store) == {**BEFORE, "FA-1": ("claimed_paid", 125050), "FA-2": ("claimed_paid", 10000)}


# ------------------------------------------------------------------ "how much do I owe?"
def _eur(cents: int) -> str:
    return format_amount(Decimal(cents) / 100, "EUR", Language.FR).replace("\u202f", " ").replace("\u00a0", " ")


def test_the_amount_is_answered_from_the_invoices_reminders_cover(deps: App) -> None:
    assert _reply(deps, Intent.QUESTION, "je vous dois combien ?", question_topic="amount") \
        == "question answered (amount)"
    answer = _sent_to(deps, PHONE)[-1]
    total = _eur(125050 + 10000)
    assert answer.startswith(f"Il vous reste {total} à régler sur 2 factures :\n")
    lines = answer.split("\n")
    assert lines[1].startswith(f"FA-1 : {_eur(125050)} (échéance : 15 février 2026")
    assert lines[2].startswith(f"FA-2 : {_eur(10000)} (échéance : 20 février 2026")
    assert lines[-1] == "Atelier Dupont"
    for other in ("FA-3", "FA-4", "FA-5", "FA-9"):  # paid, cancelled, disputed, another client's
        assert other not in answer


def test_one_invoice_is_answered_in_english_and_passes_the_facts_check(deps: App) -> None:
    deps.store.contacts.collection.update_one({"_id": "ct1"}, {"$set": {"language": "en"}})
    deps.store.invoices.cancel("FA-2", source=InvoiceSource.COMMAND, now=deps.clock.now())
    assert _reply(deps, Intent.QUESTION, "how much do I owe?", question_topic="amount") \
        == "question answered (amount)"
    answer = _sent_to(deps, PHONE)[-1]
    assert answer.startswith("You have ") and " left to pay:\nFA-1: " in answer and "FA-2" not in answer
    invoice = deps.store.invoices.get("FA-1")
    assert invoice is not None
    request = DraftRequest(contact_name="Marie", language=Language.EN, facts={}, step_index=0, step_count=1,
                           tone="courteous", business_name="Atelier Dupont", campaign_name="")
    # What allows it is the invoice's facts: without them the same text would be refused.
    assert check_draft(deps.sender.sent[-1].body or "", request)  # type: ignore[attr-defined]
    facts = invoice_facts([invoice], Language.EN)
    assert check_draft(deps.sender.sent[-1].body or "", replace(request, facts=facts)) == []  # type: ignore[attr-defined]


def test_without_invoices_the_amount_comes_from_the_contact_fields_as_before(deps: App) -> None:
    for reference in ("FA-1", "FA-2"):
        deps.store.invoices.cancel(reference, source=InvoiceSource.COMMAND, now=deps.clock.now())
    deps.store.contacts.collection.update_one({"_id": "ct1"}, {"$set": {"fields": {
        "invoice_number": "FA-OLD", "amount": "80.00", "currency": "EUR"}}})
    assert _reply(deps, Intent.QUESTION, "combien ?", question_topic="amount") == "question answered (amount)"
    assert _sent_to(deps, PHONE)[-1] == f"Le montant de la facture FA-OLD est de {_eur(8000)}.\nAtelier Dupont"


# ------------------------------------------------------------------ with an invoice campaign
def test_a_payment_while_a_claim_is_checked_leaves_the_rest_to_the_person(deps: App, clock: FakeClock) -> None:
    """Léa owes FA-11 and FA-12 and says she paid both; Stripe reports FA-11 only. Her follow-up
    waits for the person (not stopped as paid: FA-12 is only claimed), whose --resume reopens
    FA-12 and sends the reminders on about it alone."""
    store, now = deps.store, clock.now()
    deps.drafter = OfflineDrafter()
    store.contacts.upsert(Contact(id="ct3", phone=LEA, name="Léa", language=Language.FR, tags=["late"]), now)
    _add(store, clock, "FA-11", "ct3", 20000, date(2026, 1, 5))
    _add(store, clock, "FA-12", "ct3", 35000, date(2026, 1, 25))
    store.campaigns.create(Campaign(id="inv", name="Factures", send_window=ALWAYS,
                                    enrol=EnrolRule(tags=["late"], invoices=InvoiceSelector()),
                                    steps=[Step(delay="0s", template=TEMPLATE), Step(delay="2d", anchor="previous")]),
                           now)
    assert enrol_campaign(store, "inv", now=now).enrolled == 1
    tick(store, deps.queue, clock)
    drain(deps)
    first = store.messages.get(message_id_for("inv:ct3", 0))
    assert first is not None and first.state == "sent" and first.invoices == ["FA-11", "FA-12"]

    assert _reply(deps, Intent.PAID, "j'ai tout réglé", sid="SM" + "5" * 32, phone=LEA).startswith("paid_claimed")
    apply_payment_event(store, PaymentEvent("stripe", "evt_11", "payment_intent.succeeded", PaymentKind.PAID,
                                            "FA-11", 20000, "EUR", "pi_11"), now=clock.now(), queue=deps.queue)
    followup = store.followups.get("inv:ct3")
    assert followup is not None and (followup.state, followup.pause_reason) == ("paused", "paid_claimed")

    closed = close_hand_over(store, LEA, action="resume", now=clock.now())
    assert (closed.invoices, closed.moved) == (("FA-12",), 1)
    clock.advance(timedelta(hours=2))  # past the pacing gap since the first reminder
    tick(store, deps.queue, clock)
    drain(deps)
    second = store.messages.get(message_id_for("inv:ct3", 1))
    assert second is not None and second.state == "sent" and second.invoices == ["FA-12"]
    assert "FA-12" in second.body and "FA-11" not in second.body


def _link(app: App, reference: str, url: str) -> None:
    assert app.store.invoices.update_details(reference, {"payment_link": url}, source=InvoiceSource.COMMAND,
                                             now=app.clock.now())


def test_where_to_pay_several_invoices_gives_each_link(deps: App) -> None:
    _link(deps, "FA-1", "https://pay.example.com/1")
    _link(deps, "FA-2", "https://pay.example.com/2")
    assert _reply(deps, Intent.QUESTION, "où je peux payer ?", question_topic="payment_link") \
        == "question answered (payment_link)"
    assert _sent_to(deps, PHONE)[-1] == ("Vous pouvez régler vos factures ici :\nFA-1 : https://pay.example.com/1\n"
                                         "FA-2 : https://pay.example.com/2\nAtelier Dupont")


def test_one_invoice_answers_from_itself_not_from_the_contact_s_old_fields(deps: App) -> None:
    deps.store.invoices.cancel("FA-2", source=InvoiceSource.COMMAND, now=deps.clock.now())
    _link(deps, "FA-1", "https://pay.example.com/1")
    deps.store.contacts.collection.update_one({"_id": "ct1"}, {"$set": {"fields": {
        "invoice_number": "FA-OLD", "payment_link": "https://old.example.com/x", "due_date": "2025-01-01"}}})
    assert _reply(deps, Intent.QUESTION, "le lien ?", question_topic="payment_link") \
        == "question answered (payment_link)"
    assert _sent_to(deps, PHONE)[-1] == \
        "Vous pouvez régler la facture FA-1 ici : https://pay.example.com/1\nAtelier Dupont"
    assert _reply(deps, Intent.QUESTION, "pour quand ?", sid="SM" + "6" * 32, question_topic="due_date") \
        == "question answered (due_date)"
    assert _sent_to(deps, PHONE)[-1] == "La facture FA-1 était à régler le 15 février 2026.\nAtelier Dupont"


def test_when_several_invoices_are_due_the_list_answers(deps: App) -> None:
    assert _reply(deps, Intent.QUESTION, "c'est pour quand ?", question_topic="due_date") \
        == "question answered (due_date)"
    answer = _sent_to(deps, PHONE)[-1]
    assert "(échéance : 15 février 2026)" in answer and "(échéance : 20 février 2026)" in answer


def test_what_several_invoices_cannot_answer_goes_to_a_person(deps: App) -> None:
    # The contact's old field would say EUR; several invoices give no single currency: a person answers.
    deps.store.contacts.collection.update_one({"_id": "ct1"}, {"$set": {"fields": {"currency": "EUR"}}})
    assert _reply(deps, Intent.QUESTION, "en quelle devise ?", question_topic="currency") \
        == "needs_human: question the data cannot answer"
    assert _reply(deps, Intent.QUESTION, "le lien ?", sid="SM" + "6" * 32, question_topic="payment_link") \
        == "recorded (hand-over open)"
