"""``relance console`` (the HTTP API) and ``relance keys …`` (its API keys). Registered by :mod:`services.cli`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from services.terminal import printable
from shared.clock import SystemClock
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.domain.repositories import Repositories


def add_parser(sub: Any) -> None:
    """Add ``console`` and ``keys`` to the ``relance`` sub-commands."""
    p = sub.add_parser("console", help="run the console's HTTP API (/api/v1, docs at /api/docs)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=None, help="default: CONSOLE_PORT")
    p.set_defaults(func=cmd_console)
    p = sub.add_parser("keys", help="manage the console's API keys (docs/console.md)")
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="TASK")
    q = ksub.add_parser("create", help="create an API key and print it (shown once)")
    q.add_argument("name")
    q.add_argument("--read-only", action="store_true", help="the key may only read (a write answers 403)")
    q.set_defaults(func=cmd_keys_create)
    q = ksub.add_parser("revoke", help="revoke an API key (it answers 401 from now on)")
    q.add_argument("name")
    q.set_defaults(func=cmd_keys_revoke)
    q = ksub.add_parser("list", help="list the API keys (never the keys themselves)")
    q.set_defaults(func=cmd_keys_list)


def _store(settings: Settings) -> Repositories:
    from services.bootstrap import build_store

    _, store = build_store(settings)
    store.ensure_indexes()
    return store


def cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the console with uvicorn."""
    import uvicorn

    from services.bootstrap import build_task_queue
    from services.console import Console, create_app

    app = create_app(Console(_store(settings), SystemClock(), queue=build_task_queue(settings),
                             default_region=settings.default_country,
                             metrics_token=settings.metrics_token.get_secret_value(), rules=settings.rules()))
    # log_config=None: uvicorn's loggers reach our redacting root handler instead of its own.
    uvicorn.run(app, host=args.host, port=args.port or settings.console_port, log_level="warning",
                access_log=False, proxy_headers=True, log_config=None,
                forwarded_allow_ips=settings.console_trusted_proxies)
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a key; the key is printed once and only its hash is stored."""
    from shared.usecases.api_keys import create_key

    key = create_key(_store(settings), args.name, read_only=args.read_only, now=SystemClock().now())
    print(printable(f"API key {args.name.strip()!r} created{' (read-only)' if args.read_only else ''}; "
                    "it is shown only now, keep it safe:"))
    print(key)
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke a key."""
    from shared.usecases.api_keys import revoke_key

    revoke_key(_store(settings), args.name, now=SystemClock().now())
    print(printable(f"API key {args.name.strip()!r} revoked"))
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    """List the keys: name, access, created, last used, revoked."""
    from shared.usecases.api_keys import list_keys

    keys = list_keys(_store(settings))
    if not keys:
        print("no API keys (relance keys create NAME)")
    for key in keys:
        used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never used"
        revoked = f"  revoked {key.revoked_at.isoformat(timespec='seconds')}" if key.revoked_at else ""
        print(printable(f"{key.name}  {'read-only' if key.read_only else 'read-write'}  "
                        f"created {key.created_at.isoformat(timespec='seconds')}  last used {used}{revoked}"))
    return 0
