"""``relance``: one command line for every process and operator task.

User mistakes (bad settings, bad files, unknown ids) end with one ``error:`` line and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from services.cli_approvals import add_parser as add_approvals_parser
from services.cli_console import add_parser as add_console_parser
from services.cli_hooks import add_parser as add_hooks_parser
from services.cli_invoices import add_parser as add_invoices_parser
from services.cli_manual import add_parser as add_manual_parser
from services.cli_users import add_parser as add_users_parser
from services.terminal import printable
from shared.clock import SystemClock
from shared.errors import ConfigError, InputError, TransientError
from shared.queue import QUEUES
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from shared.adapters.mongo import Client
    from shared.domain.repositories import Repositories

log = logging.getLogger("relance")


class DevToolsMissing(Exception):
    """A development command run where the ``devtools`` package is not installed (a production image)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by tests that check compose commands)."""
    parser = argparse.ArgumentParser(prog="relance", description="WhatsApp follow-ups for unpaid invoices, "
                                     "unsigned quotes and unanswered requests.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("webhook", help="run the Twilio webhook service (Starlette + uvicorn)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=None, help="default: BACKEND_PORT")
    p.set_defaults(func=cmd_webhook)

    p = sub.add_parser("scheduler", help="run the scheduler (claims due follow-ups, reconciles stuck work)")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser("worker", help="run dramatiq workers for one or more queues")
    p.add_argument("queues", nargs="+", choices=QUEUES)
    p.add_argument("--threads", type=int, default=4)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulator", help="run the local Twilio API simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8055)
    p.add_argument("--webhook-base-url", default="", help="where to post inbound messages (default PUBLIC_BASE_URL)")
    p.add_argument("--callback-delay", type=float, default=0.05)
    p.set_defaults(func=cmd_simulator)

    p = sub.add_parser("db", help="database tasks")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="TASK")
    q = dbsub.add_parser("init", help="create the indexes (idempotent)")
    q.set_defaults(func=cmd_db_init)

    p = sub.add_parser("healthcheck", help="exit 0 when the process's dependencies answer")
    p.add_argument("target", choices=["worker", "webhook"])
    p.set_defaults(func=cmd_healthcheck)

    p = sub.add_parser("contacts", help="manage contacts")
    csub = p.add_subparsers(dest="contacts_command", required=True, metavar="TASK")
    q = csub.add_parser("import", help="import contacts from a CSV or JSON file")
    q.add_argument("file", type=Path)
    q.set_defaults(func=cmd_contacts_import)

    add_invoices_parser(sub)
    add_hooks_parser(sub)
    add_console_parser(sub)
    add_approvals_parser(sub)
    add_manual_parser(sub)
    add_users_parser(sub)

    p = sub.add_parser("campaigns", help="manage campaigns")
    csub = p.add_subparsers(dest="campaigns_command", required=True, metavar="TASK")
    q = csub.add_parser("create", help="create a campaign from a YAML or JSON file")
    q.add_argument("file", type=Path)
    q.set_defaults(func=cmd_campaigns_create)
    q = csub.add_parser("enrol", help="enrol the contacts a campaign selects")
    q.add_argument("campaign_id")
    q.add_argument("--tag", action="append", default=[], help="only contacts with this tag too")
    q.set_defaults(func=cmd_campaigns_enrol)
    q = csub.add_parser("list", help="list campaigns")
    q.set_defaults(func=cmd_campaigns_list)
    for name, status in (("pause", "paused"), ("resume", "active")):
        q = csub.add_parser(name, help=f"{name} a campaign")
        q.add_argument("campaign_id")
        q.set_defaults(func=cmd_campaigns_status, status=status)

    p = sub.add_parser("status", help="follow-ups and messages by state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("conversations", help="list conversations and unknown numbers that wrote "
                                             "(those needing a person with --needs-human)")
    p.add_argument("--needs-human", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_conversations)

    p = sub.add_parser("conversation", help="a contact's whole timeline (follow-ups, messages in and out), "
                                            "or what an unknown number sent")
    p.add_argument("phone")
    p.set_defaults(func=cmd_conversation)

    p = sub.add_parser("handled", help="close a hand-over: a person dealt with this number (with --resume, "
                                       "--stop or --paid, also resume or stop its follow-ups)")
    p.add_argument("phone")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--resume", dest="action", action="store_const", const="resume",
                      help="send the paused follow-ups on from their current step")
    what.add_argument("--stop", dest="action", action="store_const", const="stop",
                      help="stop the open follow-ups (unsent drafts are cancelled)")
    what.add_argument("--paid", dest="action", action="store_const", const="paid",
                      help="the payment the client claimed has arrived: stop the open follow-ups as paid")
    p.set_defaults(func=cmd_handled, action="keep")

    p = sub.add_parser("dev", help="run the whole stack locally on embedded servers, with a demo")
    p.add_argument("--dir", type=Path, default=Path(".relance"), help="data and logs (default .relance/)")
    p.add_argument("--exit-when-done", action="store_true", help="stop once the demo's messages are all final")
    p.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    p.set_defaults(func=cmd_dev)
    return parser


# ------------------------------------------------------------------ commands
def cmd_webhook(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the webhook with uvicorn."""
    import uvicorn

    from services.bootstrap import build_webhook

    app = build_webhook(settings)
    _init_indexes(settings)
    # log_config=None: uvicorn's loggers reach our redacting root handler instead of its own.
    uvicorn.run(app, host=args.host, port=args.port or settings.backend_port, log_level="warning",
                access_log=False, proxy_headers=True, log_config=None)
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    """Run the scheduler loop (or one pass)."""
    from services.bootstrap import build_broker, build_inbound_backfill, build_store, serve_metrics, stale_after
    from services.scheduler import run_forever
    from shared.queue import DramatiqQueue
    from shared.usecases.invoices import migrate_contact_invoices
    from shared.usecases.scheduling import tick

    client, store = build_store(settings)
    store.ensure_indexes()
    migrate_contact_invoices(store, now=SystemClock().now())  # idempotent: what earlier versions kept on contacts
    broker = build_broker(settings)
    queue = DramatiqQueue(broker)
    backfill = build_inbound_backfill(settings)
    try:
        if args.once:
            report = tick(store, queue, SystemClock(), batch=settings.scheduler_batch_size,
                          stale_after=stale_after(settings), backfill=backfill)
            print(json.dumps({k: len(v) for k, v in report.__dict__.items()}))
        else:
            serve_metrics(settings)
            run_forever(store, queue, SystemClock(), interval=settings.scheduler_interval_seconds,
                        batch=settings.scheduler_batch_size, stale_after=stale_after(settings), backfill=backfill)
    finally:
        broker.close()
        client.close()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run dramatiq workers consuming the given queues until SIGTERM/SIGINT."""
    import dramatiq

    from services.bootstrap import build_worker_deps, register_actors, serve_dramatiq_metrics, serve_metrics

    deps, broker, client = build_worker_deps(settings, queues=args.queues)
    deps.store.ensure_indexes()
    register_actors(broker, deps)
    worker = dramatiq.Worker(broker, queues=set(args.queues), worker_threads=max(1, args.threads))
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve_metrics(settings)
    serve_dramatiq_metrics(settings, broker)
    worker.start()
    log.info("worker started: queues=%s threads=%d", ",".join(args.queues), args.threads)
    stop.wait()
    log.info("worker stopping: finishing in-flight messages")
    worker.stop(timeout=30_000)
    broker.close()
    client.close()
    return 0


def cmd_simulator(settings: Settings, args: argparse.Namespace) -> int:
    """Run the Twilio simulator with this installation's credentials."""
    with _dev_tools("simulator"):
        from devtools import simulator

    settings.require("twilio_account_sid", "twilio_auth_token")
    simulator.run(host=args.host, port=args.port, account_sid=settings.twilio_account_sid,
                  auth_token=settings.twilio_auth_token.get_secret_value(),
                  webhook_base_url=args.webhook_base_url or settings.base_url,
                  whatsapp_number=settings.twilio_whatsapp_number, callback_delay=args.callback_delay)
    return 0


def cmd_db_init(settings: Settings, args: argparse.Namespace) -> int:
    """Create every index; make the invoices that contacts' fields name (idempotent)."""
    from services.bootstrap import build_store
    from shared.usecases.invoices import migrate_contact_invoices

    client, store = build_store(settings)
    store.ensure_indexes()
    report = migrate_contact_invoices(store, now=SystemClock().now())
    client.close()
    for reason in report.skipped:
        print(printable(f"invoice not migrated: {reason}"), file=sys.stderr)
    print("indexes ready")
    if report.created:
        print(f"invoices made from contacts' fields: {report.created}")
    return 0


def cmd_healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when MongoDB and Redis answer."""
    import redis

    from services.bootstrap import build_store

    client, store = build_store(settings)
    mongo_ok = store.ping()
    client.close()
    try:
        redis_ok = bool(redis.Redis.from_url(settings.redis_url, socket_timeout=2).ping())
    except redis.RedisError:
        redis_ok = False
    print(json.dumps({"mongo": mongo_ok, "redis": redis_ok}))
    return 0 if mongo_ok and redis_ok else 1


def cmd_contacts_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import contacts; bad rows are listed with their line and skipped."""
    from services.terminal import print_progress
    from shared.usecases.contacts import import_contacts

    _, store = _store(settings)
    report = import_contacts(store, args.file, now=SystemClock().now(), default_region=settings.default_country,
                             progress=print_progress)
    for error in report.errors:
        print(printable(f"skipped {error}"), file=sys.stderr)
    print(f"imported: {report.inserted} new, {report.updated} updated, {report.unchanged} unchanged, "
          f"{len(report.errors)} skipped")
    return 0 if not report.errors else 1


def cmd_campaigns_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a campaign after checking it against the contacts it selects."""
    from shared.usecases.campaigns import create_campaign

    _, store = _store(settings)
    campaign = create_campaign(store, args.file, now=SystemClock().now())
    print(f"campaign {campaign.id} created: {len(campaign.steps)} step(s)")
    return 0


def cmd_campaigns_enrol(settings: Settings, args: argparse.Namespace) -> int:
    """Enrol the contacts a campaign selects (idempotent)."""
    from shared.usecases.campaigns import enrol_campaign

    _, store = _store(settings)
    report = enrol_campaign(store, args.campaign_id, now=SystemClock().now(), tags=args.tag or None)
    for reason in report.skipped:
        print(printable(f"skipped {reason}"), file=sys.stderr)
    print(f"enrolled {report.enrolled}, already enrolled {report.already_enrolled}, skipped {len(report.skipped)}")
    return 0


def cmd_campaigns_list(settings: Settings, args: argparse.Namespace) -> int:
    """List campaigns with their follow-up counts."""
    from shared.usecases.campaigns import list_campaigns

    _, store = _store(settings)
    for line in list_campaigns(store):
        campaign = line.campaign
        print(printable(f"{campaign.id}") + f"\t{campaign.status}\t{len(campaign.steps)} steps\t"
              f"{line.enrolled} enrolled\t" + printable(campaign.name))
    return 0


def cmd_campaigns_status(settings: Settings, args: argparse.Namespace) -> int:
    """Pause or resume a campaign."""
    from shared.usecases.campaigns import pause_campaign, resume_campaign

    _, store = _store(settings)
    change = (resume_campaign if args.status == "active" else pause_campaign)(store, args.campaign_id,
                                                                            now=SystemClock().now())
    if change.status == "active" and change.changed:
        print(f"campaign {args.campaign_id} resumed ({change.resumed} follow-up(s) rescheduled)")
    else:
        print(f"campaign {args.campaign_id} is {change.status}{'' if change.changed else ' (unchanged)'}")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print follow-ups and messages by state."""
    from shared.usecases.campaigns import counts_by_state

    _, store = _store(settings)
    counts = counts_by_state(store)
    if args.json:
        print(json.dumps(counts))
    else:
        for name, by_state in counts.items():
            parts = ", ".join(f"{state} {n}" for state, n in sorted(by_state.items())) or "none"
            print(f"{name}: {parts}")
    return 0


def cmd_conversations(settings: Settings, args: argparse.Namespace) -> int:
    """List contacts with follow-ups and unknown numbers that wrote, newest first; --needs-human: hand-overs."""
    from services.cli_conversations import conversation_line
    from shared.usecases.conversations import conversations

    _, store = _store(settings)
    rows = conversations(store, needs_human=args.needs_human, limit=args.limit)
    if not rows:
        print("no conversation needs a person" if args.needs_human else "no conversations")
    for row in rows:
        print(printable(conversation_line(row)))
    return 0


def cmd_conversation(settings: Settings, args: argparse.Namespace) -> int:
    """Print one contact's timeline (or an unknown number's messages)."""
    from services.cli_conversations import timeline_lines
    from shared.phones import normalise_phone
    from shared.usecases.conversations import client_timeline

    _, store = _store(settings)
    phone = normalise_phone(args.phone, settings.default_country)
    for line in timeline_lines(client_timeline(store, phone)):
        print(printable(line))
    return 0


def cmd_handled(settings: Settings, args: argparse.Namespace) -> int:
    """Close a hand-over, and resume or stop the contact's follow-ups (audited as ``cli:<login>``)."""
    from services.cli_manual import author
    from shared.phones import normalise_phone
    from shared.usecases.conversations import handled_lines
    from shared.usecases.inbox import close

    _, store = _store(settings)
    phone = normalise_phone(args.phone, settings.default_country)
    for line in handled_lines(close(store, phone, action=args.action, by=author(), now=SystemClock().now())):
        print(printable(line))
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    """Run everything locally (see devtools.devstack)."""
    with _dev_tools("dev"):
        from devtools.devstack import run_dev

    def out(text: str) -> None:  # its own line breaks kept (the header), every other control escaped
        print("\n".join(printable(line) for line in text.split("\n")), flush=True)

    return run_dev(args.dir, exit_when_done=args.exit_when_done, timeout=args.timeout, out=out)


# ------------------------------------------------------------------ helpers
@contextmanager
def _dev_tools(command: str) -> Iterator[None]:
    """Around the lazy import of a dev tool: its absence (a production image) is a user's mistake."""
    try:
        yield
    except ModuleNotFoundError as exc:
        # Only the package itself missing; a dependency missing inside it is a real bug, and says so.
        if exc.name != "devtools" and not (exc.name or "").startswith("devtools."):
            raise
        raise DevToolsMissing(f"the dev tools are not installed in this image: run relance {command} "
                              "from a source checkout (python3 dev.py sets one up)") from None


def _store(settings: Settings) -> tuple[Client, Repositories]:
    from services.bootstrap import build_store

    client, store = build_store(settings)
    store.ensure_indexes()
    return client, store


def _init_indexes(settings: Settings) -> None:
    from services.bootstrap import build_store

    client, store = build_store(settings)
    store.ensure_indexes()
    client.close()


def main(argv: Sequence[str] | None = None, *, load: Callable[[], Settings] = load_settings) -> int:
    """Entry point of the ``relance`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load()
        from services.bootstrap import configure_logging

        configure_logging(settings)
        return int(args.func(settings, args))
    except ConfigError as exc:
        print(printable(f"error: configuration: {exc}"), file=sys.stderr)
        return 2
    except InputError as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)  # may quote a client's name or a file's text
        return 1
    except TransientError as exc:
        print(printable(f"error: {exc} (is MongoDB running? check MONGODB_URI)"), file=sys.stderr)
        return 3
    except DevToolsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
