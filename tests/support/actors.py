"""Run the actors' functions in-process over a RecordingQueue, as the workers would."""

from __future__ import annotations

from shared.fakes import RecordingQueue
from workers.deps import Deps
from workers.drafting import draft_followup
from workers.sending import send_message


def drain(deps: Deps) -> None:
    """Draft and send whatever is queued (delayed sends are left out), until nothing is left."""
    queue = deps.queue
    assert isinstance(queue, RecordingQueue)
    while queue.drafts or queue.sends:
        while queue.drafts:
            draft_followup(deps, *queue.drafts.pop(0))
        while queue.sends:
            message_id, delay = queue.sends.pop(0)
            if delay == 0:
                send_message(deps, message_id)
