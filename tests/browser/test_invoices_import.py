"""In chromium: import an invoices file with a bad line (its error shown, nothing imported), then a good
one (the invoices listed), and mark one paid from the invoices page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import ConsoleSite, log_in

BAD = ("phone,invoice,amount,name,due_date\n"
       "+33612345601,FA-100,250.00,Marie Dupont,2026-04-01\n"
       "+33612345602,FA-101,deux cents,Paul Martin,2026-04-01\n")
GOOD = ("phone,invoice,amount,name,due_date\n"
        "+33612345601,FA-100,250.00,Marie Dupont,2026-04-01\n"
        "+33612345602,FA-101,200,Paul Martin,2026-04-01\n")


def test_a_bad_invoices_file_shows_its_line_then_a_good_one_imports(console: ConsoleSite, page: Any,
                                                                    tmp_path: Path) -> None:
    email, password = console.user()
    page.goto(f"{console.url}/invoices")
    log_in(page, console.url, email, password)
    page.wait_for_url(f"{console.url}/invoices")
    assert page.locator("h1").inner_text() == "Factures"
    assert page.locator("#empty").inner_text().startswith("Aucune facture pour l'instant : importez un fichier")

    bad = tmp_path / "factures.csv"
    bad.write_text(BAD, encoding="utf-8")
    page.set_input_files("#invoices-file", str(bad))
    page.click("form[action='/invoices/import'] button[type=submit]")
    errors = page.locator("#import-errors")
    errors.wait_for()
    assert "Rien n'a été importé" in errors.inner_text()
    assert "ligne 3 : 'deux cents' n'est pas un montant" in errors.inner_text()
    assert page.locator("table#invoices").count() == 0
    assert console.store.invoices.get("FA-100") is None  # nothing imported, not even the good line

    good = tmp_path / "factures-corrigees.csv"
    good.write_text(GOOD, encoding="utf-8")
    page.set_input_files("#invoices-file", str(good))
    page.click("form[action='/invoices/import'] button[type=submit]")
    page.locator("[role=status]").wait_for()
    assert page.locator("[role=status]").inner_text().startswith("Import terminé : 2 nouvelle(s)")
    assert page.locator("#import-errors").count() == 0
    assert page.locator("table#invoices tr[data-reference]").count() == 2
    row = page.locator("tr[data-reference='FA-101']")
    assert "Paul Martin" in row.inner_text() and "200,00" in row.inner_text()

    row.locator("input[name=amount]").fill("50")
    row.locator("text=Marquer payée").click()
    page.locator("text=Paiement enregistré pour FA-101.").wait_for()
    assert page.locator("tr[data-reference='FA-101'] td[data-status]").inner_text() == "payée en partie"
    invoice = console.store.invoices.get("FA-101")
    assert invoice is not None and invoice.amount_due_cents == 15000
