"""Contacts, campaigns, the owner's window and periodic jobs: the same answers from both implementations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FakeClock
from shared.domain.repositories import Repositories
from tests.contract.conftest import HOUR, campaign, contact, plant


def test_a_contact_is_unique_by_phone_and_an_import_twice_changes_nothing(repos: Repositories,
                                                                          clock: FakeClock) -> None:
    now = clock.now()
    assert repos.contacts.upsert(contact(1), now) == "inserted"
    assert repos.contacts.upsert(contact(1), now + HOUR) == "unchanged"
    assert repos.contacts.upsert(contact(1, name="Marie D."), now + HOUR) == "updated"
    # Another id with the same phone is the same contact: updated, its id kept.
    assert repos.contacts.upsert(contact(1, id="other", name="Marie Durand"), now + HOUR) == "updated"
    found = repos.contacts.by_phone(contact(1).phone)
    assert found is not None and (found.id, found.name) == ("ct1", "Marie Durand")
    assert repos.contacts.get("other") is None and repos.contacts.count() == 1
    assert repos.contacts.get("ct1") == found
    assert repos.contacts.by_phone("+33699999999") is None and repos.contacts.get("nobody") is None


def test_find_selects_by_every_tag_and_field_in_id_order(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.contacts.upsert(contact(3, tags=["clients", "vip"], fields={"city": "Lyon"}), now)
    repos.contacts.upsert(contact(1, tags=["clients"], fields={"city": "Lyon"}), now)
    repos.contacts.upsert(contact(2, tags=["vip"], fields={"city": "Paris"}), now)
    assert [c.id for c in repos.contacts.find()] == ["ct1", "ct2", "ct3"]
    assert [c.id for c in repos.contacts.find(tags=["vip"])] == ["ct2", "ct3"]
    assert [c.id for c in repos.contacts.find(tags=["clients", "vip"])] == ["ct3"]
    assert [c.id for c in repos.contacts.find(equals={"city": "Lyon"})] == ["ct1", "ct3"]
    assert [c.id for c in repos.contacts.find(tags=["vip"], equals={"city": "Lyon"})] == ["ct3"]
    assert repos.contacts.find(equals={"city": "Nice"}) == []
    # In pages: after an id, at most a limit.
    assert [c.id for c in repos.contacts.find(limit=2)] == ["ct1", "ct2"]
    assert [c.id for c in repos.contacts.find(after="ct1", limit=1)] == ["ct2"]
    assert [c.id for c in repos.contacts.find(after="ct2")] == ["ct3"]
    assert [c.id for c in repos.contacts.find(equals={"city": "Lyon"}, after="ct1", limit=5)] == ["ct3"]


def test_names_are_sorted_and_found_by_prefix_accents_and_case_aside(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.contacts.upsert(contact(1, name="Zoé Martin"), now)
    repos.contacts.upsert(contact(2, name="  léa   PETIT "), now)
    repos.contacts.upsert(contact(3, name="Lea Dupont", phone="+447700900123"), now)
    repos.contacts.set_opt_out("ct1", True, now)
    everyone = repos.contacts.names()
    assert [(n.key, n.id, n.opted_out) for n in everyone] == [
        ("lea dupont", "ct3", False), ("lea petit", "ct2", False), ("zoe martin", "ct1", True)]
    assert [n.id for n in repos.contacts.names(prefix="lea")] == ["ct3", "ct2"]
    assert [n.id for n in repos.contacts.names(prefix="lea p")] == ["ct2"]
    # The start of any word: a last name finds its client, a word's middle does not.
    assert [n.id for n in repos.contacts.names(prefix="martin")] == ["ct1"]
    assert [n.id for n in repos.contacts.names(prefix="dup")] == ["ct3"]
    assert [n.id for n in repos.contacts.names(prefix="petit")] == ["ct2"]
    assert repos.contacts.names(prefix="upont") == [] and repos.contacts.names(prefix="petit lea") == []
    # A phone prefix, or a name prefix: either finds.
    assert [n.id for n in repos.contacts.names(phone_prefixes=["+44770"])] == ["ct3"]
    assert [n.id for n in repos.contacts.names(prefix="zoe", phone_prefixes=["+44", "+1"])] == ["ct3", "ct1"]
    # A rename moves the contact in the order.
    repos.contacts.upsert(contact(1, name="Émile Zola"), now)
    assert [n.id for n in repos.contacts.names(prefix="emile")] == ["ct1"]
    assert [c.name for c in repos.contacts.get_many(["ct2", "nobody", "ct1"])] == ["  léa   PETIT ", "Émile Zola"]
    assert repos.contacts.get_many([]) == []
    assert [(r.id, r.name) for r in repos.contacts.records(["ct3", "nobody", "ct2"])] == [
        ("ct3", "Lea Dupont"), ("ct2", "  léa   PETIT ")]
    assert repos.contacts.records([]) == []


def test_opting_out_changes_once_and_the_window_only_moves_forward(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.contacts.upsert(contact(1), now)
    assert repos.contacts.set_opt_out("ct1", True, now)
    assert not repos.contacts.set_opt_out("ct1", True, now + HOUR)
    assert repos.contacts.get("ct1").opted_out  # type: ignore[union-attr]
    assert repos.contacts.set_opt_out("ct1", False, now + HOUR)
    assert not repos.contacts.set_opt_out("nobody", True, now)
    repos.contacts.touch_inbound("ct1", now + HOUR)
    repos.contacts.touch_inbound("ct1", now)  # an older message processed late: the window stays
    assert repos.contacts.get("ct1").last_inbound_at == now + HOUR  # type: ignore[union-attr]


def test_a_record_the_model_refuses_is_still_read_for_a_person(repos: Repositories, clock: FakeClock) -> None:
    repos.contacts.upsert(contact(1), clock.now())
    good = repos.contacts.record("ct1")
    assert good is not None and good.problem is None and good.fields == {"invoice_number": "FA-1"}
    assert repos.contacts.record_by_phone(contact(1).phone) == good
    plant(repos, "contacts", {"_id": "bad", "phone": "+33600000009", "name": "Paul", "language": "klingon"})
    bad = repos.contacts.record_by_phone("+33600000009")
    assert bad is not None and bad.id == "bad" and bad.name == "Paul" and bad.language == "klingon"
    assert bad.problem is not None and bad.problem.startswith("language:")
    assert repos.contacts.record("nobody") is None and repos.contacts.record_by_phone("+33699999999") is None


def test_campaigns_are_created_once_listed_by_id_and_paused_once(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.campaigns.create(campaign("c2"), now)
    assert repos.campaigns.create(campaign("c1", steps=3), now)
    assert not repos.campaigns.create(campaign("c1", steps=1), now)  # the first one stays
    assert [c.id for c in repos.campaigns.all()] == ["c1", "c2"]
    assert len(repos.campaigns.get("c1").steps) == 3  # type: ignore[union-attr]
    assert repos.campaigns.get("nope") is None
    assert sorted(repos.campaigns.active_ids()) == ["c1", "c2"]
    assert repos.campaigns.set_status("c1", "paused", now)
    assert not repos.campaigns.set_status("c1", "paused", now + HOUR)
    assert repos.campaigns.active_ids() == ["c2"] and repos.campaigns.get("c1").status == "paused"  # type: ignore[union-attr]
    assert not repos.campaigns.set_status("nope", "paused", now)


def test_the_owners_window_only_moves_forward(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.owner.last_inbound("+33700000001") is None
    repos.owner.touch_inbound("+33700000001", now)
    repos.owner.touch_inbound("+33700000001", now - HOUR)
    assert repos.owner.last_inbound("+33700000001") == now
    repos.owner.touch_inbound("+33700000001", now + HOUR)
    assert repos.owner.last_inbound("+33700000001") == now + HOUR
    assert repos.owner.last_inbound("+33700000002") is None


def test_a_periodic_job_runs_once_per_period_and_its_cursor_only_moves_forward(repos: Repositories,
                                                                                 clock: FakeClock) -> None:
    now, every = clock.now(), timedelta(minutes=1)
    first = repos.jobs.claim("backfill", now, every)
    assert first is not None and first.cursor is None and first.next_run_at == now + every
    assert repos.jobs.claim("backfill", now, every) is None  # another scheduler, same period
    assert repos.jobs.claim("backfill", now + timedelta(seconds=59), every) is None
    assert repos.jobs.advance_cursor("backfill", now - HOUR, now, listed=3)
    assert not repos.jobs.advance_cursor("backfill", now - 2 * HOUR, now)  # never back
    again = repos.jobs.claim("backfill", now + every, every)
    assert again is not None and again.cursor == now - HOUR
    assert repos.jobs.claim("other", now, every) is not None  # each job its own period


def test_the_store_answers(repos: Repositories) -> None:
    assert repos.ping()
    repos.ensure_indexes()
    repos.ensure_indexes()  # idempotent


@pytest.mark.parametrize("limit", [1, 2])
def test_counting_contacts(repos: Repositories, clock: FakeClock, limit: int) -> None:
    for n in range(1, limit + 1):
        repos.contacts.upsert(contact(n), clock.now())
    assert repos.contacts.count() == limit
