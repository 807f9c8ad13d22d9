"""``relance hooks …``: add, list and remove the business's outbound webhooks (docs/webhooks-out.md).

Registered by :mod:`services.cli`.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli_console import _store
from services.terminal import printable
from shared.clock import SystemClock
from shared.settings import Settings
from shared.usecases.outbound import EVENT_NAMES


def add_parser(sub: Any) -> None:
    """Add ``hooks`` and its tasks to the ``relance`` sub-commands."""
    p = sub.add_parser("hooks", help="webhooks to your own systems (docs/webhooks-out.md)")
    hsub = p.add_subparsers(dest="hooks_command", required=True, metavar="TASK")
    q = hsub.add_parser("add", help="send events to a URL (prints its signing secret once)")
    q.add_argument("url", help="https://… (http only to localhost)")
    q.add_argument("--event", action="append", default=[], metavar="EVENT",
                   help=f"an event to send, again for more: {', '.join(EVENT_NAMES)}")
    q.set_defaults(func=cmd_hooks_add)
    q = hsub.add_parser("list", help="the webhooks, their events and last delivery (never the secret)")
    q.set_defaults(func=cmd_hooks_list)
    q = hsub.add_parser("remove", help="stop sending to a webhook")
    q.add_argument("id")
    q.set_defaults(func=cmd_hooks_remove)


def cmd_hooks_add(settings: Settings, args: argparse.Namespace) -> int:
    """Subscribe a URL; its secret is shown here only."""
    from shared.usecases.outbound import add_subscription, check_events, check_url

    check_url(args.url)  # before connecting: a typo is told at once
    check_events(args.event)
    sub = add_subscription(_store(settings), args.url, args.event, now=SystemClock().now())
    print(printable(f"webhook {sub.id} added: {sub.url} receives {', '.join(sub.events)}"))
    print(f"signing secret (shown once, keep it in your receiver's settings): {sub.secret}")
    return 0


def cmd_hooks_list(settings: Settings, args: argparse.Namespace) -> int:
    """List the active subscriptions."""
    from shared.usecases.outbound import subscription_lines

    lines = subscription_lines(_store(settings))
    if not lines:
        print("no webhooks (relance hooks add URL --event invoice.paid)")
    for line in lines:
        print(printable(line))
    return 0


def cmd_hooks_remove(settings: Settings, args: argparse.Namespace) -> int:
    """Deactivate a subscription."""
    from shared.usecases.outbound import remove_subscription

    remove_subscription(_store(settings), args.id)
    print(printable(f"webhook {args.id} removed"))
    return 0
