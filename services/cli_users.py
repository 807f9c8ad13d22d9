"""``relance users add|list|remove``: who logs in to the console's pages. Registered by :mod:`services.cli`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from services.cli_console import _store
from services.cli_manual import _author
from services.terminal import printable
from shared.clock import SystemClock
from shared.errors import InputError
from shared.settings import Settings
from shared.usecases.audit import record


def add_parser(sub: Any) -> None:
    """Add ``users`` to the ``relance`` sub-commands."""
    p = sub.add_parser("users", help="manage the console's users (docs/console.md)")
    usub = p.add_subparsers(dest="users_command", required=True, metavar="TASK")
    q = usub.add_parser("add", help="add a user (the password is asked twice)")
    q.add_argument("email")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input (for scripts)")
    q.set_defaults(func=cmd_users_add)
    q = usub.add_parser("list", help="list the users")
    q.set_defaults(func=cmd_users_list)
    q = usub.add_parser("remove", help="remove a user and end their sessions")
    q.add_argument("email")
    q.set_defaults(func=cmd_users_remove)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise InputError("the two passwords differ: nothing was changed")
    return first


def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    """Add a user; the password is stored as its Argon2 hash."""
    from shared.usecases.users import add_user

    password = _password(args)
    store, now = _store(settings), SystemClock().now()
    user = add_user(store, args.email, password, now=now)
    record(store, by=_author(), action="user.add", target=user.email, now=now)
    print(printable(f"user {user.email!r} added: they log in at the console's /login"))
    return 0


def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    """Email, created, last log-in."""
    from shared.usecases.users import list_users

    users = list_users(_store(settings))
    if not users:
        print("no users (relance users add EMAIL)")
    for user in users:
        last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never logged in"
        print(printable(f"{user.email}  created {user.created_at.isoformat(timespec='seconds')}  last log-in {last}"))
    return 0


def cmd_users_remove(settings: Settings, args: argparse.Namespace) -> int:
    """Remove a user and end their sessions."""
    from shared.usecases.users import remove_user

    store = _store(settings)
    ended = remove_user(store, args.email)
    record(store, by=_author(), action="user.remove", target=args.email.strip().lower(),
           detail=f"{ended} session(s) ended", now=SystemClock().now())
    print(printable(f"user {args.email.strip().lower()!r} removed ({ended} session(s) ended)"))
    return 0
