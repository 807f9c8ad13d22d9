"""The replies queue's actors: inbound messages (one by one, and the webhook's batches) and failed
delivery statuses. Each decodes ids and calls its use case (:mod:`shared.usecases.replies`,
:mod:`shared.usecases.delivery`).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.domain.reasons import ReplyResult
from shared.queue import ACTOR_DISPATCH_INBOUND, ACTOR_INBOUND, ACTOR_STATUS, QUEUE_REPLIES
from shared.usecases.context import App
from shared.usecases.delivery import process_status_or_hand_over
from shared.usecases.replies import dispatch_inbound, process_inbound_or_hand_over
from workers.deps import declare_actor


def register(broker: RedisBroker, app: App) -> dramatiq.Actor[..., ReplyResult | None]:
    """Declare the replies queue's actors on ``broker`` (inbound messages, their batches, failed statuses)."""
    declare_actor(broker, app, dispatch_inbound, name=ACTOR_DISPATCH_INBOUND, queue=QUEUE_REPLIES)
    declare_actor(broker, app, process_status_or_hand_over, name=ACTOR_STATUS, queue=QUEUE_REPLIES, time_limit=60_000)
    return declare_actor(broker, app, process_inbound_or_hand_over, name=ACTOR_INBOUND, queue=QUEUE_REPLIES)
