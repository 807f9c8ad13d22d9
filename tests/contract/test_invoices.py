"""Invoices: the same answers from both implementations (unique references, payments, history)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.adapters.transitions import InvoiceTransitions
from shared.clock import FakeClock
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.repositories import Repositories
from shared.domain.states import InvoiceStatus
from tests.contract.conftest import HOUR, stored

ST, SRC = InvoiceStatus, InvoiceSource


def invoice(reference: str = "FA-1", **changes: Any) -> Invoice:
    """An open invoice of 1250.50 EUR for ``ct1``."""
    data: dict[str, Any] = {"id": f"in_{reference}", "reference": reference, "contact_id": "ct1",
                            "amount_cents": 125050, "amount_due_cents": 125050, "currency": "EUR",
                            "issued_on": date(2026, 1, 5), "due_date": date(2026, 2, 5),
                            "payment_link": f"https://pay.example.com/{reference}"}
    return Invoice.model_validate({**data, **changes})


def _history(repos: Repositories, reference: str) -> list[tuple[str, str, str, int | None]]:
    found = repos.invoices.get(reference)
    assert found is not None
    return [(c.what, c.source.value, c.status.value, c.amount_due_cents) for c in found.history]


def test_an_invoice_is_unique_by_reference_and_read_back_as_stored(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    assert repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=now)
    assert not repos.invoices.add(invoice("FA-1", id="in_other", amount_cents=1, amount_due_cents=1),
                                  source=SRC.IMPORT, now=now)
    found = repos.invoices.get("FA-1")
    assert found is not None and found.id == "in_FA-1" and found.amount_due_cents == 125050
    assert (found.issued_on, found.due_date, found.status) == (date(2026, 1, 5), date(2026, 2, 5), ST.OPEN)
    assert _history(repos, "FA-1") == [("created", "import", "open", 125050)]
    assert found.history[0].at == now
    assert repos.invoices.get("nope") is None
    doc = stored(repos, "invoices", "in_FA-1")
    assert doc is not None and doc["due_date"] == "2026-02-05" and doc["amount_cents"] == 125050


def test_find_by_contact_and_status_in_reference_order(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.invoices.add(invoice("FA-3"), source=SRC.IMPORT, now=now)
    repos.invoices.add(invoice("FA-1", contact_id="ct2"), source=SRC.IMPORT, now=now)
    repos.invoices.add(invoice("FA-2", status=ST.PAID, amount_due_cents=0), source=SRC.IMPORT, now=now)
    assert [i.reference for i in repos.invoices.find()] == ["FA-1", "FA-2", "FA-3"]
    assert [i.reference for i in repos.invoices.find(contact_id="ct1")] == ["FA-2", "FA-3"]
    assert [i.reference for i in repos.invoices.find(statuses=[ST.OPEN])] == ["FA-1", "FA-3"]
    assert [i.reference for i in repos.invoices.find(contact_id="ct1", statuses=[ST.PAID])] == ["FA-2"]
    assert repos.invoices.find(contact_id="nobody") == [] and repos.invoices.find(statuses=[]) == []
    # Several clients in one read.
    both = repos.invoices.find(contact_ids=["ct2", "ct1"], statuses=[ST.OPEN])
    assert [i.reference for i in both] == ["FA-1", "FA-3"]
    assert [i.reference for i in repos.invoices.find(contact_ids=["ct2", "x"])] == ["FA-1"]
    assert repos.invoices.find(contact_ids=[]) == []
    # In pages: after a reference, at most a limit.
    assert [i.reference for i in repos.invoices.find(limit=2)] == ["FA-1", "FA-2"]
    assert [i.reference for i in repos.invoices.find(after="FA-1", limit=1)] == ["FA-2"]
    assert [i.reference for i in repos.invoices.find(contact_id="ct1", after="FA-2")] == ["FA-3"]
    assert repos.invoices.find(after="FA-3") == []


def test_a_partial_payment_lowers_what_is_due_and_the_rest_pays_it(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=now)
    assert repos.invoices.mark_paid("FA-1", amount_cents=25050, source=SRC.COMMAND, now=now + HOUR)
    part = repos.invoices.get("FA-1")
    assert part is not None and (part.status, part.amount_due_cents) == (ST.PARTIALLY_PAID, 100000)
    assert repos.invoices.mark_paid("FA-1", amount_cents=50000, source=SRC.PAYMENT, now=now + HOUR)
    assert repos.invoices.mark_paid("FA-1", source=SRC.SYNC, now=now + 2 * HOUR)  # the rest
    paid = repos.invoices.get("FA-1")
    assert paid is not None and (paid.status, paid.amount_due_cents) == (ST.PAID, 0)
    assert not repos.invoices.mark_paid("FA-1", source=SRC.COMMAND, now=now + 3 * HOUR)  # paid once
    assert _history(repos, "FA-1") == [
        ("created", "import", "open", 125050), ("pay_part", "command", "partially_paid", 100000),
        ("pay_part", "payment", "partially_paid", 50000), ("mark_paid", "sync", "paid", 0)]
    assert not repos.invoices.mark_paid("nope", source=SRC.COMMAND, now=now)
    with pytest.raises(ValueError, match="positive"):
        repos.invoices.mark_paid("FA-1", amount_cents=0, source=SRC.COMMAND, now=now)


def test_a_part_payment_is_recorded_only_while_the_amount_due_is_the_one_seen(repos: Repositories,
                                                                              clock: FakeClock) -> None:
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=clock.now())
    paying = {"due_before": 125050, "amount_cents": 5000, "source": SRC.COMMAND, "now": clock.now()}
    assert repos.invoices.pay_part("FA-1", **paying)  # type: ignore[arg-type]
    assert not repos.invoices.pay_part("FA-1", **paying)  # type: ignore[arg-type]  # the same form again
    found = repos.invoices.get("FA-1")
    assert found is not None and (found.status, found.amount_due_cents) == (ST.PARTIALLY_PAID, 120050)


def test_a_payments_id_is_kept_in_the_history_entry_it_made(repos: Repositories, clock: FakeClock) -> None:
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=clock.now())
    assert repos.invoices.mark_paid("FA-1", amount_cents=10000, source=SRC.PAYMENT, now=clock.now(), ref="stripe:pi_1")
    assert repos.invoices.mark_paid("FA-1", source=SRC.PAYMENT, now=clock.now(), ref="stripe:pi_2")
    found = repos.invoices.get("FA-1")
    assert found is not None
    assert [(c.what, c.ref) for c in found.history] == [("created", None), ("pay_part", "stripe:pi_1"),
                                                          ("mark_paid", "stripe:pi_2")]


def test_a_payment_of_more_than_is_due_pays_it(repos: Repositories, clock: FakeClock) -> None:
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=clock.now())
    assert repos.invoices.mark_paid("FA-1", amount_cents=999999, source=SRC.COMMAND, now=clock.now())
    assert repos.invoices.get("FA-1").status == ST.PAID  # type: ignore[union-attr]


def test_cancel_dispute_claim_and_reopen_move_only_where_the_table_allows(repos: Repositories,
                                                                         clock: FakeClock) -> None:
    now = clock.now()
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=now)
    assert repos.invoices.claim_paid("FA-1", source=SRC.REPLY, now=now)
    assert not repos.invoices.claim_paid("FA-1", source=SRC.REPLY, now=now)  # claimed once
    assert repos.invoices.dispute("FA-1", source=SRC.REPLY, now=now)
    assert repos.invoices.reopen("FA-1", source=SRC.COMMAND, now=now)
    assert repos.invoices.cancel("FA-1", source=SRC.COMMAND, now=now)
    assert not repos.invoices.cancel("FA-1", source=SRC.COMMAND, now=now)
    assert not repos.invoices.mark_paid("FA-1", source=SRC.COMMAND, now=now)  # cancelled: nothing to pay
    assert not repos.invoices.dispute("FA-1", source=SRC.REPLY, now=now)
    cancelled = repos.invoices.get("FA-1")
    assert cancelled is not None and (cancelled.status, cancelled.amount_due_cents) == (ST.CANCELLED, 125050)
    assert repos.invoices.reopen("FA-1", source=SRC.COMMAND, now=now)
    assert repos.invoices.mark_paid("FA-1", source=SRC.PAYMENT, now=now)
    assert repos.invoices.reopen("FA-1", source=SRC.PAYMENT, now=now + HOUR)  # a refund: owed again in full
    reopened = repos.invoices.get("FA-1")
    assert reopened is not None and (reopened.status, reopened.amount_due_cents) == (ST.OPEN, 125050)
    assert not repos.invoices.reopen("FA-1", source=SRC.COMMAND, now=now)  # open already
    assert not repos.invoices.reopen("nope", source=SRC.COMMAND, now=now)
    assert not repos.invoices.cancel("nope", source=SRC.COMMAND, now=now)
    assert [what for what, *_ in _history(repos, "FA-1")] == [
        "created", "claim_paid", "dispute", "reopen", "cancel", "reopen", "mark_paid", "reopen"]


def test_details_change_once_and_never_touch_the_status(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=now)
    changes = {"due_date": date(2026, 3, 1), "payment_link": "https://pay.example.com/new"}
    assert repos.invoices.update_details("FA-1", changes, source=SRC.IMPORT, now=now + HOUR)
    assert not repos.invoices.update_details("FA-1", changes, source=SRC.IMPORT, now=now + HOUR)  # unchanged
    found = repos.invoices.get("FA-1")
    assert found is not None and found.due_date == date(2026, 3, 1) and found.status == ST.OPEN
    assert _history(repos, "FA-1")[-1] == ("updated", "import", "open", None)
    assert not repos.invoices.update_details("nope", changes, source=SRC.IMPORT, now=now)
    with pytest.raises(ValueError, match="not an invoice detail: status"):
        repos.invoices.update_details("FA-1", {"status": "paid"}, source=SRC.IMPORT, now=now)


def test_a_corrected_amount_moves_what_is_due_by_as_much_once(repos: Repositories, clock: FakeClock) -> None:
    now = clock.now()
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=now)  # 1250.50, all due
    assert repos.invoices.mark_paid("FA-1", source=SRC.COMMAND, now=now, amount_cents=50)
    assert repos.invoices.change_amount("FA-1", amount_cents=100000, was_cents=125050, due_was_cents=125000,
                                        source=SRC.COMMAND, now=now + HOUR)
    found = repos.invoices.get("FA-1")
    assert found is not None and (found.amount_cents, found.amount_due_cents, found.status) == (
        100000, 99950, ST.PARTIALLY_PAID)
    assert _history(repos, "FA-1")[-1] == ("amount_changed", "command", "partially_paid", 99950)
    # Read before the first correction: refused, nothing written.
    assert not repos.invoices.change_amount("FA-1", amount_cents=90000, was_cents=125050, due_was_cents=125000,
                                            source=SRC.COMMAND, now=now + HOUR)
    # Nothing left due, or not open: refused.
    assert not repos.invoices.change_amount("FA-1", amount_cents=50, was_cents=100000, due_was_cents=99950,
                                            source=SRC.COMMAND, now=now + HOUR)
    assert repos.invoices.cancel("FA-1", source=SRC.COMMAND, now=now)
    assert not repos.invoices.change_amount("FA-1", amount_cents=2000, was_cents=100000, due_was_cents=99950,
                                            source=SRC.COMMAND, now=now + HOUR)
    assert not repos.invoices.change_amount("nope", amount_cents=2000, was_cents=1, due_was_cents=1,
                                            source=SRC.COMMAND, now=now)
    found = repos.invoices.get("FA-1")
    assert found is not None and (found.amount_cents, found.amount_due_cents) == (100000, 99950)


def test_a_payment_whose_amount_due_changed_meanwhile_is_not_written(repos: Repositories, clock: FakeClock) -> None:
    """Two payments read the same amount due: the second one's conditional write finds it changed."""
    now = clock.now()
    repos.invoices.add(invoice("FA-1"), source=SRC.IMPORT, now=now)
    invoices = repos.invoices
    assert isinstance(invoices, InvoiceTransitions)
    assert invoices.pay_part("FA-1", due_before=125050, amount_cents=50, source=SRC.PAYMENT, now=now)
    assert not invoices.pay_part("FA-1", due_before=125050, amount_cents=70, source=SRC.COMMAND, now=now)
    assert repos.invoices.get("FA-1").amount_due_cents == 125000  # type: ignore[union-attr]
