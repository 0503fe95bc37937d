"""A Web Push service for tests, checking what a real one and the browser check.

:class:`PushEndpoint` is a real HTTP server (``tests.fakes.base.FakeServer``:
aiohttp on 127.0.0.1, port 0, background thread). ``subscribe()`` plays the
browser: it makes a P-256 key pair and an auth secret and returns the endpoint
URL with the ``PushKeys`` a status page would store. For every POST the
service

* verifies the VAPID JWT (RFC 8292) with the ``k=`` key: ES256 signature,
  ``aud`` = this server's origin, ``exp`` in the future and at most 24 h
  ahead, ``sub`` a ``mailto:``/``https:`` URI; and, when the subscription was
  made with an application server key, that ``k`` is that key (403 if not);
* requires ``TTL`` and ``Content-Encoding: aes128gcm`` and a body of at most
  4,096 bytes (413 otherwise, as RFC 8030 services do);
* decrypts the body with the subscription's private key, following RFC 8291
  and RFC 8188 step by step with ``hmac`` (no HKDF class, nothing shared with
  ``bot.notices.webpush``), and records the plaintext.

Rejections answer 400/401/403 and are listed in ``rejections``; a subscription
the test ``drop``s answers 410; ``answer_next`` scripts 410/429/500… answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.clock import Clock, SystemClock
from bot.notices.model import PushKeys
from tests.fakes.base import FakeServer, RecordedRequest


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def point_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


class Refused(Exception):
    """Why the push service refuses a request; ``status`` is its answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ------------------------------------------------------------------ RFC 8291 decryption (the browser)


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def decrypt_aes128gcm(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """What the user agent does with a push message body (RFC 8291 + RFC 8188)."""
    # RFC 8188 section 2.1: salt(16) | rs(uint32) | idlen(uint8) | keyid(idlen) | records.
    if len(body) < 21:
        raise Refused(400, "body shorter than the aes128gcm header")
    salt = body[:16]
    rs = int.from_bytes(body[16:20], "big")
    idlen = body[20]
    keyid = body[21 : 21 + idlen]
    records = body[21 + idlen :]
    # RFC 8291 section 4: keyid is the application server's uncompressed P-256 key.
    if idlen != 65 or keyid[:1] != b"\x04":
        raise Refused(400, f"keyid is {idlen} bytes, not a 65-byte uncompressed point")
    if rs < 18:
        raise Refused(400, f"record size {rs} is below the RFC 8188 minimum")
    # RFC 8291 section 4: a push message is exactly one record.
    if not records or len(records) > rs:
        raise Refused(400, f"{len(records)} bytes of records do not form one record of rs={rs}")
    as_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), keyid)
    ua_public = point_bytes(ua_private.public_key())

    # RFC 8291 section 3.3: the shared secret.
    ecdh_secret = ua_private.exchange(ec.ECDH(), as_public)
    # RFC 8291 section 3.4, as the pseudocode there reads:
    #   PRK_key = HMAC-SHA-256(auth_secret, ecdh_secret)
    #   key_info = "WebPush: info" || 0x00 || ua_public || as_public
    #   IKM = HMAC-SHA-256(PRK_key, key_info || 0x01)
    prk_key = _hmac_sha256(auth_secret, ecdh_secret)
    key_info = b"WebPush: info\x00" + ua_public + keyid
    ikm = _hmac_sha256(prk_key, key_info + b"\x01")
    #   PRK = HMAC-SHA-256(salt, IKM)
    #   CEK = HMAC-SHA-256(PRK, "Content-Encoding: aes128gcm" || 0x00 || 0x01)[0..15]
    #   NONCE = HMAC-SHA-256(PRK, "Content-Encoding: nonce" || 0x00 || 0x01)[0..11]
    prk = _hmac_sha256(salt, ikm)
    cek = _hmac_sha256(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac_sha256(prk, b"Content-Encoding: nonce\x00\x01")[:12]

    # RFC 8188 section 2.3: record i uses NONCE XOR i; this is record 0.
    try:
        padded = AESGCM(cek).decrypt(nonce, records, None)
    except InvalidTag as exc:
        raise Refused(400, "AES-GCM authentication failed") from exc
    # RFC 8188 section 2: data | delimiter | zero padding; 0x02 marks the last record.
    unpadded = padded.rstrip(b"\x00")
    if not unpadded or unpadded[-1] != 0x02:
        raise Refused(400, "the single record lacks the 0x02 last-record delimiter")
    return unpadded[:-1]


# ------------------------------------------------------------------ RFC 8292 verification


def verify_vapid(authorization: str, *, audience: str, now: datetime) -> tuple[dict[str, Any], str]:
    """Check ``Authorization: vapid t=…, k=…``; returns (claims, k)."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(401, f"authorization scheme {scheme!r} is not vapid")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip().lower()] = value.strip()
    token, k = params.get("t"), params.get("k")
    if not token or not k:
        raise Refused(401, "vapid authorization lacks t= or k=")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(k))
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        signature = b64url_decode(signature_b64)
    except ValueError as exc:
        raise Refused(401, f"malformed VAPID token or key: {exc}") from exc
    if header.get("alg") != "ES256":
        raise Refused(401, f"JWT alg {header.get('alg')!r} is not ES256")
    if len(signature) != 64:
        raise Refused(401, "ES256 signature is not 64 bytes (r||s)")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Refused(401, "VAPID signature does not verify with k") from exc
    if claims.get("aud") != audience:
        raise Refused(401, f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int):
        raise Refused(401, "exp is missing or not an integer")
    if exp <= now.timestamp():
        raise Refused(401, "the VAPID token has expired")
    if exp > (now + timedelta(hours=24)).timestamp():
        raise Refused(401, "exp is more than 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise Refused(401, f"sub {sub!r} is not a mailto: or https: URI")
    return claims, k


# ------------------------------------------------------------------ the service


@dataclass(frozen=True)
class BrowserSubscription:
    """What the browser holds (private key) and what it tells the server (endpoint, keys)."""

    id: str
    endpoint: str
    keys: PushKeys
    private_key: ec.EllipticCurvePrivateKey
    application_server_key: str | None


@dataclass(frozen=True)
class PushMessage:
    """One accepted push: decrypted and VAPID-verified."""

    subscription_id: str
    plaintext: bytes
    claims: dict[str, Any]
    k: str
    request: RecordedRequest

    def json(self) -> Any:
        return json.loads(self.plaintext)


class PushEndpoint(FakeServer):
    def __init__(self, *, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock: Clock = clock or SystemClock()
        self._subscriptions: dict[str, tuple[BrowserSubscription, bytes]] = {}
        self._dropped: set[str] = set()
        self._messages: list[PushMessage] = []
        self._rejections: list[str] = []

    def subscribe(self, application_server_key: str | None = None) -> BrowserSubscription:
        """A new browser subscription, like ``pushManager.subscribe`` returns."""
        private = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(12)
        subscription = BrowserSubscription(
            id=sub_id,
            endpoint=f"{self.url}/push/{sub_id}",
            keys=PushKeys(p256dh=b64url_encode(point_bytes(private.public_key())), auth=b64url_encode(auth)),
            private_key=private,
            application_server_key=application_server_key,
        )
        with self._lock:
            self._subscriptions[sub_id] = (subscription, auth)
        return subscription

    def drop(self, subscription: BrowserSubscription) -> None:
        """The user unsubscribed: the endpoint answers 410 from now on."""
        with self._lock:
            self._dropped.add(subscription.id)

    def answer_next(self, status: int, *, retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next push(es) with ``status`` instead of accepting them."""
        self.fail_next("POST /push/*", status=status, retry_after=retry_after, times=times)

    @property
    def messages(self) -> list[PushMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def rejections(self) -> list[str]:
        with self._lock:
            return list(self._rejections)

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        try:
            return self._accept(request)
        except Refused as refused:
            self._rejections.append(refused.reason)
            return web.json_response({"error": refused.reason}, status=refused.status)

    def _accept(self, request: RecordedRequest) -> web.StreamResponse:
        prefix = "/push/"
        if request.method != "POST" or not request.path.startswith(prefix):
            raise Refused(404, f"no route {request.method} {request.path}")
        sub_id = request.path[len(prefix) :]
        if sub_id in self._dropped:
            return web.json_response({"error": "subscription expired"}, status=410)
        if sub_id not in self._subscriptions:
            raise Refused(404, f"unknown subscription {sub_id}")
        subscription, auth = self._subscriptions[sub_id]

        claims, k = verify_vapid(
            request.header("Authorization") or "", audience=self.url, now=self._clock.now()
        )
        if subscription.application_server_key is not None and k != subscription.application_server_key:
            raise Refused(403, "k is not the key this subscription was made with")
        ttl = request.header("TTL")
        if ttl is None or not ttl.isdigit():
            raise Refused(400, f"TTL header missing or invalid: {ttl!r}")
        if request.header("Content-Encoding") != "aes128gcm":
            raise Refused(400, f"Content-Encoding is {request.header('Content-Encoding')!r}")
        if len(request.raw) > 4096:
            raise Refused(413, f"body of {len(request.raw)} bytes exceeds 4096")
        plaintext = decrypt_aes128gcm(request.raw, subscription.private_key, auth)
        self._messages.append(
            PushMessage(subscription_id=sub_id, plaintext=plaintext, claims=claims, k=k, request=request)
        )
        return web.Response(status=201, headers={"Location": f"{self.url}/message/{len(self._messages)}"})
