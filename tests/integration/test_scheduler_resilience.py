"""One bad record, or one outage, never stops the scheduler's tick (real MongoDB-compatible server and Redis).

Poisoned follow-ups (a contact record the model refuses, a campaign record of an earlier version
with a delay past a year, a date that overflows) sit among good ones: the tick quarantines each
(paused for a person, with the reason) and every later step still runs in that same tick.
"""

from __future__ import annotations

import logging
import socket
import threading
import time as clock_time
from datetime import time, timedelta

import pytest

from services.scheduler import run_forever
from shared.adapters.documents import pending_note
from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, SendWindow, Step
from shared.domain.states import MessageState
from shared.fakes import RecordingQueue
from shared.queue import DramatiqQueue, make_broker
from shared.usecases.delivery import record_sid
from shared.usecases.scheduling import STEPS, TickContext, TickReport, tick

pytestmark = pytest.mark.integration

ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))
STALE = timedelta(minutes=5)
PHONES = {"bad_contact": "+33611111111", "bad_date": "+33622222222", "bad_campaign": "+33633333333",
          "good": "+33644444444", "due": "+33655555555", "stuck": "+33666666666"}


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _contact(store: MongoRepositories, clock: FakeClock, key: str, **fields: str) -> str:
    contact_id = f"ct_{key}"
    store.contacts.upsert(Contact(id=contact_id, phone=PHONES[key], name=f"Client {key}", language=Language.FR,
                                 fields=fields), clock.now())
    return contact_id


def _campaign(store: MongoRepositories, clock: FakeClock, campaign_id: str, second: Step) -> None:
    store.campaigns.create(Campaign(id=campaign_id, name=campaign_id, send_window=ALWAYS, steps=[Step(), second]),
                          clock.now())


def _step_sent_not_advanced(store: MongoRepositories, clock: FakeClock, campaign_id: str, contact_id: str,
                            n: int) -> str:
    """A follow-up whose first step went out, the worker dying before it moved the cadence on."""
    now = clock.now()
    store.followups.enrol(contact_id=contact_id, campaign_id=campaign_id, next_run_at=now, now=now)
    followup_id = f"{campaign_id}:{contact_id}"
    assert store.followups.claim([followup_id], now)
    assert store.followups.await_send(followup_id, step=0, now=now)
    message = OutboundMessage(id=f"{followup_id}:0", followup_id=followup_id, contact_id=contact_id,
                              campaign_id=campaign_id, step=0, state=MessageState.READY, kind="freeform",
                              body="Bonjour, un rappel.", language=Language.FR)
    assert store.messages.insert(message, now)
    assert store.messages.start_sending(message.id, now=now)
    assert record_sid(store, message.id, f"SM{n:032x}", now)
    return followup_id


@pytest.fixture
def poisoned(store: MongoRepositories, clock: FakeClock) -> dict[str, str]:
    """Three poisoned follow-ups stored first, then good work for every later step of the tick."""
    ids: dict[str, str] = {}
    # A contact record the model refuses (edited by hand, or by an earlier version).
    _campaign(store, clock, "c-contact", Step(delay="1d", anchor="previous"))
    contact = _contact(store, clock, "bad_contact")
    ids["bad_contact"] = _step_sent_not_advanced(store, clock, "c-contact", contact, 1)
    store.contacts.collection.update_one({"_id": contact}, {"$set": {"language": "klingon"}})
    # A date field so far ahead that the next step's date overflows datetime.
    _campaign(store, clock, "c-date", Step(delay="365d", anchor="due_date"))
    contact = _contact(store, clock, "bad_date", due_date="9999-12-31")
    ids["bad_date"] = _step_sent_not_advanced(store, clock, "c-date", contact, 2)
    # A campaign stored by an earlier version, with a delay longer than the cap allows.
    _campaign(store, clock, "c-old", Step(delay="1d", anchor="previous"))
    contact = _contact(store, clock, "bad_campaign")
    ids["bad_campaign"] = _step_sent_not_advanced(store, clock, "c-old", contact, 3)
    store.campaigns.collection.update_one({"_id": "c-old"}, {"$set": {"steps.1.delay": "99999999d"}})

    # The good ones: a step sent and not advanced, a follow-up due now, a send stuck in sending.
    _campaign(store, clock, "c-good", Step(delay="1d", anchor="previous"))
    ids["good"] = _step_sent_not_advanced(store, clock, "c-good", _contact(store, clock, "good"), 4)
    stuck_contact = _contact(store, clock, "stuck")
    stuck = OutboundMessage(id="reply:SMstuck", followup_id=None, contact_id=stuck_contact, campaign_id=None, step=-1,
                            purpose="reply", state=MessageState.READY, kind="freeform", body="Merci.",
                            language=Language.FR)
    assert store.messages.insert(stuck, clock.now())
    assert store.messages.start_sending(stuck.id, now=clock.now())
    ids["stuck"] = stuck.id
    # An inbound message stored by the webhook whose actor message Redis lost.
    event = {"kind": "inbound", "sid": "SMlost", "state": "received", "from": f"whatsapp:{PHONES['good']}",
             "body": "?"}
    note = pending_note(clock.now(), [{"id": "inbound:SMlost", "from": event["from"]}])
    store.events.collection.insert_many([note, {"_id": "inbound:SMlost", **event, "received_at": clock.now()}])
    clock.advance(timedelta(minutes=11))  # past the stale delay and the status-poll delay
    ids["due"] = f"c-good:{_contact(store, clock, 'due')}"
    store.followups.enrol(contact_id="ct_due", campaign_id="c-good", next_run_at=clock.now(), now=clock.now())
    return ids


def test_poisoned_followups_are_quarantined_and_every_later_step_still_runs(
        store: MongoRepositories, clock: FakeClock, poisoned: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    queue = RecordingQueue()
    with caplog.at_level(logging.DEBUG, logger="services.scheduler"):
        report = tick(store, queue, clock, stale_after=STALE)

    bad = [poisoned["bad_contact"], poisoned["bad_date"], poisoned["bad_campaign"]]
    assert sorted(report.quarantined) == sorted(bad)
    assert report.failed_steps == [] and report.skipped == []
    # The good ones were claimed, advanced and enqueued…
    assert report.claimed == [poisoned["due"]] and queue.drafts == [(poisoned["due"], 0)]
    assert report.advanced == [poisoned["good"]]
    good = store.followups.collection.find_one({"_id": poisoned["good"]})
    assert good is not None and (good["state"], good["step"]) == ("scheduled", 1)
    # …and the later steps ran in the same tick: stale-send marking, the notes sweep, the status polls.
    assert report.uncertain == [poisoned["stuck"]]
    assert report.requeued_inbound == ["inbound:SMlost"] and queue.inbound == ["inbound:SMlost"]
    assert sorted(report.status_polls) == sorted(f"{fid}:0" for fid in [*bad, poisoned["good"]])

    reasons = {}
    for followup_id in bad:
        doc = store.followups.collection.find_one({"_id": followup_id})
        assert doc is not None and doc["state"] == "paused" and doc["needs_human"] is True
        assert doc["pause_reason"] == "needs_human" and doc["paused_until"] is None
        reasons[followup_id] = doc["needs_human_reason"]
        assert reasons[followup_id].startswith("the scheduler could not process this follow-up: ")
    assert "stored Contact record the code cannot read (invalid: language)" in reasons[poisoned["bad_contact"]]
    assert "a date out of range" in reasons[poisoned["bad_date"]]
    assert "stored Campaign record the code cannot read (invalid: steps.1.delay)" in reasons[poisoned["bad_campaign"]]
    # Counted in the tick line; no phone number and no record value in any log line.
    assert "quarantined=3" in report.line() and "failed_steps=-" in report.line()
    logged = "\n".join(record.getMessage() for record in caplog.records if record.levelno >= logging.INFO)
    assert logged.count("quarantined (paused for a person)") == 3
    assert not any(phone[3:] in logged for phone in PHONES.values()) and "klingon" not in logged

    # A tick soon after enqueues nothing again (the waiting event included: once per stale period).
    clock.advance(timedelta(seconds=10))
    soon = tick(store, RecordingQueue(), clock, stale_after=STALE)
    assert not soon.eventful()
    # Quarantined follow-ups are out of every scan: the next tick does not trip on them again.
    clock.advance(STALE)
    again = tick(store, RecordingQueue(), clock, stale_after=STALE)
    assert again.quarantined == [] and again.failed_steps == []
    assert again.requeued_inbound == ["inbound:SMlost"]  # still waiting a period later: asked for again


def test_an_outage_fails_its_step_only_and_quarantines_nothing(store: MongoRepositories, clock: FakeClock,
                                                               poisoned: dict[str, str], redis_url: str) -> None:
    """Redis down: the steps that enqueue fail for this tick; the others run; no follow-up is blamed."""
    down = make_broker(f"redis://127.0.0.1:{_dead_port()}/0")
    for followup_id in (poisoned["bad_contact"], poisoned["bad_date"], poisoned["bad_campaign"]):
        store.followups.collection.delete_one({"_id": followup_id})  # only the outage, this time
    report = tick(store, DramatiqQueue(down), clock, stale_after=STALE)
    down.close()
    assert report.quarantined == [] and report.skipped == []
    assert report.failed_steps == ["claim", "uncertain", "notes", "status_polls"]
    # The steps that only write to MongoDB went on: the cadence advanced, the stuck send is uncertain.
    assert report.advanced == [poisoned["good"]] and report.uncertain == [poisoned["stuck"]]
    claimed = store.followups.collection.find_one({"_id": poisoned["due"]})
    assert claimed is not None and claimed["state"] == "queued" and not claimed.get("needs_human")

    # Redis is back: what the outage left claimed is enqueued again once stale, nothing twice.
    up = make_broker(redis_url)
    clock.advance(STALE + timedelta(seconds=1))
    later = tick(store, DramatiqQueue(up), clock, stale_after=STALE)
    up.close()
    assert later.failed_steps == [] and later.quarantined == []
    assert later.requeued_drafts == [poisoned["due"]]
    assert later.requeued_inbound == ["inbound:SMlost"]
    assert later.reconciling == [poisoned["stuck"]]


def test_a_failing_step_does_not_skip_the_next_ones(store: MongoRepositories, clock: FakeClock, poisoned: dict[str,
                                                    str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A bug in one step (here: a step that raises) is logged by name; the steps after it run."""
    def broken(ctx: TickContext) -> None:
        raise RuntimeError("a bug with +33611111111 in its message")

    steps = (("broken", broken), *STEPS)
    with caplog.at_level(logging.INFO, logger="services.scheduler"):
        report = tick(store, RecordingQueue(), clock, stale_after=STALE, steps=steps)
    assert report.failed_steps == ["broken"]
    assert report.claimed == [poisoned["due"]] and report.status_polls
    assert "scheduler step broken failed: an unexpected RuntimeError" in caplog.text
    assert "+33611111111" not in caplog.text


def test_the_running_scheduler_logs_the_quarantine_in_its_tick_line(
        store: MongoRepositories, clock: FakeClock, poisoned: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="services.scheduler"):
        runner = threading.Thread(target=run_forever, args=(store, RecordingQueue(), clock),
                                  kwargs={"interval": 0.01, "batch": 50, "stale_after": STALE, "stop": stop})
        runner.start()
        deadline = clock_time.monotonic() + 30
        while not any(r.getMessage().startswith("tick ") for r in caplog.records):
            assert clock_time.monotonic() < deadline, "no tick line logged"
            clock_time.sleep(0.01)
        stop.set()
        runner.join(timeout=30)
    (line,) = [r for r in caplog.records if r.getMessage().startswith("tick ")]
    assert line.levelno == logging.WARNING  # something went wrong: said louder than a busy tick
    assert "claimed=1 " in line.getMessage() and "quarantined=3 " in line.getMessage()


def test_the_tick_line_counts_everything(store: MongoRepositories, clock: FakeClock) -> None:
    report = TickReport(claimed=["a", "b"], quarantined=["c"], failed_steps=["notes"])
    assert report.line() == ("tick claimed=2 resumed=0 requeued_drafts=0 requeued_sends=0 advanced=0 uncertain=0 "
                             "requeued_inbound=0 reconciling=0 cancelled_drafts=0 redrafted_approvals=0 status_polls=0 "
                             "backfilled=0 "
                             "quarantined=1 skipped=0 failed_steps=notes")
    assert report.total() == 2 and report.eventful()
    assert not TickReport().eventful()

