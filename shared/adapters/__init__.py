"""Adapters: the only code that talks to MongoDB (``mongo``); in-memory twins of the same
repositories (``memory``) for tests that need no server."""

from collections.abc import Callable, Iterator
from typing import Any


def own_methods(cls: type, base: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    """The public methods a repository class defines itself or takes from a mixin (a class not derived from ``base``).

    What ``base`` wraps (a lock, error translation) when ``cls`` is declared: methods inherited
    from another repository class were wrapped with it already.
    """
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        if klass is cls or (not issubclass(klass, base) and klass is not object):
            found.update((name, value) for name, value in vars(klass).items()
                         if callable(value) and not name.startswith("_"))
    for name, value in found.items():
        if getattr(cls, name) is value:
            yield name, value
