"""Declaring the actors: each takes ids only and calls a function with the process's :class:`App`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.errors import PermanentError
from shared.usecases.context import App

R = TypeVar("R")

log = logging.getLogger(__name__)


def declare_actor(broker: RedisBroker, deps: App, fn: Callable[..., R], *, name: str, queue: str,
                  max_retries: int = 8, min_backoff: int = 1000, max_backoff: int = 60_000,
                  time_limit: int = 120_000) -> dramatiq.Actor[..., R]:
    """Declare ``fn(deps, *ids, **hints)`` as a dramatiq actor taking ids (and JSON hints such as a claim).

    Permanent errors are never retried (``throws``); anything else is retried with exponential
    backoff, and the actor functions' conditional state moves make a retry harmless.
    """

    def run(*args: Any, **kwargs: Any) -> R:
        return fn(deps, *args, **kwargs)

    run.__name__ = name
    actor: dramatiq.Actor[..., R] = dramatiq.actor(
        broker=broker, actor_name=name, queue_name=queue, max_retries=max_retries, min_backoff=min_backoff,
        max_backoff=max_backoff, time_limit=time_limit, throws=(PermanentError,),
    )(run)
    return actor
