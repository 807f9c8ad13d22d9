"""``relance reply PHONE TEXT``: a person writes to a client by hand (:mod:`shared.usecases.manual_reply`).
Registered by :mod:`services.cli`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from services.terminal import printable
from shared.clock import SystemClock
from shared.settings import Settings


def add_parser(sub: Any) -> None:
    """Add ``reply`` to the ``relance`` sub-commands."""
    p = sub.add_parser("reply", help="write to a client by hand (text inside their 24-hour window, "
                                     "MANUAL_REPLY_TEMPLATE_SID outside it; facts check and STOP apply)")
    p.add_argument("phone")
    p.add_argument("text", help="the message ('-': read it from standard input)")
    p.set_defaults(func=cmd_reply)


def author() -> str:
    """Who acts from the command line, as the audit log records it: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a user entry)
        return "cli:?"


_author = author  # the name services/cli_users.py imports


def cmd_reply(settings: Settings, args: argparse.Namespace) -> int:
    """Store the message and hand it to the sending workers (exit 1 with the reason when refused)."""
    from services.bootstrap import build_task_queue
    from services.cli_console import _store
    from shared.phones import normalise_phone
    from shared.usecases.manual_reply import reply_by_hand

    text = sys.stdin.read() if args.text == "-" else args.text
    phone = normalise_phone(args.phone, settings.default_country)
    done = reply_by_hand(_store(settings), build_task_queue(settings), settings.rules(), phone, body=text, by=author(),
                         now=SystemClock().now())
    what = "text" if done.kind == "freeform" else "approved template (outside the 24-hour window)"
    if done.created:
        print(printable(f"reply {done.message_id} stored as {what}; the sending workers send it"))
    else:
        print(printable(f"reply {done.message_id} was stored already (state {done.state}): nothing more is sent"))
    return 0
