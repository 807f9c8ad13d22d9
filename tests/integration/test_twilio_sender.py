"""TwilioSender through the real twilio SDK, against the simulator over loopback HTTP."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException

from devtools.simulator import create_app
from shared.errors import SendDeferred, SendRejected
from shared.ports import DeliveryStatus, OutboundRequest
from shared.twilio_sender import RedirectingHttpClient, TwilioSender, is_retryable
from tests.support.servers import WebhookRecorder, serve_asgi, serve_recorder

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "sender-test-token"
SENDER = "whatsapp:+14155238886"
CLIENT = "+33612345678"
OTHER = "+33798765432"
TEMPLATE = "HX" + "b" * 32


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    """Receives the simulator's status callbacks and checks their signature."""
    with serve_recorder(AUTH_TOKEN) as rec:
        yield rec


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A running simulator."""
    app = create_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, callback_delay=0.01)
    with serve_asgi(app) as url:
        yield url


@pytest.fixture
def control(sim_url: str, recorder: WebhookRecorder) -> Iterator[httpx.Client]:
    """A client on the simulator's control endpoints, reset before each test."""
    with httpx.Client(base_url=sim_url, timeout=5) as client:
        client.post("/_sim/reset").raise_for_status()
        recorder.clear()
        yield client


@pytest.fixture
def sender(sim_url: str, control: httpx.Client) -> TwilioSender:
    """A TwilioSender pointed at the simulator."""
    return TwilioSender(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url
    )


def _request(recorder: WebhookRecorder, to: str = CLIENT, **kw: object) -> OutboundRequest:
    fields: dict[str, object] = {"body": "Bonjour Marie"}
    fields.update(kw)
    return OutboundRequest(to=to, status_callback=f"{recorder.base_url}/whatsapp/status", **fields)  # type: ignore[arg-type]


def test_send_body_reaches_simulator_and_callbacks_follow(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    result = sender.send(_request(recorder))
    assert result.status == "queued"
    assert result.sid.startswith("SM") and len(result.sid) == 34
    (seen,) = control.get("/_sim/messages").json()
    assert seen["sid"] == result.sid
    assert (seen["to"], seen["from"], seen["body"]) == (
        f"whatsapp:{CLIENT}",
        SENDER,
        "Bonjour Marie",
    )
    assert seen["status_callback"] == f"{recorder.base_url}/whatsapp/status"
    assert seen["content_sid"] is None
    got = recorder.wait_for(3, sid=result.sid)
    assert [r.params["MessageStatus"] for r in got] == ["sent", "delivered", "read"]
    assert all(r.signature_valid for r in got)


def test_send_template_with_content_variables(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    variables = {"1": "Marie", "2": "120,00 €"}
    result = sender.send(
        _request(recorder, body="preview text", content_sid=TEMPLATE, content_variables=variables)
    )
    (seen,) = control.get("/_sim/messages").json()
    assert seen["sid"] == result.sid
    assert seen["content_sid"] == TEMPLATE
    assert seen["content_variables"] == variables
    assert seen["body"] == ""  # only ContentSid is sent when there is a template


def test_wrong_auth_token_is_rejected_20003(
    sim_url: str, recorder: WebhookRecorder, control: httpx.Client
) -> None:
    bad = TwilioSender(
        account_sid=ACCOUNT_SID, auth_token="wrong", from_number=SENDER, api_base_url=sim_url
    )
    with pytest.raises(SendRejected) as caught:
        bad.send(_request(recorder))
    assert caught.value.code == 20003 and caught.value.status == 401


def test_forced_63016_is_rejected(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    control.post("/_sim/fail", json={"code": 63016, "status": 400}).raise_for_status()
    with pytest.raises(SendRejected) as caught:
        sender.send(_request(recorder))
    assert caught.value.code == 63016 and caught.value.status == 400
    assert "outside the allowed window" in caught.value.twilio_message
    assert sender.send(_request(recorder)).status == "queued"  # count was 1


@pytest.mark.parametrize(
    ("rule", "code", "status", "maybe_created"),
    [
        ({"status": 429}, 20429, 429, False),
        ({"status": 500}, 20500, 500, True),
        ({"status": 503}, 20503, 503, True),
        ({"code": 63018, "status": 400}, 63018, 400, False),
        ({"status": 502, "gateway": True}, 502, 502, True),  # a gateway's HTML page, no Twilio JSON
        ({"status": 504, "gateway": True}, 504, 504, True),
    ],
)
def test_rate_limits_and_server_errors_are_deferred(
    sender: TwilioSender,
    control: httpx.Client,
    recorder: WebhookRecorder,
    rule: dict[str, object],
    code: int,
    status: int,
    maybe_created: bool,
) -> None:
    control.post("/_sim/fail", json=rule).raise_for_status()
    with pytest.raises(SendDeferred) as caught:
        sender.send(_request(recorder))
    assert caught.value.code == code and caught.value.status == status
    # Only a 4xx says Twilio did not create it; a 5xx may come from a gateway after it did.
    assert caught.value.maybe_created is maybe_created


def test_bad_to_is_rejected_21211(sender: TwilioSender, recorder: WebhookRecorder) -> None:
    with pytest.raises(SendRejected) as caught:
        sender.send(_request(recorder, to="0612345678"))
    assert caught.value.code == 21211 and caught.value.status == 400


def test_network_errors_are_deferred(recorder: WebhookRecorder) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=SENDER,
        api_base_url=f"http://127.0.0.1:{port}",
    )
    with pytest.raises(SendDeferred) as caught:
        closed.send(_request(recorder))
    assert caught.value.code is None and caught.value.status is None
    assert caught.value.maybe_created  # no answer says nothing: reconciled before any re-send


def test_timeout_is_deferred_and_says_the_message_may_exist(
    sim_url: str, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    control.post("/_sim/config", json={"response_delay_ms": 800}).raise_for_status()
    slow = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=SENDER,
        api_base_url=sim_url,
        timeout=0.2,
    )
    with pytest.raises(SendDeferred) as caught:
        slow.send(_request(recorder))
    assert caught.value.code is None
    assert "may have been created" in str(caught.value)
    # It was: the simulator creates it once its delay is over. Wait for that, so that it cannot land
    # after the next test's reset and pass for a message that test sent (a rare failure under load).
    deadline = time.monotonic() + 10
    while not control.get("/_sim/messages").json() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(control.get("/_sim/messages").json()) == 1


def test_list_messages_filters_by_to_and_date_sent_after(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    first = sender.send(_request(recorder)).sid
    second = sender.send(_request(recorder)).sid
    sender.send(_request(recorder, to=OTHER))
    recorder.wait_for(1, sid=first)
    recorder.wait_for(1, sid=second)  # sent: they have a send date now
    found = sender.list_messages(to=CLIENT, date_sent_after=before)
    assert [m["sid"] for m in found] == [second, first]
    item = found[0]
    assert set(item) >= {"sid", "to", "from", "body", "status", "date_created", "error_code"}
    assert item["to"] == f"whatsapp:{CLIENT}" and item["from"] == SENDER
    assert item["body"] == "Bonjour Marie" and item["error_code"] is None
    assert isinstance(item["date_created"], datetime) and item["date_created"].tzinfo is not None
    assert (
        sender.list_messages(to=CLIENT, date_sent_after=datetime.now(UTC) + timedelta(minutes=1))
        == []
    )
    assert [m["sid"] for m in sender.list_messages(to=f"whatsapp:{CLIENT}", from_=SENDER)] == [
        second,
        first,
    ]
    assert sender.list_messages(to=CLIENT, from_="+15550001111") == []
    assert len(sender.list_messages(to=CLIENT, limit=1)) == 1


def test_sdk_follows_next_page_through_the_redirect(
    sender: TwilioSender, recorder: WebhookRecorder
) -> None:
    sids = {sender.send(_request(recorder)).sid for _ in range(3)}
    listed = sender.client.messages.list(to=f"whatsapp:{CLIENT}", page_size=1)
    assert {m.sid for m in listed} == sids


def test_lost_answer_can_be_reconciled(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    control.post("/_sim/fail", json={"status": 502, "created": True, "gateway": True}).raise_for_status()
    with pytest.raises(SendDeferred) as caught:
        sender.send(_request(recorder))
    assert caught.value.maybe_created
    (found,) = sender.list_messages(to=CLIENT, from_=SENDER)
    assert found["sid"] == control.get("/_sim/messages").json()[0]["sid"]
    assert found["body"] == "Bonjour Marie" and found["direction"] == "outbound-api"


def test_a_queued_message_is_listed_without_a_date_filter_only(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    """Twilio filters DateSent on the send time: a message still queued has none yet."""
    control.post("/_sim/hold", json={"to": CLIENT}).raise_for_status()
    before = datetime.now(UTC) - timedelta(minutes=1)
    sid = sender.send(_request(recorder)).sid
    assert sender.list_messages(to=CLIENT, date_sent_after=before) == []
    (found,) = sender.list_messages(to=CLIENT, from_=SENDER)
    assert (found["sid"], found["status"], found["date_sent"]) == (sid, "queued", None)
    control.post("/_sim/release", json={"to": CLIENT}).raise_for_status()
    recorder.wait_for(1, sid=sid)
    assert [m["sid"] for m in sender.list_messages(to=CLIENT, date_sent_after=before)] == [sid]


def test_a_template_message_is_listed_with_its_rendered_body(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    variables = {"1": "Marie", "2": "FA-2026-001"}
    sid = sender.send(_request(recorder, body="preview", content_sid=TEMPLATE, content_variables=variables)).sid
    (found,) = sender.list_messages(to=CLIENT, from_=SENDER)
    assert found["sid"] == sid
    # Twilio's resource has no ContentSid; its body is the template rendered with the values.
    assert "Marie" in found["body"] and "FA-2026-001" in found["body"]


def test_inbound_messages_are_listed_to_our_sender(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    answer = control.post("/_sim/inbound", json={"from": CLIENT, "body": "STOP",
                                                 "webhook_url": f"{recorder.base_url}/whatsapp/webhook"})
    sid = answer.json()["sid"]
    before = datetime.now(UTC) - timedelta(minutes=1)
    (found,) = sender.list_messages(to=SENDER, date_sent_after=before)
    assert (found["sid"], found["direction"], found["status"]) == (sid, "inbound", "received")
    assert (found["from"], found["to"], found["body"], found["num_media"]) == (f"whatsapp:{CLIENT}", SENDER, "STOP", 0)
    assert sender.list_messages(to=SENDER, from_=OTHER) == []
    assert sender.list_messages(to=CLIENT) == []  # nothing was sent to the client


def test_fetch_unknown_message_is_404_20404(sender: TwilioSender) -> None:
    with pytest.raises(TwilioRestException) as caught:
        sender.client.messages("SM" + "0" * 32).fetch()
    assert caught.value.status == 404 and caught.value.code == 20404


def test_fetch_status_reports_status_and_error_code_none_when_unknown(
    sender: TwilioSender, control: httpx.Client, recorder: WebhookRecorder
) -> None:
    delivered = sender.send(_request(recorder)).sid
    recorder.wait_for(3, sid=delivered)
    assert sender.fetch_status(delivered) == DeliveryStatus(status="read", error_code=None)
    control.post("/_sim/fail_delivery", json={"to": OTHER, "code": 63016, "status": "undelivered"})
    refused = sender.send(_request(recorder, to=OTHER)).sid
    recorder.wait_for(2, sid=refused)
    assert sender.fetch_status(refused) == DeliveryStatus(status="undelivered", error_code=63016)
    assert sender.fetch_status("SM" + "0" * 32) is None  # 404: Twilio does not know it


def test_fetch_status_errors_are_translated(sim_url: str) -> None:
    wrong = TwilioSender(account_sid=ACCOUNT_SID, auth_token="wrong", from_number=SENDER, api_base_url=sim_url)
    with pytest.raises(SendRejected) as rejected:
        wrong.fetch_status("SM" + "0" * 32)
    assert rejected.value.code == 20003
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = TwilioSender(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER,
                          api_base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(SendDeferred) as deferred:
        closed.fetch_status("SM" + "0" * 32)
    assert deferred.value.code is None and "may have been created" not in str(deferred.value)


def test_nothing_personal_is_logged(
    sender: TwilioSender,
    recorder: WebhookRecorder,
    control: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sender.send(_request(recorder))
    sender.list_messages(to=CLIENT, date_sent_after=datetime.now(UTC) - timedelta(minutes=1))
    control.post("/_sim/fail", json={"code": 21211}).raise_for_status()
    with pytest.raises(SendRejected):
        sender.send(_request(recorder))
    # Everything at INFO and above, and our own and the SDK's debug lines. (urllib3's DEBUG
    # lines do show request URLs: the logging setup keeps urllib3 at WARNING.)
    text = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO or r.name.startswith(("shared", "twilio"))
    )
    assert "Twilio accepted message" in text
    assert CLIENT not in text and CLIENT[1:] not in text and "Bonjour" not in text


def test_redirect_only_rewrites_the_twilio_api_prefix() -> None:
    client = RedirectingHttpClient(base_url="http://127.0.0.1:8055/")
    assert client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json") == (
        "http://127.0.0.1:8055/2010-04-01/Accounts/AC1/Messages.json"
    )
    assert client.rewrite("https://api.twilio.com.example.com/x") == (
        "https://api.twilio.com.example.com/x"
    )
    assert client.rewrite("https://content.twilio.com/v1/Content") == (
        "https://content.twilio.com/v1/Content"
    )
    untouched = RedirectingHttpClient()
    assert untouched.rewrite("https://api.twilio.com/x") == "https://api.twilio.com/x"


def test_twilio_environment_variables_are_ignored(
    sim_url: str, control: httpx.Client, recorder: WebhookRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    sender = TwilioSender(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SENDER, api_base_url=sim_url
    )
    assert sender.send(_request(recorder)).status == "queued"


def test_retryable_rule() -> None:
    assert is_retryable(429, 20429) and is_retryable(503, None) and is_retryable(400, 63018)
    assert not is_retryable(400, 63016) and not is_retryable(401, 20003)
