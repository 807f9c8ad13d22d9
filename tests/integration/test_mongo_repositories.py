"""What is MongoDB's own in the repositories, on the real test server: indexes, stored documents.

The behaviour both implementations share (conditional moves, uniqueness, ordering) is in
tests/contract.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, Contact, Language, OutboundMessage, Step, message_id_for
from shared.domain.reasons import PauseReason, StopReason
from shared.domain.states import FollowUpState, IllegalMove, MessageState
from shared.errors import TransientError
from shared.usecases.delivery import record_sid

pytestmark = pytest.mark.integration


def _contact(phone: str = "+33612345678", **kw: object) -> Contact:
    data: dict[str, object] = {"id": f"ct_{phone[-4:]}", "phone": phone, "name": "Marie",
                               "fields": {"invoice_number": "FA-1"}}
    data.update(kw)
    return Contact.model_validate(data)


def test_indexes_are_idempotent_and_unique_phone(store: MongoRepositories, clock: FakeClock) -> None:
    # The index an earlier release used for the claim, replaced by due_by_campaign: dropped.
    store.followups.collection.create_index([("state", 1), ("next_run_at", 1)], name="state_next_run")
    # One follow-up per contact and campaign, ever (earlier releases): replaced by one per generation.
    store.followups.collection.create_index([("contact_id", 1), ("campaign_id", 1)], unique=True,
                                            name="enrolment_unique")
    store.ensure_indexes()
    store.ensure_indexes()
    names = {ix["name"] for ix in store.followups.collection.list_indexes()}
    assert {"enrolment_generation_unique", "due_by_campaign", "state_paused_until"} <= names
    assert "enrolment_unique" not in names  # replaced: a client may be enrolled again (a new generation)
    assert "state_next_run" not in names
    assert store.contacts.upsert(_contact(), clock.now()) == "inserted"
    assert store.contacts.upsert(_contact(), clock.now()) == "unchanged"
    assert store.contacts.upsert(_contact(name="Marie D."), clock.now()) == "updated"
    assert store.contacts.collection.count_documents({}) == 1


def test_contacts_stored_without_a_name_key_get_one_at_start_up(store: MongoRepositories) -> None:
    # Written by a release before the key: no name_key field.
    store.contacts.collection.insert_many([
        {"_id": "ct_old1", "phone": "+33612345601", "name": "Élodie Roux", "language": "fr", "tags": []},
        {"_id": "ct_old2", "phone": "+33612345602", "name": "ANDRÉ Blanc", "language": "fr", "tags": []}])
    assert [n.id for n in store.contacts.names(prefix="elodie")] == []  # the index knows nothing of them yet
    store.ensure_indexes()
    assert [n.id for n in store.contacts.names(prefix="elodie")] == ["ct_old1"]
    assert [n.id for n in store.contacts.names(prefix="blanc")] == ["ct_old2"]  # by the last name too
    assert [(n.key, n.id) for n in store.contacts.names()] == [("andre blanc", "ct_old2"), ("elodie roux", "ct_old1")]
    assert store.contacts.collection.find_one({"_id": "ct_old2"})["name_key"] == "andre blanc"  # type: ignore[index]
    assert "name_key" in {ix["name"] for ix in store.contacts.collection.list_indexes()}
    store.ensure_indexes()  # again: nothing left to fill
    assert store.contacts.collection.count_documents({"name_key": {"$exists": False}}) == 0
    assert store.contacts.collection.count_documents({"name_words": {"$exists": False}}) == 0


def test_the_unique_indexes_refuse_a_second_copy_whoever_writes_it(store: MongoRepositories, clock: FakeClock) -> None:
    """The database itself refuses duplicates (not only the repositories' look-before-insert)."""
    from pymongo.errors import DuplicateKeyError

    now = clock.now()
    store.contacts.collection.insert_one({"_id": "a", "phone": "+33612345678", "name": "A"})
    with pytest.raises(DuplicateKeyError):
        store.contacts.collection.insert_one({"_id": "b", "phone": "+33612345678", "name": "B"})
    store.followups.collection.insert_one({"_id": "f1", "contact_id": "a", "campaign_id": "c1"})
    with pytest.raises(DuplicateKeyError):
        store.followups.collection.insert_one({"_id": "f2", "contact_id": "a", "campaign_id": "c1"})
    # Another campaign: fine.
    store.followups.collection.insert_one({"_id": "f3", "contact_id": "a", "campaign_id": "c2"})
    store.messages.collection.insert_one({"_id": "m1", "twilio_sid": "SM" + "1" * 32, "created_at": now})
    with pytest.raises(DuplicateKeyError):
        store.messages.collection.insert_one({"_id": "m2", "twilio_sid": "SM" + "1" * 32, "created_at": now})
    # Sparse: any number of messages not yet sent (no SID) live side by side.
    store.messages.collection.insert_many([{"_id": f"draft{i}", "created_at": now} for i in range(3)])
    assert store.messages.collection.count_documents({"twilio_sid": {"$exists": False}}) == 3
    indexes = {ix["name"]: ix for ix in store.messages.collection.list_indexes()}
    assert indexes["twilio_sid_unique"]["unique"] and indexes["twilio_sid_unique"]["sparse"]


def test_enrolment_is_unique_and_claim_is_exactly_once(store: MongoRepositories, clock: FakeClock) -> None:
    store.contacts.upsert(_contact(), clock.now())
    store.campaigns.create(Campaign(id="c1", name="C", steps=[Step()]), clock.now())
    assert store.followups.enrol(contact_id="ct_5678", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    assert not store.followups.enrol(contact_id="ct_5678", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    due = store.followups.due(clock.now(), ["c1"], 10)
    assert [d.id for d in due] == ["c1:ct_5678"]
    first = store.followups.claim(["c1:ct_5678"], clock.now())
    second = store.followups.claim(["c1:ct_5678"], clock.now())
    assert ([f.id for f in first], second) == (["c1:ct_5678"], [])
    doc = store.followups.collection.find_one({"_id": "c1:ct_5678"})
    assert doc is not None and [h["state"] for h in doc["history"]] == ["scheduled", "queued"]


def test_status_callbacks_only_move_forward(store: MongoRepositories, clock: FakeClock) -> None:
    mid = message_id_for("c1:ct", 0)
    msg = OutboundMessage(id=mid, followup_id="c1:ct", contact_id="ct", campaign_id="c1", step=0,
                          state=MessageState.READY, kind="freeform", body="Bonjour", language=Language.FR)
    assert store.messages.insert(msg, clock.now())
    assert not store.messages.insert(msg, clock.now())
    assert store.messages.start_sending(mid, now=clock.now())
    # A callback that arrives before the SID is recorded adopts it by our message id (its
    # StatusCallback URL's mid); the worker's write then changes nothing.
    assert store.messages.apply_status("SM1", "delivered", None, clock.now(), message_id=mid)
    assert not record_sid(store, mid, "SM1", clock.now() + timedelta(seconds=1))
    assert store.messages.collection.find_one({"_id": mid})["state"] == "delivered"  # type: ignore[index]
    assert store.messages.apply_status("SM1", "read", None, clock.now())
    assert not store.messages.apply_status("SM1", "delivered", None, clock.now())
    assert not store.messages.apply_status("SM1", "sent", None, clock.now())
    assert store.messages.collection.find_one({"_id": mid})["state"] == "read"  # type: ignore[index]


def test_a_move_the_state_machine_forbids_raises_and_writes_nothing(store: MongoRepositories, clock: FakeClock) -> None:
    store.contacts.upsert(_contact(), clock.now())
    store.campaigns.create(Campaign(id="c1", name="C", steps=[Step()]), clock.now())
    store.followups.enrol(contact_id="ct_5678", campaign_id="c1", next_run_at=clock.now(), now=clock.now())
    assert store.followups.stop("c1:ct_5678", reason=StopReason.OPT_OUT, now=clock.now())
    before = store.followups.collection.find_one({"_id": "c1:ct_5678"})
    with pytest.raises(IllegalMove, match="a follow-up cannot move from stopped to paused"):
        store.followups.pause("c1:ct_5678", reason=PauseReason.NEEDS_HUMAN, expected=FollowUpState.STOPPED,
                              now=clock.now() + timedelta(minutes=1))
    assert store.followups.collection.find_one({"_id": "c1:ct_5678"}) == before

    mid = message_id_for("c1:ct_5678", 0)
    store.messages.insert(OutboundMessage(id=mid, followup_id="c1:ct_5678", contact_id="ct_5678", campaign_id="c1",
                                         step=0, state=MessageState.READY, kind="freeform", body="Bonjour",
                                         language=Language.FR), clock.now())
    assert store.messages.start_sending(mid, now=clock.now())
    assert record_sid(store, mid, "SM9", clock.now())
    sent = store.messages.collection.find_one({"_id": mid})
    later = clock.now() + timedelta(minutes=1)  # no transition leads a sent message back to sending
    assert not store.messages.send_again(mid, now=later)
    assert not store.messages.retry_later(mid, error_code=None, now=later)
    assert not store.messages.start_sending(mid, now=later)
    assert store.messages.collection.find_one({"_id": mid}) == sent


def test_events_and_the_owner_record_carry_created_and_updated_times(store: MongoRepositories,
                                                                     clock: FakeClock) -> None:
    t0 = clock.now()
    assert store.events.record("inbound:SM1", {"kind": "inbound", "sid": "SM1", "state": "received"}, t0)
    doc = store.events.collection.find_one({"_id": "inbound:SM1"})
    assert doc is not None and doc["created_at"] == doc["updated_at"] == doc["received_at"] == t0
    assert store.events.count_failure("inbound:SM1", "boom", t0 + timedelta(seconds=1)) == 1
    assert store.events.collection.find_one({"_id": "inbound:SM1"})["updated_at"] == t0 + timedelta(seconds=1)  # type: ignore[index]
    assert store.events.mark_processed("inbound:SM1", t0 + timedelta(seconds=2))
    doc = store.events.collection.find_one({"_id": "inbound:SM1"})
    assert doc is not None and (doc["created_at"], doc["updated_at"]) == (t0, t0 + timedelta(seconds=2))
    note = store.events.collection.find_one({"kind": "pending"})
    assert note is not None and note["created_at"] == note["updated_at"] == t0

    store.owner.touch_inbound("+33700000001", t0)
    store.owner.touch_inbound("+33700000001", t0 + timedelta(minutes=5))
    owner = store.owner.collection.find_one({"_id": "+33700000001"})
    assert owner is not None and (owner["created_at"], owner["updated_at"]) == (t0, t0 + timedelta(minutes=5))


def test_events_have_no_secondary_index_but_the_notes_partial_one(store: MongoRepositories, clock: FakeClock) -> None:
    """Each index would cost every webhook insert: the only other one holds the pending notes alone."""
    store.ensure_indexes()
    assert store.events.record_many([_inbound(1)], clock.now()) == [True]
    indexes = store.events.collection.index_information()
    assert sorted(indexes) == ["_id_", "pending_notes"]
    assert indexes["pending_notes"]["partialFilterExpression"] == {"kind": "pending"}


def _inbound(n: int, phone: str = "+33612345678") -> tuple[str, dict[str, object]]:
    return f"inbound:SM{n}", {"kind": "inbound", "sid": f"SM{n}", "state": "received", "from": f"whatsapp:{phone}"}


def test_a_note_whose_events_were_never_stored_is_dropped(store: MongoRepositories, clock: FakeClock) -> None:
    """The note goes first in its batch's insert; if the server stored it and then failed, the sweep cleans up."""
    from shared.adapters.documents import pending_note

    note = pending_note(clock.now(), [{"id": "inbound:SM5", "from": "whatsapp:+33612345678"}])
    store.events.collection.insert_one(note)
    assert store.events.get("inbound:SM5") is None
    assert store.events.unprocessed_inbound("+33612345678") == []
    later = clock.now() + timedelta(minutes=6)
    assert store.events.sweep_notes(requeue_before=later, drop_before=later, limit=100) == []
    assert store.events.collection.count_documents({"kind": "pending"}) == 0


def test_a_failed_batch_stores_neither_note_nor_events(store: MongoRepositories, clock: FakeClock) -> None:
    from unittest import mock

    from pymongo.errors import AutoReconnect

    with mock.patch.object(type(store.events.collection), "insert_many", side_effect=AutoReconnect("connection reset")):
        with pytest.raises(TransientError):
            store.events.record_many([_inbound(5)], clock.now())
    assert store.events.collection.count_documents({}) == 0


def test_the_scheduler_drops_finished_notes_soon_and_requeues_waiting_ones_when_stale(
        store: MongoRepositories, clock: FakeClock) -> None:
    from shared.fakes import RecordingQueue
    from shared.usecases.scheduling import FINISHED_NOTES_AFTER, TickReport, reconcile

    store.events.record_many([_inbound(1)], clock.now())
    store.events.record_many([_inbound(2, "+33700000000")], clock.now())
    assert store.events.mark_processed("inbound:SM1", clock.now())
    clock.advance(FINISHED_NOTES_AFTER + timedelta(seconds=1))
    queue = RecordingQueue()
    reconcile(store, queue, clock, timedelta(minutes=5), 100, TickReport())
    assert queue.inbound == []  # SM2 waits, but not for long enough to be sent again
    assert store.events.collection.count_documents({"kind": "pending"}) == 1  # SM1's note is gone, SM2's stays
    assert [e.id for e in store.events.unprocessed_inbound("+33700000000")] == ["inbound:SM2"]
    clock.advance(timedelta(minutes=5))
    reconcile(store, queue, clock, timedelta(minutes=5), 100, TickReport())
    assert queue.inbound == ["inbound:SM2"]
