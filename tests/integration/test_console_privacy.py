"""The console's own log, at DEBUG, from the real ``relance console`` process: no phone number (in any of its
usual forms) and no message text, whatever the pages and the API were asked (tests/e2e/test_privacy.py checks
the other processes the same way)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from devtools.embedded import free_port
from shared.adapters.mongo import MongoRepositories
from shared.clock import SystemClock
from shared.domain.models import Contact, Language
from shared.usecases.api_keys import create_key
from shared.usecases.users import add_user
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration

MARIE, NEW = "+33612345678", "+33698765432"
FORMS = [MARIE, MARIE[1:], "0" + MARIE[3:], "%2B" + MARIE[1:], NEW, NEW[1:], "0" + NEW[3:]]
TEXTS = ["Pamplemousse bleu de Marie", "Artichaut violet pour Marie", "remise de 50 % pour Marie"]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


def test_the_consoles_log_holds_no_phone_number_and_no_message_text(
        store: MongoRepositories, mongo_uri: str, db_name: str, redis_url: str, tmp_path: Path) -> None:
    now = SystemClock().now()
    store.contacts.upsert(Contact(id="ct1", phone=MARIE, name="Marie", language=Language.FR), now)
    store.contacts.touch_inbound("ct1", now - timedelta(hours=1))
    add_user(store, "owner@example.com", "correct horse battery", now=now)
    key = create_key(store, "ops", now=now)
    port = free_port()
    env = {"MONGODB_URI": urlsplit(mongo_uri)._replace(path=f"/{db_name}").geturl(), "REDIS_URL": redis_url,
           "LOG_LEVEL": "DEBUG", "CONSOLE_PORT": str(port), "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    log = tmp_path / "console.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "console"], cwd=Path.cwd(), env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 90, "the console to answer /healthz")
        with httpx.Client(base_url=base, timeout=30) as web:
            token = _csrf(web.get("/login").text)
            assert web.post("/login", data={"email": "owner@example.com", "password": "correct horse battery",
                                            "csrf_token": token}).status_code == 303
            page = web.get("/conversations/%2B33612345678").text
            sent = web.post("/conversations/%2B33612345678/reply", data={
                "csrf_token": _csrf(page), "form_token": "f1", "body": TEXTS[0]})
            assert sent.status_code == 303
            refused = web.post("/conversations/%2B33612345678/reply", data={
                "csrf_token": _csrf(page), "form_token": "f2", "body": TEXTS[2]})  # the facts check refuses it
            assert refused.status_code == 422
            assert web.get("/clients", params={"q": "0612345678"}).status_code == 200
            assert web.get("/conversations/0698765432").status_code == 404
        api = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{base}/api/v1/conversations/{MARIE}/reply", headers=api,
                          json={"body": TEXTS[1]}, timeout=30).status_code == 200
        assert httpx.post(f"{base}/api/v1/contacts", headers=api, timeout=30,
                          json={"name": "Nouvelle", "phone": NEW, "language": "fr"}).status_code in (200, 201)
        assert httpx.post(f"{base}/api/v1/contacts", headers=api, timeout=30,
                          json={"name": "Nouvelle", "phone": NEW, "language": "fr"}).status_code >= 400
        assert httpx.post(f"{base}/api/v1/conversations/{NEW[:-1]}9/reply", headers=api, timeout=30,
                          json={"body": TEXTS[1]}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert "manual message=" in output  # the log is there, at DEBUG
    leaked = [form for form in FORMS + TEXTS + [key] if form in output]
    assert leaked == [], output[-3000:]
