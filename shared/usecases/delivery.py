"""What Twilio tells us about a message we sent: its SID, then its delivery statuses."""

from __future__ import annotations

from datetime import datetime

from shared.domain.repositories import Repositories


def record_sid(store: Repositories, message_id: str, sid: str, now: datetime) -> bool:
    """``sending|uncertain → sent`` with Twilio's SID; then replay the status callbacks that came first.

    A callback can beat the sending worker's write of the SID: its event is stored, and applied
    here (forward only, so the order they are replayed in does not matter). True when this
    call recorded the SID.
    """
    moved = store.messages.mark_sent(message_id, sid=sid, now=now)
    if moved:
        for event in store.events.status_events(sid):
            if event.status is not None:
                store.messages.apply_status(sid, event.status, event.error_code, now)
    return moved
