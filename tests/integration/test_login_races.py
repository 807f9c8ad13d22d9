"""A user removed while they log in, on the real MongoDB-compatible server: no session outlives the user."""

from __future__ import annotations

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.usecases import users
from shared.usecases.users import BadCredentials, add_user, current_session, log_in, remove_user

pytestmark = pytest.mark.integration


def test_a_user_removed_while_their_password_is_checked_gets_no_session(
        store: MongoRepositories, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    add_user(store, "owner@example.com", "correct horse battery", now=clock.now())
    real_verify = users._verify

    def removed_meanwhile(password_hash: str, password: str) -> bool:
        # `relance users remove` runs in another process while Argon2 checks the password (tens of ms).
        assert remove_user(store, "owner@example.com") == 0
        return real_verify(password_hash, password)

    monkeypatch.setattr(users, "_verify", removed_meanwhile)
    with pytest.raises(BadCredentials):
        log_in(store, "owner@example.com", "correct horse battery", now=clock.now())
    assert store.sessions.remove_for("owner@example.com") == 0  # no session left behind for the removed user


def test_a_log_in_still_opens_a_session(store: MongoRepositories, clock: FakeClock) -> None:
    add_user(store, "owner@example.com", "correct horse battery", now=clock.now())
    done = log_in(store, " Owner@Example.com ", "correct horse battery", now=clock.now())
    assert current_session(store, done.token, now=clock.now()) is not None
