"""The drafting queue's actor: one step of one follow-up drafted (:mod:`shared.usecases.drafting`)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.queue import ACTOR_DRAFT, QUEUE_DRAFTING
from shared.usecases.context import App
from shared.usecases.drafting import draft_followup
from workers.deps import declare_actor


def register(broker: RedisBroker, app: App) -> dramatiq.Actor[..., str | None]:
    """Declare the drafting actor on ``broker``, bound to ``app``."""
    return declare_actor(broker, app, draft_followup, name=ACTOR_DRAFT, queue=QUEUE_DRAFTING)
