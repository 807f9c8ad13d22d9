"""``relance hooks add/list/remove`` through the real entry point, on the test MongoDB server."""

from __future__ import annotations

import re

import pytest

from shared.adapters.mongo import MongoRepositories
from tests.support.cli import Relance

pytestmark = pytest.mark.integration


def test_add_shows_the_secret_once_list_never_and_remove_stops_it(relance: Relance,
                                                                   store: MongoRepositories) -> None:
    code, out, _ = relance("hooks", "add", "https://crm.example.com/relance", "--event", "invoice.paid",
                           "--event", "handover.needed")
    assert code == 0
    found = re.search(r"webhook (wh_\w+) added: https://crm.example.com/relance receives invoice.paid, "
                      r"handover.needed", out)
    secret = re.search(r"signing secret \(shown once.*\): (whsec_\S+)", out)
    assert found and secret
    (stored,) = store.hooks.subscriptions()
    assert (stored.id, stored.secret, stored.events) == (found[1], secret[1], ("invoice.paid", "handover.needed"))
    code, out, _ = relance("hooks", "list")
    assert code == 0 and out.splitlines() == [
        f"{found[1]}  https://crm.example.com/relance  invoice.paid,handover.needed  last: none yet"]
    assert "whsec_" not in out
    assert relance("hooks", "remove", found[1])[:2] == (0, f"webhook {found[1]} removed\n")
    assert relance("hooks", "list")[1].startswith("no webhooks")
    code, _, err = relance("hooks", "remove", found[1])
    assert code == 1 and f"no webhook subscription '{found[1]}'" in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "said"), [
    (("http://crm.example.com/x", "--event", "invoice.paid"), "plain http"),
    (("crm.example.com/x", "--event", "invoice.paid"), "is not a URL"),
    (("https://crm.example.com/x", "--event", "invoice.payed"), "unknown event 'invoice.payed': the events are "
                                                                 "invoice.paid, reply.received"),
    (("https://crm.example.com/x",), "name at least one event"),
])
def test_a_bad_url_or_event_is_told_and_nothing_stored(relance: Relance, store: MongoRepositories,
                                                       argv: tuple[str, ...], said: str) -> None:
    code, out, err = relance("hooks", "add", *argv)
    assert code == 1 and said in err and "Traceback" not in err and "whsec_" not in out
    assert store.hooks.subscriptions() == []


def test_localhost_may_be_plain_http(relance: Relance) -> None:
    assert relance("hooks", "add", "http://localhost:8080/x", "--event", "message.failed")[0] == 0
    assert relance("hooks", "add", "http://127.0.0.1:8080/x", "--event", "reply.received")[0] == 0
