"""Per-contact pacing: how often one client may receive follow-ups, whatever campaigns they are in.

Two rules, both counted over the contact's step messages that went (or may have gone) out:

- a minimum gap between two messages (``MIN_GAP_BETWEEN_MESSAGES``);
- at most ``daily_cap`` messages per calendar day in the contact's own timezone
  (``DAILY_CAP_PER_CONTACT``; 0 turns the cap off).

:func:`pacing_delay` is the pure rule; :func:`recent_sent_times` reads what was sent from
MongoDB; :func:`contact_pacing_delay` combines them for the sending actor. Replies to a client
and owner alerts are not paced: only ``purpose == "step"`` messages count.

Two workers checking the same contact at the same instant (two campaigns due at the opening of
the window) would both see "nothing sent yet"; :func:`contact_send_lock` serialises the check
and the ``ready → sending`` move per contact through Redis so the second one sees the first.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, time, timedelta

import redis

from shared.clock import utc
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState
from shared.errors import TransientError
from shared.policy import zone

# States of an outbound message that count as "sent" for pacing: it reached Twilio, or may have.
PACED_STATES = (
    MessageState.SENDING,
    MessageState.UNCERTAIN,
    MessageState.SENT,
    MessageState.DELIVERED,
    MessageState.READ,
)
# A message is usually sent shortly after it is drafted (created_at), but one held by the send
# window, a holiday or pacing itself can wait days; created_at is only used to bound the index
# scan (contact_time: contact_id + created_at), so the bound is generous.
CREATED_LOOKBACK = timedelta(days=31)
# How far back pacing must look: the min gap, and the contact's current local day (≤ 26 h).
_DAY_LOOKBACK = timedelta(hours=26)


def _next_local_midnight(moment: datetime, timezone: str) -> datetime:
    """The first instant (UTC) of the local day after the one ``moment`` falls on."""
    tz = zone(timezone)
    day = moment.astimezone(tz).date() + timedelta(days=1)
    # A zone whose DST starts at midnight has no 00:00 that day: zoneinfo maps the missing
    # wall time with the offset before the change, i.e. onto the first real instant of the day.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def pacing_delay(
    *,
    sent_times: list[datetime],
    now: datetime,
    min_gap: timedelta,
    daily_cap: int,
    timezone: str,
) -> datetime | None:
    """None when one more message may go to the contact now, else the earliest moment it may (UTC).

    That moment is the later of ``last sent + min_gap`` and, when ``daily_cap`` messages already
    went out on the contact's local day, the start of their next local day. ``min_gap`` of zero
    and ``daily_cap`` of 0 (or less) turn each rule off. Naive datetimes are read as UTC. The
    result is not moved into the send window: the caller does that (``next_allowed``).
    """
    now = utc(now)
    times = sorted(utc(t) for t in sent_times)
    tz = zone(timezone)
    at = now
    if times and min_gap > timedelta(0):
        at = max(at, times[-1] + min_gap)
    if daily_cap > 0:
        # Moving to the next local day cannot make that day fuller, except with send times in the
        # future (clock skew between workers): loop until the day of ``at`` has room.
        for _ in range(len(times) + 1):
            day = at.astimezone(tz).date()
            if sum(1 for t in times if t.astimezone(tz).date() == day) < daily_cap:
                break
            at = _next_local_midnight(at, timezone)
    return None if at <= now else at


def pacing_on(min_gap: timedelta, daily_cap: int) -> bool:
    """Whether either rule is on (otherwise nothing is read)."""
    return min_gap > timedelta(0) or daily_cap > 0


def pacing_since(now: datetime, min_gap: timedelta) -> datetime:
    """How far back the sends that may delay the next one go."""
    return now - max(min_gap, _DAY_LOOKBACK)


def paced_created_since(now: datetime, min_gap: timedelta) -> datetime:
    """The ``created_at`` bound of the read of those sends (see CREATED_LOOKBACK)."""
    return pacing_since(now, min_gap) - CREATED_LOOKBACK


def recent_sent_times(store: Repositories, contact_id: str, since: datetime) -> list[datetime]:
    """When the contact's step messages went out since ``since``, oldest first.

    Counts outbound messages whose purpose is ``step`` (or unset: older documents) in a state
    that reached, or may have reached, Twilio (``PACED_STATES``). The time of a message is its
    ``sent_at``, else ``sending_at``, else ``state_changed_at``. Failed and cancelled ones do not count.
    """
    sent = store.messages.send_times(contact_id, states=PACED_STATES, created_since=since - CREATED_LOOKBACK)
    return sorted(utc(at) for at in sent if utc(at) >= since)


def contact_pacing_delay(
    store: Repositories,
    *,
    contact_id: str,
    timezone: str,
    now: datetime,
    min_gap: timedelta,
    daily_cap: int,
    sent_times: list[datetime] | None = None,
) -> datetime | None:
    """:func:`pacing_delay` over what the store says this contact was sent (None: may go now).

    ``sent_times``: those send times read already (``MessageRepository.get_with_send_times``
    with :data:`PACED_STATES` since :func:`paced_created_since`), under the contact's lock.
    """
    if not pacing_on(min_gap, daily_cap):
        return None
    since = pacing_since(now, min_gap)
    if sent_times is None:
        sent = recent_sent_times(store, contact_id, since)
    else:
        sent = sorted(utc(at) for at in sent_times if utc(at) >= since)
    return pacing_delay(sent_times=sent, now=now, min_gap=min_gap, daily_cap=daily_cap, timezone=timezone)


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@contextmanager
def contact_send_lock(client: redis.Redis, contact_id: str, *, ttl_seconds: float = 30.0) -> Iterator[bool]:
    """Hold ``relance:pace:<contact_id>`` while checking pacing and moving a message to ``sending``.

    Yields False when another worker holds it (the caller then retries a few seconds later).
    The lock expires after ``ttl_seconds`` should its holder die, and is only released by its
    holder. Redis errors become :class:`TransientError`.
    """
    key = f"relance:pace:{contact_id}"
    token = secrets.token_hex(8)
    try:
        acquired = bool(client.set(key, token, nx=True, px=max(1, int(ttl_seconds * 1000))))
    except redis.RedisError as exc:
        raise TransientError(f"Redis unreachable for the contact lock: {type(exc).__name__}") from None
    try:
        yield acquired
    finally:
        if acquired:
            try:
                client.eval(_RELEASE, 1, key, token)
            except redis.RedisError:
                pass  # it expires on its own


class RedisContactLocks:
    """:class:`shared.ports.ContactLocks` through Redis, shared by every sending worker."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: float = 30.0) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds

    def hold(self, contact_id: str) -> AbstractContextManager[bool]:
        """See :func:`contact_send_lock`."""
        return contact_send_lock(self.client, contact_id, ttl_seconds=self.ttl_seconds)
