"""Send windows, the 24-hour window and step timing, in the contact's timezone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from shared.domain.models import Campaign, Contact, SendWindow, Step
from shared.durations import parse_duration
from shared.errors import InputError
from shared.policy import in_service_window, is_allowed, next_allowed, step_due_at

WEEKDAYS_9_18 = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(9), end=time(18))


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("4h", 14400), ("3d", 259200), ("1h30m", 5400),
                                               ("2w", 1209600), (" 1d 12h ", 129600), ("0s", 0)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "3x", "d3", "1.5h", "3 days", "-1d", "h"])
def test_bad_durations_are_clear_errors(text: str) -> None:
    with pytest.raises(InputError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["365d", "52w", "31536000s", "364d23h59m60s"])
def test_durations_up_to_a_year_are_accepted(text: str) -> None:
    assert parse_duration(text) <= timedelta(days=365)


@pytest.mark.parametrize("text", ["366d", "53w", "31536001s", "365d1s", "99999999999999999999d", "9" * 5000 + "s"])
def test_durations_over_a_year_are_refused_with_one_line(text: str) -> None:
    """A huge delay once overflowed datetime much later, in the scheduler; it is refused where it is written."""
    with pytest.raises(InputError) as info:
        parse_duration(text)
    message = str(info.value)
    assert "too long: at most 365 days" in message and "\n" not in message and len(message) < 100


def test_window_uses_the_contacts_timezone() -> None:
    # Monday 2026-03-02 07:30 UTC is 08:30 in Paris (closed) but 09:30 in Athens (open).
    moment = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
    assert not is_allowed(moment, WEEKDAYS_9_18, "Europe/Paris")
    assert is_allowed(moment, WEEKDAYS_9_18, "Europe/Athens")
    assert next_allowed(moment, WEEKDAYS_9_18, "Europe/Paris") == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_after_hours_on_friday_moves_to_monday_morning() -> None:
    friday_evening = datetime(2026, 3, 6, 18, 30, tzinfo=UTC)  # 19:30 in Paris
    assert next_allowed(friday_evening, WEEKDAYS_9_18, "Europe/Paris") == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_window_across_daylight_saving_change() -> None:
    # Paris moves to summer time on Sunday 2026-03-29: Monday 09:00 is then 07:00 UTC.
    sunday = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    assert next_allowed(sunday, WEEKDAYS_9_18, "Europe/Paris") == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


PARIS = "Europe/Paris"
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.mark.parametrize(("moment", "expected"), [
    # Friday 18:00 Paris, spring forward that weekend: Monday 09:00 is summer time, 07:00 UTC.
    (datetime(2026, 3, 27, 17, 0, tzinfo=UTC), datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),
    # Friday 18:00 Paris, fall back that weekend: Monday 09:00 is winter time, 08:00 UTC.
    (datetime(2026, 10, 23, 16, 0, tzinfo=UTC), datetime(2026, 10, 26, 8, 0, tzinfo=UTC)),
    # One second before the end is still open; the end itself is not.
    (datetime(2026, 3, 27, 16, 59, 59, tzinfo=UTC), datetime(2026, 3, 27, 16, 59, 59, tzinfo=UTC)),
])
def test_next_allowed_across_a_dst_weekend(moment: datetime, expected: datetime) -> None:
    assert next_allowed(moment, WEEKDAYS_9_18, PARIS) == expected


def test_a_window_opening_inside_the_skipped_hour_opens_when_the_clocks_jump() -> None:
    # Sunday 2026-03-29, Paris: 02:00 CET becomes 03:00 CEST at 01:00 UTC; 02:30 never happens.
    window = SendWindow(days=EVERY_DAY, start=time(2, 30), end=time(6))
    assert next_allowed(datetime(2026, 3, 29, 0, 0, tzinfo=UTC), window, PARIS) == datetime(2026, 3, 29, 1, 0,
                                                                                            tzinfo=UTC)
    assert is_allowed(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), window, PARIS)  # 03:00 CEST, past 02:30
    assert not is_allowed(datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), window, PARIS)  # 01:59:59 CET


def test_a_window_opening_inside_the_repeated_hour_opens_at_each_occurrence_never_in_the_past() -> None:
    # Sunday 2026-10-25, Paris: 03:00 CEST becomes 02:00 CET at 01:00 UTC; 02:00-03:00 happens twice.
    window = SendWindow(days=EVERY_DAY, start=time(2, 30), end=time(6))
    first, second = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert next_allowed(datetime(2026, 10, 25, 0, 0, tzinfo=UTC), window, PARIS) == first  # 02:30 CEST
    # 02:10 CET, in the second 02:xx hour: the next opening is 02:30 CET, not the 02:30 CEST already past.
    assert next_allowed(datetime(2026, 10, 25, 1, 10, tzinfo=UTC), window, PARIS) == second


def test_a_window_ending_inside_the_repeated_hour_reopens_when_the_clocks_go_back() -> None:
    window = SendWindow(days=EVERY_DAY, start=time(1), end=time(2, 30))
    # 02:45 CEST is past the end; at 01:00 UTC the wall clock reads 02:00 CET again, inside the window.
    assert next_allowed(datetime(2026, 10, 25, 0, 45, tzinfo=UTC), window, PARIS) == datetime(2026, 10, 25, 1, 0,
                                                                                              tzinfo=UTC)


def test_window_end_is_exclusive_and_must_follow_start() -> None:
    assert not is_allowed(datetime(2026, 3, 2, 17, 0, tzinfo=UTC), WEEKDAYS_9_18, "Europe/Paris")
    with pytest.raises(ValueError, match="after its start"):
        SendWindow(start=time(18), end=time(9))


def _contact(**kw: object) -> Contact:
    data: dict[str, object] = {"id": "ct", "phone": "+33612345678", "name": "Marie",
                               "fields": {"due_date": "2026-03-20"}}
    data.update(kw)
    return Contact.model_validate(data)


def test_service_window_is_24_hours_from_last_inbound() -> None:
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert not in_service_window(_contact(), now)
    assert in_service_window(_contact(last_inbound_at=now - timedelta(hours=23, minutes=59)), now)
    assert not in_service_window(_contact(last_inbound_at=now - timedelta(hours=24)), now)


def test_step_anchored_on_a_due_date_before_and_after() -> None:
    window = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(9), end=time(18))
    campaign = Campaign(id="c", name="c", send_window=window, steps=[
        Step(delay="2d", anchor="due_date", relation="before"),
        Step(delay="3d", anchor="due_date", relation="after"),
        Step(delay="1h", anchor="previous"),
    ])
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    contact = _contact()
    first = step_due_at(campaign=campaign, step_index=0, contact=contact, enrolled_at=now,
                        previous_sent_at=None, now=now)
    second = step_due_at(campaign=campaign, step_index=1, contact=contact, enrolled_at=now,
                         previous_sent_at=None, now=now)
    third = step_due_at(campaign=campaign, step_index=2, contact=contact, enrolled_at=now,
                        previous_sent_at=datetime(2026, 3, 23, 16, 30, tzinfo=UTC), now=now)
    assert first == datetime(2026, 3, 18, 8, 0, tzinfo=UTC)  # 18 March 09:00 Paris
    assert second == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    assert third == datetime(2026, 3, 24, 8, 0, tzinfo=UTC)  # 17:30 + 1h is past 18:00 → next morning


def test_a_due_date_long_past_starts_now_inside_the_window() -> None:
    campaign = Campaign(id="c", name="c", steps=[Step(delay="3d", anchor="due_date")])
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    contact = _contact(fields={"due_date": "2025-01-01"})
    assert step_due_at(campaign=campaign, step_index=0, contact=contact, enrolled_at=now,
                       previous_sent_at=None, now=now) == now
