"""`relance users add|list|remove` through the real entry point on the real MongoDB-compatible server."""

from __future__ import annotations

import getpass

import pytest
from argon2 import PasswordHasher

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.usecases.users import BadCredentials, log_in
from tests.support.cli import Relance

pytestmark = pytest.mark.integration


def test_a_user_is_added_with_an_argon2_hash_listed_and_removed(relance: Relance, store: MongoRepositories,
                                                                clock: FakeClock) -> None:
    code, out, err = relance("users", "add", "Owner@Example.com", typed=("long enough pw", "long enough pw"))
    assert (code, err) == (0, ""), err
    assert "user 'owner@example.com' added" in out
    doc = store.users.collection.find_one({"_id": "owner@example.com"})
    assert doc is not None and doc["password_hash"].startswith("$argon2id$")
    assert "long enough pw" not in str(doc)
    assert PasswordHasher().verify(doc["password_hash"], "long enough pw")
    log_in(store, "owner@example.com", "long enough pw", now=clock.now())
    code, out, _ = relance("users", "list")
    assert code == 0 and out.startswith("owner@example.com  created ") and "$argon2" not in out
    assert relance("users", "add", "owner@example.com", "--password-stdin", stdin="another password\n") == (
        1, "", "error: a user 'owner@example.com' exists already\n")
    assert store.sessions.collection.count_documents({}) == 1
    assert relance("users", "remove", "owner@example.com") == (
        0, "user 'owner@example.com' removed (1 session(s) ended)\n", "")
    assert store.sessions.collection.count_documents({}) == 0
    with pytest.raises(BadCredentials):
        log_in(store, "owner@example.com", "long enough pw", now=clock.now())
    assert relance("users", "remove", "owner@example.com") == (
        1, "", "error: no user 'owner@example.com' (relance users list shows them)\n")
    assert [(e.by, e.action, e.target) for e in reversed(store.audit.recent(10))] == [
        (f"cli:{getpass.getuser()}", "user.add", "owner@example.com"),
        (f"cli:{getpass.getuser()}", "user.remove", "owner@example.com")]


def test_password_stdin_and_the_mistakes_refused(relance: Relance, store: MongoRepositories) -> None:
    assert relance("users", "add", "a@example.com", "--password-stdin", stdin="scripted password\n")[0] == 0
    assert relance("users", "add", "b@example.com", typed=("first password", "other password")) == (
        1, "", "error: the two passwords differ: nothing was changed\n")
    assert relance("users", "add", "c@example.com", "--password-stdin", stdin="short\n") == (
        1, "", "error: the password must have at least 10 characters\n")
    assert relance("users", "add", "not-an-email", "--password-stdin", stdin="long enough pw\n") == (
        1, "", "error: 'not-an-email' is not an email address\n")
    assert [u.email for u in store.users.all()] == ["a@example.com"]


def test_no_users_yet(relance: Relance) -> None:
    assert relance("users", "list") == (0, "no users (relance users add EMAIL)\n", "")
