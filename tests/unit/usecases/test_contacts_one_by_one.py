"""Creating and changing one contact (the console's API) on the in-memory repositories: the import's checks,
the phone kept, fields merged, an opt-out that stops follow-ups and cannot be undone here."""

from __future__ import annotations

import pytest

from shared.adapters.memory import memory_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, EnrolRule, Step
from shared.errors import Conflict, InputError, NotFound
from shared.usecases.audit import recent
from shared.usecases.campaigns import create_campaign, enrol_campaign
from shared.usecases.contacts import create_contact, update_contact


def test_create_checks_as_an_import_row_and_refuses_a_taken_phone() -> None:
    store, clock = memory_repositories(), FakeClock()
    made = create_contact(store, {"name": "Zoé", "phone": "0612345699", "tags": "a|b"}, now=clock.now(), by="key:t")
    assert (made.phone, made.language.value, made.timezone, made.tags) == ("+33612345699", "fr", "Europe/Paris",
                                                                          ["a", "b"])
    with pytest.raises(Conflict, match=f"contact {made.id} has phone"):
        create_contact(store, {"name": "Other", "phone": "+33612345699"}, now=clock.now(), by="key:t")
    with pytest.raises(InputError, match="language 'xx' is not supported"):
        create_contact(store, {"name": "X", "phone": "+33612345698", "language": "xx"}, now=clock.now(), by="key:t")
    with pytest.raises(InputError, match="the contact field 'note' must be text or a number"):
        create_contact(store, {"name": "X", "phone": "+33612345698", "note": ["a"]}, now=clock.now(), by="key:t")
    assert store.contacts.count() == 1
    assert [(e.by, e.action) for e in recent(store)] == [("key:t", "contact.create")]


def test_update_merges_fields_keeps_the_phone_and_an_opt_out_is_for_good() -> None:
    store, clock = memory_repositories(), FakeClock()
    made = create_contact(store, {"name": "Zoé", "phone": "+33612345699", "tags": ["vip"],
                                  "fields": {"a": "1", "b": "2"}}, now=clock.now(), by="key:t")
    create_campaign(store, Campaign(id="c", name="C", steps=[Step()], enrol=EnrolRule(tags=["vip"])), now=clock.now())
    assert enrol_campaign(store, "c", now=clock.now()).enrolled == 1
    changed = update_contact(store, made.id, {"fields": {"a": None, "c": "3"}, "name": "Zoé B"}, now=clock.now(),
                             by="user:o@example.com")
    assert (changed.name, changed.fields, changed.phone) == ("Zoé B", {"b": "2", "c": "3"}, "+33612345699")
    with pytest.raises(InputError, match="phone cannot be changed"):
        update_contact(store, made.id, {"phone": "+33612345600"}, now=clock.now(), by="key:t")
    with pytest.raises(NotFound):
        update_contact(store, "ct_nope", {"name": "X"}, now=clock.now(), by="key:t")
    out = update_contact(store, made.id, {"opted_out": True}, now=clock.now(), by="key:t")
    followup = store.followups.get(f"c:{made.id}")
    assert out.opted_out and followup is not None and followup.state.value == "stopped"
    with pytest.raises(InputError, match="only the client can undo it"):
        update_contact(store, made.id, {"opted_out": False}, now=clock.now(), by="key:t")
    assert {e.action for e in recent(store)} >= {"contact.update", "contact.opt_out"}
