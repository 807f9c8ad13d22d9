"""The webhook, hardened: Twilio's published signature vectors, proxies, fuzzing, real WhatsApp fields.

Runs against the real MongoDB-compatible test server (and real Redis for the proxy test).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator

from services.webhook import EMPTY_TWIML, WebhookDeps, create_app
from services.webhook_request import MAX_BODY_BYTES, BadRequest, SignedForm, _signature_ok, read_signed_form
from shared.adapters.mongo import MongoRepositories, connect, mongo_repositories
from shared.clock import FakeClock
from shared.domain.states import FAILED_STATUSES
from shared.fakes import RecordingQueue
from shared.queue import DramatiqQueue, make_broker
from shared.settings import load_settings
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.integration

FORM = "application/x-www-form-urlencoded"
TOKEN = "0123456789abcdef0123456789abcdef"
BASE = "https://relance.example.com"
ALLOWED = {200, 400, 403, 413}
ACCOUNT_SID = "AC" + "0" * 32
SENDER = "whatsapp:+14155238886"  # WebhookDeps' default sender

# --------------------------------------------------------------------------- published vectors
# Twilio's worked example for X-Twilio-Signature: the "Webhooks security" guide
# (https://www.twilio.com/docs/usage/webhooks/webhooks-security, formerly
# https://www.twilio.com/docs/usage/security#validating-requests).
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

# The known vectors of the SDK's own tests: twilio/twilio-python, tests/unit/test_request_validator.py
# (same token and URL, other caller; plus the port variants the validator must tolerate).
SDK_PARAMS = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212", "Caller": "+14158675309"}
SDK_VECTORS = [
    ("plain", DOC_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("https with port 1234", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("http with port 1234 signed", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ("https signed with :443", DOC_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ("http signed with :80", "http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
]
SDK_DUPLICATES = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
SDK_DUPLICATES_SIGNATURE = "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def sign(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def form_headers(signature: str | None) -> dict[str, str]:
    headers = {"Content-Type": FORM}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return headers


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


def make_client(store: MongoRepositories, queue: RecordingQueue, *, base: str = BASE, token: str = TOKEN,
                client_base_url: str = "http://testserver") -> TestClient:
    deps = WebhookDeps(store=store, queue=queue, clock=FakeClock(), auth_token=token, public_base_url=base,
                       redis_ping=lambda: True)
    return TestClient(create_app(deps), base_url=client_base_url, raise_server_exceptions=False)


def test_twilio_documented_example_is_what_the_sdk_computes_and_accepts() -> None:
    validator = RequestValidator(DOC_TOKEN)
    assert validator.compute_signature(DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert validator.validate(DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    assert not validator.validate(DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, DOC_SIGNATURE)
    assert not validator.validate(DOC_URL.replace("bar=2", "bar=3"), DOC_PARAMS, DOC_SIGNATURE)
    assert not RequestValidator("54321").validate(DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


@pytest.mark.parametrize(("case", "url", "signature"), SDK_VECTORS, ids=[v[0] for v in SDK_VECTORS])
def test_sdk_known_vectors_validate(case: str, url: str, signature: str) -> None:
    assert RequestValidator(DOC_TOKEN).validate(url, SDK_PARAMS, signature), case


def test_sdk_known_vector_with_repeated_fields() -> None:
    class Multi(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    multi = Multi()
    for key, value in SDK_DUPLICATES:
        multi.setdefault(key, []).append(value)
    assert RequestValidator(DOC_TOKEN).compute_signature(DOC_URL, multi) == SDK_DUPLICATES_SIGNATURE


@settings(max_examples=300, deadline=None)
@given(form=st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=20),
       algorithm=st.sampled_from([HMAC_SHA1, HMAC_SHA256]))
@example(form=DOC_PARAMS, algorithm=HMAC_SHA1)
def test_the_parsed_form_signs_as_the_plain_dict_it_holds(form: dict[str, str], algorithm: str) -> None:
    """SignedForm only gives the SDK a faster path to each value: same signature, same verdict."""
    validator = RequestValidator(DOC_TOKEN)
    signed = SignedForm(form)
    expected = validator.compute_signature(DOC_URL, form, algorithm)
    assert validator.compute_signature(DOC_URL, signed, algorithm) == expected
    assert validator.validate(DOC_URL, signed, expected, algorithm)
    assert _signature_ok(DOC_TOKEN, DOC_URL, signed, expected, algorithm)
    assert not _signature_ok(DOC_TOKEN, DOC_URL, SignedForm({**form, "extra": "1"}), expected, algorithm)


def test_our_signature_check_accepts_the_documented_request_byte_for_byte() -> None:
    """read_signed_form (the webhook's own check) on the published request, at the published path."""
    deps = WebhookDeps(store=None, queue=RecordingQueue(), clock=FakeClock(),  # type: ignore[arg-type]
                       auth_token=DOC_TOKEN, public_base_url="https://mycompany.com", redis_ping=lambda: True)

    async def myapp(request: Request) -> Response:
        try:
            form = await read_signed_form(request, deps)
        except BadRequest as exc:
            return PlainTextResponse(exc.reason, status_code=exc.status)
        return PlainTextResponse(form["CallSid"])

    body = urlencode(DOC_PARAMS)  # '+' travels as %2B, as Twilio sends it
    with TestClient(Starlette(routes=[Route("/myapp.php", myapp, methods=["POST"])])) as client:
        ok = client.post("/myapp.php?foo=1&bar=2", content=body, headers=form_headers(DOC_SIGNATURE))
        assert (ok.status_code, ok.text) == (200, "CA1234567890ABCDE")
        other_query = client.post("/myapp.php?foo=1&bar=3", content=body, headers=form_headers(DOC_SIGNATURE))
        assert other_query.status_code == 403
        tampered = client.post("/myapp.php?foo=1&bar=2", content=body.replace("1234", "9999"),
                               headers=form_headers(DOC_SIGNATURE))
        assert tampered.status_code == 403


def test_our_endpoint_accepts_the_documented_token_and_params_signed_for_our_url(store: MongoRepositories,
                                                                                 queue: RecordingQueue) -> None:
    # Our path is not /myapp.php: same token, host, query and params, signed for /whatsapp/webhook.
    our_url = "https://mycompany.com/whatsapp/webhook?foo=1&bar=2"
    assert our_url.replace("/whatsapp/webhook", "/myapp.php") == DOC_URL
    with make_client(store, queue, base="https://mycompany.com", token=DOC_TOKEN) as client:
        published = client.post("/whatsapp/webhook?foo=1&bar=2", content=urlencode(DOC_PARAMS),
                                headers=form_headers(DOC_SIGNATURE))
        assert published.status_code == 403  # the published signature binds /myapp.php, not our path
        signed = client.post("/whatsapp/webhook?foo=1&bar=2", content=urlencode(DOC_PARAMS),
                             headers=form_headers(sign(our_url, DOC_PARAMS, DOC_TOKEN)))
        # Past the signature check (403 comes first); a voice call's form has no MessageSid.
        assert (signed.status_code, signed.text) == (400, "missing field(s): MessageSid, AccountSid")
        # The same, with what a WhatsApp message from that caller to our sender carries.
        message = {**DOC_PARAMS, "MessageSid": "SM" + "a" * 32, "Body": "hello", "AccountSid": ACCOUNT_SID,
                   "From": "whatsapp:" + DOC_PARAMS["From"], "To": SENDER}
        accepted = client.post("/whatsapp/webhook?foo=1&bar=2", content=urlencode(message),
                               headers=form_headers(sign(our_url, message, DOC_TOKEN)))
        assert (accepted.status_code, accepted.text) == (200, EMPTY_TWIML)
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 1
    assert queue.inbound == ["inbound:SM" + "a" * 32]


# --------------------------------------------------------------------------- shared keys
SHARED_KEY = "sk_test_0123456789abcdef0123456789abcdef"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def _independent_signature(secret: str, url: str, form: dict[str, str], digest: str) -> str:
    """Twilio's scheme computed here without the SDK: HMAC over the URL + sorted name/value pairs."""
    data = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(secret.encode(), data.encode(), digest).digest()).decode()


@pytest.mark.parametrize(("header", "secret", "digest", "configured", "expected"), [
    ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", SHARED_KEY, "sha256", True, 200),
    ("algorithm=HMAC_SHA1,key=webhooks_sharedkey_1", SHARED_KEY, "sha1", True, 200),
    (None, SHARED_KEY, "sha256", True, 403),  # no header: the Auth Token is what signs
    ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", TOKEN, "sha256", True, 403),
    ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", TOKEN, "sha1", True, 403),
    ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", SHARED_KEY, "sha256", False, 403),
    ("key=webhooks_sharedkey_1,algorithm=HMAC_MD5", SHARED_KEY, "md5", True, 403),
], ids=["sha256", "sha1-with-key", "no-header", "token-as-key", "token-sha1", "key-not-configured",
        "unsupported-algorithm"])
def test_webhooks_signed_with_a_shared_key(store: MongoRepositories, queue: RecordingQueue, header: str | None,
                                           secret: str,
                                           digest: str, configured: bool, expected: int) -> None:
    form = whatsapp_form("SM" + "5" * 32, Body="Bonjour")
    deps = WebhookDeps(store=store, queue=queue, clock=FakeClock(), auth_token=TOKEN, public_base_url=BASE,
                       redis_ping=lambda: True, shared_key=SHARED_KEY if configured else "")
    headers = form_headers(_independent_signature(secret, BASE + "/whatsapp/webhook", form, digest))
    if header is not None:
        headers[SETTINGS_HEADER] = header
    with TestClient(create_app(deps), raise_server_exceptions=False) as client:
        response = client.post("/whatsapp/webhook", content=urlencode(form), headers=headers)
    assert response.status_code == expected, response.text
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == (1 if expected == 200 else 0)
    if not configured:
        assert "TWILIO_WEBHOOK_SHARED_KEY" in response.text


# --------------------------------------------------------------------------- behind a proxy
NGROK = "https://abc.ngrok-free.app"


def test_behind_ngrok_the_public_url_is_what_counts(store: MongoRepositories, queue: RecordingQueue) -> None:
    form = whatsapp_form("SM" + "b" * 32, Body="Bonjour")
    with make_client(store, queue, base=NGROK, client_base_url="http://127.0.0.1:3000") as client:
        def post(signed_url: str, **headers: str) -> int:
            return client.post("/whatsapp/webhook", content=urlencode(form),
                               headers={**form_headers(sign(signed_url, form)), **headers}).status_code

        assert post("http://127.0.0.1:3000/whatsapp/webhook") == 403  # what the app sees is not signed
        assert post("https://evil.example/whatsapp/webhook") == 403
        assert post("https://other.ngrok-free.app/whatsapp/webhook",
                    **{"X-Forwarded-Host": "other.ngrok-free.app", "X-Forwarded-Proto": "https"}) == 403
        assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 0
        assert post(NGROK + "/whatsapp/webhook") == 200
    assert queue.inbound == ["inbound:SM" + "b" * 32]


def test_behind_a_proxy_over_real_http_with_real_redis(store: MongoRepositories, redis_url: str) -> None:
    """PUBLIC_BASE_URL read by Settings (trailing slash), uvicorn on loopback, dramatiq on real Redis."""
    settings_ = load_settings({"TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": NGROK + "/", "REDIS_URL": redis_url},
                              env_file=None)
    broker = make_broker(settings_.redis_url)
    deps = WebhookDeps(store=store, queue=DramatiqQueue(broker), clock=FakeClock(), auth_token=TOKEN,
                       public_base_url=settings_.base_url, redis_ping=lambda: True)
    form = whatsapp_form("SM" + "c" * 32, Body="ok")
    try:
        with serve_asgi(create_app(deps)) as local_url:
            assert local_url.startswith("http://127.0.0.1:")
            good = httpx.post(local_url + "/whatsapp/webhook", content=urlencode(form),
                              headers=form_headers(sign(NGROK + "/whatsapp/webhook", form)))
            wrong_host = httpx.post(local_url + "/whatsapp/webhook", content=urlencode(form),
                                    headers=form_headers(sign(local_url + "/whatsapp/webhook", form)))
    finally:
        broker.close()
    assert (good.status_code, wrong_host.status_code) == (200, 403)
    assert store.events.get("inbound:SM" + "c" * 32) is not None
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hlen("relance:replies.msgs") == 1  # one dramatiq message, ids only
    finally:
        client.close()


# --------------------------------------------------------------------------- WhatsApp's real fields
def whatsapp_form(sid: str, **extra: str) -> dict[str, str]:
    return {"SmsMessageSid": sid, "NumMedia": "0", "ProfileName": "Marie Dupont", "MessageType": "text",
            "SmsSid": sid, "WaId": "33612345678", "SmsStatus": "received", "Body": "", "To": "whatsapp:+14155238886",
            "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": ACCOUNT_SID,
            "From": "whatsapp:+33612345678", "ApiVersion": "2010-04-01", **extra}


WHATSAPP_CASES = {
    "voice note": whatsapp_form(
        "SM" + "d" * 32, NumMedia="1", MessageType="audio", Body="",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC00/Messages/MM00/Media/ME00",
        MediaContentType0="audio/ogg"),
    "quick-reply button": whatsapp_form(
        "SM" + "e" * 32, MessageType="button", Body="J'ai payé", ButtonText="J'ai payé", ButtonPayload="paid",
        OriginalRepliedMessageSid="SM" + "9" * 32, OriginalRepliedMessageSender="whatsapp:+14155238886"),
    "click-to-WhatsApp ad": whatsapp_form(
        "SM" + "f" * 32, Body="Bonjour, infos ?", ReferralBody="Promo -20 %", ReferralHeadline="Soldes",
        ReferralSourceId="120201", ReferralSourceType="ad", ReferralSourceUrl="https://fb.me/x",
        ReferralCtwaClid="ARAkLkA8rmlF"),
    "location and unknown fields": whatsapp_form(
        "SM" + "1" * 32, MessageType="location", Latitude="48.8566", Longitude="2.3522", Address="Paris",
        Label="Bureau", Forwarded="true", SomeFieldTwilioAddsTomorrow="ünïcödé ✓", **{"Odd.Name$": "x"}),
}


@pytest.mark.parametrize("case", list(WHATSAPP_CASES))
def test_whatsapp_fields_twilio_sends_are_accepted_and_kept(store: MongoRepositories, queue: RecordingQueue,
                                                            case: str) -> None:
    form = WHATSAPP_CASES[case]
    with make_client(store, queue) as client:
        response = client.post("/whatsapp/webhook", content=urlencode(form),
                               headers=form_headers(sign(BASE + "/whatsapp/webhook", form)))
    assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    event = store.events.collection.find_one({"_id": f"inbound:{form['MessageSid']}"})
    assert event is not None
    assert event["form"] == urlencode(form)  # the whole form as posted, unknown fields included
    assert dict(parse_qsl(event["form"], keep_blank_values=True)) == form
    assert event["profile_name"] == "Marie Dupont" and event["wa_id"] == "33612345678"
    assert event["body"] == form["Body"]
    if case == "voice note":
        assert event["num_media"] == 1 and event["media_urls"] == [form["MediaUrl0"]]
    if case == "quick-reply button":
        assert (event["button_payload"], event["button_text"]) == ("paid", "J'ai payé")
    assert queue.inbound == [f"inbound:{form['MessageSid']}"]


def test_idempotency_token_retry_is_one_event(store: MongoRepositories, queue: RecordingQueue) -> None:
    form = whatsapp_form("SM" + "2" * 32, Body="Bien reçu")
    sid = form["MessageSid"]
    token = f"{sid}-{secrets.token_hex(4)}"
    with make_client(store, queue) as client:
        def post(idempotency: str) -> int:
            return client.post("/whatsapp/webhook", content=urlencode(form), headers={
                **form_headers(sign(BASE + "/whatsapp/webhook", form)), "I-Twilio-Idempotency-Token": idempotency,
            }).status_code

        assert [post(token), post(token), post(token + "-later")] == [200, 200, 200]
    assert store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 1
    event = store.events.collection.find_one({"_id": f"inbound:{sid}"})
    assert event is not None and event["idempotency_token"] == token
    assert queue.inbound == [f"inbound:{sid}"]


# --------------------------------------------------------------------------- fuzzing
@dataclass
class Fuzz:
    client: TestClient
    store: MongoRepositories
    queue: RecordingQueue

    def counts(self) -> tuple[int, int]:
        events = self.store.events.collection.count_documents({"kind": {"$ne": "pending"}})
        return events, self.store.messages.collection.count_documents({})

    def reset(self) -> None:
        self.store.events.collection.delete_many({})
        self.queue.inbound.clear()
        self.queue.statuses.clear()


@pytest.fixture(scope="module")
def fuzz(mongo_uri: str) -> Iterator[Fuzz]:
    """One store and client for all examples (hypothesis runs many examples per test function)."""
    name = f"t_fuzz_{secrets.token_hex(4)}"
    mongo = connect(mongo_uri)
    store = mongo_repositories(mongo[name])
    store.ensure_indexes()
    queue = RecordingQueue()
    with make_client(store, queue) as client:
        yield Fuzz(client, store, queue)
    mongo.drop_database(name)
    mongo.close()


FUZZ_SETTINGS = settings(max_examples=150, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.large_base_example])
PATHS = st.sampled_from(["/whatsapp/webhook", "/whatsapp/status"])
TWILIO_NAMES = ["MessageSid", "From", "To", "Body", "MessageStatus", "ErrorCode", "NumMedia", "MediaUrl0",
                "MediaContentType0", "ProfileName", "WaId", "ButtonPayload", "ButtonText", "ReferralBody",
                "AccountSid", "SmsStatus"]
NUMERIC_NAMES = {"ErrorCode", "NumMedia"}
short_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0", "1", "-1", "delivered", "failed", "READ", "\x00", "%", "%zz", "%E9", "+", "&", "="]),
)
# Numbers as Twilio sends them, and what str.isdigit() accepts but int() or BSON cannot take.
numeric_values = st.one_of(
    st.sampled_from(["", "0", "1", "63016", " 42 ", "²", "٣", "①", "9" * 30, "9" * 5000, "1e3", "0x10", "-1"]),
    st.from_regex(r"[0-9]{1,40}", fullmatch=True),
    st.text(alphabet="0123456789²³¹٣۴ -+.", max_size=12),
)
values = st.one_of(short_values, st.text(min_size=500, max_size=6000))  # long, mostly within the limit


def twilio_fields(value_strategy: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    """Each of Twilio's field names present or not, numeric ones with tricky numbers."""
    return st.fixed_dictionaries({}, optional={
        name: numeric_values if name in NUMERIC_NAMES else value_strategy for name in TWILIO_NAMES})


extra_pairs = st.lists(st.tuples(st.text(max_size=20), values), max_size=5)


@st.composite
def pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A form as (name, value) pairs: Twilio's names, unknown names, sometimes a name twice."""
    result = list(draw(twilio_fields(values)).items()) + draw(extra_pairs)
    result = draw(st.permutations(result))
    if result and draw(st.integers(0, 9)) == 0:
        result.append((draw(st.sampled_from(result))[0], draw(short_values)))
    return result


garbage_bodies = st.one_of(
    st.binary(max_size=600),
    st.text(alphabet="%&=+;ÿé\x00 aZ09\r\n", max_size=200).map(lambda t: t.encode("utf-8")),
    st.text(alphabet="%&=+;aZ09\xe9", max_size=200).map(lambda t: t.encode("latin-1")),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"Body=" + b"x" * (MAX_BODY_BYTES + n)),
)
content_types = st.one_of(
    st.sampled_from([FORM, FORM + "; charset=utf-8", FORM.upper(), "application/json", "text/plain",
                     "multipart/form-data; boundary=x", "", FORM + ";;;"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
            max_size=60),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60)


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, bytes, dict[bytes, bytes]]:
    """(path, body, headers) for any request: random forms, garbage bodies, signatures good and bad."""
    path = draw(PATHS)
    if draw(st.integers(0, 3)) == 0:  # the status callback URL carries our message id
        path += "?" + urlencode({"mid": draw(st.text(max_size=30))})
    form_pairs: list[tuple[str, str]] | None = None
    if draw(st.booleans()):
        form_pairs = draw(pairs())
        body = urlencode(form_pairs).encode()
    else:
        body = draw(garbage_bodies)
    headers: dict[bytes, bytes] = {b"content-type": draw(content_types).encode("latin-1")}
    kind = draw(st.sampled_from(["valid", "missing", "empty", "garbage", "other-url", "other-token"]))
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if form_pairs is None \
        else dict(form_pairs)
    if kind == "valid":
        headers[b"x-twilio-signature"] = sign(BASE + path, params).encode()
    elif kind == "other-url":
        headers[b"x-twilio-signature"] = sign("https://evil.example" + path, params).encode()
    elif kind == "other-token":
        headers[b"x-twilio-signature"] = sign(BASE + path, params, token="f" * 32).encode()
    elif kind == "empty":
        headers[b"x-twilio-signature"] = b""
    elif kind == "garbage":
        headers[b"x-twilio-signature"] = draw(header_text).encode("latin-1")
    if draw(st.booleans()):
        headers[b"i-twilio-idempotency-token"] = draw(header_text).encode("latin-1")
    return path, body, headers


@FUZZ_SETTINGS
@given(request=requests_())
def test_fuzz_any_request_is_answered_without_500_and_refusals_store_nothing(
        fuzz: Fuzz, request: tuple[str, bytes, dict[bytes, bytes]]) -> None:
    path, body, headers = request
    before = fuzz.counts()
    response = fuzz.client.post(path, content=body, headers=headers)
    assert response.status_code in ALLOWED, (response.status_code, response.text)
    if response.status_code != 200:
        assert fuzz.counts() == before
    else:
        assert response.text == EMPTY_TWIML


# Identifiers in Twilio's shapes, or anything: only the first kind may be stored.
_HEX = "0123456789abcdef"
message_sids = st.one_of(st.builds(lambda prefix, digits: prefix + digits, st.sampled_from(["SM", "MM"]),
                                   st.text(_HEX, min_size=32, max_size=32)),
                         st.text(min_size=1, max_size=64))
accounts = st.one_of(st.just(ACCOUNT_SID), st.text(max_size=40))
clients = st.one_of(st.just("whatsapp:+33612345678"), st.from_regex(r"whatsapp:\+[1-9][0-9]{6,14}", fullmatch=True),
                    st.text(min_size=1, max_size=40))
senders = st.one_of(st.just(SENDER), st.text(max_size=30))
STATUSES = ["queued", "sent", "delivered", "read", "failed", "undelivered", "READ", "accepted", "canceled"]


def _shaped(form: dict[str, str], *, inbound: bool) -> bool:
    """Whether every identifier has Twilio's shape (an oracle written apart from the webhook's)."""
    sid = form.get("MessageSid", "")
    client = form.get("From" if inbound else "To", "")
    ours = form.get("To" if inbound else "From", "")
    return (re.fullmatch(r"(SM|MM)[0-9a-fA-F]{32}", sid) is not None
            and all(form.get(alias, sid) == sid for alias in ("SmsSid", "SmsMessageSid"))
            and re.fullmatch(r"AC[0-9a-fA-F]{32}", form.get("AccountSid", "")) is not None
            and re.fullmatch(r"whatsapp:\+[1-9][0-9]{6,14}", client) is not None and ours == SENDER
            and (inbound or form.get("MessageStatus", "").lower() in STATUSES))


def _conforming(sid: str, **fields: str) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": ACCOUNT_SID, **fields}


@st.composite
def signed_inbound(draw: st.DrawFn) -> dict[str, str]:
    form = {**draw(twilio_fields(values)), **dict(draw(extra_pairs))}
    form.update(MessageSid=draw(message_sids), AccountSid=draw(accounts), From=draw(clients), To=draw(senders))
    return form


@FUZZ_SETTINGS
@given(form=signed_inbound())
# isdigit() but not int(): was a 500; over BSON's 8 bytes: was a 500
@example(form=_conforming("SM" + "1" * 32, From="whatsapp:+33612345678", To=SENDER, NumMedia="²"))
@example(form=_conforming("SM" + "2" * 32, From="whatsapp:+33612345678", To=SENDER, NumMedia="9" * 30))
@example(form=_conforming("MM" + "3" * 32, From="whatsapp:+33612345678", To=SENDER, Body="\x00",
                          **{"Odd.Name$": "x", "": ""}))
@example(form={"MessageSid": "S\x00M", "From": "\x00", "Odd.Name$": "x", "": ""})
def test_fuzz_validly_signed_inbound_is_stored_exactly_once(fuzz: Fuzz, form: dict[str, str]) -> None:
    fuzz.reset()
    body = urlencode(form).encode()
    headers = form_headers(sign(BASE + "/whatsapp/webhook", form))
    first = fuzz.client.post("/whatsapp/webhook", content=body, headers=headers)
    second = fuzz.client.post("/whatsapp/webhook", content=body, headers=headers)
    if len(body) > MAX_BODY_BYTES or not _shaped(form, inbound=True):
        assert (first.status_code, second.status_code) == ((413, 413) if len(body) > MAX_BODY_BYTES else (400, 400))
        assert fuzz.counts() == (0, 0) and fuzz.queue.inbound == []
        return
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert fuzz.store.events.collection.count_documents({"kind": {"$ne": "pending"}}) == 1
    event = fuzz.store.events.collection.find_one({"_id": f"inbound:{form['MessageSid']}"})
    assert event is not None and dict(parse_qsl(event["form"], keep_blank_values=True)) == form
    assert fuzz.queue.inbound == [f"inbound:{form['MessageSid']}"]


@st.composite
def signed_status(draw: st.DrawFn) -> dict[str, str]:
    form = {**draw(twilio_fields(short_values)), **dict(draw(extra_pairs))}
    form.update(MessageSid=draw(message_sids), AccountSid=draw(accounts), From=draw(senders), To=draw(clients),
                MessageStatus=draw(st.one_of(st.sampled_from(STATUSES), st.text(min_size=1, max_size=20))))
    return form


def _failed(code: str, status: str = "failed") -> dict[str, str]:
    return _conforming("SM" + "4" * 32, MessageStatus=status, From=SENDER, To="whatsapp:+33612345678",
                       ErrorCode=code)


@FUZZ_SETTINGS
@given(form=signed_status())
@example(form=_failed("²"))  # were 500s
@example(form=_failed("9" * 30))
@example(form=_failed("9" * 5000))
@example(form=_failed(" 63016 ", "undelivered"))
def test_fuzz_validly_signed_status_is_stored_once_or_refused(fuzz: Fuzz, form: dict[str, str]) -> None:
    fuzz.reset()
    body = urlencode(form).encode()
    headers = form_headers(sign(BASE + "/whatsapp/status", form))
    first = fuzz.client.post("/whatsapp/status", content=body, headers=headers)
    second = fuzz.client.post("/whatsapp/status", content=body, headers=headers)
    assert first.status_code == second.status_code
    code = form.get("ErrorCode", "").strip()
    if not _shaped(form, inbound=False) or (code and not (code.isascii() and code.isdigit() and len(code) <= 9)):
        assert first.status_code == 400
        if _shaped(form, inbound=False):
            assert first.text == "ErrorCode must be a number"
        assert fuzz.counts() == (0, 0)
        return
    assert first.status_code == 200, first.text
    status = form["MessageStatus"].lower()
    if status in FAILED_STATUSES:  # stored and enqueued once, for the replies worker to act on
        assert fuzz.counts() == (1, 0) and len(fuzz.queue.statuses) == 1
        assert fuzz.store.events.get(f"status:{form['MessageSid']}:{status}") is not None
    else:  # applied to its message (none here): nothing stored, nothing enqueued
        assert fuzz.counts() == (0, 0) and fuzz.queue.statuses == []


def test_content_length_header_with_unicode_digits_is_not_a_500(fuzz: Fuzz) -> None:
    # '²' is a latin-1 "digit" for str.isdigit() that int() refuses; real servers would reject
    # such a header earlier, the ASGI app must not crash on it either.
    for declared in ("²", "9" * 5000, "99999999999"):
        headers = {b"content-type": FORM.encode(), b"content-length": declared.encode("latin-1"),
                   b"x-twilio-signature": b"A" * 27 + b"="}  # past the signature's shape check
        response = fuzz.client.post("/whatsapp/webhook", content=b"Body=x", headers=headers)
        assert response.status_code in ALLOWED
