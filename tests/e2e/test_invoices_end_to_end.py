"""Invoice campaigns end to end, with the real processes: payments land while the reminders run.

The webhook (with STRIPE_WEBHOOK_SECRET), the scheduler, the drafting and sending workers and
the Twilio simulator run as separate processes. Clients owe one to four invoices each; an
invoice campaign reminds them in one grouped message per step (a template whose variables are
the invoice list and the total due: the simulator shows a template as its variables' values).
Stripe events signed by the stripe SDK's code, and a ``relance invoices import --sync``, pay
invoices before the first step, between steps, while a step goes out, and after the last.
What the simulator received is checked against each invoice's history (when it was paid, what
was due then) and the states left in MongoDB.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devtools.embedded import ServerProcess
from shared.adapters.mongo import MongoRepositories
from shared.domain.invoices import REMINDED, Invoice, InvoiceSource
from shared.domain.models import Language
from shared.domain.states import InvoiceStatus
from shared.language.invoice_text import invoice_facts
from tests.e2e.test_end_to_end import relance
from tests.support.invoice_e2e import (
    ALL_DAY,
    SECRET,
    TEMPLATE,
    TEMPLATE_SID,
    InvoiceStack,
    as_of,
    closed_at,
    create_campaign,
    eventually,
    import_clients,
    invoice_stack_running,
    phone_of,
    reference_of,
)
from tests.support.stripe_events import checkout_completed, post_event

pytestmark = pytest.mark.e2e

SENT_STATES = {"sent", "delivered", "read"}
MS = timedelta(milliseconds=1)  # MongoDB keeps times to the millisecond


@pytest.fixture
def invoice_stack(tmp_path: Path, redis_server: ServerProcess, mongo_uri: str) -> Iterator[InvoiceStack]:
    with invoice_stack_running(tmp_path, redis_server.url, mongo_uri) as stack:
        yield stack


def _steps_settled(store: MongoRepositories, campaign_id: str, step: int) -> Callable[[], bool]:
    """Whether every follow-up of the campaign is stopped or has its message of ``step`` sent (or final)."""

    def settled() -> bool:
        followups = list(store.followups.collection.find({"campaign_id": campaign_id}, {"state": 1}))
        stopped = {f["_id"] for f in followups if f["state"] == "stopped"}
        done = {m["followup_id"] for m in store.messages.collection.find(
            {"campaign_id": campaign_id, "step": step, "state": {"$in": sorted(SENT_STATES)}}, {"followup_id": 1})}
        return all(f["_id"] in stopped or f["_id"] in done for f in followups)

    return settled


def _all_final(store: MongoRepositories, campaign_id: str) -> Callable[[], bool]:
    def final() -> bool:
        if store.followups.collection.count_documents(
                {"campaign_id": campaign_id, "state": {"$nin": ["completed", "stopped"]}}):
            return False
        return store.messages.collection.count_documents(
            {"campaign_id": campaign_id, "state": {"$nin": ["delivered", "read", "cancelled"]}}) == 0

    return final


@dataclass(frozen=True)
class Received:
    """One message the simulator received, with what MongoDB says of it."""

    phone: str
    body: str
    step: int
    sending_at: datetime
    invoices: list[str]
    contact_id: str


def _received(stack: InvoiceStack) -> list[Received]:
    """Every message the simulator received, each found in MongoDB by its SID."""
    out = []
    for message in stack.received():
        doc = stack.store.messages.collection.find_one({"twilio_sid": message["sid"]})
        assert doc is not None, f"the simulator received a message MongoDB does not know: {message['sid']}"
        assert message["content_sid"] == TEMPLATE_SID
        out.append(Received(phone=message["to"].removeprefix("whatsapp:"), body=message["rendered_body"],
                            step=doc["step"], sending_at=doc["sending_at"], invoices=doc["invoices"] or [],
                            contact_id=doc["contact_id"]))
    return out


def _check_true_to_the_invoices(message: Received, invoices: dict[str, Invoice], language: Language,
                                windows: dict[str, list[tuple[datetime, datetime]]]) -> None:
    """The message names no invoice closed when it went out, and every invoice still open then, each
    with what was due on it then; an invoice whose change was under way at that instant may be either."""
    named = {reference for reference in invoices if reference in message.body}
    assert named == set(message.invoices), (message.body, message.invoices)
    at = message.sending_at
    for reference, invoice in invoices.items():
        if any(started <= at <= done for started, done in windows.get(reference, [])):
            continue  # the send and the change crossed: the send had started before the change was settled
        status, due = as_of(invoice, at) or (None, 0)
        assert status is not None
        if status not in REMINDED:
            assert reference not in named, f"{reference} closed at {closed_at(invoice)} but named in step " \
                                           f"{message.step} sent at {at}: {message.body!r}"
            continue
        assert reference in named, f"{reference} open but missing from step {message.step}: {message.body!r}"
        line = invoice_facts([invoice.model_copy(update={"amount_due_cents": due})], language)["invoice_list"]
        assert line in message.body, f"{reference}: {line!r} not in step {message.step} sent at {at}: " \
                                     f"{message.body!r}"


# ----------------------------------------------------------------------------------------- tests

CAMPAIGN = "factures"
STEPS = 3


def test_payments_while_an_invoice_campaign_runs(invoice_stack: InvoiceStack) -> None:
    """50 clients, 1–4 invoices each, three steps; payments before, between, during and after them."""
    stack, store = invoice_stack, invoice_stack.store
    stack.start("scheduler", "drafting", "sending")
    # Twilio answers in 200 ms: a step's 50 sends take a few seconds, its drafts wait ready meanwhile.
    httpx.post(f"{stack.sim}/_sim/config", json={"response_delay_ms": 200}, timeout=10).raise_for_status()
    clients = import_clients(stack, {i: 1 + i % 4 for i in range(50)}, "e2e-inv")
    groups = {"before": range(0, 6), "part_before": range(6, 8), "between_full": range(8, 14),
              "between_some": range(14, 20), "between_part": range(20, 24), "race": range(24, 32),
              "sync_full": range(32, 36), "sync_some": range(36, 40), "after": range(40, 44)}
    # What each invoice should end as: (status, amount due).
    expected = {ref: (InvoiceStatus.OPEN, cents) for c in clients.values() for ref, cents in c.invoices.items()}

    def pay_all(i: int) -> None:
        for n, (reference, _) in enumerate(clients[i].invoices.items()):
            due = expected[reference][1]
            assert stack.pay(reference, due, intent=(i + n) % 2 == 1) == "paid"
            expected[reference] = (InvoiceStatus.PAID, 0)

    def pay_part(i: int, reference: str) -> None:
        part = expected[reference][1] // 2
        assert stack.pay(reference, part, intent=i % 2 == 1) == "part_paid"
        expected[reference] = (InvoiceStatus.PARTIALLY_PAID, expected[reference][1] - part)

    campaign = {"id": CAMPAIGN, "name": "Relance factures", "send_window": ALL_DAY,
                "enrol": {"tags": ["e2e-inv"], "invoices": {"overdue_days": 0}},
                "steps": [{"delay": "10s", "template": TEMPLATE},
                          {"delay": "10s", "anchor": "previous", "tone": "firm", "template": TEMPLATE},
                          {"delay": "14s", "anchor": "previous", "tone": "firm", "template": TEMPLATE}]}
    assert create_campaign(stack, campaign) == 50

    # Before the first step (10 s away): some clients pay everything, some a part.
    for i in groups["before"]:
        pay_all(i)
    for i in groups["part_before"]:
        pay_part(i, reference_of(i, 0))
    stack.wait(_steps_settled(store, CAMPAIGN, 0), 60, "the first step sent")

    # Between the first and the second step.
    for i in groups["between_full"]:
        pay_all(i)
    for i in groups["between_some"]:
        reference = reference_of(i, 0)
        assert stack.pay(reference, expected[reference][1]) == "paid"
        expected[reference] = (InvoiceStatus.PAID, 0)
    for i in groups["between_part"]:
        pay_part(i, reference_of(i, len(clients[i].invoices) - 1))
    # A replay of a payment already counted changes nothing (Stripe retries until it got a 2xx).
    replay = checkout_completed("evt_e2e_0001", reference_of(0, 0), 1, payment_intent="pi_other")
    assert post_event(stack.webhook, replay, SECRET)["outcome"] == "duplicate"

    # While the second step goes out: payments race the drafts and the sends. A client of the race
    # group pays as soon as its reminder is seen drafted (ready, not sent yet), or at the end.
    def race_pay(i: int) -> None:  # everything, or one invoice of several (the reminder is drafted again)
        if i % 2 == 0:
            pay_all(i)
        else:
            reference = reference_of(i, 0)
            assert stack.pay(reference, expected[reference][1], intent=True) == "paid"
            expected[reference] = (InvoiceStatus.PAID, 0)

    race_ids = {f"{CAMPAIGN}:{store.contacts.by_phone(phone_of(i)).id}:1": i  # type: ignore[union-attr]
                for i in groups["race"]}
    stack.wait(lambda: store.messages.collection.count_documents({"campaign_id": CAMPAIGN, "step": 1}) > 0, 60,
               "the second step started")
    caught: list[int] = []
    deadline = time.monotonic() + 4
    while len(caught) < len(race_ids) and time.monotonic() < deadline:
        for doc in store.messages.collection.find({"_id": {"$in": list(race_ids)}, "state": "ready"}, {"_id": 1}):
            if race_ids[doc["_id"]] not in caught:
                caught.append(race_ids[doc["_id"]])
                race_pay(race_ids[doc["_id"]])
        time.sleep(0.02)
    assert caught, "no reminder of the race group was seen drafted and not sent yet: no race was run"
    for i in groups["race"]:
        if i not in caught:
            race_pay(i)
    stack.wait(_steps_settled(store, CAMPAIGN, 1), 60, "the second step sent")

    # Between the second and the last step: the nightly export closes what was paid by transfer.
    closed_by_sync = {ref for i in groups["sync_full"] for ref in clients[i].invoices}
    closed_by_sync |= {reference_of(i, 0) for i in groups["sync_some"]}
    owner = {ref: client.phone for client in clients.values() for ref in client.invoices}
    rows = [{"phone": owner[inv.reference], "invoice": inv.reference,
             "amount": f"{inv.amount_cents / 100:.2f}", "amount_due": f"{inv.amount_due_cents / 100:.2f}"}
            for inv in store.invoices.find(statuses=REMINDED) if inv.reference not in closed_by_sync]
    export = stack.workdir / "export.csv"
    with export.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    started = datetime.now(UTC)
    synced = relance(stack.env, "invoices", "import", str(export), "--sync")
    for reference in closed_by_sync:
        stack.windows.setdefault(reference, []).append((started, datetime.now(UTC)))
    assert synced.returncode == 0, synced.stderr
    assert f"sync: {len(closed_by_sync)} invoice(s) closed as paid" in synced.stdout, synced.stdout
    expected.update({ref: (InvoiceStatus.PAID, 0) for ref in closed_by_sync})
    stack.wait(_steps_settled(store, CAMPAIGN, 2), 60, "the last step sent")

    # After the last step: paid, nothing more to send.
    for i in groups["after"]:
        pay_all(i)
    stack.wait(_all_final(store, CAMPAIGN), 60, "every follow-up finished and every message delivered")

    invoices = {inv.reference: inv for inv in store.invoices.find()}
    assert {ref: (inv.status, inv.amount_due_cents) for ref, inv in invoices.items()} == expected
    received = _received(stack)
    by_client: dict[int, list[Received]] = {}
    for message in received:
        by_client.setdefault(int(message.phone[-5:]), []).append(message)

    # Nobody received two messages for one step.
    per_step = Counter((m.phone, m.step) for m in received)
    assert max(per_step.values()) == 1, [key for key, n in per_step.items() if n > 1]

    for i, client in clients.items():
        mine = {ref: invoices[ref] for ref in client.invoices}
        messages = by_client.get(i, [])
        # Each message true to the invoices when it went out (none paid named, every open one named).
        for message in messages:
            _check_true_to_the_invoices(message, mine, client.language, stack.windows)
        contact = store.contacts.by_phone(client.phone)
        assert contact is not None
        followup = store.followups.collection.find_one({"_id": f"{CAMPAIGN}:{contact.id}"})
        assert followup is not None
        for reference, invoice in mine.items():  # each closing happened within the request that made it
            closed = closed_at(invoice)
            assert closed is None or any(started - MS <= closed <= done
                                         for started, done in stack.windows[reference]), reference
        if all(closed_at(inv) for inv in mine.values()):
            # Everything paid: nothing sent once the last payment was settled, and the follow-up
            # stopped as paid unless its last step had gone out.
            paid_at = max(done for ref in mine for _, done in stack.windows[ref])
            late = [m.step for m in messages if m.sending_at > paid_at]
            assert not late, f"client {i} paid everything at {paid_at}, then received steps {late}"
            if any(m.step == STEPS - 1 for m in messages):
                assert followup["state"] == "completed", (i, followup)
            else:
                assert (followup["state"], followup.get("stop_reason")) == ("stopped", "paid"), (i, followup)
        else:
            assert followup["state"] == "completed", (i, followup)

    def steps(members: range | list[int]) -> dict[int, list[int]]:
        return {i: sorted(m.step for m in by_client.get(i, [])) for i in members}

    # What each group received, as planned (the race group: whatever the clock gave, checked above).
    assert steps(groups["before"]) == {i: [] for i in groups["before"]}
    assert steps(groups["between_full"]) == {i: [0] for i in groups["between_full"]}
    assert steps(groups["sync_full"]) == {i: [0, 1] for i in groups["sync_full"]}
    for group in ("part_before", "between_part", "after"):
        assert steps(groups[group]) == {i: [0, 1, 2] for i in groups[group]}, group
    # One invoice paid of several: the reminders go on for the others; of one, they stop.
    assert steps(groups["between_some"]) == {i: [0, 1, 2] if len(clients[i].invoices) > 1 else [0]
                                             for i in groups["between_some"]}
    assert steps(groups["sync_some"]) == {i: [0, 1, 2] if len(clients[i].invoices) > 1 else [0, 1]
                                          for i in groups["sync_some"]}
    untouched = [i for i in clients if not any(i in members for members in groups.values())]
    assert steps(untouched) == {i: [0, 1, 2] for i in untouched}
    for i in untouched:  # a client who paid nothing: every step names every invoice
        assert all(set(m.invoices) == set(clients[i].invoices) for m in by_client[i])
    assert len(received) == sum(len(v) for v in by_client.values())


def test_a_payment_between_drafting_and_sending(invoice_stack: InvoiceStack) -> None:
    """The reminders are drafted (``ready``) while no sending worker runs; payments land; then sending starts.

    Client 0 pays its only invoice: its reminder is cancelled and never sent, its follow-up
    stopped as paid. Client 1 pays one of its two invoices and client 2 a part of its own: their
    reminders are withdrawn and drafted again, and what goes out states what they owe now.
    Client 3's invoice is marked paid behind the webhook's back (no settling): the sending
    worker's own re-read catches it. Client 4 pays nothing and gets its reminder. Client 5 pays
    one of its two invoices by command (``relance invoices paid``, which has no queue): its
    reminder is withdrawn at once and drafted again by the scheduler's sweep.
    """
    stack, store = invoice_stack, invoice_stack.store
    stack.start("scheduler", "drafting", STALE_AFTER_SECONDS="3")  # the sweep redrafts client 5 soon
    clients = import_clients(stack, {0: 1, 1: 2, 2: 1, 3: 1, 4: 1, 5: 2}, "e2e-race")
    campaign = {"id": "race", "name": "Relance", "send_window": ALL_DAY,
                "enrol": {"tags": ["e2e-race"], "invoices": {"overdue_days": 0}},
                "steps": [{"delay": "1s", "template": TEMPLATE}]}
    assert create_campaign(stack, campaign) == 6
    ids = {i: f"race:{store.contacts.by_phone(phone_of(i)).id}:0" for i in clients}  # type: ignore[union-attr]

    def state(i: int) -> str | None:
        doc = store.messages.collection.find_one({"_id": ids[i]}, {"state": 1})
        return doc["state"] if doc else None

    stack.wait(lambda: all(state(i) == "ready" for i in clients), 60, "the reminders drafted")
    first_draft = store.messages.collection.find_one({"_id": ids[1]})
    assert first_draft is not None and sorted(first_draft["invoices"]) == sorted(clients[1].invoices)
    first_key_2 = store.messages.collection.find_one({"_id": ids[2]})["invoices_key"]  # type: ignore[index]

    assert stack.pay(reference_of(0, 0), clients[0].invoices[reference_of(0, 0)]) == "paid"
    assert stack.pay(reference_of(1, 0), clients[1].invoices[reference_of(1, 0)], intent=True) == "paid"
    part = clients[2].invoices[reference_of(2, 0)] - 4_000
    assert stack.pay(reference_of(2, 0), part) == "part_paid"
    # The webhook settles client 0 at once: cancelled and stopped before any sender runs (checked below,
    # after what the simulator received).
    followup_0 = store.followups.collection.find_one({"_id": ids[0].removesuffix(":0")})
    assert followup_0 is not None
    settled_0 = (state(0), followup_0["state"], followup_0.get("stop_reason"))
    # Client 1 and 2: withdrawn and drafted again (the drafting worker runs) with what they owe now.

    def redrafted() -> bool:
        doc_1, doc_2 = (store.messages.collection.find_one({"_id": ids[i]}) for i in (1, 2))
        doc_5 = store.messages.collection.find_one({"_id": ids[5]})
        return (doc_1 is not None and doc_2 is not None and doc_5 is not None
                and doc_1["state"] == doc_2["state"] == doc_5["state"] == "ready"
                and doc_1["invoices"] == [reference_of(1, 1)] and doc_2["invoices_key"] != first_key_2
                and doc_5["invoices"] == [reference_of(5, 1)])

    paid_by_command = relance(stack.env, "invoices", "paid", reference_of(5, 0))
    assert paid_by_command.returncode == 0, paid_by_command.stderr
    # Withdrawn by the command (its history says so), and drafted again: at once through Redis, or by the sweep.
    withdrawn_5 = store.messages.collection.find_one({"_id": ids[5]}, {"history": 1})
    drafted_again = eventually(redrafted, 20)
    # Client 3: paid where no settle runs (another program writing the store).
    assert store.invoices.mark_paid(reference_of(3, 0), source=InvoiceSource.SYNC, now=datetime.now(UTC))
    assert state(3) == "ready"

    stack.start("sending")
    stack.wait(lambda: all(state(i) in ("delivered", "read", "cancelled") for i in clients), 60,
               "every reminder delivered or cancelled")
    time.sleep(1.0)  # anything else in the sending queue has had its chance

    received = stack.received()
    by_phone = {m["to"].removeprefix("whatsapp:"): m for m in received}
    assert phone_of(0) not in by_phone, "a reminder reached a client who had paid between drafting and sending"
    assert phone_of(3) not in by_phone, "a reminder reached a client whose invoice was paid before it was sent"
    assert sorted(by_phone) == sorted([phone_of(1), phone_of(2), phone_of(4), phone_of(5)]) and len(received) == 4
    for i in (1, 5):  # one invoice of two paid: the other alone
        body = by_phone[phone_of(i)]["rendered_body"]
        assert reference_of(i, 1) in body and reference_of(i, 0) not in body, body
    invoice_2 = store.invoices.get(reference_of(2, 0))
    assert invoice_2 is not None and invoice_2.amount_due_cents == 4_000
    line_2 = invoice_facts([invoice_2], clients[2].language)["invoice_list"]  # what is due now: 40,00 €
    assert line_2 in by_phone[phone_of(2)]["rendered_body"]
    # The payment itself settled the reminders (before any sender ran), not only the sender's re-read.
    assert settled_0 == ("cancelled", "stopped", "paid"), settled_0
    assert withdrawn_5 is not None and "cancelled" in [entry["state"] for entry in withdrawn_5["history"]], withdrawn_5
    assert drafted_again, "the reminders of clients 1, 2 and 5 were not drafted again after their payments"
    assert (state(0), state(3)) == ("cancelled", "cancelled")
    for i in (0, 3):
        doc = store.followups.collection.find_one({"_id": ids[i].removesuffix(":0")})
        assert doc is not None and (doc["state"], doc["stop_reason"]) == ("stopped", "paid"), (i, doc)
