"""The MongoDB repositories on the real test server: indexes, idempotence, conditional moves."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.clock import FakeClock
from shared.errors import TransientError
from shared.models import (
    Campaign,
    Contact,
    FollowUpState,
    IllegalMove,
    Language,
    MessageState,
    OutboundMessage,
    Step,
    message_id_for,
)
from shared.store import Store

pytestmark = pytest.mark.integration


def _contact(phone: str = "+33612345678", **kw: object) -> Contact:
    data: dict[str, object] = {"id": f"ct_{phone[-4:]}", "phone": phone, "name": "Marie",
                               "fields": {"invoice_number": "FA-1"}}
    data.update(kw)
    return Contact.model_validate(data)


def test_indexes_are_idempotent_and_unique_phone(store: Store, clock: FakeClock) -> None:
    store.ensure_indexes()
    store.ensure_indexes()
    names = {ix["name"] for ix in store.followups.list_indexes()}
    assert {"enrolment_unique", "state_next_run"} <= names
    assert store.upsert_contact(_contact(), clock.now()) == "inserted"
    assert store.upsert_contact(_contact(), clock.now()) == "unchanged"
    assert store.upsert_contact(_contact(name="Marie D."), clock.now()) == "updated"
    assert store.contacts.count_documents({}) == 1


def test_the_unique_indexes_refuse_a_second_copy_whoever_writes_it(store: Store, clock: FakeClock) -> None:
    """The database itself refuses duplicates (not only the repositories' look-before-insert)."""
    from pymongo.errors import DuplicateKeyError

    now = clock.now()
    store.contacts.insert_one({"_id": "a", "phone": "+33612345678", "name": "A"})
    with pytest.raises(DuplicateKeyError):
        store.contacts.insert_one({"_id": "b", "phone": "+33612345678", "name": "B"})
    store.followups.insert_one({"_id": "f1", "contact_id": "a", "campaign_id": "c1"})
    with pytest.raises(DuplicateKeyError):
        store.followups.insert_one({"_id": "f2", "contact_id": "a", "campaign_id": "c1"})
    store.followups.insert_one({"_id": "f3", "contact_id": "a", "campaign_id": "c2"})  # another campaign: fine
    store.messages.insert_one({"_id": "m1", "twilio_sid": "SM" + "1" * 32, "created_at": now})
    with pytest.raises(DuplicateKeyError):
        store.messages.insert_one({"_id": "m2", "twilio_sid": "SM" + "1" * 32, "created_at": now})
    # Sparse: any number of messages not yet sent (no SID) live side by side.
    store.messages.insert_many([{"_id": f"draft{i}", "created_at": now} for i in range(3)])
    assert store.messages.count_documents({"twilio_sid": {"$exists": False}}) == 3
    indexes = {ix["name"]: ix for ix in store.messages.list_indexes()}
    assert indexes["twilio_sid_unique"]["unique"] and indexes["twilio_sid_unique"]["sparse"]


def test_enrolment_is_unique_and_claim_is_exactly_once(store: Store, clock: FakeClock) -> None:
    store.upsert_contact(_contact(), clock.now())
    store.create_campaign(Campaign(id="c1", name="C", steps=[Step()]), clock.now())
    assert store.enrol(contact_id="ct_5678", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    assert not store.enrol(contact_id="ct_5678", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    due = store.due_followups(clock.now(), ["c1"], 10)
    assert [d["_id"] for d in due] == ["c1:ct_5678"]
    first = store.move_followup("c1:ct_5678", expected=FollowUpState.SCHEDULED, new=FollowUpState.QUEUED,
                                now=clock.now(), step=0)
    second = store.move_followup("c1:ct_5678", expected=FollowUpState.SCHEDULED, new=FollowUpState.QUEUED,
                                 now=clock.now(), step=0)
    assert (first, second) == (True, False)
    doc = store.followups.find_one({"_id": "c1:ct_5678"})
    assert doc is not None and [h["state"] for h in doc["history"]] == ["scheduled", "queued"]


def test_status_callbacks_only_move_forward(store: Store, clock: FakeClock) -> None:
    mid = message_id_for("c1:ct", 0)
    msg = OutboundMessage(id=mid, followup_id="c1:ct", contact_id="ct", campaign_id="c1", step=0,
                          state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR)
    assert store.insert_message(msg, clock.now())
    assert not store.insert_message(msg, clock.now())
    assert store.move_message(mid, expected=MessageState.READY, new=MessageState.SENDING, now=clock.now())
    # A callback that arrives before the SID is recorded is replayed when it is.
    store.record_event("status:SM1:delivered", {"kind": "status", "sid": "SM1", "status": "delivered"},
                       clock.now())
    assert store.record_sid(mid, "SM1", clock.now() + timedelta(seconds=1))
    assert store.message_doc(mid)["state"] == "delivered"  # type: ignore[index]
    assert store.apply_status("SM1", "read", None, clock.now())
    assert not store.apply_status("SM1", "delivered", None, clock.now())
    assert not store.apply_status("SM1", "sent", None, clock.now())
    assert store.message_doc(mid)["state"] == "read"  # type: ignore[index]


def test_a_move_the_state_machine_forbids_raises_and_writes_nothing(store: Store, clock: FakeClock) -> None:
    store.upsert_contact(_contact(), clock.now())
    store.create_campaign(Campaign(id="c1", name="C", steps=[Step()]), clock.now())
    store.enrol(contact_id="ct_5678", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    assert store.move_followup("c1:ct_5678", expected=FollowUpState.SCHEDULED, new=FollowUpState.STOPPED,
                               now=clock.now())
    before = store.followups.find_one({"_id": "c1:ct_5678"})
    with pytest.raises(IllegalMove, match="a follow-up cannot move from stopped to scheduled"):
        store.move_followup("c1:ct_5678", expected=FollowUpState.STOPPED, new=FollowUpState.SCHEDULED,
                            now=clock.now() + timedelta(minutes=1))
    assert store.followups.find_one({"_id": "c1:ct_5678"}) == before

    mid = message_id_for("c1:ct_5678", 0)
    store.insert_message(OutboundMessage(id=mid, followup_id="c1:ct_5678", contact_id="ct_5678", campaign_id="c1",
                                         step=0, state=MessageState.READY, kind="freeform", body="Bonjour",
                                         language=Language.FR), clock.now())
    assert store.move_message(mid, expected=MessageState.READY, new=MessageState.SENDING, now=clock.now())
    assert store.record_sid(mid, "SM9", clock.now())
    sent = store.message_doc(mid)
    with pytest.raises(IllegalMove, match="a message cannot move from sent to ready"):
        store.move_message(mid, expected=(MessageState.UNCERTAIN, MessageState.SENT), new=MessageState.READY,
                           now=clock.now() + timedelta(minutes=1))
    assert store.message_doc(mid) == sent


def test_events_and_the_owner_record_carry_created_and_updated_times(store: Store, clock: FakeClock) -> None:
    t0 = clock.now()
    assert store.record_event("inbound:SM1", {"kind": "inbound", "sid": "SM1", "state": "received"}, t0)
    doc = store.get_event("inbound:SM1")
    assert doc is not None and doc["created_at"] == doc["updated_at"] == doc["received_at"] == t0
    assert store.count_event_failure("inbound:SM1", "boom", t0 + timedelta(seconds=1)) == 1
    assert store.get_event("inbound:SM1")["updated_at"] == t0 + timedelta(seconds=1)  # type: ignore[index]
    assert store.mark_event("inbound:SM1", "received", "processed", t0 + timedelta(seconds=2))
    doc = store.get_event("inbound:SM1")
    assert doc is not None and (doc["created_at"], doc["updated_at"]) == (t0, t0 + timedelta(seconds=2))
    note = store.events.find_one({"kind": "pending"})
    assert note is not None and note["created_at"] == note["updated_at"] == t0

    store.touch_owner_inbound("+33700000001", t0)
    store.touch_owner_inbound("+33700000001", t0 + timedelta(minutes=5))
    owner = store.owner.find_one({"_id": "+33700000001"})
    assert owner is not None and (owner["created_at"], owner["updated_at"]) == (t0, t0 + timedelta(minutes=5))


def test_ensure_indexes_leaves_events_with_no_secondary_index(store: Store) -> None:
    """Each index costs every webhook insert: an older database's are dropped."""
    from pymongo import ASCENDING

    store.events.create_index([("sid", ASCENDING)], name="sid")  # as earlier versions made them
    store.events.create_index([("kind", ASCENDING), ("state", ASCENDING), ("received_at", ASCENDING)],
                              name="kind_state_received")
    store.ensure_indexes()
    assert sorted(store.events.index_information()) == ["_id_"]


def _sweep(store: Store, at: datetime) -> list[dict[str, object]]:
    """The scheduler's sweep with both bounds at ``at``."""
    return store.sweep_notes(requeue_before=at, drop_before=at, limit=100)


def _inbound(n: int, phone: str = "+33612345678") -> tuple[str, dict[str, object]]:
    return f"inbound:SM{n}", {"kind": "inbound", "sid": f"SM{n}", "state": "received", "from": f"whatsapp:{phone}"}


def test_upgrading_notes_the_events_an_earlier_version_left_waiting(store: Store, clock: FakeClock) -> None:
    """Before its index goes, what the old sweep would have found is noted for the new one."""
    from pymongo import ASCENDING

    store.events.create_index([("kind", ASCENDING), ("state", ASCENDING), ("received_at", ASCENDING)],
                              name="kind_state_received")
    old = clock.now() - timedelta(hours=1)
    store.events.insert_many([  # written by the earlier version: no notes
        {"_id": "inbound:SM1", "kind": "inbound", "state": "received", "from": "whatsapp:+33612345678",
         "received_at": old},
        {"_id": "inbound:SM2", "kind": "inbound", "state": "processed", "from": "whatsapp:+33612345678",
         "received_at": old},
        {"_id": "status:SM3:failed", "kind": "status", "state": "received", "received_at": old},
    ])
    store.ensure_indexes()
    assert "kind_state_received" not in store.events.index_information()
    waiting = _sweep(store, clock.now() + timedelta(minutes=10))
    assert sorted((e["_id"], e["kind"]) for e in waiting) == [("inbound:SM1", "inbound"),
                                                            ("status:SM3:failed", "status")]
    assert [e["_id"] for e in store.unprocessed_inbound("+33612345678")] == ["inbound:SM1"]
    store.ensure_indexes()  # a second start notes nothing more
    assert store.events.count_documents({"kind": "pending"}) == 1


def test_sweeps_find_waiting_events_in_the_notes_and_drop_finished_notes(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    assert store.record_events([_inbound(1), _inbound(2, "+33700000000")], now) == [True, True]
    assert store.sweep_notes(requeue_before=now + timedelta(minutes=6), drop_before=now, limit=1) == [
        {"_id": "inbound:SM1", "kind": "inbound"}]  # at most `limit` events
    assert store.record_events([("status:SM9:delivered", {"kind": "status", "state": "processed"})],
                               now) == [True]
    assert store.events.count_documents({"kind": "pending"}) == 1  # a batch with nothing waiting writes no note
    assert _sweep(store, now) == []  # not older than `before` yet
    later = now + timedelta(minutes=6)
    assert sorted(str(e["_id"]) for e in _sweep(store, later)) == ["inbound:SM1", "inbound:SM2"]
    assert [e["_id"] for e in store.unprocessed_inbound("+33700000000")] == ["inbound:SM2"]
    assert store.mark_event("inbound:SM1", "received", "processed", now)
    assert [e["_id"] for e in _sweep(store, later)] == ["inbound:SM2"]
    assert store.unprocessed_inbound("+33612345678") == []
    assert store.events.count_documents({"kind": "pending"}) == 1
    assert store.mark_event("inbound:SM2", "received", "processed", now)
    assert _sweep(store, later) == []
    assert store.events.count_documents({"kind": "pending"}) == 0  # nothing waits: the note is gone


def test_a_note_whose_events_were_never_stored_is_dropped(store: Store, clock: FakeClock) -> None:
    """The note goes first in its batch's insert; if the server stored it and then failed, the sweep cleans up."""
    from shared.store import pending_note

    store.events.insert_one(pending_note(clock.now(), [{"id": "inbound:SM5", "from": "whatsapp:+33612345678"}]))
    assert store.get_event("inbound:SM5") is None
    assert store.unprocessed_inbound("+33612345678") == []
    assert _sweep(store, clock.now() + timedelta(minutes=6)) == []
    assert store.events.count_documents({"kind": "pending"}) == 0


def test_a_failed_batch_stores_neither_note_nor_events(store: Store, clock: FakeClock) -> None:
    from unittest import mock

    from pymongo.errors import AutoReconnect

    with mock.patch.object(type(store.events), "insert_many", side_effect=AutoReconnect("connection reset")):
        with pytest.raises(TransientError):
            store.record_events([_inbound(5)], clock.now())
    assert store.events.count_documents({}) == 0


def test_duplicates_in_a_batch_with_a_note_are_reported_per_event(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    assert store.record_events([_inbound(1)], now) == [True]
    assert store.record_events([_inbound(2), _inbound(1), _inbound(3), _inbound(2)], now) == [True, False, True, False]
    assert store.events.count_documents({"kind": "inbound"}) == 3



def test_two_processes_dropping_the_same_obsolete_index_both_start(store: Store) -> None:
    """Workers start together: the one that finds the index gone already must not fail."""
    from unittest import mock

    stale_view = {**store.events.index_information(), "sid": {"key": [("sid", 1)]}}  # seen before another dropped it
    with mock.patch.object(type(store.events), "index_information", return_value=stale_view):
        store.ensure_indexes()
    assert "sid" not in store.events.index_information()


def test_the_scheduler_drops_finished_notes_soon_and_requeues_waiting_ones_when_stale(
        store: Store, clock: FakeClock) -> None:
    from services.scheduler import FINISHED_NOTES_AFTER, TickReport, reconcile
    from shared.fakes import RecordingQueue

    store.record_events([_inbound(1)], clock.now())
    store.record_events([_inbound(2, "+33700000000")], clock.now())
    assert store.mark_event("inbound:SM1", "received", "processed", clock.now())
    clock.advance(FINISHED_NOTES_AFTER + timedelta(seconds=1))
    queue = RecordingQueue()
    reconcile(store, queue, clock, timedelta(minutes=5), 100, TickReport())
    assert queue.inbound == []  # SM2 waits, but not for long enough to be sent again
    assert store.events.count_documents({"kind": "pending"}) == 1  # SM1's note is gone, SM2's stays
    assert [e["_id"] for e in store.unprocessed_inbound("+33700000000")] == ["inbound:SM2"]
    clock.advance(timedelta(minutes=5))
    reconcile(store, queue, clock, timedelta(minutes=5), 100, TickReport())
    assert queue.inbound == ["inbound:SM2"]
