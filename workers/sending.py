"""The sending queue's actors: send a message (:mod:`shared.usecases.sending`), reconcile an
uncertain send (:mod:`shared.usecases.reconciling`), poll a status (:mod:`shared.usecases.delivery`).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.queue import ACTOR_POLL_STATUS, ACTOR_RECONCILE, ACTOR_SEND, QUEUE_SENDING
from shared.usecases.context import App
from shared.usecases.delivery import poll_status
from shared.usecases.reconciling import reconcile_message
from shared.usecases.sending import send_message
from workers.deps import declare_actor


def register(broker: RedisBroker, app: App) -> dramatiq.Actor[..., str | None]:
    """Declare the sending queue's actors on ``broker`` (send, reconcile, status poll), bound to ``app``."""
    declare_actor(broker, app, reconcile_message, name=ACTOR_RECONCILE, queue=QUEUE_SENDING, max_retries=5,
                  min_backoff=5000, max_backoff=120_000, time_limit=60_000)
    declare_actor(broker, app, poll_status, name=ACTOR_POLL_STATUS, queue=QUEUE_SENDING, max_retries=3,
                  min_backoff=5000, max_backoff=60_000, time_limit=60_000)
    return declare_actor(broker, app, send_message, name=ACTOR_SEND, queue=QUEUE_SENDING, max_retries=10,
                         min_backoff=2000, max_backoff=300_000, time_limit=60_000)
