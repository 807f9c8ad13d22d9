"""``relance approvals …``: the drafts waiting for a person (campaigns with ``approval: required``),
approved, edited or rejected from the terminal with the same use cases as the console. Registered by
:mod:`services.cli`."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from services.terminal import printable
from shared.clock import SystemClock
from shared.settings import Settings


def add_parser(sub: Any) -> None:
    """Add ``approvals`` to the ``relance`` sub-commands."""
    p = sub.add_parser("approvals", help="drafts waiting for approval: list, approve, edit, reject (docs/console.md)")
    asub = p.add_subparsers(dest="approvals_command", required=True, metavar="TASK")
    q = asub.add_parser("list", help="list the drafts waiting for approval")
    q.add_argument("--limit", type=int, default=50)
    q.set_defaults(func=cmd_approvals_list)
    for name, help_text in (("approve", "approve a draft: it is sent as any draft"),
                            ("reject", "reject a draft (cancelled, with --reason); its follow-up moves on"),
                            ("edit", "give a freeform draft a new text (--body, checked as drafts are)")):
        q = asub.add_parser(name, help=help_text)
        q.add_argument("id", help="the draft's id (as listed)")
        if name == "reject":
            q.add_argument("--reason", required=True)
        if name == "edit":
            q.add_argument("--body", required=True)
            q.add_argument("--approve", action="store_true", help="approve it at once")
        q.add_argument("--by", default=None, help="who acts (default: cli:<your user name>)")
        q.set_defaults(func=cmd_approvals_decide, action=name)


def _by(args: argparse.Namespace) -> str:
    return str(args.by or f"cli:{getpass.getuser()}")


def cmd_approvals_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print the drafts waiting for approval, oldest id first."""
    from services.cli_console import _store
    from shared.usecases.approvals import list_waiting

    page = list_waiting(_store(settings), limit=args.limit)
    if not page.items:
        print("no draft waits for approval")
        return 0
    for draft in page.items:
        since = draft.waiting_since.isoformat(timespec="minutes") if draft.waiting_since else "?"
        print(printable(f"{draft.id}  {draft.contact_name}  {draft.campaign_name} step {draft.step + 1}/"
                        f"{draft.step_count}  {draft.kind}  waiting since {since}"))
        print(printable(f"    {draft.body}"))
    if page.next_after:
        print(f"(more: raise --limit above {args.limit})")
    return 0


def cmd_approvals_decide(settings: Settings, args: argparse.Namespace) -> int:
    """Approve, reject or edit one draft; a clear error (exit 1) when it is not waiting or the text fails."""
    from services.bootstrap import build_task_queue
    from services.cli_console import _store
    from shared.usecases import approvals

    store, now = _store(settings), SystemClock().now()
    if args.action == "approve":
        decision = approvals.approve(store, build_task_queue(settings), args.id, by=_by(args), now=now,
                                     rules=settings.rules())
    elif args.action == "reject":
        decision = approvals.reject(store, args.id, reason=args.reason, by=_by(args), now=now)
    else:
        decision = approvals.edit(store, settings.rules(), args.id, args.body, by=_by(args), now=now,
                                  then_approve=args.approve, queue=build_task_queue(settings))
    message = decision.message
    after = f"; follow-up {decision.followup_state.value}" if decision.followup_state else ""
    print(printable(f"{message.id}: {message.state.value}{after}"))
    return 0
