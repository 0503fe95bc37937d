"""Web Push: RFC 8291 encryption against the RFC's example and an independent
decryption, VAPID claims and signature, commit ordering and answer mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot.diagnostics.headers import parse_retry_after
from bot.errors import ConfigurationError, IntegrationError
from bot.notices.model import Outgoing, PushKeys
from bot.notices.sender import DeliveryFailed
from bot.notices.webpush import (
    MAX_PAYLOAD_BYTES,
    WebPushSender,
    application_server_key,
    encrypt_payload,
    generate_vapid_private_key_pem,
    push_payload,
    vapid_audience,
    vapid_authorization,
    vapid_keys_from_pem,
)
from tests.clock import FakeClock
from tests.notices.push_endpoint import (
    BrowserSubscription,
    PushEndpoint,
    Refused,
    b64url_decode,
    b64url_encode,
    decrypt_aes128gcm,
    verify_vapid,
)

SUBJECT = "mailto:status@acme.test"
STATUS_URL = "https://status.acme.test/status"
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

# RFC 8291 section 5 and appendix A (line breaks removed).
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_HEADER = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w"
    "EqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def _private_from_raw(raw_b64url: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(raw_b64url), "big"), ec.SECP256R1())


class CommitLog:
    """A ``Commit`` that notes how many requests the push service had seen when called."""

    def __init__(self, service: PushEndpoint) -> None:
        self._service = service
        self.requests_seen: list[int] = []

    async def __call__(self) -> None:
        self.requests_seen.append(len(self._service.requests))


def outgoing(
    subscription: BrowserSubscription | None,
    *,
    target: str | None = None,
    keys: PushKeys | None = None,
    subject: str = "Checkout: degraded performance",
    text: str = "We are investigating slow checkouts. Next update in 30 minutes.",
    headers: dict[str, str] | None = None,
) -> Outgoing:
    return Outgoing(
        delivery_id=7,
        notice_id=3,
        channel="push",
        segment="everyone",
        locale="en",
        target=target if target is not None else (subscription.endpoint if subscription else ""),
        subject=subject,
        text=text,
        push_keys=keys if keys is not None else (subscription.keys if subscription else None),
        headers=headers or {},
    )


@pytest.fixture(scope="module")
def vapid_pem() -> str:
    return generate_vapid_private_key_pem()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def push_service(clock: FakeClock) -> Iterator[PushEndpoint]:
    with PushEndpoint(clock=clock) as service:
        yield service


@pytest.fixture
async def sender(vapid_pem: str, clock: FakeClock) -> AsyncIterator[WebPushSender]:
    built = WebPushSender(
        vapid_pem,
        SUBJECT,
        httpx.AsyncClient(),
        url=STATUS_URL,
        clock=clock,
        allow_http=True,
        push_hosts=None,
    )
    yield built
    await built.close()


@pytest.fixture
def subscription(push_service: PushEndpoint, vapid_pem: str) -> BrowserSubscription:
    return push_service.subscribe(application_server_key(vapid_keys_from_pem(vapid_pem)))


# ------------------------------------------------------------------ RFC 8291 example


def test_encryption_reproduces_rfc8291_example() -> None:
    body = encrypt_payload(
        RFC_PLAINTEXT,
        PushKeys(p256dh=RFC_UA_PUBLIC, auth=RFC_AUTH),
        server_key=_private_from_raw(RFC_AS_PRIVATE),
        salt=b64url_decode(RFC_SALT),
    )
    assert b64url_encode(body[:86]) == RFC_HEADER
    assert b64url_encode(body) == RFC_BODY


def test_rfc8291_keys_match_published_public_keys() -> None:
    # The raw base64url form of vapid_keys_from_pem, on the RFC's application server key.
    assert application_server_key(vapid_keys_from_pem(RFC_AS_PRIVATE)) == RFC_AS_PUBLIC
    assert application_server_key(_private_from_raw(RFC_UA_PRIVATE)) == RFC_UA_PUBLIC


def test_test_helper_decrypts_rfc8291_example() -> None:
    # Validates the independent decryption the push service uses.
    plaintext = decrypt_aes128gcm(
        b64url_decode(RFC_BODY), _private_from_raw(RFC_UA_PRIVATE), b64url_decode(RFC_AUTH)
    )
    assert plaintext == RFC_PLAINTEXT


def test_each_encryption_uses_a_fresh_salt_and_key() -> None:
    keys = PushKeys(p256dh=RFC_UA_PUBLIC, auth=RFC_AUTH)
    first, second = encrypt_payload(b"same", keys), encrypt_payload(b"same", keys)
    assert first[:16] != second[:16]
    assert first[21:86] != second[21:86]
    ua = _private_from_raw(RFC_UA_PRIVATE)
    assert decrypt_aes128gcm(first, ua, b64url_decode(RFC_AUTH)) == b"same"
    assert decrypt_aes128gcm(second, ua, b64url_decode(RFC_AUTH)) == b"same"


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (PushKeys(p256dh="not base64!!", auth=RFC_AUTH), "base64url"),
        (PushKeys(p256dh=RFC_UA_PUBLIC[:40], auth=RFC_AUTH), "uncompressed P-256"),
        (PushKeys(p256dh=b64url_encode(b"\x04" + b"\x01" * 64), auth=RFC_AUTH), "not a point"),
        (PushKeys(p256dh=RFC_UA_PUBLIC, auth=b64url_encode(b"short")), "not 16"),
    ],
)
def test_unusable_subscription_keys_are_value_errors(keys: PushKeys, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        encrypt_payload(b"x", keys)


def test_payload_too_large_for_one_record() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encrypt_payload(b"x" * 4080, PushKeys(p256dh=RFC_UA_PUBLIC, auth=RFC_AUTH))


# ------------------------------------------------------------------ VAPID


def test_vapid_token_verifies_with_public_key_and_has_claims(vapid_pem: str) -> None:
    key = vapid_keys_from_pem(vapid_pem)
    endpoint = "https://fcm.googleapis.com/fcm/send/abc:def"
    header = vapid_authorization(key, endpoint, SUBJECT, now=START)
    claims, k = verify_vapid(header, audience="https://fcm.googleapis.com", now=START)
    assert k == application_server_key(key)
    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": int((START + timedelta(hours=12)).timestamp()),
        "sub": SUBJECT,
    }
    # Another key's k does not verify the signature.
    token = header.split("t=", 1)[1].split(",", 1)[0]
    other = application_server_key(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(Refused, match="does not verify"):
        verify_vapid(f"vapid t={token}, k={other}", audience="https://fcm.googleapis.com", now=START)


@pytest.mark.parametrize(
    ("endpoint", "audience"),
    [
        ("https://fcm.googleapis.com/fcm/send/x", "https://fcm.googleapis.com"),
        (
            "https://Updates.Push.Services.Mozilla.com:443/wpush/v2/x",
            "https://updates.push.services.mozilla.com",
        ),
        ("https://push.example:8443/p/x?q=1", "https://push.example:8443"),
        ("http://127.0.0.1:5000/push/x", "http://127.0.0.1:5000"),
        ("https://[2001:db8::1]/x", "https://[2001:db8::1]"),
    ],
)
def test_vapid_audience_is_the_endpoint_origin(endpoint: str, audience: str) -> None:
    assert vapid_audience(endpoint) == audience


def test_vapid_key_helpers_round_trip() -> None:
    pem = generate_vapid_private_key_pem()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    key = vapid_keys_from_pem(pem)
    public = b64url_decode(application_server_key(key))
    assert len(public) == 65 and public[0] == 4
    sec1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert application_server_key(vapid_keys_from_pem(sec1)) == application_server_key(key)


@pytest.mark.parametrize(
    "secret", ["", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
)
def test_bad_vapid_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="vapid_private_key_secret"):
        vapid_keys_from_pem(secret)


def test_non_p256_vapid_key_is_refused() -> None:
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    with pytest.raises(ConfigurationError, match="P-256"):
        vapid_keys_from_pem(rsa_pem)


def test_vapid_subject_must_be_mailto_or_https(vapid_pem: str) -> None:
    with pytest.raises(ConfigurationError, match="vapid_subject"):
        WebPushSender(vapid_pem, "status team", httpx.AsyncClient())


# ------------------------------------------------------------------ payload


def test_payload_is_title_body_url_json() -> None:
    assert json.loads(push_payload("Title", "Body", url=STATUS_URL)) == {
        "title": "Title",
        "body": "Body",
        "url": STATUS_URL,
    }


def test_long_body_is_cut_to_the_limit() -> None:
    body = 'Ünïcödé "quoted" line\n' * 400
    payload = push_payload("Outage", body, url=STATUS_URL)
    data = json.loads(payload)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert len(payload) > MAX_PAYLOAD_BYTES - 40  # cut no further than needed
    assert data["body"].endswith("…")
    assert body.startswith(data["body"][:-1])


# ------------------------------------------------------------------ the sender against the push service


async def test_push_service_decrypts_exactly_the_json_sent(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    commit = CommitLog(push_service)
    message = outgoing(subscription, subject="Checkout: degraded", text="Slow checkouts — we're on it.")
    await sender.send(message, commit)

    assert push_service.rejections == []
    [received] = push_service.messages
    assert received.plaintext == push_payload(message.subject, message.text, url=STATUS_URL)
    assert received.json() == {
        "title": "Checkout: degraded",
        "body": "Slow checkouts — we're on it.",
        "url": STATUS_URL,
    }
    assert received.subscription_id == subscription.id


async def test_request_headers_and_vapid_claims(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription, vapid_pem: str
) -> None:
    await sender.send(outgoing(subscription), CommitLog(push_service))

    [received] = push_service.messages
    assert received.claims == {
        "aud": push_service.url,
        "exp": int((START + timedelta(hours=12)).timestamp()),
        "sub": SUBJECT,
    }
    assert (
        received.k == application_server_key(vapid_keys_from_pem(vapid_pem)) == sender.application_server_key
    )
    request = received.request
    assert (request.header("Authorization") or "").startswith("vapid t=")
    assert request.header("TTL") == "86400"
    assert request.header("Content-Encoding") == "aes128gcm"
    assert request.header("Urgency") == "normal"
    assert request.header("Topic") is None


async def test_urgency_and_topic_from_message_headers(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    headers = {"urgency": "high", "Topic": "incident-42"}
    await sender.send(outgoing(subscription, headers=headers), CommitLog(push_service))
    request = push_service.messages[0].request
    assert request.header("Urgency") == "high"
    assert request.header("Topic") == "incident-42"


async def test_long_notice_arrives_truncated_within_the_limit(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    text = "Everything about the outage. " * 300
    await sender.send(outgoing(subscription, text=text), CommitLog(push_service))
    [received] = push_service.messages
    assert len(received.plaintext) <= MAX_PAYLOAD_BYTES
    assert received.json()["body"].endswith("…")
    assert text.startswith(received.json()["body"][:-1])


async def test_commit_is_called_once_before_the_post(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    commit = CommitLog(push_service)
    await sender.send(outgoing(subscription), commit)
    assert commit.requests_seen == [0]
    assert len(push_service.requests) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"target": "ftp://push.example/x"}, "not a valid http"),
        ({"target": "not a url"}, "not a valid http"),
        ({"keys": PushKeys(p256dh="AAAA", auth=RFC_AUTH)}, "subscription unusable"),
        ({"keys": PushKeys(p256dh=RFC_UA_PUBLIC, auth="AAAA")}, "subscription unusable"),
    ],
)
async def test_refused_before_commit_and_request(
    sender: WebPushSender,
    push_service: PushEndpoint,
    subscription: BrowserSubscription,
    change: dict[str, object],
    reason: str,
) -> None:
    commit = CommitLog(push_service)
    message = outgoing(subscription, **change)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed, match=reason) as failed:
        await sender.send(message, commit)
    assert failed.value.permanent and not failed.value.gone
    assert commit.requests_seen == []
    assert push_service.requests == []


async def test_missing_keys_refused_before_commit(sender: WebPushSender, push_service: PushEndpoint) -> None:
    commit = CommitLog(push_service)
    message = Outgoing(1, 1, "push", "everyone", "en", f"{push_service.url}/push/x", "s", "t", push_keys=None)
    with pytest.raises(DeliveryFailed, match="no keys"):
        await sender.send(message, commit)
    assert commit.requests_seen == []


async def test_http_endpoint_and_unknown_host_refused_by_default(
    vapid_pem: str, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    commit = CommitLog(push_service)
    strict = WebPushSender(vapid_pem, SUBJECT, httpx.AsyncClient())
    try:
        with pytest.raises(DeliveryFailed, match="not https"):
            await strict.send(outgoing(subscription), commit)
        https_internal = subscription.endpoint.replace("http://", "https://")
        with pytest.raises(DeliveryFailed, match="not a known push service"):
            await strict.send(outgoing(subscription, target=https_internal), commit)
        with pytest.raises(DeliveryFailed, match="not a known push service"):
            await strict.send(outgoing(subscription, target="https://fcm.googleapis.com.evil.test/x"), commit)
    finally:
        await strict.close()
    assert commit.requests_seen == []
    assert push_service.requests == []


async def test_known_push_service_subdomain_accepted() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201)

    sender = WebPushSender(
        generate_vapid_private_key_pem(), SUBJECT, httpx.AsyncClient(transport=httpx.MockTransport(answer))
    )
    keys = PushKeys(p256dh=RFC_UA_PUBLIC, auth=RFC_AUTH)
    endpoint = "https://updates.push.services.mozilla.com/wpush/v2/gAAAA"
    try:
        await sender.send(outgoing(None, target=endpoint, keys=keys), _noop_commit)
    finally:
        await sender.close()
    assert [str(r.url) for r in seen] == [endpoint]


async def _noop_commit() -> None:
    return None


async def test_gone_subscription(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    push_service.drop(subscription)
    commit = CommitLog(push_service)
    with pytest.raises(DeliveryFailed) as failed:
        await sender.send(outgoing(subscription), commit)
    assert failed.value.gone and failed.value.permanent
    assert commit.requests_seen == [0]


@pytest.mark.parametrize("status", [404, 410])
async def test_404_and_410_mean_gone(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription, status: int
) -> None:
    push_service.answer_next(status)
    with pytest.raises(DeliveryFailed) as failed:
        await sender.send(outgoing(subscription), CommitLog(push_service))
    assert failed.value.gone and failed.value.permanent


async def test_429_with_retry_after_is_retryable(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription
) -> None:
    push_service.answer_next(429, retry_after=120)
    with pytest.raises(IntegrationError) as failed:
        await sender.send(outgoing(subscription), CommitLog(push_service))
    assert failed.value.retryable
    assert failed.value.retry_after == 120
    assert failed.value.code == "429"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription, status: int
) -> None:
    push_service.answer_next(status)
    with pytest.raises(IntegrationError) as failed:
        await sender.send(outgoing(subscription), CommitLog(push_service))
    assert failed.value.retryable and failed.value.retry_after is None


@pytest.mark.parametrize("status", [400, 413])
async def test_bad_request_and_too_large_are_permanent(
    sender: WebPushSender, push_service: PushEndpoint, subscription: BrowserSubscription, status: int
) -> None:
    push_service.answer_next(status)
    with pytest.raises(DeliveryFailed) as failed:
        await sender.send(outgoing(subscription), CommitLog(push_service))
    assert failed.value.permanent and not failed.value.gone


async def test_subscription_made_with_another_vapid_key_is_permanent(
    sender: WebPushSender, push_service: PushEndpoint
) -> None:
    other_key = application_server_key(ec.generate_private_key(ec.SECP256R1()))
    stale = push_service.subscribe(other_key)
    with pytest.raises(DeliveryFailed, match="VAPID") as failed:
        await sender.send(outgoing(stale), CommitLog(push_service))
    assert failed.value.permanent and not failed.value.gone
    assert push_service.rejections == ["k is not the key this subscription was made with"]


async def test_connection_failure_is_retryable_and_not_raw_httpx() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sender = WebPushSender(
        generate_vapid_private_key_pem(),
        SUBJECT,
        httpx.AsyncClient(transport=httpx.MockTransport(refuse)),
        push_hosts=None,
    )
    committed: list[bool] = []

    async def commit() -> None:
        committed.append(True)

    keys = PushKeys(p256dh=RFC_UA_PUBLIC, auth=RFC_AUTH)
    try:
        with pytest.raises(IntegrationError, match="unreachable") as failed:
            await sender.send(outgoing(None, target="https://push.example/x", keys=keys), commit)
    finally:
        await sender.close()
    assert failed.value.retryable
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert committed == [True]


def test_retry_after_as_http_date() -> None:
    assert parse_retry_after("Mon, 30 Nov 2026 09:02:00 GMT", START) == 120
    assert parse_retry_after("Mon, 30 Nov 2026 08:00:00 GMT", START) == 0
    assert parse_retry_after("soon", START) is None
    assert parse_retry_after(None, START) is None
    assert parse_retry_after(" 30 ", START) == 30
