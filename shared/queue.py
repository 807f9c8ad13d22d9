"""The Redis conveyor: dramatiq broker set-up and the ids-only messages sent to the actors.

Producers (scheduler, webhook, actors) call :class:`DramatiqQueue`; they never import the
actor functions. Each message carries ids only, plus dramatiq's own message id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import uuid4

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from shared.domain.records import DraftClaim

QUEUE_DRAFTING = "drafting"
QUEUE_SENDING = "sending"
QUEUE_REPLIES = "replies"
QUEUE_OUTBOUND = "outbound"
QUEUES = (QUEUE_DRAFTING, QUEUE_SENDING, QUEUE_REPLIES, QUEUE_OUTBOUND)

ACTOR_DRAFT = "draft_followup"
ACTOR_SEND = "send_message"
ACTOR_INBOUND = "process_inbound"
ACTOR_DISPATCH_INBOUND = "dispatch_inbound"
ACTOR_STATUS = "process_status"
ACTOR_RECONCILE = "reconcile_message"
ACTOR_POLL_STATUS = "poll_status"
ACTOR_DELIVER_HOOK = "deliver_hook"

log = logging.getLogger(__name__)


def make_broker(redis_url: str, *, client: redis.Redis | None = None) -> RedisBroker:
    """A dramatiq Redis broker (namespace ``relance``) with the default middleware."""
    if client is not None:
        return RedisBroker(client=client, namespace="relance")
    return RedisBroker(url=redis_url, namespace="relance")


class DramatiqQueue:
    """Enqueues actor messages on the broker by actor name (no actor import needed)."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker

    def _enqueue(self, queue: str, actor: str, args: tuple[object, ...], delay_ms: int | None = None,
                 kwargs: dict[str, object] | None = None) -> None:
        message: Message[object] = Message(queue_name=queue, actor_name=actor, args=args, kwargs=kwargs or {},
                                           options={})
        self.broker.enqueue(message, delay=delay_ms)
        log.debug("enqueued %s %s on %s", actor, args, queue)

    def _enqueue_many(self, queue: str, actor: str, args_list: Sequence[tuple[object, ...]]) -> None:
        """Enqueue several messages in one Redis round trip (a pipeline of dramatiq's own script).

        Each message is what :meth:`RedisBroker.enqueue` would write (same script, arguments and
        middleware hooks), so any worker consumes it unchanged; falls back to one ``enqueue``
        per message if the broker does not look like the dramatiq version this was written for.
        """
        broker = self.broker
        if len(args_list) < 2 or not _can_pipeline(broker):
            for args in args_list:
                self._enqueue(queue, actor, args)
            return
        dispatch, keys = broker.scripts["dispatch"], [broker.namespace]
        messages: list[Message[object]] = []
        with broker.client.pipeline(transaction=False) as pipe:
            for args in args_list:
                message: Message[object] = Message(queue_name=queue, actor_name=actor, args=args, kwargs={},
                                                   options={"redis_message_id": str(uuid4())})
                broker.emit_before("enqueue", message, None)
                dispatch(keys=keys, client=pipe, args=[
                    "enqueue", current_millis(), queue, broker.broker_id, broker.heartbeat_timeout,
                    broker.dead_message_ttl, broker._should_do_maintenance("enqueue"), broker._max_unpack_size(),
                    message.options["redis_message_id"], message.encode(),
                ])
                messages.append(message)
            pipe.execute()
        for message in messages:
            broker.emit_after("enqueue", message, None)
        log.debug("enqueued %d %s on %s", len(messages), actor, queue)

    def draft_followup(self, followup_id: str, step: int, claim: DraftClaim | None = None) -> None:
        """Ask a drafting actor to draft this step (with the claim's reading as keyword ``claim``)."""
        kwargs: dict[str, object] | None = {"claim": claim.to_json()} if claim is not None else None
        self._enqueue(QUEUE_DRAFTING, ACTOR_DRAFT, (followup_id, step), kwargs=kwargs)

    def send_message(self, message_id: str, delay_seconds: float = 0, contact_id: str | None = None) -> None:
        """Ask a sending actor to send this message, optionally after a delay (keyword ``contact``: its contact)."""
        delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
        kwargs: dict[str, object] | None = {"contact": contact_id} if contact_id else None
        self._enqueue(QUEUE_SENDING, ACTOR_SEND, (message_id,), delay, kwargs=kwargs)

    def process_inbound(self, event_id: str) -> None:
        """Ask a replies actor to process this inbound event."""
        self._enqueue(QUEUE_REPLIES, ACTOR_INBOUND, (event_id,))

    def process_inbound_many(self, event_ids: Sequence[str]) -> None:
        """Ask replies actors to process these inbound events, with one message for them all.

        The webhook calls this for each batch it stores: one ``dispatch_inbound`` message (the
        list of ids) costs it one enqueue instead of one per event, and a replies worker fans it
        out with :meth:`process_inbound_each`. A single event goes straight to ``process_inbound``.
        """
        if len(event_ids) == 1:
            self.process_inbound(event_ids[0])
        elif event_ids:
            self._enqueue(QUEUE_REPLIES, ACTOR_DISPATCH_INBOUND, (list(event_ids),))

    def process_inbound_each(self, event_ids: Sequence[str]) -> None:
        """One ``process_inbound`` message per event, in order, in one Redis round trip."""
        self._enqueue_many(QUEUE_REPLIES, ACTOR_INBOUND, [(event_id,) for event_id in event_ids])

    def process_status(self, event_id: str) -> None:
        """Ask a replies actor to act on a failed delivery status."""
        self._enqueue(QUEUE_REPLIES, ACTOR_STATUS, (event_id,))

    def reconcile_message(self, message_id: str) -> None:
        """Ask a sending actor to find out whether an uncertain message reached Twilio."""
        self._enqueue(QUEUE_SENDING, ACTOR_RECONCILE, (message_id,))

    def poll_status(self, message_id: str) -> None:
        """Ask a sending actor to fetch the status of a message whose callbacks never came."""
        self._enqueue(QUEUE_SENDING, ACTOR_POLL_STATUS, (message_id,))

    def deliver_hook(self, delivery_id: str, delay_seconds: float = 0) -> None:
        """Ask an outbound actor to POST this webhook delivery, optionally after a delay."""
        delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
        self._enqueue(QUEUE_OUTBOUND, ACTOR_DELIVER_HOOK, (delivery_id,), delay)


def _can_pipeline(broker: RedisBroker) -> bool:
    """Whether the broker has the internals :meth:`DramatiqQueue._enqueue_many` relies on."""
    return (isinstance(getattr(broker, "scripts", None), dict) and "dispatch" in broker.scripts
            and all(hasattr(broker, name) for name in ("broker_id", "heartbeat_timeout", "dead_message_ttl",
                                                        "_should_do_maintenance", "_max_unpack_size")))
