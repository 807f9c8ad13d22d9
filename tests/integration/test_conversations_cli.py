"""Unknown numbers and hand-overs seen by the operator: `relance conversations`, `relance conversation
PHONE`, and `relance handled PHONE` closing a hand-over.

A message from a number that is no contact is kept and flagged by the replies actor; these tests
produce such messages with the real ``process_inbound`` and read what the real CLI prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.adapters.mongo.messages import unknown_query as _unknown_query
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step, TemplateRef
from shared.domain.reasons import HandOverReason
from shared.fakes import FakeSender, RecordingQueue
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.replies import process_inbound
from tests.support.cli import Relance, relance_runner
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration
PAID_CLAIM = HandOverReason.PAID_CLAIM
PAID_OPT_OUT = HandOverReason.PAID_OPT_OUT
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start="00:00", end="23:59")  # type: ignore[arg-type]
TEMPLATE = TemplateRef(content_sid="HX" + "ab" * 16, variables={"1": "name"})
PHONE = "+33612345678"  # Marie, a contact with a follow-up
OWNER = "+33611223344"
STRANGER = "+33799999999"
OTHER = "+33755555555"
NOBODY = "+33611111111"
MARIE = f"{PHONE}  Marie  [c1: scheduled]  last reply -"
FLAG = "needs a person: message from an unknown number"


@pytest.fixture
def deps(store: MongoRepositories, clock: FakeClock) -> App:
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "BUSINESS_NAME": "Atelier Dupont",
                              "OWNER_WHATSAPP_NUMBER": OWNER})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender(), classifier=None)
    now = clock.now()
    store.contacts.upsert(Contact(id="ct1", phone=PHONE, name="Marie", language=Language.FR,
                                 fields={"invoice_number": "FA-2026-001"}), now)
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, steps=[
        Step(delay="0s", template=TEMPLATE)]), now)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=now + timedelta(days=1), now=now)
    return deps


@pytest.fixture
def relance(mongo_uri: str, db_name: str, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> Relance:
    """``relance`` with its log lines kept: these commands must print nothing else on stderr."""
    return relance_runner(mongo_uri, db_name, capsys, monkeypatch, keep_logs=True)


def _inbound(deps: App, phone: str, body: str, sid: str) -> str | None:
    """A WhatsApp message from ``phone``, stored as the webhook does and processed by the replies actor."""
    event = {"kind": "inbound", "sid": sid, "state": "received", "from": f"whatsapp:{phone}", "body": body,
             "num_media": 0}
    deps.store.events.record(f"inbound:{sid}", event, deps.clock.now())
    result = process_inbound(deps, f"inbound:{sid}")
    return None if result is None else str(result)


def _sid(n: int) -> str:
    return "SM" + f"{n:032d}"


def _three_numbers_write(deps: App, clock: FakeClock) -> None:
    """10:05 another unknown number, 10:10 and 10:40 the stranger, 10:50 the owner (UTC)."""
    clock.advance(timedelta(minutes=5))
    assert _inbound(deps, OTHER, "Vous êtes qui ?", _sid(1)) == "unknown_sender"
    clock.advance(timedelta(minutes=5))
    assert _inbound(deps, STRANGER, "Bonjour, j'ai reçu   une facture\nmais je ne suis pas client", _sid(2)) \
        == "unknown_sender"
    clock.advance(timedelta(minutes=30))
    assert _inbound(deps, STRANGER, "Vous pouvez me rappeler ?", _sid(3)) == "unknown_sender"
    clock.advance(timedelta(minutes=10))
    assert _inbound(deps, OWNER, "ok vu", _sid(4)) == "owner"


def test_unknown_numbers_are_listed_newest_first_and_never_the_owner(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    assert relance("conversations", "--needs-human") == (0, "no conversation needs a person\n", "")
    assert relance("conversations") == (0, MARIE + "\n", "")

    _three_numbers_write(deps, clock)

    stranger = f"{STRANGER}  unknown number  [2 messages]  last message 2026-03-02 10:40  {FLAG}"
    other = f"{OTHER}  unknown number  [1 message]  last message 2026-03-02 10:05  {FLAG}"
    assert relance("conversations", "--needs-human") == (0, f"{stranger}\n{other}\n", "")
    # Marie's follow-up last moved at 10:00, before both numbers wrote: listed after them.
    assert relance("conversations") == (0, f"{stranger}\n{other}\n{MARIE}\n", "")
    # --limit holds for the whole list.
    assert relance("conversations", "--limit", "1") == (0, f"{stranger}\n", "")
    assert relance("conversations", "--limit", "2") == (0, f"{stranger}\n{other}\n", "")
    assert relance("conversations", "--needs-human", "--limit", "1") == (0, f"{stranger}\n", "")
    code, out, _ = relance("conversations")
    assert code == 0 and OWNER not in out  # the owner's own number is no unknown sender


def test_an_unknown_numbers_messages_are_shown_and_a_number_that_never_wrote_is_refused(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _three_numbers_write(deps, clock)

    assert relance("conversation", "07 99 99 99 99") == (0, (  # national format, as typed
        f"{STRANGER}: unknown number, not a contact (2 messages); to follow it up, add it to a contacts file "
        "and run `relance contacts import FILE`\n"
        f"{FLAG}\n"
        "2026-03-02 10:10 ← received: Bonjour, j'ai reçu une facture mais je ne suis pas client\n"
        "2026-03-02 10:40 ← received: Vous pouvez me rappeler ?\n"), "")

    refusal = (f"error: no contact with phone {NOBODY}, and no message from it as an unknown number: "
               "see `relance conversations`\n")
    assert relance("conversation", NOBODY) == (1, "", refusal)
    # The owner wrote, but as the owner: no unknown-number timeline for them either.
    assert relance("conversation", OWNER) == (1, "", refusal.replace(NOBODY, OWNER))


def test_a_number_imported_as_a_contact_leaves_the_list_and_keeps_its_messages(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _three_numbers_write(deps, clock)
    deps.store.contacts.upsert(Contact(id="ct9", phone=STRANGER, name="Luc", language=Language.FR), clock.now())

    other = f"{OTHER}  unknown number  [1 message]  last message 2026-03-02 10:05  {FLAG}"
    assert relance("conversations", "--needs-human") == (0, f"{other}\n", "")
    clock.advance(timedelta(minutes=5))
    assert _inbound(deps, STRANGER, "C'est Luc", _sid(5)) == "recorded (no open follow-up)"
    assert relance("conversation", STRANGER) == (0, (
        f"Luc {STRANGER} (fr, Europe/Paris)\n"
        "2026-03-02 10:10 ← received: Bonjour, j'ai reçu une facture mais je ne suis pas client\n"
        "2026-03-02 10:40 ← received: Vous pouvez me rappeler ?\n"
        "2026-03-02 10:55 ← received: C'est Luc\n"), "")


def test_the_unknown_number_queries_use_their_partial_indexes(deps: App, clock: FakeClock) -> None:
    _three_numbers_write(deps, clock)
    indexes = deps.store.messages.collection.index_information()
    for name in ("unknown_sender_time", "unknown_sender_from"):
        assert indexes[name]["partialFilterExpression"] == {"unknown_sender": True}
    listing = deps.store.messages.collection.find(_unknown_query()).sort("created_at", -1).explain()
    assert "unknown_sender_time" in json.dumps(listing["queryPlanner"], default=str)
    one = deps.store.messages.collection.find(_unknown_query(STRANGER)).sort("created_at", 1).explain()
    assert "unknown_sender_from" in json.dumps(one["queryPlanner"], default=str)


# ------------------------------------------------------------------ closing a hand-over


def _marie_needs_a_person(deps: App, clock: FakeClock) -> dict[str, object]:
    """Marie asks what her data cannot answer: her follow-up is paused and flagged for a person."""
    clock.advance(timedelta(minutes=5))
    outcome = _inbound(deps, PHONE, "Est-ce que je peux payer en trois fois ?", _sid(10))
    assert outcome is not None and outcome.startswith("needs_human: "), outcome
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and (doc["state"], doc["needs_human"]) == ("paused", True)
    return doc


def test_handled_resume_takes_the_contact_off_the_list_and_sends_the_follow_up_on(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    before = _marie_needs_a_person(deps, clock)
    code, out, _ = relance("conversations", "--needs-human")
    assert code == 0 and out.startswith(f"{PHONE}  Marie  [c1: paused]")
    clock.advance(timedelta(minutes=30))  # the CLI runs on the system clock: compare with it

    code, out, err = relance("handled", "06 12 34 56 78", "--resume")
    assert (code, err) == (0, "")
    assert out == (f"Marie {PHONE}: 1 hand-over(s) closed; 1 paused follow-up(s) resumed\n"
                   "  follow-up c1: scheduled (next step 1)\n")
    after = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert after is not None
    assert (after["state"], after["needs_human"], after["handled_action"]) == ("scheduled", False, "resume")
    assert after["needs_human_reason"] == before["needs_human_reason"]  # kept for the timeline
    assert after["paused_until"] is None and after["pause_reason"] is None
    assert after["next_run_at"] == after["handled_at"]  # due at once: the scheduler drafts it again
    assert [h["state"] for h in after["history"]][-2:] == ["paused", "scheduled"]

    assert relance("conversations", "--needs-human") == (0, "no conversation needs a person\n", "")
    code, out, _ = relance("conversation", PHONE)
    assert f"follow-up c1: scheduled (next step 1)  handled {after['handled_at']:%Y-%m-%d %H:%M} (resume): " \
           f"{before['needs_human_reason']}" in out
    # Done twice: nothing more to close, nothing moves.
    assert relance("handled", PHONE, "--resume") == (0, (
        f"Marie {PHONE}: 0 hand-over(s) closed; 0 paused follow-up(s) resumed\n"
        "  follow-up c1: scheduled (next step 1)\n"), "")


def test_handled_stop_ends_the_follow_up_and_handled_alone_changes_no_state(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _marie_needs_a_person(deps, clock)
    assert relance("handled", PHONE) == (0, (
        f"Marie {PHONE}: 1 hand-over(s) closed; follow-ups left as they are\n"
        "  follow-up c1: paused (next step 1) needs_human\n"), "")
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and (doc["state"], doc["needs_human"], doc["handled_action"]) == ("paused", False, "keep")

    assert relance("handled", PHONE, "--stop") == (0, (
        f"Marie {PHONE}: 0 hand-over(s) closed; 1 follow-up(s) stopped\n"
        "  follow-up c1: stopped (next step 1) stopped_by_owner\n"), "")
    # A stopped follow-up stays stopped: --resume has nothing to resume.
    assert relance("handled", PHONE, "--resume") == (0, (
        f"Marie {PHONE}: 0 hand-over(s) closed; 0 paused follow-up(s) resumed\n"
        "  follow-up c1: stopped (next step 1) stopped_by_owner\n"), "")
    with pytest.raises(SystemExit) as refused:  # argparse: a usage error, exit status 2
        relance("handled", PHONE, "--resume", "--stop")
    assert refused.value.code == 2


def test_handled_resume_is_refused_for_a_client_who_opted_out_and_changes_nothing(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _marie_needs_a_person(deps, clock)
    deps.store.contacts.collection.update_one({"_id": "ct1"}, {"$set": {"opted_out": True}})
    before = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert relance("handled", PHONE, "--resume") == (1, "", (
        f"error: Marie {PHONE} opted out: nothing is sent to them until they write START; nothing was changed\n"))
    assert deps.store.followups.collection.find_one({"_id": "c1:ct1"}) == before


def test_handled_takes_an_unknown_number_off_the_list_until_it_writes_again(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _three_numbers_write(deps, clock)
    assert relance("handled", STRANGER, "--resume") == (1, "", (
        f"error: {STRANGER} is no contact: there is no follow-up to resume; "
        "run `relance handled PHONE` alone to take it off the list\n"))
    assert relance("handled", STRANGER) == (0, (
        f"{STRANGER}: unknown number handled (2 message(s)); it is listed again if it writes again\n"), "")
    other = f"{OTHER}  unknown number  [1 message]  last message 2026-03-02 10:05  {FLAG}"
    assert relance("conversations", "--needs-human") == (0, f"{other}\n", "")
    code, out, _ = relance("conversation", STRANGER)  # its messages are still there to read
    assert code == 0 and "Vous pouvez me rappeler ?" in out

    clock.advance(timedelta(minutes=20))
    assert _inbound(deps, STRANGER, "Allô ?", _sid(6)) == "unknown_sender"
    stranger = f"{STRANGER}  unknown number  [1 message]  last message 2026-03-02 11:10  {FLAG}"
    assert relance("conversations", "--needs-human") == (0, f"{stranger}\n{other}\n", "")

    refusal = (f"error: no contact with phone {NOBODY}, and no message from it as an unknown number: "
               "see `relance conversations`\n")
    assert relance("handled", NOBODY) == (1, "", refusal)
    code, out, err = relance("handled", "not a phone")
    assert code == 1 and out == "" and err.startswith("error: ") and "Traceback" not in err


# ------------------------------------------------------------------ a claimed payment, confirmed or not


def _marie_says_she_paid(deps: App, clock: FakeClock, text: str = "Bonjour, c'est réglé, virement fait hier") -> str:
    """Marie says she paid (PAID_CLAIM_ACTION=pause_and_verify, the default): paused until the owner checks."""
    clock.advance(timedelta(minutes=5))
    outcome = _inbound(deps, PHONE, text, _sid(20))
    assert outcome is not None
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and (doc["state"], doc["pause_reason"], doc["needs_human"]) == ("paused", "paid_claimed",
                                                                                         True)
    return outcome


def test_handled_paid_stops_the_follow_ups_as_paid_in_one_command(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    assert _marie_says_she_paid(deps, clock) == f"paid_claimed paused=1 needs_human: {PAID_CLAIM}"
    code, out, _ = relance("conversations", "--needs-human")
    assert code == 0 and out.startswith(f"{PHONE}  Marie  [c1: paused]") and out.endswith(f"{PAID_CLAIM}\n")

    assert relance("handled", PHONE, "--paid") == (0, (
        f"Marie {PHONE}: 1 hand-over(s) closed; 1 follow-up(s) stopped as paid\n"
        "  follow-up c1: stopped (next step 1) paid\n"), "")
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None
    assert (doc["state"], doc["stop_reason"], doc["needs_human"], doc["handled_action"]) == ("stopped", "paid", False,
                                                                                            "paid")
    assert relance("conversations", "--needs-human") == (0, "no conversation needs a person\n", "")
    with pytest.raises(SystemExit) as refused:  # one decision at a time
        relance("handled", PHONE, "--paid", "--resume")
    assert refused.value.code == 2


def test_handled_resume_sends_the_reminders_on_when_the_payment_did_not_arrive(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _marie_says_she_paid(deps, clock)
    assert relance("handled", PHONE, "--resume") == (0, (
        f"Marie {PHONE}: 1 hand-over(s) closed; 1 paused follow-up(s) resumed\n"
        "  follow-up c1: scheduled (next step 1)\n"), "")
    doc = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert doc is not None and (doc["state"], doc["needs_human"], doc["pause_reason"]) == ("scheduled", False, None)


def test_an_opt_out_claiming_payment_is_confirmed_with_paid_and_never_resumed(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    outcome = _marie_says_she_paid(deps, clock, "J'ai déjà payé, arrêtez de me harceler, je ne veux plus de messages")
    assert outcome == f"opt_out paused=1 needs_human: {PAID_OPT_OUT}"
    before = deps.store.followups.collection.find_one({"_id": "c1:ct1"})
    assert relance("handled", PHONE, "--resume") == (1, "", (
        f"error: Marie {PHONE} opted out: nothing is sent to them until they write START; nothing was changed\n"))
    assert deps.store.followups.collection.find_one({"_id": "c1:ct1"}) == before
    assert relance("handled", PHONE, "--paid") == (0, (
        f"Marie {PHONE}: 1 hand-over(s) closed; 1 follow-up(s) stopped as paid\n"
        "  follow-up c1: stopped (next step 1) paid\n"), "")


def test_handled_paid_is_refused_for_an_unknown_number(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _three_numbers_write(deps, clock)
    assert relance("handled", STRANGER, "--paid") == (1, "", (
        f"error: {STRANGER} is no contact: there is no follow-up to mark paid; "
        "run `relance handled PHONE` alone to take it off the list\n"))


def _marie_owes(deps: App, *references: str) -> None:
    for n, reference in enumerate(references):
        assert deps.store.invoices.add(Invoice(id=f"in_{reference}", reference=reference, contact_id="ct1",
                                               amount_cents=10000 * (n + 1), amount_due_cents=10000 * (n + 1)),
                                       source=InvoiceSource.IMPORT, now=deps.clock.now())


def _invoice_status(deps: App, reference: str) -> str:
    invoice = deps.store.invoices.get(reference)
    assert invoice is not None
    return invoice.status.value


def test_handled_paid_marks_the_invoices_she_claimed_paid_and_says_so(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _marie_owes(deps, "FA-2026-001", "FA-2026-002")
    _marie_says_she_paid(deps, clock)
    assert [_invoice_status(deps, r) for r in ("FA-2026-001", "FA-2026-002")] == ["claimed_paid"] * 2
    assert relance("handled", PHONE, "--paid") == (0, (
        f"Marie {PHONE}: 1 hand-over(s) closed; 1 follow-up(s) stopped as paid\n"
        "  invoice(s) marked paid: FA-2026-001, FA-2026-002\n"
        "  follow-up c1: stopped (next step 1) paid\n"), "")
    assert [_invoice_status(deps, r) for r in ("FA-2026-001", "FA-2026-002")] == ["paid"] * 2


def test_handled_resume_reopens_the_invoices_she_claimed_and_says_so(
        deps: App, clock: FakeClock, relance: Callable[..., tuple[int, str, str]]) -> None:
    _marie_owes(deps, "FA-2026-001")
    _marie_says_she_paid(deps, clock)
    code, out, _ = relance("handled", PHONE, "--resume")
    assert code == 0 and out.splitlines()[1] == "  invoice(s) reopened: FA-2026-001"
    assert _invoice_status(deps, "FA-2026-001") == "open"
