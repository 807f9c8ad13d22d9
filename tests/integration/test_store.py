"""The MongoDB repositories on the real test server: indexes, idempotence, conditional moves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FakeClock
from shared.models import (
    Campaign,
    Contact,
    FollowUpState,
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


def test_ensure_indexes_keeps_one_secondary_index_on_events(store: Store) -> None:
    """Each index costs every webhook insert: an older database's extra ones are dropped."""
    from pymongo import ASCENDING

    store.events.create_index([("sid", ASCENDING)], name="sid")  # as an earlier version made it
    store.ensure_indexes()
    assert sorted(store.events.index_information()) == ["_id_", "kind_state_received"]


def test_two_processes_dropping_the_same_obsolete_index_both_start(store: Store) -> None:
    """Workers start together: the one that finds the index gone already must not fail."""
    from unittest import mock

    stale_view = {**store.events.index_information(), "sid": {"key": [("sid", 1)]}}  # seen before another dropped it
    with mock.patch.object(type(store.events), "index_information", return_value=stale_view):
        store.ensure_indexes()
    assert "sid" not in store.events.index_information()
