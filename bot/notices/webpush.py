"""Browser Web Push: the ``push`` channel's sender and the cryptography it needs.

This module owns the whole path from a rendered push notice to the push
service's answer, with no Web Push library:

* payload encryption as RFC 8291 specifies, in the ``aes128gcm`` content coding
  of RFC 8188 (one record, ECDH P-256 + HKDF-SHA256 + AES-128-GCM);
* VAPID (RFC 8292): the ES256 JWT and the ``Authorization: vapid`` header;
* VAPID key helpers for operators and the status page's subscribe script;
* :class:`WebPushSender`, which maps the push service's answers onto the
  outbox's ``DeliveryFailed`` / ``IntegrationError``.

Encryption and signing are value-in/value-out functions (salt, server key and
time are injectable), so they are tested against the RFC's published example.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Final
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.clock import Clock, SystemClock
from bot.diagnostics.headers import header_value, parse_retry_after
from bot.errors import ConfigurationError, IntegrationError
from bot.notices.model import UNSUBSCRIBE_MARK, Outgoing, PushKeys
from bot.notices.sender import Commit, DeliveryFailed

__all__ = [
    "DEFAULT_TTL",
    "KNOWN_PUSH_SERVICES",
    "MAX_PAYLOAD_BYTES",
    "RECORD_SIZE",
    "WebPushSender",
    "application_server_key",
    "encrypt_payload",
    "generate_vapid_private_key_pem",
    "push_payload",
    "vapid_audience",
    "vapid_authorization",
    "vapid_keys_from_pem",
    "vapid_token",
]

RECORD_SIZE: Final = 4096
"""The ``rs`` written in the header. Push services accept bodies up to 4,096
bytes (RFC 8030 section 7.2), so one record always holds the whole payload."""
MAX_PAYLOAD_BYTES: Final = 3800
"""Plaintext JSON limit: 3,800 + padding delimiter + tag + 86-byte header stays under 4,096."""
DEFAULT_TTL: Final = 86_400
"""Seconds a push service keeps an undelivered notice; a day-old incident notice is stale."""
VAPID_LIFETIME: Final = timedelta(hours=12)
"""JWT lifetime: RFC 8292 caps ``exp`` at 24 h; half of it leaves room for clock skew."""
KNOWN_PUSH_SERVICES: Final[tuple[str, ...]] = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Opera, Brave, Samsung Internet
    "push.services.mozilla.com",  # Firefox (updates.push.services.mozilla.com)
    "notify.windows.com",  # Edge on Windows (*.notify.windows.com)
    "push.apple.com",  # Safari (web.push.apple.com)
)
"""Hosts (and their subdomains) endpoints may point at by default. Endpoints
arrive from the public subscribe form, so without a list anyone could make
firebell POST to an internal address."""

_P256_POINT_LEN: Final = 65
_AUTH_LEN: Final = 16
_SALT_LEN: Final = 16
_TAG_LEN: Final = 16
_TITLE_LIMIT: Final = 200
_ELLIPSIS: Final = "…"
_URGENCIES: Final = frozenset({"very-low", "low", "normal", "high"})
_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SUBJECT_RE: Final = re.compile(r"(mailto:\S+@\S+|https://\S+)")
_REASON_LIMIT: Final = 200


# ---------------------------------------------------------------- base64url


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    """Decode base64url with or without padding (browsers omit it, some libraries add it)."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


# ---------------------------------------------------------------- RFC 8291 / RFC 8188


def _public_bytes(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt_payload(
    plaintext: bytes,
    keys: PushKeys,
    *,
    server_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
    record_size: int = RECORD_SIZE,
) -> bytes:
    """Encrypt ``plaintext`` for a subscription: the ``aes128gcm`` body to POST.

    ``server_key`` (the ephemeral application-server key pair) and ``salt`` are
    fresh random values unless given; give them only to reproduce a known
    vector, since reusing either repeats the AES-GCM key and nonce.
    Raises ``ValueError`` for unusable subscription keys or an oversized payload.
    """
    try:
        ua_public_bytes = _unb64url(keys.p256dh)
        auth_secret = _unb64url(keys.auth)
    except ValueError as exc:
        raise ValueError("p256dh or auth is not base64url") from exc
    if len(ua_public_bytes) != _P256_POINT_LEN or ua_public_bytes[0] != 0x04:
        raise ValueError("p256dh is not an uncompressed P-256 point")
    if len(auth_secret) != _AUTH_LEN:
        raise ValueError(f"auth is {len(auth_secret)} bytes, not {_AUTH_LEN}")
    try:
        ua_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public_bytes)
    except ValueError as exc:
        raise ValueError("p256dh is not a point on P-256") from exc
    salt = os.urandom(_SALT_LEN) if salt is None else salt
    if len(salt) != _SALT_LEN:
        raise ValueError(f"salt must be {_SALT_LEN} bytes")
    # One record: the plaintext, the 0x02 "last record" delimiter and the tag must fit in rs.
    if len(plaintext) + 1 + _TAG_LEN > record_size:
        raise ValueError(f"payload of {len(plaintext)} bytes does not fit one {record_size}-byte record")
    server_key = ec.generate_private_key(ec.SECP256R1()) if server_key is None else server_key
    as_public_bytes = _public_bytes(server_key)

    # RFC 8291 section 3.4: the ECDH secret, keyed by the auth secret, gives the IKM ...
    ecdh_secret = server_key.exchange(ec.ECDH(), ua_public)
    key_info = b"WebPush: info\x00" + ua_public_bytes + as_public_bytes
    ikm = _hkdf(auth_secret, ecdh_secret, key_info, 32)
    # ... and RFC 8188 section 2.2/2.3 derive the content key and nonce from it with the salt.
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    # Record 0's nonce is the derived nonce XOR 0, i.e. the nonce itself.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)

    header = salt + struct.pack("!IB", record_size, len(as_public_bytes)) + as_public_bytes
    return header + ciphertext


# ---------------------------------------------------------------- VAPID (RFC 8292)


def generate_vapid_private_key_pem() -> str:
    """A new VAPID private key (P-256, PKCS#8 PEM) for ``vapid_private_key_secret``."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii")


def vapid_keys_from_pem(pem: str) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key from the secret (its public half is the application server key).

    Accepts an unencrypted PEM (PKCS#8 or SEC1 ``EC PRIVATE KEY``) or, for keys
    made by other Web Push libraries, the raw 32-byte private value in base64url.
    Raises ``ConfigurationError`` for anything else.
    """
    text = pem.strip()
    if not text:
        raise ConfigurationError("vapid_private_key_secret: the secret is empty")
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
            raise ConfigurationError("vapid_private_key_secret: not an unencrypted PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError("vapid_private_key_secret: VAPID needs a P-256 (prime256v1) EC key")
        return key
    try:
        raw = _unb64url(text)
    except ValueError as exc:
        raise ConfigurationError("vapid_private_key_secret: neither PEM nor base64url") from exc
    if len(raw) != 32:
        raise ConfigurationError("vapid_private_key_secret: a raw key must be 32 bytes of base64url")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise ConfigurationError("vapid_private_key_secret: not a valid P-256 private value") from exc


def application_server_key(private: ec.EllipticCurvePrivateKey) -> str:
    """The public key (uncompressed point, base64url) that browsers subscribe with
    (``pushManager.subscribe({applicationServerKey})``) and ``k=`` carries."""
    return _b64url(_public_bytes(private))


def vapid_audience(endpoint: str) -> str:
    """The JWT ``aud``: the endpoint's origin (scheme, host, non-default port)."""
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ValueError("endpoint is not an http(s) URL")
    port = parts.port  # ValueError for a malformed port
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def vapid_token(
    private: ec.EllipticCurvePrivateKey,
    audience: str,
    subject: str,
    *,
    now: datetime,
    lifetime: timedelta = VAPID_LIFETIME,
) -> str:
    """The ES256 JWT of RFC 8292 section 2: ``aud``, ``exp`` (≤ 24 h ahead) and ``sub``."""
    if not timedelta(0) < lifetime <= timedelta(hours=24):
        raise ValueError("a VAPID token must expire within 24 hours")
    header = {"typ": "JWT", "alg": "ES256"}
    claims = {"aud": audience, "exp": int((now + lifetime).timestamp()), "sub": subject}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = private.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    # JWS wants the raw r||s (32 bytes each), not the DER that cryptography returns.
    r, s = decode_dss_signature(der)
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def vapid_authorization(
    private: ec.EllipticCurvePrivateKey, endpoint: str, subject: str, *, now: datetime
) -> str:
    """The ``Authorization`` header value: ``vapid t=<jwt>, k=<public key>``."""
    token = vapid_token(private, vapid_audience(endpoint), subject, now=now)
    return f"vapid t={token}, k={application_server_key(private)}"


# ---------------------------------------------------------------- payload


def push_payload(title: str, body: str, *, url: str | None, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The JSON the status page's service worker shows: ``{"title", "body", "url"}``.

    The title is cut at 200 characters and the body as far as needed (ending
    in "…") for the UTF-8 JSON to stay within ``limit`` bytes.
    """
    title = " ".join(title.split())
    if len(title) > _TITLE_LIMIT:
        title = title[: _TITLE_LIMIT - 1].rstrip() + _ELLIPSIS

    def encode(text: str) -> bytes:
        return json.dumps({"title": title, "body": text, "url": url}, ensure_ascii=False).encode()

    whole = encode(body)
    if len(whole) <= limit:
        return whole
    if len(encode(_ELLIPSIS)) > limit:
        raise ValueError("the push payload does not fit even with an empty body")
    # JSON escaping makes bytes per character uneven, so search the longest prefix that fits.
    low, high = 0, len(body)
    while low < high:
        middle = (low + high + 1) // 2
        if len(encode(body[:middle].rstrip() + _ELLIPSIS)) <= limit:
            low = middle
        else:
            high = middle - 1
    return encode(body[:low].rstrip() + _ELLIPSIS)


# ---------------------------------------------------------------- answers


def _service_says(response: httpx.Response) -> str:
    """A short excerpt of the push service's explanation for error reasons."""
    text = " ".join(response.text.split())
    return f": {text[:_REASON_LIMIT]}" if text else ""


# ---------------------------------------------------------------- sender


@dataclass(frozen=True)
class _Endpoint:
    url: str
    origin: str


class WebPushSender:
    """Delivers ``push`` notices to browser subscriptions (see ``docs/notices/push.md``).

    ``private_key_pem`` and ``subject`` are the VAPID key and contact
    (``mailto:`` or ``https:``). The sender owns ``client``: ``close`` closes it.
    Endpoints must be ``https`` on one of ``push_hosts`` (``None`` lifts the host
    check; ``allow_http`` allows plain http, both for tests and self-hosted
    push services). ``url`` is what a click on the notification opens (the
    status page). ``Urgency`` and ``Topic`` in ``Outgoing.headers`` override
    the defaults per message.
    """

    channel: ClassVar[str] = "push"

    def __init__(
        self,
        private_key_pem: str,
        subject: str,
        client: httpx.AsyncClient,
        *,
        url: str | None = None,
        clock: Clock | None = None,
        ttl: int = DEFAULT_TTL,
        urgency: str = "normal",
        allow_http: bool = False,
        push_hosts: Collection[str] | None = KNOWN_PUSH_SERVICES,
    ) -> None:
        self._key = vapid_keys_from_pem(private_key_pem)
        if not _SUBJECT_RE.fullmatch(subject.strip()):
            raise ConfigurationError("vapid_subject: must be a mailto: address or an https: URL (RFC 8292)")
        if urgency not in _URGENCIES:
            raise ConfigurationError(f"push urgency must be one of {sorted(_URGENCIES)}")
        if ttl < 0:
            raise ConfigurationError("push TTL must be zero or more seconds")
        if url is not None and len(url) > 1000:
            raise ConfigurationError("the push click URL is longer than 1,000 characters")
        self._subject = subject.strip()
        self._client = client
        self._url = url
        self._clock: Clock = clock or SystemClock()
        self._ttl = ttl
        self._urgency = urgency
        self._allow_http = allow_http
        self._push_hosts = None if push_hosts is None else tuple(h.lower().strip(".") for h in push_hosts)

    @property
    def application_server_key(self) -> str:
        """The key the status page's subscribe script passes to ``pushManager.subscribe``."""
        return application_server_key(self._key)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, message: Outgoing, commit: Commit) -> None:
        endpoint = self._check_endpoint(message.target)
        if message.push_keys is None:
            raise DeliveryFailed("push subscription has no keys (p256dh, auth)", permanent=True)
        text = message.text.replace(UNSUBSCRIBE_MARK, message.unsubscribe_url or "")
        try:
            payload = push_payload(message.subject, text, url=self._url)
            body = encrypt_payload(payload, message.push_keys)
        except ValueError as exc:
            # Keys that do not decode or lie off the curve will never work; the
            # subscription stays (gone=False) in case the fault is ours.
            raise DeliveryFailed(f"push subscription unusable: {exc}", permanent=True) from exc
        now = self._clock.now()
        headers = {
            "Authorization": vapid_authorization(self._key, endpoint.url, self._subject, now=now),
            "TTL": str(self._ttl),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": self._urgency_for(message),
        }
        topic = header_value(message.headers, "Topic")
        if topic is not None and _TOPIC_RE.fullmatch(topic):
            headers["Topic"] = topic

        await commit()
        try:
            response = await self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise IntegrationError(
                f"push service {endpoint.origin} unreachable ({type(exc).__name__})", retryable=True
            ) from exc
        self._check_answer(response, endpoint, now)

    def _urgency_for(self, message: Outgoing) -> str:
        wanted = header_value(message.headers, "Urgency")
        return wanted if wanted in _URGENCIES else self._urgency

    def _check_endpoint(self, target: str) -> _Endpoint:
        """Refuse, before anything is committed, endpoints we must not or cannot POST to."""
        try:
            origin = vapid_audience(target)
            parsed = httpx.URL(target)
        except (ValueError, httpx.InvalidURL) as exc:
            raise DeliveryFailed("push endpoint is not a valid http(s) URL", permanent=True) from exc
        if parsed.scheme != "https" and not self._allow_http:
            raise DeliveryFailed(f"push endpoint {origin} is not https", permanent=True)
        if parsed.userinfo:
            raise DeliveryFailed(f"push endpoint {origin} carries credentials", permanent=True)
        host = parsed.host.lower().rstrip(".")
        if self._push_hosts is not None and not any(
            host == allowed or host.endswith("." + allowed) for allowed in self._push_hosts
        ):
            raise DeliveryFailed(f"push endpoint {origin} is not a known push service", permanent=True)
        return _Endpoint(url=target, origin=origin)

    def _check_answer(self, response: httpx.Response, endpoint: _Endpoint, now: datetime) -> None:
        status = response.status_code
        if 200 <= status < 300:  # RFC 8030 says 201; some services answer 200 or 202
            return
        where = f"push service {endpoint.origin} answered {status}"
        if status in (404, 410):
            raise DeliveryFailed(f"{where}: the subscription is gone", permanent=True, gone=True)
        if status in (401, 403):
            raise DeliveryFailed(
                f"{where}: VAPID credentials refused (was the VAPID key changed after this browser "
                f"subscribed?){_service_says(response)}",
                permanent=True,
            )
        if status == 413:
            raise DeliveryFailed(f"{where}: payload too large", permanent=True)
        if status == 429 or status >= 500 or status in (408, 425):
            raise IntegrationError(
                f"{where}{_service_says(response)}",
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("Retry-After"), now),
                code=str(status),
            )
        raise DeliveryFailed(f"{where}{_service_says(response)}", permanent=True)
