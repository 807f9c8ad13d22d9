"""Rules about when a message may go out: send windows, public holidays and WhatsApp's 24-hour window.

Pure functions over times and models, no I/O: the scheduler uses them to plan, the sending
actor to check again just before calling Twilio. Public holidays come from the ``holidays``
package (computed offline, cached per country, subdivision and year); a ``holidays_country``
of ``None`` or ``""`` turns them off.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.domain.models import WEEKDAYS, Campaign, Contact, SendWindow, Step
from shared.errors import InputError

SERVICE_WINDOW = timedelta(hours=24)
# How far next_allowed looks ahead: a week is always enough without holidays; with them a
# one-day-a-week window can lose several weeks in a row, so look a whole year ahead.
_LOOKAHEAD_DAYS = 8
_LOOKAHEAD_DAYS_WITH_HOLIDAYS = 366


def zone(name: str) -> ZoneInfo:
    """The IANA zone, UTC when the name is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _norm_country(country: str | None) -> str:
    return (country or "").strip().upper()


def _norm_subdiv(subdiv: str | None) -> str | None:
    return (subdiv or "").strip() or None


@lru_cache(maxsize=512)
def _holiday_dates(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    import holidays  # imported on first use: only processes that check holidays pay for it

    try:
        calendar = holidays.country_holidays(country, subdiv=subdiv, years=year)
    except NotImplementedError:
        where = f"{country}-{subdiv}" if subdiv else country
        raise InputError(
            f"unknown holidays country or subdivision {where!r}: use an ISO 3166-1 alpha-2 code "
            "such as FR or GB (and a subdivision the holidays package knows), or leave it empty"
        ) from None
    return frozenset(calendar.keys())


def check_holidays_country(country: str | None, subdiv: str | None = None) -> str:
    """The country code, upper-cased ("" when disabled); InputError when the holidays package lacks it."""
    code = _norm_country(country)
    if code:
        _holiday_dates(code, _norm_subdiv(subdiv), date.today().year)
    return code


def is_holiday(day: date, country: str, subdiv: str | None = None) -> bool:
    """True when ``day`` is a public holiday in ``country`` (ISO code, e.g. "FR"), optionally a subdivision.

    An empty country means holidays are off (always False); an unknown one raises InputError.
    """
    code = _norm_country(country)
    if not code:
        return False
    return day in _holiday_dates(code, _norm_subdiv(subdiv), day.year)


def _open_day(day: date, window: SendWindow, holidays_country: str | None, holidays_subdiv: str | None) -> bool:
    if WEEKDAYS[day.weekday()] not in window.days:
        return False
    return not (holidays_country and is_holiday(day, holidays_country, holidays_subdiv))


def is_allowed(
    moment: datetime,
    window: SendWindow,
    timezone: str,
    *,
    holidays_country: str | None = None,
    holidays_subdiv: str | None = None,
) -> bool:
    """True when ``moment`` falls inside the send window, in the contact's timezone.

    With ``holidays_country`` set, a public holiday (on the contact's local date) is closed all day.
    """
    local = moment.astimezone(zone(timezone))
    if not _open_day(local.date(), window, holidays_country, holidays_subdiv):
        return False
    return window.start <= local.time().replace(tzinfo=None) < window.end


def next_allowed(
    moment: datetime,
    window: SendWindow,
    timezone: str,
    *,
    holidays_country: str | None = None,
    holidays_subdiv: str | None = None,
) -> datetime:
    """The earliest instant at or after ``moment`` inside the send window (UTC), skipping holidays when asked.

    Exact across DST changes: a window opening inside the skipped hour opens when the clocks
    jump; one opening inside the repeated hour opens at its first occurrence, and again at the
    second (never an instant before ``moment``).
    """
    if is_allowed(moment, window, timezone, holidays_country=holidays_country, holidays_subdiv=holidays_subdiv):
        return moment
    tz = zone(timezone)
    after = moment.astimezone(UTC)
    first_day = moment.astimezone(tz).date()
    horizon = _LOOKAHEAD_DAYS_WITH_HOLIDAYS if _norm_country(holidays_country) else _LOOKAHEAD_DAYS
    for offset in range(0, horizon):
        day: date = first_day + timedelta(days=offset)
        if not _open_day(day, window, holidays_country, holidays_subdiv):
            continue
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall time, wrong in a repeated hour.
        for candidate in sorted(_openings(day, window.start, tz)):
            if candidate > after and is_allowed(candidate, window, timezone, holidays_country=holidays_country,
                                                holidays_subdiv=holidays_subdiv):
                return candidate
    return moment  # unreachable with at least one day in the window


def _openings(day: date, start: time, tz: ZoneInfo) -> set[datetime]:
    """The UTC instants at which a window starting at ``start`` may open on ``day``.

    The wall time ``start`` read both ways (fold 0 and 1: twice in a repeated hour) and any
    offset change that day: where the clocks jump over ``start``, or back into the window.
    """
    wall = datetime.combine(day, start)
    openings = {wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)}
    change = _offset_change(day, tz)
    if change is not None:
        openings.add(change)
    return openings


def _offset_change(day: date, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of the zone's offset change on ``day`` (a DST change), if there is one."""
    low = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    high = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    before, after = low.astimezone(tz).utcoffset(), high.astimezone(tz).utcoffset()
    if before == after:
        return None
    # Bisect to the second: the first instant already at the new offset.
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
        if middle.astimezone(tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """True while WhatsApp allows freeform text to someone whose last message came at ``last_inbound_at``."""
    if last_inbound_at is None:
        return False
    if last_inbound_at.tzinfo is None:
        last_inbound_at = last_inbound_at.replace(tzinfo=UTC)
    return now - last_inbound_at < SERVICE_WINDOW


def in_service_window(contact: Contact, now: datetime) -> bool:
    """True while WhatsApp allows freeform text: within 24 h of the contact's last message."""
    return window_open(contact.last_inbound_at, now)


def parse_field_date(value: str) -> date | None:
    """A contact field read as a date (YYYY-MM-DD or DD/MM/YYYY), None when it is not one."""
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def step_due_at(
    *,
    campaign: Campaign,
    step_index: int,
    contact: Contact,
    enrolled_at: datetime,
    previous_sent_at: datetime | None,
    now: datetime,
    holidays_country: str | None = None,
    holidays_subdiv: str | None = None,
) -> datetime:
    """When a step should go out: its anchor plus its delay, moved into the send window.

    A moment already past is brought to ``now`` (then into the window), so a campaign
    enrolled after a due date still starts at once rather than never. With
    ``holidays_country`` set, public holidays on the contact's local date are skipped.
    """
    step: Step = campaign.steps[step_index]
    if step.anchor == "enrolment":
        base = enrolled_at
    elif step.anchor == "previous":
        base = previous_sent_at or enrolled_at
    else:
        anchor_date = parse_field_date(contact.fields.get(step.anchor, ""))
        if anchor_date is None:
            base = enrolled_at
        else:
            start = campaign.send_window.start
            base = datetime.combine(anchor_date, start, tzinfo=zone(contact.timezone)).astimezone(UTC)
    due = max(base + step.delay_delta, now)
    return next_allowed(due, campaign.send_window, contact.timezone,
                        holidays_country=holidays_country, holidays_subdiv=holidays_subdiv)
