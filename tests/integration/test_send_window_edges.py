"""Send-window edges through the scheduler and the workers, with the exact next send time.

The scheduler claims a due step, the drafting actor drafts it and the sending actor checks the
window once more: inside it the message goes out, outside it the message is held (``not_before``)
and enqueued again with a delay that lands exactly on the next opening, in UTC, across Paris's
DST changes (a window opening inside the skipped or the repeated hour too) and public holidays.
Real MongoDB-compatible server; the clock is a FakeClock, never a sleep.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock, utc
from shared.domain.models import Campaign, Contact, Language, SendWindow, Step
from shared.fakes import FakeSender, RecordingQueue
from shared.settings import load_settings
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from shared.usecases.scheduling import tick
from shared.usecases.sending import send_message
from tests.support.drafters import EchoDrafter

pytestmark = pytest.mark.integration

OFFICE = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(9), end=time(18))
NIGHT = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(2, 30), end=time(6))
STALE = timedelta(minutes=5)
FOLLOWUP = "c1:ct1"
MESSAGE = f"{FOLLOWUP}:0"


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def _deps(store: MongoRepositories, moment: datetime, window: SendWindow) -> App:
    """A contact in Paris enrolled in a two-step campaign whose first step is due at ``moment``."""
    clock = FakeClock(moment)
    settings = load_settings({"PUBLIC_BASE_URL": "https://relance.example.com", "MIN_GAP_BETWEEN_MESSAGES": "0s",
                              "HOLIDAYS_COUNTRY": "FR"})
    deps = App.build(settings.rules(), store=store, clock=clock, queue=RecordingQueue(), drafter=EchoDrafter(),
                sender=FakeSender())
    store.contacts.upsert(Contact(id="ct1", phone="+33612345678", name="Marie", language=Language.FR,
                                 timezone="Europe/Paris", fields={"invoice_number": "FA-1"}), moment)
    store.contacts.touch_inbound("ct1", moment - timedelta(hours=1))
    store.campaigns.create(Campaign(id="c1", name="Relance", send_window=window,
                                   steps=[Step(), Step(delay="1d", anchor="previous")]), moment)
    store.followups.enrol(contact_id="ct1", campaign_id="c1", next_run_at=moment, now=moment)
    return deps


def _queue(deps: App) -> RecordingQueue:
    assert isinstance(deps.queue, RecordingQueue)
    return deps.queue


def _claim_draft_send(deps: App) -> str | None:
    """One scheduler tick, then the drafting and sending actors, all at the clock's moment."""
    report = tick(deps.store, deps.queue, deps.clock)
    assert report.claimed == [FOLLOWUP]
    (job,) = _queue(deps).drafts
    _queue(deps).drafts.clear()
    assert draft_followup(deps, *job) == MESSAGE
    assert _queue(deps).sends == [(MESSAGE, 0)]
    _queue(deps).sends.clear()
    return send_message(deps, MESSAGE)


def _sent(deps: App) -> list[str]:
    sender = deps.sender
    assert isinstance(sender, FakeSender)
    return [request.to for request in sender.sent]


def test_one_second_before_the_end_goes_out(store: MongoRepositories) -> None:
    moment = _utc(2026, 3, 2, 16, 59, 59)  # Monday 17:59:59 in Paris (CET, UTC+1)
    deps = _deps(store, moment, OFFICE)
    assert _claim_draft_send(deps)
    assert _sent(deps) == ["+33612345678"]
    doc = store.messages.collection.find_one({"_id": MESSAGE})
    assert doc is not None and doc["state"] == "sent" and utc(doc["sent_at"]) == moment
    assert doc.get("not_before") is None
    followup = store.followups.collection.find_one({"_id": FOLLOWUP})  # the next step: a day later, still in the window
    assert followup is not None and utc(followup["next_run_at"]) == moment + timedelta(days=1)


@pytest.mark.parametrize(("moment", "window", "opening"), [
    # Monday 18:00:00 in Paris: the end is exclusive; Tuesday 09:00 CET.
    (_utc(2026, 3, 2, 17, 0), OFFICE, _utc(2026, 3, 3, 8, 0)),
    # Friday 18:00 CET; the clocks go forward on Sunday: Monday 09:00 CEST is 07:00 UTC (62 h later).
    (_utc(2026, 3, 27, 17, 0), OFFICE, _utc(2026, 3, 30, 7, 0)),
    # Friday 18:00 CEST; the clocks go back on Sunday: Monday 09:00 CET is 08:00 UTC (64 h later).
    (_utc(2026, 10, 23, 16, 0), OFFICE, _utc(2026, 10, 26, 8, 0)),
    # Friday 18:00 CEST before Easter Monday (a public holiday in France): Tuesday 09:00 CEST.
    (_utc(2026, 4, 3, 16, 0), OFFICE, _utc(2026, 4, 7, 7, 0)),
    # A window opening at 02:30, on the night 02:00 CET jumps to 03:00 CEST: it opens at the jump.
    (_utc(2026, 3, 29, 0, 30), NIGHT, _utc(2026, 3, 29, 1, 0)),
    # The night 03:00 CEST goes back to 02:00 CET: at 02:10 CET (the second 02:10), 02:30 CET is next.
    (_utc(2026, 10, 25, 1, 10), NIGHT, _utc(2026, 10, 25, 1, 30)),
])
def test_outside_the_window_the_step_is_held_to_the_exact_next_opening(store: MongoRepositories, moment: datetime,
                                                                       window: SendWindow, opening: datetime) -> None:
    deps = _deps(store, moment, window)
    assert _claim_draft_send(deps) is None
    assert _sent(deps) == []
    doc = store.messages.collection.find_one({"_id": MESSAGE})
    assert doc is not None and doc["state"] == "ready" and utc(doc["not_before"]) == opening
    assert _queue(deps).sends == [(MESSAGE, (opening - moment).total_seconds())]

    # The delayed message arrives one second early (clocks differ): held again, to the same instant.
    clock = deps.clock
    assert isinstance(clock, FakeClock)
    clock.set(opening - timedelta(seconds=1))
    _queue(deps).sends.clear()
    assert send_message(deps, MESSAGE) is None
    assert _queue(deps).sends == [(MESSAGE, 1.0)]
    # On time: it goes out, once, and the next step is planned from that send.
    clock.set(opening)
    assert send_message(deps, MESSAGE)
    assert send_message(deps, MESSAGE) is None
    assert _sent(deps) == ["+33612345678"]
    followup = store.followups.collection.find_one({"_id": FOLLOWUP})
    assert followup is not None and (followup["state"], followup["step"]) == ("scheduled", 1)
    assert utc(followup["next_run_at"]) == opening + timedelta(days=1)  # each case: still inside the window


def test_a_held_step_whose_delayed_send_redis_lost_is_enqueued_once_the_hold_is_over(store: MongoRepositories) -> None:
    moment = _utc(2026, 3, 27, 17, 0)  # Friday 18:00 in Paris
    opening = _utc(2026, 3, 30, 7, 0)
    deps = _deps(store, moment, OFFICE)
    assert _claim_draft_send(deps) is None
    _queue(deps).sends.clear()  # Redis lost the delayed message
    clock = deps.clock
    assert isinstance(clock, FakeClock)
    # Over the weekend and until the hold has been over for the stale delay, the scheduler leaves it.
    for at in (moment + STALE * 2, opening - timedelta(seconds=1), opening + STALE - timedelta(seconds=1)):
        clock.set(at)
        assert tick(store, deps.queue, clock, stale_after=STALE).requeued_sends == []
    clock.set(opening + STALE + timedelta(seconds=1))
    assert tick(store, deps.queue, clock, stale_after=STALE).requeued_sends == [MESSAGE]
    assert _queue(deps).sends == [(MESSAGE, 0)]
    clock.advance(timedelta(seconds=2))
    assert tick(store, deps.queue, clock, stale_after=STALE).requeued_sends == []  # once
    assert send_message(deps, MESSAGE)
    assert _sent(deps) == ["+33612345678"]
