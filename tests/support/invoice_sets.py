"""Invoices of one client for the grouped-reminder tests (drafts and facts check), and of another."""

from __future__ import annotations

from datetime import date

from shared.domain.invoices import Invoice


def invoice(reference: str, cents: int, due: date | None, link: str | None = None, *, currency: str = "EUR",
            contact_id: str = "c1") -> Invoice:
    """An open invoice of ``contact_id`` with ``cents`` due."""
    return Invoice(id=f"id-{reference}", reference=reference, contact_id=contact_id, amount_cents=cents,
                   amount_due_cents=cents, currency=currency, due_date=due, payment_link=link)


# Each invoice has its own payment link.
OWN_LINKS = [
    invoice("F2026-0017", 125050, date(2026, 3, 1), "https://pay.example.com/i/a1"),
    invoice("F2026-0023", 48000, date(2026, 3, 15), "https://pay.example.com/i/b2"),
    invoice("F2026-0031", 8000, date(2026, 4, 2), "https://pay.example.com/i/c3"),
    invoice("F2026-0042", 1999, date(2026, 4, 30), "https://pay.example.com/i/d4"),
]
# One link for all (a client portal), one invoice without a due date, two currencies.
SHARED_LINK = [
    invoice("FA-2026-118", 99000, date(2026, 1, 31), "https://portal.example.fr/client/77"),
    invoice("FA-2026-131", 15075, None, "https://portal.example.fr/client/77"),
    invoice("FA-2026-140", 250000, date(2026, 2, 28), "https://portal.example.fr/client/77", currency="USD"),
    invoice("FA-2026-152", 30000, date(2026, 3, 10), "https://portal.example.fr/client/77"),
]
# No payment link at all.
NO_LINK = [
    invoice("INV1001", 70000, date(2026, 5, 4)),
    invoice("INV1002", 5000, date(2026, 5, 18)),
    invoice("INV1003", 123456, date(2026, 6, 1)),
    invoice("INV1004", 100, date(2026, 6, 15)),
]
# Some invoices with a link (the same one), some without.
SOME_LINKS = [
    invoice("2026/0007", 45000, date(2026, 2, 2), "https://pay.example.com/c/9"),
    invoice("2026/0011", 12050, date(2026, 2, 20)),
    invoice("2026/0015", 8000, date(2026, 3, 3), "https://pay.example.com/c/9", currency="CHF"),
    invoice("2026/0019", 60000, None),
]
SETS = {"own_links": OWN_LINKS, "shared_link": SHARED_LINK, "no_link": NO_LINK, "some_links": SOME_LINKS}

# Another client's invoice: nothing of it may appear in a reminder to c1.
OTHER_CLIENT = invoice("F2026-0018", 73000, date(2026, 5, 20), "https://pay.example.com/i/zz9", contact_id="c2")
