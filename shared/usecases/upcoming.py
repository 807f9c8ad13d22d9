"""What will go out in the next hours: each follow-up step planned, with its planned send time.

Planned, not promised: the time is what the scheduler and the sending actor would do as far as
it is known in advance. A scheduled step goes out when it is due (``next_run_at``), a drafted
one waiting to be sent (``ready``) when its hold ends (``not_before``); either is then moved into
the campaign's send window in the client's timezone (public holidays skipped, as the sending
actor does) and after the client's pacing (the minimum gap since its last message and its daily
cap, counting the steps planned before it). What cannot be known in advance is left out: a reply
or a payment that stops the follow-up, a redraft, Twilio's answer, the queue's load.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.models import Campaign, Contact
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.domain.states import MessageState
from shared.pacing import pacing_delay, pacing_on, pacing_since, recent_sent_times
from shared.policy import next_allowed

HORIZON = timedelta(hours=24)
MAX_PLANNED = 500


@dataclass(frozen=True)
class PlannedSend:
    """One step planned to go out: to whom, which step (1 for the first), when (UTC; ``timezone`` is the
    client's, to show it in), and what moved it from when it is due (``window``, ``pacing``, or None)."""

    contact_id: str
    name: str
    campaign_id: str
    campaign_name: str
    step: int
    at: datetime
    timezone: str
    moved_by: str | None
    drafted: bool  # its message is written already (waiting to be sent)


@dataclass(frozen=True)
class _Due:
    contact_id: str
    campaign_id: str
    step: int
    due: datetime
    drafted: bool


def _due_steps(store: Repositories, campaigns: dict[str, Campaign], now: datetime, until: datetime) -> list[_Due]:
    found: list[_Due] = []
    for ref in store.followups.due(until, list(campaigns), MAX_PLANNED):
        followup = store.followups.get(ref.id)
        if followup is None or followup.next_run_at is None:
            continue
        found.append(_Due(followup.contact_id, followup.campaign_id, followup.step, max(followup.next_run_at, now),
                          False))
    after: str | None = None
    while len(found) < MAX_PLANNED:
        ready = store.messages.page(state=MessageState.READY, after=after, limit=MAX_PLANNED)
        for message in ready:
            if message.purpose != "step" or message.campaign_id not in campaigns or not message.contact_id:
                continue
            due = max(message.not_before or now, now)
            if due <= until:
                found.append(_Due(message.contact_id, message.campaign_id, message.step, due, True))
        if len(ready) < MAX_PLANNED:
            break
        after = ready[-1].id
    return sorted(found, key=lambda d: d.due)[:MAX_PLANNED]


def upcoming_sends(store: Repositories, rules: Rules, *, now: datetime, horizon: timedelta = HORIZON
                   ) -> list[PlannedSend]:
    """The steps of active campaigns planned to go out within ``horizon`` of ``now``, soonest first."""
    until = now + horizon
    campaigns = {c.id: c for c in (store.campaigns.get(i) for i in store.campaigns.active_ids()) if c is not None}
    contacts: dict[str, Contact | None] = {}
    sent: dict[str, list[datetime]] = {}
    planned: list[PlannedSend] = []
    for item in _due_steps(store, campaigns, now, until):
        if item.contact_id not in contacts:
            contacts[item.contact_id] = store.contacts.get(item.contact_id)
        contact = contacts[item.contact_id]
        if contact is None or contact.opted_out:
            continue
        campaign = campaigns[item.campaign_id]
        window, tz = campaign.send_window, contact.timezone
        holidays = {"holidays_country": rules.holidays_country, "holidays_subdiv": rules.holidays_subdiv}
        at = next_allowed(item.due, window, tz, **holidays)
        moved_by = "window" if at != item.due else None
        if pacing_on(rules.min_gap, rules.daily_cap_per_contact):
            if contact.id not in sent:
                sent[contact.id] = recent_sent_times(store, contact.id, pacing_since(now, rules.min_gap))
            for _ in range(10):  # each move may meet the window's edge again: a few rounds settle it
                paced = pacing_delay(sent_times=sent[contact.id], now=at, min_gap=rules.min_gap,
                                     daily_cap=rules.daily_cap_per_contact, timezone=tz)
                if paced is None:
                    break
                at, moved_by = next_allowed(paced, window, tz, **holidays), "pacing"
            sent[contact.id].append(at)
        if at <= until:
            planned.append(PlannedSend(contact.id, contact.name, campaign.id, campaign.name, item.step + 1, at, tz,
                                       moved_by, item.drafted))
    return sorted(planned, key=lambda p: (p.at, p.name))
