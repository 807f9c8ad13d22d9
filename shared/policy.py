"""Rules about when a message may go out: send windows and WhatsApp's 24-hour window.

Pure functions over times and models, no I/O: the scheduler uses them to plan, the sending
actor to check again just before calling Twilio.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.models import WEEKDAYS, Campaign, Contact, SendWindow, Step

SERVICE_WINDOW = timedelta(hours=24)


def zone(name: str) -> ZoneInfo:
    """The IANA zone, UTC when the name is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_allowed(moment: datetime, window: SendWindow, timezone: str) -> bool:
    """True when ``moment`` falls inside the send window, in the contact's timezone."""
    local = moment.astimezone(zone(timezone))
    if WEEKDAYS[local.weekday()] not in window.days:
        return False
    return window.start <= local.time().replace(tzinfo=None) < window.end


def next_allowed(moment: datetime, window: SendWindow, timezone: str) -> datetime:
    """The earliest instant at or after ``moment`` inside the send window (UTC)."""
    if is_allowed(moment, window, timezone):
        return moment
    tz = zone(timezone)
    local = moment.astimezone(tz)
    for offset in range(0, 8):
        day: date = local.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opening = datetime.combine(day, window.start, tzinfo=tz)
        closing = datetime.combine(day, window.end, tzinfo=tz)
        if offset == 0 and local >= closing:
            continue
        candidate = max(opening, local)
        # A DST gap can shift the wall time; normalise through UTC and re-check.
        candidate_utc = candidate.astimezone(UTC)
        if is_allowed(candidate_utc, window, timezone):
            return candidate_utc
    return moment  # unreachable with at least one day in the window


def in_service_window(contact: Contact, now: datetime) -> bool:
    """True while WhatsApp allows freeform text: within 24 h of the contact's last message."""
    last = contact.last_inbound_at
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return now - last < SERVICE_WINDOW


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
) -> datetime:
    """When a step should go out: its anchor plus its delay, moved into the send window.

    A moment already past is brought to ``now`` (then into the window), so a campaign
    enrolled after a due date still starts at once rather than never.
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
    return next_allowed(due, campaign.send_window, contact.timezone)
