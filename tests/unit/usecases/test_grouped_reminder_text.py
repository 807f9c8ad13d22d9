"""The grouped reminder as sent: an invoice campaign's step, drafted offline, names each covered invoice."""

from __future__ import annotations

from shared.clock import FakeClock
from shared.language.factcheck import check_draft
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from tests.support.actors import drain
from tests.unit.usecases.test_invoice_reminders import RecordingDrafter, _sent_bodies, deps, owed

__all__ = ["deps", "owed"]  # the fixtures of the invoice campaigns' tests


def test_the_sent_reminder_lists_each_invoice_the_total_and_the_links(owed: App, clock: FakeClock) -> None:
    tick(owed.store, owed.queue, clock)
    drain(owed)
    (body,) = _sent_bodies(owed)["+33612345678"]
    text = body.replace("\u00a0", " ")
    assert "2 factures" in text and "1 750,50 €" in text
    assert "FA-101 : 500,00 €" in text and "FA-102 : 1 250,50 €" in text
    assert "FA-101 : https://pay.example.com/101" in text and "FA-102 : https://pay.example.com/102" in text
    assert "FA-201" not in text and "OLD-1" not in text and text.startswith("Bonjour Marie")
    drafter = owed.drafter
    assert isinstance(drafter, RecordingDrafter)
    marie = next(r for r in drafter.requests if r.contact_name == "Marie")
    assert check_draft(body, marie) == []
    (paul,) = _sent_bodies(owed)["+33698765432"]
    assert "FA-201" in paul and "factures" not in paul  # one invoice: the single-invoice text
