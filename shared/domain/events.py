"""The documents stored for webhook events that more than one entry point writes."""

from __future__ import annotations

from typing import Any

from shared.domain.states import FAILED_STATUSES, ActionState, EventState


def status_event_doc(sid: str, status: str, error_code: int | None) -> tuple[str, dict[str, Any]]:
    """The event id and document stored for a Twilio delivery status, from a callback or a poll.

    One shape for both, so whichever comes second is a duplicate. Only failures are stored (other
    statuses need no actor: they only move their message). A failure stays ``received``
    (``action_state`` pending) until the replies actor has acted on it: the scheduler finds it there.
    """
    failed = status in FAILED_STATUSES
    event: dict[str, Any] = {
        "kind": "status", "sid": sid, "status": status, "error_code": error_code,
        "state": (EventState.RECEIVED if failed else EventState.PROCESSED).value,
        "action_state": ActionState.PENDING.value if failed else None,
    }
    return f"status:{sid}:{status}", event
