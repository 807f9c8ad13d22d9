"""Public holidays close the send window, on the contact's local date (holidays package)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from shared.domain.models import Campaign, Contact, SendWindow, Step
from shared.errors import InputError
from shared.policy import _holiday_dates, check_holidays_country, is_allowed, is_holiday, next_allowed, step_due_at

WEEKDAYS_9_19 = SendWindow()  # mon–fri, 09:00–19:00


@pytest.mark.parametrize("day", [date(2026, 1, 1), date(2026, 4, 6), date(2026, 5, 1), date(2026, 5, 8),
                                 date(2026, 7, 14), date(2026, 8, 15), date(2026, 11, 11), date(2026, 12, 25)])
def test_french_public_holidays(day: date) -> None:
    assert is_holiday(day, "FR")
    assert is_holiday(day, "fr")  # codes are case-insensitive


def test_ordinary_days_and_disabled_countries_are_not_holidays() -> None:
    assert not is_holiday(date(2026, 7, 15), "FR")
    assert not is_holiday(date(2026, 12, 28), "FR")
    assert not is_holiday(date(2026, 7, 14), "")


def test_subdivisions() -> None:
    # Alsace-Moselle keeps St Stephen's day; the rest of France does not.
    assert is_holiday(date(2026, 12, 26), "FR", "57")
    assert not is_holiday(date(2026, 12, 26), "FR")


def test_bastille_day_moves_to_the_next_morning() -> None:
    due = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)  # Tuesday 14 July, 10:00 in Paris
    assert is_allowed(due, WEEKDAYS_9_19, "Europe/Paris")
    assert not is_allowed(due, WEEKDAYS_9_19, "Europe/Paris", holidays_country="FR")
    moved = next_allowed(due, WEEKDAYS_9_19, "Europe/Paris", holidays_country="FR")
    assert moved == datetime(2026, 7, 15, 7, 0, tzinfo=UTC)  # Wednesday 15 July, 09:00 in Paris


def test_christmas_on_a_friday_moves_to_monday() -> None:
    due = datetime(2026, 12, 25, 9, 0, tzinfo=UTC)  # Friday, 10:00 in Paris
    moved = next_allowed(due, WEEKDAYS_9_19, "Europe/Paris", holidays_country="FR")
    assert moved == datetime(2026, 12, 28, 8, 0, tzinfo=UTC)  # Monday 28 December, 09:00 in Paris


def test_a_uk_contact_skips_the_boxing_day_substitute() -> None:
    # 26 December 2026 is a Saturday: the UK's bank holiday moves to Monday 28.
    assert is_holiday(date(2026, 12, 28), "GB")
    due = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)  # Friday, 10:00 in London
    moved = next_allowed(due, WEEKDAYS_9_19, "Europe/London", holidays_country="GB")
    assert moved == datetime(2026, 12, 29, 9, 0, tzinfo=UTC)  # Tuesday 29 December, 09:00 in London
    assert not is_allowed(datetime(2026, 12, 28, 10, 0, tzinfo=UTC), WEEKDAYS_9_19, "Europe/London",
                          holidays_country="GB")


@pytest.mark.parametrize("off", [None, ""])
def test_disabled_changes_nothing(off: str | None) -> None:
    due = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)
    assert is_allowed(due, WEEKDAYS_9_19, "Europe/Paris", holidays_country=off)
    assert next_allowed(due, WEEKDAYS_9_19, "Europe/Paris", holidays_country=off) == due
    friday_evening = datetime(2026, 3, 6, 18, 30, tzinfo=UTC)
    assert next_allowed(friday_evening, WEEKDAYS_9_19, "Europe/Paris", holidays_country=off) == next_allowed(
        friday_evening, WEEKDAYS_9_19, "Europe/Paris")


def test_the_holiday_is_the_contacts_local_date() -> None:
    every_day = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start=time(9), end=time(21))
    # 25 December 04:00 UTC (Christmas in Paris) is still 24 December, 20:00, in Los Angeles.
    assert is_allowed(datetime(2026, 12, 25, 4, 0, tzinfo=UTC), every_day, "America/Los_Angeles",
                      holidays_country="FR")
    # 24 December 21:00 UTC is already Christmas morning (10:00) in Auckland.
    moment = datetime(2026, 12, 24, 21, 0, tzinfo=UTC)
    assert is_allowed(moment, every_day, "Pacific/Auckland")
    assert not is_allowed(moment, every_day, "Pacific/Auckland", holidays_country="NZ")
    # Christmas and Boxing Day are both off in New Zealand: Sunday 27 at 09:00 local (20:00 UTC on the 26th).
    assert next_allowed(moment, every_day, "Pacific/Auckland", holidays_country="NZ") == datetime(
        2026, 12, 26, 20, 0, tzinfo=UTC)


def test_a_one_day_window_can_skip_whole_weeks() -> None:
    mondays = SendWindow(days=["mon"], start=time(9), end=time(19))
    sunday = datetime(2026, 4, 5, 12, 0, tzinfo=UTC)  # Easter Sunday; Monday 6 April is Easter Monday
    assert next_allowed(sunday, mondays, "Europe/Paris", holidays_country="FR") == datetime(
        2026, 4, 13, 7, 0, tzinfo=UTC)
    before_pentecost = datetime(2026, 5, 24, 12, 0, tzinfo=UTC)  # Monday 25 May is Whit Monday
    assert next_allowed(before_pentecost, mondays, "Europe/Paris", holidays_country="FR") == datetime(
        2026, 6, 1, 7, 0, tzinfo=UTC)


def test_step_due_at_skips_holidays() -> None:
    campaign = Campaign(id="c", name="c", steps=[Step(delay="2d", anchor="due_date", relation="after")])
    contact = Contact(id="ct", phone="+33612345678", name="Marie", fields={"due_date": "2026-07-12"})
    now = datetime(2026, 7, 1, 10, tzinfo=UTC)
    plain = step_due_at(campaign=campaign, step_index=0, contact=contact, enrolled_at=now,
                        previous_sent_at=None, now=now)
    skipping = step_due_at(campaign=campaign, step_index=0, contact=contact, enrolled_at=now,
                           previous_sent_at=None, now=now, holidays_country="FR")
    assert plain == datetime(2026, 7, 14, 7, 0, tzinfo=UTC)  # 14 July, 09:00 in Paris
    assert skipping == datetime(2026, 7, 15, 7, 0, tzinfo=UTC)


def test_unknown_countries_are_clear_errors() -> None:
    assert check_holidays_country(" fr ") == "FR"
    assert check_holidays_country("") == ""
    assert check_holidays_country(None) == ""
    assert check_holidays_country("GB", "ENG") == "GB"
    with pytest.raises(InputError, match="unknown holidays country"):
        check_holidays_country("XX")
    with pytest.raises(InputError, match="unknown holidays country"):
        check_holidays_country("FR", "nowhere")
    with pytest.raises(InputError, match="unknown holidays country"):
        is_allowed(datetime(2026, 7, 14, 8, 0, tzinfo=UTC), WEEKDAYS_9_19, "Europe/Paris", holidays_country="ZZ")


def test_calendars_are_built_once_per_country_and_year() -> None:
    _holiday_dates.cache_clear()
    for day in range(1, 29):
        is_holiday(date(2026, 2, day), "FR")
    is_holiday(date(2027, 1, 1), "FR")
    assert _holiday_dates.cache_info().misses == 2
