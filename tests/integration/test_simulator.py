"""The Twilio simulator over real HTTP: Twilio's shapes, errors, signed callbacks, controls."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest

from devtools.simulator import create_app
from tests.support.servers import WebhookRecorder, serve_asgi, serve_recorder

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "simulator-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"
TEMPLATE = "HX" + "a" * 32
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    """A server recording signed posts, shared by the module's tests."""
    with serve_recorder(AUTH_TOKEN) as rec:
        yield rec


@pytest.fixture(scope="module")
def sim_url(recorder: WebhookRecorder) -> Iterator[str]:
    """The simulator, whose default webhook is the recorder."""
    app = create_app(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        webhook_base_url=recorder.base_url,
        callback_delay=0.01,
    )
    with serve_asgi(app) as url:
        yield url


@pytest.fixture
def http(sim_url: str, recorder: WebhookRecorder) -> Iterator[httpx.Client]:
    """An authenticated client on a freshly reset simulator."""
    with httpx.Client(base_url=sim_url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5) as client:
        client.post("/_sim/reset").raise_for_status()
        recorder.clear()
        yield client


def _create(http: httpx.Client, recorder: WebhookRecorder, **form: str) -> httpx.Response:
    data = {
        "To": f"whatsapp:{CLIENT}",
        "From": SENDER,
        "Body": "Bonjour",
        "StatusCallback": f"{recorder.base_url}/whatsapp/status",
    }
    data.update(form)
    return http.post(MESSAGES, data={k: v for k, v in data.items() if v != "-"})


def test_create_answers_twilio_message_resource(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    answer = _create(http, recorder)
    assert answer.status_code == 201
    msg = answer.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", msg["sid"])
    assert msg["account_sid"] == ACCOUNT_SID
    assert msg["status"] == "queued"
    assert msg["direction"] == "outbound-api"
    assert msg["api_version"] == "2010-04-01"
    assert (msg["from"], msg["to"], msg["body"]) == (SENDER, f"whatsapp:{CLIENT}", "Bonjour")
    assert msg["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{msg['sid']}.json"
    assert msg["num_segments"] == "1" and msg["num_media"] == "0"
    assert msg["error_code"] is None and msg["error_message"] is None and msg["price"] is None
    assert msg["date_sent"] is None
    assert parsedate_to_datetime(msg["date_created"]).utcoffset() is not None
    assert msg["date_created"].endswith("+0000")
    assert set(msg["subresource_uris"]) == {"media", "feedback"}


def test_wrong_credentials_get_20003(http: httpx.Client, sim_url: str) -> None:
    answer = httpx.post(sim_url + MESSAGES, auth=(ACCOUNT_SID, "nope"), data={"To": "x"})
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert httpx.get(sim_url + MESSAGES).json()["code"] == 20003


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "+33612345678"}, 21211),
        ({"To": "whatsapp:0612345678"}, 21211),
        ({"To": "-"}, 21604),
        ({"From": "+14155238886"}, 63007),
        ({"Body": "-"}, 21619),
        ({"Body": "-", "ContentSid": "HX123"}, 21655),
        ({"Body": "-", "ContentSid": TEMPLATE, "ContentVariables": "{not json"}, 21656),
        ({"Body": "x" * 1601}, 21617),
    ],
)
def test_invalid_creates_get_twilio_errors(
    http: httpx.Client, recorder: WebhookRecorder, form: dict[str, str], code: int
) -> None:
    answer = _create(http, recorder, **form)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == code and body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert http.get("/_sim/messages").json() == []


def test_fetch_and_unknown_fetch(http: httpx.Client, recorder: WebhookRecorder) -> None:
    sid = _create(http, recorder).json()["sid"]
    found = http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")
    assert found.status_code == 200 and found.json()["sid"] == sid
    missing = http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'0' * 32}.json")
    assert missing.status_code == 404
    assert missing.json()["code"] == 20404 and missing.json()["status"] == 404


def test_status_callbacks_are_signed_and_ordered(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    sid = _create(http, recorder).json()["sid"]
    got = recorder.wait_for(3, sid=sid)
    assert [r.params["MessageStatus"] for r in got] == ["sent", "delivered", "read"]
    assert all(r.signature_valid for r in got)
    assert all(r.path == "/whatsapp/status" for r in got)
    first = got[0].params
    assert first["SmsSid"] == sid and first["SmsStatus"] == "sent"
    assert first["AccountSid"] == ACCOUNT_SID and first["ApiVersion"] == "2010-04-01"
    assert first["ChannelPrefix"] == "whatsapp"
    assert first["To"] == f"whatsapp:{CLIENT}" and first["From"] == SENDER
    assert "ErrorCode" not in first
    assert got[0].headers.get("i-twilio-idempotency-token")
    fetched = http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json").json()
    assert fetched["status"] == "read" and fetched["date_sent"] is not None
    view = http.get("/_sim/messages").json()[0]
    assert view["statuses"] == ["sent", "delivered", "read"]
    assert [c["http_status"] for c in view["callbacks"]] == [200, 200, 200]


def test_read_receipts_can_be_turned_off(http: httpx.Client, recorder: WebhookRecorder) -> None:
    http.post("/_sim/config", json={"send_read": False}).raise_for_status()
    sid = _create(http, recorder).json()["sid"]
    recorder.wait_for(2, sid=sid)
    _wait_status(http, sid, "delivered")
    assert [r.params["MessageStatus"] for r in recorder.items(sid=sid)] == ["sent", "delivered"]


def test_fail_delivery_ends_failed_with_error_code(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    http.post("/_sim/fail_delivery", json={"to": CLIENT, "code": 63024}).raise_for_status()
    sid = _create(http, recorder).json()["sid"]
    got = recorder.wait_for(2, sid=sid)
    assert [r.params["MessageStatus"] for r in got] == ["sent", "failed"]
    assert got[1].params["ErrorCode"] == "63024" and got[1].signature_valid
    fetched = http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json").json()
    assert fetched["status"] == "failed" and fetched["error_code"] == 63024


def test_failed_callback_deliveries_are_retried(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    recorder.fail_next["/whatsapp/status"] = 1
    sid = _create(http, recorder).json()["sid"]
    got = recorder.wait_for(3, sid=sid)
    assert [r.params["MessageStatus"] for r in got] == ["sent", "delivered", "read"]
    view = http.get("/_sim/messages").json()[0]
    assert view["callbacks"][0]["attempts"] == 2


def test_forced_failures_are_counted_and_targeted(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    http.post("/_sim/fail", json={"code": 63016, "count": 1, "to": CLIENT}).raise_for_status()
    other = _create(http, recorder, To="whatsapp:+33700000000")
    assert other.status_code == 201
    failed = _create(http, recorder)
    assert failed.status_code == 400 and failed.json()["code"] == 63016
    assert _create(http, recorder).status_code == 201
    http.post("/_sim/fail", json={"status": 503}).raise_for_status()
    outage = _create(http, recorder)
    assert outage.status_code == 503 and outage.json()["code"] == 20503
    assert http.post("/_sim/fail", json={}).status_code == 400


def test_list_filters_and_pages(http: httpx.Client, recorder: WebhookRecorder) -> None:
    sids = [_create(http, recorder).json()["sid"] for _ in range(3)]
    _create(http, recorder, To="whatsapp:+33700000000")
    page = http.get(MESSAGES, params={"To": f"whatsapp:{CLIENT}", "PageSize": 2}).json()
    assert page["page"] == 0 and page["page_size"] == 2 and page["start"] == 0
    assert [m["sid"] for m in page["messages"]] == sids[::-1][:2]
    assert page["next_page_uri"] and page["previous_page_uri"] is None
    second = http.get(page["next_page_uri"]).json()
    assert [m["sid"] for m in second["messages"]] == [sids[0]]
    assert second["next_page_uri"] is None
    future = http.get(MESSAGES, params={"DateSent>": "2999-01-01T00:00:00Z"}).json()
    assert future["messages"] == []
    for sid in sids:
        _wait_status(http, sid, "read")  # sent: they have a send date now
    today = http.get(MESSAGES, params={"DateSent>": "2000-01-01"}).json()
    assert len(today["messages"]) == 4
    assert http.get(MESSAGES, params={"DateSent>": "yesterday"}).status_code == 400


def test_a_queued_message_has_no_send_date_and_escapes_date_filters(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    """As at Twilio: DateSent filters compare the send time, which a queued message lacks."""
    answer = http.post("/_sim/hold", json={"to": CLIENT})
    assert answer.json() == {"ok": True, "to": CLIENT, "count": None}
    held = _create(http, recorder).json()["sid"]
    free = _create(http, recorder, To="whatsapp:+33700000000").json()["sid"]
    _wait_status(http, free, "read")
    time.sleep(0.1)  # callbacks would have come by now
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{held}.json"
    assert http.get(uri).json()["status"] == "queued" and http.get(uri).json()["date_sent"] is None
    assert recorder.items(sid=held) == []
    dated = http.get(MESSAGES, params={"DateSent>": "2000-01-01"}).json()["messages"]
    assert [m["sid"] for m in dated] == [free]
    undated = http.get(MESSAGES, params={"To": f"whatsapp:{CLIENT}"}).json()["messages"]
    assert [m["sid"] for m in undated] == [held]
    assert http.get("/_sim/messages", params={"to": CLIENT}).json()[0]["held"] is True
    assert http.post("/_sim/release", json={"to": CLIENT}).json() == {"ok": True, "released": 1}
    _wait_status(http, held, "read")
    assert [r.params["MessageStatus"] for r in recorder.wait_for(3, sid=held)] == ["sent", "delivered", "read"]
    assert _create(http, recorder).status_code == 201  # no longer held
    assert http.post("/_sim/hold", json={"to": "0612"}).status_code == 400


def test_a_lost_answer_after_creation_can_look_like_a_gateway_error(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    http.post("/_sim/fail", json={"status": 502, "created": True, "gateway": True}).raise_for_status()
    answer = _create(http, recorder)
    assert answer.status_code == 502 and answer.headers["content-type"].startswith("text/html")
    assert "Bad Gateway" in answer.text
    (created,) = http.get("/_sim/messages").json()  # Twilio has it all the same
    assert created["to"] == f"whatsapp:{CLIENT}" and created["body"] == "Bonjour"


def test_a_template_message_shows_its_rendered_body(http: httpx.Client, recorder: WebhookRecorder) -> None:
    variables = '{"2": "FA-2026-001", "1": "Marie", "10": "x"}'
    msg = _create(http, recorder, Body="-", ContentSid=TEMPLATE, ContentVariables=variables).json()
    assert msg["body"] == "Marie\nFA-2026-001\nx"  # in variable order, as the template would place them
    (seen,) = http.get("/_sim/messages").json()
    assert seen["body"] == "" and seen["rendered_body"] == msg["body"]


def test_inbound_messages_are_listed_and_a_5xx_answer_is_not_retried(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    recorder.fail_next["/whatsapp/webhook"] = 1  # the webhook answers 500 once
    answer = http.post("/_sim/inbound", json={"from": CLIENT, "body": "STOP"}).json()
    assert answer["status_code"] == 500
    time.sleep(0.3)
    assert recorder.items(path="/whatsapp/webhook") == []  # never posted again, as at Twilio
    listed = http.get(MESSAGES, params={"To": SENDER, "From": f"whatsapp:{CLIENT}",
                                        "DateSent>": "2000-01-01"}).json()["messages"]
    (message,) = listed
    assert (message["sid"], message["direction"], message["status"]) == (answer["sid"], "inbound", "received")
    assert (message["from"], message["to"], message["body"]) == (f"whatsapp:{CLIENT}", SENDER, "STOP")
    assert message["date_sent"] is not None
    assert http.get(MESSAGES, params={"To": SENDER, "DateSent>": "2999-01-01"}).json()["messages"] == []
    assert http.get(MESSAGES, params={"To": SENDER, "From": "whatsapp:+33700000000"}).json()["messages"] == []


def test_inbound_posts_a_signed_whatsapp_message(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    answer = http.post(
        "/_sim/inbound", json={"from": CLIENT, "body": "STOP", "profile_name": "Marie"}
    )
    assert answer.status_code == 200
    assert answer.json()["status_code"] == 200
    (got,) = recorder.wait_for(1, path="/whatsapp/webhook")
    assert got.signature_valid
    params = got.params
    assert re.fullmatch(r"SM[0-9a-f]{32}", params["MessageSid"])
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"]
    assert params["From"] == f"whatsapp:{CLIENT}" and params["To"] == SENDER
    assert params["Body"] == "STOP" and params["ProfileName"] == "Marie"
    assert params["WaId"] == CLIENT[1:] and params["NumMedia"] == "0"
    assert params["SmsStatus"] == "received" and params["AccountSid"] == ACCOUNT_SID
    assert params["ApiVersion"] == "2010-04-01"
    assert http.get("/_sim/messages").json() == []
    (inbound,) = http.get("/_sim/messages", params={"direction": "inbound"}).json()
    assert inbound["direction"] == "inbound" and inbound["sid"] == params["MessageSid"]


def test_inbound_to_explicit_url_with_extra_fields(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    url = f"{recorder.base_url}/elsewhere?x=1"
    answer = http.post(
        "/_sim/inbound",
        json={"from": CLIENT, "body": "Oui", "webhook_url": url, "ButtonPayload": "yes"},
    )
    assert answer.json()["status_code"] == 200
    (got,) = recorder.wait_for(1, path="/elsewhere")
    assert got.signature_valid and got.params["ButtonPayload"] == "yes"
    assert http.post("/_sim/inbound", json={"body": "no sender"}).status_code == 400


def _wait_status(http: httpx.Client, sid: str, status: str) -> None:
    deadline = time.monotonic() + 5
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    while http.get(uri).json()["status"] != status:
        assert time.monotonic() < deadline, f"{sid} never reached {status}"
        time.sleep(0.01)


def test_health_counts_messages_whose_callbacks_are_still_to_come(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    assert http.get("/_sim/health").json()["pending_callbacks"] == 0
    http.post("/_sim/config", json={"callback_delay": 1.0}).raise_for_status()  # 3 callbacks: 3 s
    sid = _create(http, recorder).json()["sid"]
    assert http.get("/_sim/health").json()["pending_callbacks"] == 1
    assert len(recorder.wait_for(3, sid=sid, timeout=15)) == 3
    deadline = time.monotonic() + 5
    while http.get("/_sim/health").json()["pending_callbacks"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert http.get("/_sim/health").json()["pending_callbacks"] == 0


def test_connection_overrides_retry_failed_connections_never_an_answer(
    http: httpx.Client, recorder: WebhookRecorder
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/whatsapp/webhook"
    plain = http.post("/_sim/inbound", json={"from": CLIENT, "body": "a", "webhook_url": dead})
    assert plain.status_code == 502 and plain.json()["attempts"] == 1  # no overrides: never again
    retried = http.post("/_sim/inbound", json={"from": CLIENT, "body": "b", "webhook_url": f"{dead}#rc=2&rp=ct"})
    assert retried.status_code == 502 and retried.json()["attempts"] == 3
    other = http.post("/_sim/inbound", json={"from": CLIENT, "body": "c", "webhook_url": f"{dead}#rc=2&rp=rt"})
    assert other.json()["attempts"] == 1  # a refused connection is not a read timeout
    # The fragment never reaches the webhook, and the signature is over the URL without it.
    recorder.fail_next["/whatsapp/webhook"] = 1
    url = f"{recorder.base_url}/whatsapp/webhook"
    answered = http.post("/_sim/inbound", json={"from": CLIENT, "body": "d", "webhook_url": f"{url}#rc=3&rp=all"})
    assert answered.json()["status_code"] == 500 and answered.json()["attempts"] == 1  # 5xx: final
    ok = http.post("/_sim/inbound", json={"from": CLIENT, "body": "e", "webhook_url": f"{url}#ct=1000&rc=1&rp=ct"})
    assert ok.json()["status_code"] == 200
    (got,) = recorder.wait_for(1, path="/whatsapp/webhook")
    assert got.url == url and got.signature_valid and got.params["Body"] == "e"
