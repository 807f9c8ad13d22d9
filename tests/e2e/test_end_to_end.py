"""End to end, with the real processes: webhook, scheduler, dramatiq workers, simulator, fake Gemini.

50 contacts, a two-step campaign with short delays, a send window of 09:00–18:00 in each
contact's timezone. Some contacts are in a timezone where the window is closed right now, some
opt out by sending STOP before the campaign starts, some wrote to us (open 24-hour window:
freeform drafts through Gemini) and the rest get the approved template. The test checks what
the simulator received, message by message, and the states left in MongoDB.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from devtools.devstack import DEV_ACCOUNT_SID, Stack
from devtools.embedded import ServerProcess, free_port, wait_for_port
from shared.adapters.mongo import connect, mongo_repositories
from shared.domain.models import Language
from shared.language.factcheck import check_draft
from shared.ports import DraftRequest
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e

TOKEN = "e2e0123456789abcdef0123456789abc"
TEMPLATE_SID = "HX" + "c0ffee00" * 4
N_CLOSED, N_STOP, N_JOINED, N_TEMPLATE = 10, 5, 18, 17
OWNER = "+33700000009"  # hand-overs are announced to it (none in the campaign test)


def _zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone whose local time is now ``hour`` o'clock."""
    utc_hour = datetime.now(UTC).hour
    offset = (hour - utc_hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")


def _phone(i: int) -> str:
    return f"+3361234{i:04d}"


@pytest.fixture(scope="module")
def e2e_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def stack(e2e_dirs: Path, redis_server: ServerProcess, mongo_uri: str) -> Iterator[dict[str, Any]]:
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    db_name = f"e2e_{int(time.time())}"
    base_uri = mongo_uri.rsplit("/", 1)[0] if mongo_uri.count("/") >= 3 else mongo_uri
    uri = f"{base_uri}/{db_name}" + (f"?{mongo_uri.split('?', 1)[1]}" if "?" in mongo_uri else "")
    webhook_port, sim_port, gemini_port = free_port(), free_port(), free_port()
    env = {**dict(__import__("os").environ),
           "MONGODB_URI": uri, "REDIS_URL": redis_server.url, "BACKEND_PORT": str(webhook_port),
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{webhook_port}", "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
           "GEMINI_API_KEY": "fake-gemini-key", "GEMINI_API_BASE_URL": f"http://127.0.0.1:{gemini_port}",
           "GEMINI_TIMEOUT_SECONDS": "10", "SCHEDULER_INTERVAL_SECONDS": "0.5", "STALE_AFTER_SECONDS": "60",
           "BUSINESS_NAME": "Atelier Dupont", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
           "MIN_GAP_BETWEEN_MESSAGES": "0s", "DAILY_CAP_PER_CONTACT": "0", "HOLIDAYS_COUNTRY": "",
           "OWNER_WHATSAPP_NUMBER": OWNER}
    procs = Stack(e2e_dirs)
    try:
        procs.spawn("fake_gemini", ["--port", str(gemini_port), "--mode", "good"], env,
                    module="tests.support.fake_gemini")
        procs.spawn("simulator", ["simulator", "--port", str(sim_port)], env)
        procs.spawn("webhook", ["webhook", "--host", "127.0.0.1"], env)
        procs.spawn("drafting", ["worker", "drafting", "--threads", "4"], env)
        procs.spawn("sending", ["worker", "sending", "--threads", "4"], env)
        procs.spawn("replies", ["worker", "replies", "--threads", "2"], env)
        procs.spawn("scheduler", ["scheduler"], env)
        for port in (gemini_port, sim_port, webhook_port):
            wait_for_port(port, timeout=60)
        client = connect(uri)
        yield {"env": env, "sim": f"http://127.0.0.1:{sim_port}", "gemini": f"http://127.0.0.1:{gemini_port}",
               "store": mongo_repositories(client[db_name]), "dir": e2e_dirs, "procs": procs}
        client.drop_database(db_name)
        client.close()
    finally:
        procs.stop()


def relance(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _wait(predicate: Any, timeout: float, what: str, procs: Stack) -> None:
    wait_until(predicate, timeout, what, procs.check_alive)


def test_campaign_end_to_end(stack: dict[str, Any]) -> None:
    env, store, procs = stack["env"], stack["store"], stack["procs"]
    open_zone, closed_zone = _zone_at_local_hour(13), _zone_at_local_hour(2)
    groups: dict[str, list[int]] = {"closed": list(range(0, N_CLOSED))}
    groups["stop"] = list(range(N_CLOSED, N_CLOSED + N_STOP))
    groups["joined"] = list(range(N_CLOSED + N_STOP, N_CLOSED + N_STOP + N_JOINED))
    groups["template"] = list(range(N_CLOSED + N_STOP + N_JOINED, 50))
    rows = []
    for i in range(50):
        closed = i in groups["closed"]
        rows.append({"name": f"Client {i}", "phone": _phone(i), "language": "fr" if i % 3 else "en",
                     "timezone": closed_zone if closed else open_zone, "invoice_number": f"FA-2026-{i:03d}",
                     "amount": f"{100 + i * 7}.50", "currency": "EUR", "due_date": "2026-11-02",
                     "payment_link": f"https://pay.example.com/i/{i:03d}", "tags": "e2e"})
    contacts_file = stack["dir"] / "contacts.csv"
    with contacts_file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = relance(env, "contacts", "import", str(contacts_file))
    assert imported.returncode == 0, imported.stderr
    assert "50 new" in imported.stdout

    # Clients write first: some say STOP, some just write (their 24-hour window opens).
    for i in groups["stop"]:
        httpx.post(f"{stack['sim']}/_sim/inbound", json={"from": _phone(i), "body": "STOP"}, timeout=10)
    for i in groups["joined"]:
        httpx.post(f"{stack['sim']}/_sim/inbound", json={"from": _phone(i), "body": "Bonjour"}, timeout=10)
    _wait(lambda: store.events.collection.count_documents({"kind": "inbound", "state": "processed"})
          == N_STOP + N_JOINED,
          60, "inbound messages processed", procs)

    campaign = {
        "id": "e2e", "name": "Relance factures",
        "send_window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "18:00"},
        "enrol": {"tags": ["e2e"]},
        "steps": [
            {"delay": "1s", "tone": "courteous", "template": {
                "content_sid": TEMPLATE_SID, "variables": {"1": "name", "2": "invoice_number", "3": "amount"},
                "preview": {"fr": "Bonjour {{1}}, la facture {{2}} de {{3}} EUR reste à régler.",
                            "en": "Hello {{1}}, invoice {{2}} for {{3}} EUR is still due."}}},
            {"delay": "2s", "anchor": "previous", "tone": "firm", "template": {
                "content_sid": TEMPLATE_SID, "variables": {"1": "name", "2": "invoice_number", "3": "amount"}}},
        ],
    }
    campaign_file = stack["dir"] / "campaign.json"
    campaign_file.write_text(json.dumps(campaign))
    created = relance(env, "campaigns", "create", str(campaign_file))
    assert created.returncode == 0, created.stderr
    enrolled = relance(env, "campaigns", "enrol", "e2e")
    assert enrolled.returncode == 0, enrolled.stderr

    reachable = groups["joined"] + groups["template"]
    _wait(lambda: store.followups.collection.count_documents({"state": "completed"}) == len(reachable), 180,
          "follow-ups completed", procs)
    _wait(lambda: store.messages.collection.count_documents(
        {"direction": "outbound", "state": {"$in": ["delivered", "read"]}}) == 2 * len(reachable), 60,
          "delivery callbacks", procs)

    received = httpx.get(f"{stack['sim']}/_sim/messages", timeout=10).json()
    by_phone = Counter(m["to"].removeprefix("whatsapp:") for m in received)
    # Exactly two messages to every reachable contact, nothing to anyone else.
    assert len(received) == 2 * len(reachable)
    assert by_phone == Counter({_phone(i): 2 for i in reachable})
    facts_by_phone = {r["phone"]: r for r in rows}
    joined_phones = {_phone(i) for i in groups["joined"]}
    for message in received:
        phone = message["to"].removeprefix("whatsapp:")
        row = facts_by_phone[phone]
        local = datetime.fromisoformat(message["created_at"]).astimezone(ZoneInfo(row["timezone"]))
        assert 9 <= local.hour < 18, f"sent at {local.time()} local time, outside the window"
        if phone in joined_phones:
            assert message["body"] and not message.get("content_sid")
            facts = {k: row[k] for k in ("invoice_number", "amount", "currency", "due_date", "payment_link")}
            request = DraftRequest(contact_name=row["name"], language=Language(row["language"]), facts=facts,
                                   step_index=0, step_count=2, tone="courteous", business_name="Atelier Dupont",
                                   campaign_name="Relance factures")
            assert check_draft(message["body"], request) == [], message["body"]
        else:
            assert message["content_sid"] == TEMPLATE_SID
            variables = message["content_variables"]
            if isinstance(variables, str):
                variables = json.loads(variables)
            assert variables == {"1": row["name"], "2": row["invoice_number"], "3": row["amount"]}

    # MongoDB: every sent message delivered or read; the closed-window contacts wait for tomorrow;
    # the opted-out contacts were never enrolled or were stopped.
    outbound = list(store.messages.collection.find({"direction": "outbound"}))
    assert len(outbound) == 2 * len(reachable)
    assert {m["state"] for m in outbound} <= {"delivered", "read"}
    assert {m["draft_source"] for m in outbound if m["kind"] == "freeform"} == {"gemini"}
    for i in groups["closed"]:
        followup = store.followups.collection.find_one({"contact_id": store.contacts.by_phone(_phone(i)).id})
        assert followup is not None and followup["state"] == "scheduled"
        assert followup["next_run_at"] > datetime.now(UTC)
    for i in groups["stop"]:
        contact = store.contacts.by_phone(_phone(i))
        assert contact is not None and contact.opted_out
        assert store.followups.collection.count_documents({"contact_id": contact.id, "state": {"$ne": "stopped"}}) == 0
    gemini_calls = httpx.get(f"{stack['gemini']}/_fake/requests", timeout=10).json()
    assert len(gemini_calls) >= 2 * N_JOINED


FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]


def _plain(text: str) -> str:
    """A body with its no-break and narrow no-break spaces as plain spaces."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def test_replies_end_to_end(stack: dict[str, Any]) -> None:
    """Clients answer the first reminder: pay, promise a date, ask, dispute, STOP.

    What each client received after their reply is checked message by message, in the order the
    simulator got them (its list is in creation order), each message identified through its SID.
    """
    env, store, procs, sim = stack["env"], stack["store"], stack["procs"], stack["sim"]
    open_zone = _zone_at_local_hour(13)
    people = {"paid": 60, "promise": 61, "question": 62, "dispute": 63, "stop": 64}
    rows = [{"name": f"Client {kind}", "phone": _phone(i), "language": "fr", "timezone": open_zone,
             "invoice_number": f"FA-2026-{i:03d}", "amount": "480.00", "currency": "EUR",
             "due_date": "2026-11-02", "payment_link": f"https://pay.example.com/i/{i:03d}", "tags": "replies"}
            for kind, i in people.items()]
    contacts_file = stack["dir"] / "replies.csv"
    with contacts_file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert relance(env, "contacts", "import", str(contacts_file)).returncode == 0
    for i in people.values():  # every client has written: freeform follow-ups
        httpx.post(f"{sim}/_sim/inbound", json={"from": _phone(i), "body": "Bonjour"}, timeout=10)
    _wait(lambda: store.events.collection.count_documents({"kind": "inbound", "state": "received"}) == 0, 60,
          "greetings processed", procs)
    campaign = {"id": "replies", "name": "Relance", "enrol": {"tags": ["replies"]},
                "send_window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                "start": "09:00", "end": "18:00"},
                "steps": [{"delay": "1s"}, {"delay": "6s", "anchor": "previous", "tone": "firm"},
                          {"delay": "6s", "anchor": "previous", "tone": "firm"}]}
    campaign_file = stack["dir"] / "replies.json"
    campaign_file.write_text(json.dumps(campaign))
    assert relance(env, "campaigns", "create", str(campaign_file)).returncode == 0
    assert relance(env, "campaigns", "enrol", "replies").returncode == 0
    followup_ids = {kind: f"replies:{store.contacts.by_phone(_phone(i)).id}" for kind, i in people.items()}
    _wait(lambda: store.messages.collection.count_documents({"campaign_id": "replies", "step": 0,
                                                  "state": {"$in": ["delivered", "read"]}}) == 5,
          60, "first reminders delivered", procs)

    local = ZoneInfo(open_zone)  # the promised date is the client's, in the client's zone
    promised = (datetime.now(local) + timedelta(days=10)).date()
    replies = {"paid": "C'est réglé, virement fait hier 👍",
               "promise": f"Je vous paie le {promised.strftime('%d/%m/%Y')}, promis",
               "question": "Bonjour, quel est le montant exact svp ?",
               "dispute": "Je conteste cette facture, la prestation n'a jamais été faite",
               "stop": "STOP"}
    for kind, text in replies.items():
        response = httpx.post(f"{sim}/_sim/inbound", json={"from": _phone(people[kind]), "body": text}, timeout=10)
        assert response.status_code == 200
    _wait(lambda: store.events.collection.count_documents({"kind": "inbound", "state": "received"}) == 0, 60,
          "replies processed", procs)
    # The paid client writes again while the owner checks: recorded, nothing sent, no second alert.
    paid_contact = store.contacts.by_phone(_phone(people["paid"])).id
    _wait(lambda: store.messages.collection.count_documents({"contact_id": paid_contact, "purpose": "reply",
                                                  "state": {"$in": ["delivered", "read"]}}) == 1,
          60, "the thank-you delivered", procs)
    receipt = "Voici le justificatif du virement"
    httpx.post(f"{sim}/_sim/inbound", json={"from": _phone(people["paid"]), "body": receipt}, timeout=10)
    # Let the question's cadence run to its end (two more steps, 6 s apart).
    _wait(lambda: store.followups.collection.find_one({"_id": followup_ids["question"]})["state"] == "completed", 90,
          "the question's follow-up to complete", procs)
    _wait(lambda: store.events.collection.count_documents({"kind": "inbound", "state": "received"}) == 0, 60,
          "the receipt processed", procs)
    _wait(lambda: store.messages.collection.count_documents(
        {"direction": "outbound", "state": {"$nin": ["delivered", "read"]}}) == 0, 60, "every message delivered", procs)

    def followup(kind: str) -> dict[str, Any]:
        doc = store.followups.collection.find_one({"_id": followup_ids[kind]})
        assert doc is not None
        return doc

    # PAID_CLAIM_ACTION=pause_and_verify (the default): paused until the owner confirms.
    assert (followup("paid")["state"], followup("paid")["pause_reason"], followup("paid")["needs_human"]) == (
        "paused", "paid_claimed", True)
    assert followup("promise")["state"] == "paused"
    assert followup("promise")["paused_until"].astimezone(local).date() == promised + timedelta(days=1)
    assert followup("dispute")["state"] == "stopped" and followup("dispute")["needs_human"] is True
    assert followup("stop")["state"] == "stopped" and followup("stop")["stop_reason"] == "opt_out"

    everything = httpx.get(f"{sim}/_sim/messages", params={"direction": "all"}, timeout=10).json()

    def conversation(phone: str) -> list[dict[str, Any]]:
        """What the simulator saw to and from ``phone``, in order."""
        return [m for m in everything if phone in (m["to"].removeprefix("whatsapp:"),
                                                   m["from"].removeprefix("whatsapp:"))]

    def ours(messages: list[dict[str, Any]]) -> list[str]:
        """Our ids of the outbound messages among ``messages`` (what we stored is what went out)."""
        ids = []
        for m in messages:
            if m["direction"] == "inbound":
                continue
            doc = store.messages.collection.find_one({"twilio_sid": m["sid"]})
            assert doc is not None, m
            assert _plain(doc["body"]) == _plain(m["body"]), m
            ids.append(doc["_id"])
        return ids

    def around(kind: str, text: str) -> tuple[str, list[str], list[str]]:
        """The client's reply ``text``: its SID, and what we sent them before it and after it."""
        messages = conversation(_phone(people[kind]))
        (at,) = [n for n, m in enumerate(messages) if m["direction"] == "inbound" and m["body"] == text]
        return messages[at]["sid"], ours(messages[:at]), ours(messages[at + 1:])

    def body(message_id: str) -> str:
        doc = store.messages.collection.find_one({"_id": message_id})
        assert doc is not None
        return _plain(doc["body"])

    sids = {}
    for kind, text in replies.items():  # before replying: the first reminder, nothing else
        sids[kind], before, _ = around(kind, text)
        assert before == [f"{followup_ids[kind]}:0"], (kind, before)

    assert around("paid", replies["paid"])[2] == [f"reply:{sids['paid']}"]  # the thank-you, and nothing after it
    assert body(f"reply:{sids['paid']}") == (
        "Merci Client paid, nous avons bien noté votre règlement. Nous vérifions sa bonne réception ; d'ici là, "
        "vous ne recevrez pas de relance à ce sujet.\nAtelier Dupont")
    receipt_sid, _, receipt_after = around("paid", receipt)
    assert receipt_after == []
    assert store.messages.collection.find_one({"_id": f"in:{receipt_sid}"})["outcome"] == "recorded (hand-over open)"

    day = f"{'1er' if promised.day == 1 else promised.day} {FR_MONTHS[promised.month - 1]} {promised.year}"
    assert around("promise", replies["promise"])[2] == [f"reply:{sids['promise']}"]  # the acknowledgement only
    assert body(f"reply:{sids['promise']}") == (
        f"Merci Client promise, c'est noté : nous attendons votre règlement pour le {day}.\nAtelier Dupont")

    # The answer and the two remaining reminders (in whichever order the clock gave them).
    question = followup_ids["question"]
    assert sorted(around("question", replies["question"])[2]) == sorted(
        [f"reply:{sids['question']}", f"{question}:1", f"{question}:2"])
    assert body(f"reply:{sids['question']}") == "Le montant de la facture FA-2026-062 est de 480,00 €.\nAtelier Dupont"

    assert around("dispute", replies["dispute"])[2] == []
    assert around("stop", replies["stop"])[2] == [], "a message reached a client after STOP"

    # The owner: one alert per hand-over (the claimed payment, the dispute), none for the receipt.
    alerts = ours([m for m in everything if m["to"].removeprefix("whatsapp:") == OWNER])
    assert sorted(alerts) == sorted([f"alert:{sids['paid']}", f"alert:{sids['dispute']}"])
    assert "(dit avoir payé : vérifiez le paiement)" in body(f"alert:{sids['paid']}")
    assert f"relance handled {_phone(people['paid'])} --paid" in body(f"alert:{sids['paid']}")
    assert "(contestation de la facture)" in body(f"alert:{sids['dispute']}")
    # Nothing else went out in this test: 5 first reminders, 3 replies, 2 reminders, 2 alerts.
    phones = {_phone(i) for i in people.values()} | {OWNER}
    assert len([m for m in everything if m["direction"] == "outbound-api"
                and m["to"].removeprefix("whatsapp:") in phones]) == 12

    # The owner confirms the payment with one command.
    confirmed = relance(env, "handled", _phone(people["paid"]), "--paid")
    assert confirmed.returncode == 0, confirmed.stderr
    assert (followup("paid")["state"], followup("paid")["stop_reason"], followup("paid")["needs_human"]) == (
        "stopped", "paid", False)
