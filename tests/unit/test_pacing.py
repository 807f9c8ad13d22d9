"""Per-contact pacing: a minimum gap between messages and a daily cap in the contact's timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.pacing import pacing_delay

HOUR = timedelta(hours=1)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_nothing_sent_may_go_now() -> None:
    assert pacing_delay(sent_times=[], now=_utc(2026, 3, 2, 10), min_gap=HOUR, daily_cap=2,
                        timezone="Europe/Paris") is None


def test_minimum_gap() -> None:
    now = _utc(2026, 3, 2, 10)
    last = now - timedelta(minutes=30)
    assert pacing_delay(sent_times=[last], now=now, min_gap=HOUR, daily_cap=2,
                        timezone="Europe/Paris") == last + HOUR
    # Exactly one gap later: it may go. Older sends and their order do not matter.
    assert pacing_delay(sent_times=[now - HOUR, now - 5 * HOUR], now=now, min_gap=HOUR, daily_cap=3,
                        timezone="Europe/Paris") is None
    assert pacing_delay(sent_times=[now - 5 * HOUR, last, now - 3 * HOUR], now=now, min_gap=HOUR, daily_cap=5,
                        timezone="Europe/Paris") == last + HOUR


def test_daily_cap_waits_for_the_contacts_next_day() -> None:
    # Monday 2 March: 09:00 and 11:00 in Paris already sent, now 14:00 in Paris.
    sent = [_utc(2026, 3, 2, 8), _utc(2026, 3, 2, 10)]
    now = _utc(2026, 3, 2, 13)
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=2,
                        timezone="Europe/Paris") == _utc(2026, 3, 2, 23)  # midnight in Paris
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=3, timezone="Europe/Paris") is None


def test_the_cap_counts_the_contacts_local_day_across_utc_midnight() -> None:
    # 22:00 and 23:00 on Monday in New York are 03:00 and 04:00 UTC on Tuesday.
    sent = [_utc(2026, 3, 3, 3), _utc(2026, 3, 3, 4)]
    now = _utc(2026, 3, 3, 6)  # 01:00 on Tuesday in New York: a new day there
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=2, timezone="America/New_York") is None
    # For a contact on UTC the three are on the same day: wait for UTC midnight.
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=2, timezone="UTC") == _utc(2026, 3, 4)
    # 22:30 and 22:45 UTC are 23:30 and 23:45 on Monday in Paris; 23:50 UTC is already Tuesday there.
    late = [_utc(2026, 3, 2, 22, 30), _utc(2026, 3, 2, 22, 45)]
    now = _utc(2026, 3, 2, 23, 50)
    assert pacing_delay(sent_times=late, now=now, min_gap=HOUR, daily_cap=2, timezone="Europe/Paris") is None
    assert pacing_delay(sent_times=late, now=now, min_gap=HOUR, daily_cap=2, timezone="UTC") == _utc(2026, 3, 3)


def test_gap_and_cap_together_take_the_later() -> None:
    # Cap reached on Monday in Paris with a send at 23:30; a 2-hour gap ends at 01:30 on Tuesday.
    sent = [_utc(2026, 3, 2, 9), _utc(2026, 3, 2, 22, 30)]
    now = _utc(2026, 3, 2, 22, 40)
    assert pacing_delay(sent_times=sent, now=now, min_gap=2 * HOUR, daily_cap=2,
                        timezone="Europe/Paris") == _utc(2026, 3, 3, 0, 30)
    # With a short gap, midnight in Paris is the later of the two.
    assert pacing_delay(sent_times=sent, now=now, min_gap=timedelta(minutes=15), daily_cap=2,
                        timezone="Europe/Paris") == _utc(2026, 3, 2, 23)


def test_a_gap_ending_on_a_full_day_moves_on_to_the_next_one() -> None:
    # A send stamped by a clock running ahead already fills Tuesday in Paris (cap 1): the gap after
    # it ends on Tuesday, so the next one waits for Wednesday.
    sent = [_utc(2026, 3, 2, 22, 50), _utc(2026, 3, 3, 0, 10)]  # Monday 23:50, Tuesday 01:10 in Paris
    now = _utc(2026, 3, 2, 22, 55)
    assert pacing_delay(sent_times=sent, now=now, min_gap=timedelta(minutes=10), daily_cap=1,
                        timezone="Europe/Paris") == _utc(2026, 3, 3, 23)
    # With room on Tuesday the gap alone decides.
    assert pacing_delay(sent_times=sent, now=now, min_gap=timedelta(minutes=10), daily_cap=2,
                        timezone="Europe/Paris") == _utc(2026, 3, 3, 0, 20)


def test_spring_forward_day_is_23_hours_long() -> None:
    # Paris, Sunday 29 March 2026: the local day runs from 23:00 UTC (28th) to 22:00 UTC (29th).
    before_the_day = _utc(2026, 3, 28, 22, 30)  # 23:30 on Saturday in Paris: does not count
    sent = [before_the_day, _utc(2026, 3, 28, 23, 30), _utc(2026, 3, 29, 8)]
    now = _utc(2026, 3, 29, 12)
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=2,
                        timezone="Europe/Paris") == _utc(2026, 3, 29, 22)
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=3, timezone="Europe/Paris") is None


def test_fall_back_day_is_25_hours_long() -> None:
    # Paris, Sunday 25 October 2026: from 22:00 UTC (24th) to 23:00 UTC (25th).
    sent = [_utc(2026, 10, 24, 22, 30), _utc(2026, 10, 25, 9)]
    now = _utc(2026, 10, 25, 22, 30)  # 23:30 in Paris, still Sunday
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=2,
                        timezone="Europe/Paris") == _utc(2026, 10, 25, 23)


def test_a_midnight_that_does_not_exist() -> None:
    # Chile moves its clocks from 00:00 to 01:00 on Sunday 6 September 2026: that day starts at 04:00 UTC.
    sent = [_utc(2026, 9, 5, 14), _utc(2026, 9, 5, 16)]
    now = _utc(2026, 9, 5, 20)
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=2,
                        timezone="America/Santiago") == _utc(2026, 9, 6, 4)


def test_zero_turns_each_rule_off() -> None:
    now = _utc(2026, 3, 2, 13)
    sent = [now - timedelta(minutes=i) for i in (1, 2, 3)]
    assert pacing_delay(sent_times=sent, now=now, min_gap=timedelta(0), daily_cap=0, timezone="Europe/Paris") is None
    assert pacing_delay(sent_times=sent, now=now, min_gap=timedelta(0), daily_cap=3,
                        timezone="Europe/Paris") == _utc(2026, 3, 2, 23)
    assert pacing_delay(sent_times=sent, now=now, min_gap=HOUR, daily_cap=0,
                        timezone="Europe/Paris") == sent[0] + HOUR


def test_naive_times_are_utc_and_unknown_zones_fall_back_to_utc() -> None:
    now = _utc(2026, 3, 2, 10)
    naive_last = datetime(2026, 3, 2, 9, 30)
    assert pacing_delay(sent_times=[naive_last], now=now, min_gap=HOUR, daily_cap=2,
                        timezone="Nowhere/Else") == _utc(2026, 3, 2, 10, 30)
    assert pacing_delay(sent_times=[naive_last, naive_last], now=now, min_gap=timedelta(0), daily_cap=2,
                        timezone="Nowhere/Else") == _utc(2026, 3, 3)
