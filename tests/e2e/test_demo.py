"""The README's Quickstart, as a new user runs it: ``relance dev --exit-when-done``.

``python3 dev.py demo`` sets up ``.venv`` and runs ``relance dev``; this test runs that same
command with the project's interpreter (not ``dev.py``, which would create a virtual
environment), in a fresh folder and with an environment holding none of Relance's settings (no
Twilio, Gemini, MongoDB or Redis, no ``.env``: it is read from the working directory, and the
command runs in the test's own empty folder). It checks what a new user would look at: the
stack starts on its embedded defaults (Twilio simulator, offline drafter), the demo campaign's
messages all reach the simulator and turn delivered or read, the five scripted replies are
acted on, the command exits 0 by itself and leaves no process behind. The demo client owing two
invoices gets one reminder naming both, then pays them through Stripe events the command signs
and posts to its own webhook: both invoices turn paid (source ``payment``), its follow-up stops
and no later step reaches the simulator (the output says so, and the database, opened after the
run, agrees). A second run against the same folder finds the database not empty, loads nothing,
sends nothing and exits 0 again.

About 30 s for the first run and a few seconds for the second on an idle 2-core machine; the
timeouts are generous so that a loaded machine only makes it slower.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import yaml

from devtools.demo_payments import DEMO_PAYER
from devtools.devstack import DEMO_DIR, DEMO_REPLIES, demo_invoices
from devtools.embedded import free_port, start_mongo
from shared.adapters.mongo import open_repositories
from shared.phones import mask_phone, normalise_phone
from shared.settings import Settings

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 240.0  # seconds before the test kills the command (and its process group)
DEV_TIMEOUT = 210  # --timeout: relance gives up by itself first, printing where it stood
EXIT_GRACE = 20.0  # seconds the processes of a finished run get to be gone
# Settings are read case-insensitively from the environment; these prefixes also cover variables
# read by the libraries themselves (GOOGLE_API_KEY for google-genai, for instance).
SCRUBBED_PREFIXES = ("TWILIO_", "GEMINI_", "GOOGLE_", "MONGO", "REDIS", "NGROK", "PUBLIC_BASE_URL")
DELIVERED = {"delivered", "read"}

PROGRESS = re.compile(r"^\[\d+:\d\d:\d\d\] follow-ups: (?P<followups>.*) \| messages: (?P<messages>.*)$")
RECEIVED = re.compile(r"^the Twilio simulator received (\d+) message\(s\)")
LISTED = re.compile(r"^  → (?P<to>\S+) \[(?P<kind>\w+), (?P<state>\w+)\] ")
PORTS = {  # the header lines, each with the port of something the command started
    "redis": re.compile(r"^  redis +redis://127\.0\.0\.1:(\d+)/"),
    "mongodb": re.compile(r"^  mongodb +mongodb://127\.0\.0\.1:(\d+)/"),
    "simulator": re.compile(r"^  twilio +simulator at http://127\.0\.0\.1:(\d+)"),
    "webhook": re.compile(r"^  webhook +http://127\.0\.0\.1:(\d+)/"),
    "console": re.compile(r"^  console +http://127\.0\.0\.1:(\d+)/ \(log in as demo@relance\.local, password \S+\)$"),
}
CONSOLE_LOGIN = re.compile(r"^  console +(?P<url>http://127\.0\.0\.1:\d+/) \(log in as (?P<email>\S+), "
                           r"password (?P<password>\S+)\)$")
DONE = "demo done: every follow-up is finished and every message final. Stopping."
PAYMENT = "  € Stripe: payment received for {to} ({count} invoices) — its next reminder will not be sent"
NOT_EMPTY = "database not empty: showing its progress (no demo loaded)"


@dataclass(frozen=True)
class Reply:
    """What the demo's scripted reply of one client must lead to."""

    outcome: str  # the summary line after "Name: ", a regular expression
    ends_cadence: bool  # the client gets no further reminder
    sent_after: tuple[str, ...]  # exactly what the client is sent after replying, as the "    ↳ " lines show it

    @property
    def answered(self) -> bool:
        """Relance writes back (thank-you, acknowledgement, answer)."""
        return any(line.startswith("reply: ") for line in self.sent_after)


NOTHING = ("nothing sent since",)
FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]
# One entry per client of DEMO_REPLIES (checked below): paid → paused while the owner checks
# (PAID_CLAIM_ACTION=pause_and_verify, the default), STOP → opt_out, dispute → needs_human,
# promise → paused, question → answered. "offline": no GEMINI_API_KEY; "Relance": the default
# BUSINESS_NAME, which signs every reply. Julien's date is the one in his outcome line ({until}).
REPLIES = {
    "Marie Dupont": Reply(r"paid \([\d.]+, offline\) → paid_claimed paused=1 needs_human: says the invoice is paid: "
                          r"check the payment", ends_cadence=True, sent_after=(
                              "reply: Merci Marie Dupont, nous avons bien noté votre règlement. Nous vérifions sa "
                              "bonne réception ; d'ici là, vous ne recevrez pas de relance à ce sujet. Relance",)),
    "Karim Benali": Reply(r"STOP → opt_out stopped=1", ends_cadence=True, sent_after=NOTHING),
    "James Carter": Reply(r"dispute \([\d.]+, offline\) → needs_human: dispute", ends_cadence=True,
                          sent_after=NOTHING),  # the owner alert needs OWNER_WHATSAPP_NUMBER: none here
    "Julien Moreau": Reply(r"promise_to_pay \([\d.]+, offline\) → promise_to_pay until=(?P<until>\d{4}-\d\d-\d\d) "
                           r"paused=1", ends_cadence=True, sent_after=(
                               "reply: Merci Julien Moreau, c'est noté : nous attendons votre règlement pour le "
                               "{until}. Relance",)),
    "Sophie Lefèvre": Reply(r"question \([\d.]+, offline\) → question answered \(amount\)", ends_cadence=False,
                            sent_after=("reply: Il vous reste 2 990,00 € à régler : FA-2026-007 : 2 990,00 € "
                                        "(échéance : {due_007}) Relance",
                                        "reminder: step 2")),
}


@dataclass(frozen=True)
class Demo:
    """The demo as devtools/demo defines it."""

    contacts: list[str]
    steps: int
    invoices: dict[str, list[str]]  # each client's invoice references, as in invoices.csv
    payer_phone: str  # the paying client's phone (E.164)

    @property
    def expected_messages(self) -> int:
        """What the simulator must receive: every step for every client, except the steps after
        the first for those whose reply ends their cadence and for the client who pays, plus one
        message back per reply Relance answers (what the payment may send back is added by the
        test, from the output)."""
        ended = sum(1 for name, reply in REPLIES.items() if reply.ends_cadence and name in self.contacts)
        answered = sum(1 for name, reply in REPLIES.items() if reply.answered and name in self.contacts)
        return len(self.contacts) * self.steps - (ended + 1) * (self.steps - 1) + answered

    @property
    def paid(self) -> list[str]:
        """The references the payer pays, sorted."""
        return sorted(self.invoices[DEMO_PAYER])


def _demo() -> Demo:
    campaign = yaml.safe_load((DEMO_DIR / "campaign.yaml").read_text(encoding="utf-8"))
    tags = set(campaign["enrol"]["tags"])
    with (DEMO_DIR / "contacts.csv").open(newline="", encoding="utf-8") as fh:
        rows = [row for row in csv.DictReader(fh) if tags & set(row["tags"].split("|"))]
    invoices: dict[str, list[str]] = {}
    with (DEMO_DIR / "invoices.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            invoices.setdefault(row["name"], []).append(row["invoice"])
    payer = next(row for row in rows if row["name"] == DEMO_PAYER)
    return Demo(contacts=[row["name"] for row in rows], steps=len(campaign["steps"]), invoices=invoices,
                payer_phone=normalise_phone(payer["phone"], "FR"))


def _new_user_env() -> dict[str, str]:
    """The environment without any of Relance's settings (nor the services' own variables)."""
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in settings and not k.upper().startswith(SCRUBBED_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"  # the output so far is there to read if the run must be killed
    return env


def _logs(workdir: Path, lines: int = 30) -> str:
    """The end of every log of a run, for failure messages."""
    parts = []
    for log in sorted((workdir / "logs").glob("*.log")) if (workdir / "logs").is_dir() else []:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def _group_members(pgid: int) -> list[str]:
    """The live processes (zombies aside) still in process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: just whether the group still exists
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [f"process group {pgid}"]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, split after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} {cmdline}")
    return members


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_demo(workdir: Path) -> tuple[str, float]:
    """Run the Quickstart's command in ``workdir`` as a new user would; returns its output and run time.

    Fails if it does not exit 0 within RUN_TIMEOUT, or leaves a process or a listening port behind.
    """
    command = [sys.executable, "-m", "services.cli", "dev", "--dir", str(workdir), "--exit-when-done",
               "--timeout", str(DEV_TIMEOUT)]
    started = time.monotonic()
    # Its own session, so that the command and everything it starts form one process group.
    # A free console port of its own: 8080 (the default) may be another demo's on a shared machine,
    # which would look like this run's console still listening after it exited.
    env = {**_new_user_env(), "CONSOLE_PORT": str(free_port())}
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                            start_new_session=True)
    pgid = proc.pid
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"`relance dev --exit-when-done` did not finish within {RUN_TIMEOUT:.0f}s (killed)\n"
                    f"{output}\n{_logs(workdir)}")
    finally:
        if proc.poll() is None:  # interrupted: leave nothing behind
            os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"`relance dev` exited with {proc.returncode}\n{output}\n{_logs(workdir)}"

    deadline = time.monotonic() + EXIT_GRACE
    while (left := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        os.killpg(pgid, signal.SIGKILL)
        pytest.fail("processes left running after `relance dev` exited:\n" + "\n".join(left) + f"\n{output}")
    ports = {name: int(m.group(1)) for line in output.splitlines() for name, pattern in PORTS.items()
             if (m := pattern.match(line))}
    assert set(ports) == set(PORTS), f"the header does not show every server's address\n{output}"
    still = [f"{name} on {port}" for name, port in ports.items() if _listening(port)]
    assert not still, f"still listening after `relance dev` exited: {still}\n{output}"
    return output, elapsed


def _states(summary: str) -> dict[str, int]:
    """``"delivered 4, read 11"`` → ``{"delivered": 4, "read": 11}`` (``"none"`` → ``{}``)."""
    if summary == "none":
        return {}
    return {state: int(n) for state, n in (part.rsplit(" ", 1) for part in summary.split(", "))}


def _last_progress(lines: list[str], until: int) -> re.Match[str]:
    progress = [m for line in lines[:until] if (m := PROGRESS.match(line))]
    assert progress, "no progress line before 'demo done'"
    return progress[-1]


def _french_date(iso: str) -> str:
    day = date.fromisoformat(iso)
    return f"{'1er' if day.day == 1 else day.day} {FR_MONTHS[day.month - 1]} {day.year}"


def _demo_due(reference: str) -> str:
    """An invoice's due date as the demo imported it today (moved back on a clock before the file's dates)."""
    with tempfile.TemporaryDirectory() as scratch:
        with demo_invoices(Path(scratch), date.today()).open(encoding="utf-8", newline="") as rows:
            due = next(row["due_date"] for row in csv.DictReader(rows) if row["invoice"] == reference)
    return _french_date(due)


def _check_outcomes(lines: list[str], output: str) -> None:
    """Each client's outcome line, then exactly what they were sent after their reply (the "    ↳ " lines)."""
    for name, reply in REPLIES.items():
        found = [n for n, line in enumerate(lines) if line.startswith(f"  {name}: ")]
        assert len(found) == 1, f"{name}: expected one outcome line, got {found}\n{output}"
        line = lines[found[0]]
        match = re.fullmatch(rf"  {re.escape(name)}: {reply.outcome}", line)
        assert match, f"{name}: {line!r}\n{output}"
        until = _french_date(match["until"]) if "until" in match.groupdict() else ""
        following = list(itertools.takewhile(lambda text: text.startswith("    ↳ "), lines[found[0] + 1:]))
        expected = [f"    ↳ {text.format(until=until, due_007=_demo_due('FA-2026-007'))}" for text in reply.sent_after]
        assert following == expected, f"{name}: sent after the reply {following}, expected {expected}\n{output}"


def _check_payment(lines: list[str], demo: Demo, output: str, *, simulator: bool) -> int:
    """The payer's outcome after "demo done": both invoices paid by the payment, the follow-up stopped as
    paid, one reminder (step 1) naming every invoice and nothing for a later step; with ``simulator``,
    the simulator's count for the payer agrees. Returns how many messages other than reminders the
    payer was sent (what a payment may send back)."""
    found = [n for n, line in enumerate(lines) if line.startswith(f"  {DEMO_PAYER}: ")]
    assert len(found) == 1, f"{DEMO_PAYER}: expected one outcome line, got {found}\n{output}"
    paid = ", ".join(f"{ref} paid (payment)" for ref in demo.paid)
    assert lines[found[0]] == f"  {DEMO_PAYER}: paid through Stripe → {paid}; follow-up stopped (paid)", output
    following = [line.removeprefix("    ↳ ") for line in
                 itertools.takewhile(lambda text: text.startswith("    ↳ "), lines[found[0] + 1:])]
    reminders = [line for line in following if line.startswith("reminder: ")]
    assert reminders == [f"reminder: step 1 naming {', '.join(demo.paid)}"], (
        f"{DEMO_PAYER}: one grouped reminder at step 1, and none after the payment: {following}\n{output}")
    counted = [line for line in following if line.startswith("the Twilio simulator received ")]
    others = len(following) - len(reminders) - len(counted)
    if simulator:
        to, named = mask_phone(demo.payer_phone), " and ".join(demo.paid)
        assert counted == [f"the Twilio simulator received {1 + others} message(s) for {to}, 1 of them naming {named}"
                           ], f"{DEMO_PAYER}: {following}\n{output}"
    else:
        assert not counted, output
    return others


def _payer_in_database(workdir: Path, demo: Demo) -> None:
    """The run's database, opened after it: the payment was applied, and no later step was ever drafted."""
    mongo = start_mongo(workdir / "mongo")
    client, store = open_repositories(mongo.url, "relance")
    try:
        contact = store.contacts.record_by_phone(demo.payer_phone)
        assert contact is not None
        for reference in demo.paid:
            invoice = store.invoices.get(reference)
            assert invoice is not None and invoice.contact_id == contact.id, reference
            assert (invoice.status.value, invoice.amount_due_cents) == ("paid", 0), invoice
            assert [(c.what, c.source.value) for c in invoice.history][-1] == ("mark_paid", "payment"), invoice.history
        steps = list(store.messages.collection.find({"contact_id": contact.id, "direction": "outbound",
                                                     "purpose": "step"}))
        assert [(m["step"], m["state"] in DELIVERED, sorted(m.get("invoices") or [])) for m in steps] == [
            (0, True, demo.paid)], f"{DEMO_PAYER}: one delivered reminder naming both invoices, nothing after: {steps}"
        assert all(ref in steps[0]["body"] for ref in demo.paid), "the grouped reminder's text names both invoices"
        followups = [(f.state, f.stop_reason) for f in store.followups.summaries_of_contact(contact.id)]
        assert followups == [("stopped", "paid")], followups
    finally:
        client.close()
        mongo.stop()


def _console_login(output: str) -> tuple[str, str]:
    """The demo's console log-in, as the header prints it."""
    found = [m for line in output.splitlines() if (m := CONSOLE_LOGIN.match(line))]
    assert len(found) == 1, f"the header does not show the console and its log-in once\n{output}"
    return found[0]["email"], found[0]["password"]


def _console_logs_in(workdir: Path, email: str, password: str) -> None:
    """The run's database, opened after it, with the console's pages over it: the printed log-in works."""
    from fastapi.testclient import TestClient

    from services.console import Console, create_app
    from shared.clock import SystemClock

    mongo = start_mongo(workdir / "mongo")
    client, store = open_repositories(mongo.url, "relance")
    try:
        with TestClient(create_app(Console(store, SystemClock())), follow_redirects=False) as web:
            form = web.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert form.status_code == 200 and token, form.text
            answer = web.post("/login", data={"email": email, "password": password, "csrf_token": token[1]})
            assert answer.status_code == 303 and "relance_session" in web.cookies, answer.text
            overview = web.get("/")
            assert overview.status_code == 200 and 'id="campaign-' in overview.text, overview.text
    finally:
        client.close()
        mongo.stop()


def test_quickstart_demo_runs_to_the_end(tmp_path: Path) -> None:
    demo = _demo()
    assert set(REPLIES) == set(DEMO_REPLIES), "the demo's scripted replies changed: update REPLIES"
    assert set(REPLIES) <= set(demo.contacts), "a scripted reply comes from no demo client"
    assert DEMO_PAYER in demo.contacts and DEMO_PAYER not in REPLIES and len(demo.paid) == 2, demo
    assert all(len(refs) == 1 for name, refs in demo.invoices.items() if name != DEMO_PAYER), demo.invoices
    expected = demo.expected_messages
    assert not (tmp_path / ".env").exists()

    output, first_time = run_demo(tmp_path)
    lines = output.splitlines()

    # On the embedded defaults: nothing configured, nothing outside this machine.
    assert any(re.match(r"^  twilio +simulator at http://127\.0\.0\.1:\d+ \(no TWILIO_ACCOUNT_SID set\)$", line)
               for line in lines), output
    assert any(re.match(r"^  drafter +offline templates \(no GEMINI_API_KEY set\)$", line) for line in lines), output
    assert f"demo: imported {len(demo.contacts)} contacts" in lines, output
    assert f"demo: imported {sum(len(refs) for refs in demo.invoices.values())} invoices" in lines, output
    assert any(re.match(rf"^demo: campaign '[\w-]+' \({demo.steps} steps\), {len(demo.contacts)} contacts enrolled$",
                        line) for line in lines), output
    assert NOT_EMPTY not in lines, output
    # The five clients answered, once each.
    for name, text in DEMO_REPLIES.items():
        assert lines.count(f"  ← {name}: {text}") == 1, f"{name}'s reply was not played once\n{output}"
    # The two-invoice client paid them through Stripe, once.
    assert lines.count(PAYMENT.format(to=mask_phone(demo.payer_phone), count=len(demo.paid))) == 1, output

    assert lines.count(DONE) == 1, output
    done = lines.index(DONE)
    # Every message the demo sent is final and was delivered (the last progress line counts them all).
    last = _last_progress(lines, done)
    followups, messages = _states(last["followups"]), _states(last["messages"])
    assert set(messages) <= DELIVERED, f"messages not all delivered: {last.group(0)}\n{output}"
    assert sum(followups.values()) == len(demo.contacts), output
    assert followups.get("paused", 0) == sum(1 for r in REPLIES.values() if "paused=1" in r.outcome), output

    after = lines[done + 1:]
    _check_outcomes(after, output)
    expected += _check_payment(after, demo, output, simulator=True)
    received = [int(m.group(1)) for line in after if (m := RECEIVED.match(line))]
    assert received == [expected], f"the simulator should have received {expected} messages\n{output}"
    assert sum(messages.values()) == expected, f"expected {expected} messages: {last.group(0)}\n{output}"
    listed = [m for line in after if (m := LISTED.match(line))]
    assert listed, f"no message listed after the simulator's count\n{output}"
    for m in listed:
        assert m["state"] in DELIVERED, f"listed message not delivered: {m.group(0)}\n{output}"
        assert m["kind"] in {"template", "freeform"}, m.group(0)
        assert "*" in m["to"], f"recipient not masked: {m.group(0)}"

    _payer_in_database(tmp_path, demo)
    # The console ran beside the stack (it answered before its line was printed; nothing listens
    # after the run, as run_demo checks), and its demo log-in opens the overview.
    login = _console_login(output)
    _console_logs_in(tmp_path, *login)

    # Again, on the same folder: the database is not empty, nothing is loaded or sent twice.
    again, second_time = run_demo(tmp_path)
    again_lines = again.splitlines()
    assert NOT_EMPTY in again_lines, again
    assert _console_login(again) == login, "the second run's console log-in is the first one's"
    assert not any(line.startswith("demo: ") for line in again_lines), f"the demo was loaded again\n{again}"
    assert not any(line.startswith("  ← ") for line in again_lines), f"the replies were played again\n{again}"
    assert not any(line.startswith("  € Stripe") for line in again_lines), f"the payment was made again\n{again}"
    assert again_lines.count(DONE) == 1, again
    again_done = again_lines.index(DONE)
    assert _last_progress(again_lines, again_done).group(0).split("] ", 1)[1] == last.group(0).split("] ", 1)[1], (
        f"the second run changed the follow-ups or messages\nfirst: {last.group(0)}\n{again}")
    _check_outcomes(again_lines[again_done + 1:], again)
    _check_payment(again_lines[again_done + 1:], demo, again, simulator=False)
    # A fresh simulator: it received nothing this time, and says so.
    assert not any(RECEIVED.match(line) for line in again_lines), again
    assert "the Twilio simulator received no message this run; a few of the database's messages:" in again_lines

    print(f"demo: first run {first_time:.1f}s ({expected} messages), second run {second_time:.1f}s")
