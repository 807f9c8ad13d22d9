"""`relance approvals list|approve|edit|reject` through the real entry point on the real servers."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock, SystemClock
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.fakes import FakeSender, RecordingQueue
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.scheduling import tick
from tests.support.actors import drain
from tests.support.cli import Relance, relance_runner
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration
ALWAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(0), end=time(23, 59))


@pytest.fixture
def relance(mongo_uri: str, db_name: str, redis_url: str, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> Relance:
    """``relance`` with Redis: an approved draft is handed to the sending queue."""
    return relance_runner(mongo_uri, db_name, capsys, monkeypatch, env={"REDIS_URL": redis_url})


def _waiting(store: MongoRepositories) -> str:
    """Two clients' step 0 drafted for a campaign that wants approval (the real clock: the CLI's)."""
    clock = FakeClock(SystemClock().now())
    app = App.build(load_settings({}).rules(), store=store, clock=clock, queue=RecordingQueue(),
                    drafter=EchoDrafter(), sender=FakeSender(clock=clock))
    now = clock.now()
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=ALWAYS, approval="required",
                                    steps=[Step(), Step(delay="2d", anchor="previous")]), now)
    for n in (1, 2):
        store.contacts.upsert(Contact(id=f"ct{n}", phone=f"+3361234560{n}", name=f"Client {n}",
                                      language=Language.FR, fields={"invoice_number": "FA-1"}), now)
        store.contacts.touch_inbound(f"ct{n}", now - timedelta(hours=1))
        store.followups.enrol(contact_id=f"ct{n}", campaign_id="c1", next_run_at=now, now=now)
    tick(store, app.queue, clock)
    drain(app)
    assert app.sender.sent == []  # type: ignore[attr-defined]
    return "c1:ct1:0"


def test_drafts_are_listed_approved_edited_and_rejected(relance: Relance, store: MongoRepositories) -> None:
    draft = _waiting(store)
    code, out, err = relance("approvals", "list")
    assert (code, err) == (0, "")
    assert out.startswith("c1:ct1:0  Client 1  Relance step 1/2  freeform  waiting since ") and "c1:ct2:0" in out
    code, _, err = relance("approvals", "edit", draft, "--body", "Merci de régler 990 EUR.")
    assert code == 1 and err.startswith("error: the text fails the facts check") and "990" in err
    assert relance("approvals", "edit", draft, "--body", "Bonjour, la facture FA-1 reste due.", "--by", "user:a@x.fr"
                   ) == (0, "c1:ct1:0: awaiting_approval\n", "")
    assert relance("approvals", "approve", draft) == (0, "c1:ct1:0: ready\n", "")
    code, _, err = relance("approvals", "approve", draft)
    assert code == 1 and "not waiting for approval (it is ready)" in err
    assert relance("approvals", "reject", "c1:ct2:0", "--reason", "doublon") == (
        0, "c1:ct2:0: cancelled; follow-up scheduled\n", "")
    message = store.messages.get(draft)
    assert message is not None and message.edited_by == "user:a@x.fr"
    assert (message.approved_by or "").startswith("cli:")
    assert relance("approvals", "list") == (0, "no draft waits for approval\n", "")
