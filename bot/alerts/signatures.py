"""Authentication of incoming alert webhooks.

This module owns the checks that decide whether a webhook delivery really
comes from the configured source: PagerDuty's ``X-PagerDuty-Signature`` HMAC
over the raw body, and the shared bearer token that Opsgenie and Alertmanager
send. Every check raises ``InvalidRequest(..., status=401)`` on failure; the
reason names the header or setting at fault and never echoes a secret, a token
or the signature that was received, because reasons end up in logs and in the
HTTP answer.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Sequence

from bot.errors import InvalidRequest

PAGERDUTY_SIGNATURE_HEADER = "X-PagerDuty-Signature"

_HEX_DIGITS = frozenset(string.hexdigits)
_SHA256_HEX_LENGTH = hashlib.sha256().digest_size * 2


def verify_pagerduty_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> None:
    """Accept ``body`` only if ``header`` carries a v1 HMAC-SHA256 of it under one of ``secrets``.

    The header holds comma-separated ``v1=<hex>`` entries; PagerDuty sends one
    per active secret while a secret is being rotated, so any entry matching
    any secret is enough. Entries with another version prefix are ignored, so
    a future ``v2`` scheme does not break deliveries that still carry ``v1``.
    """
    usable_secrets = [secret for secret in secrets if secret]
    if not usable_secrets:
        # Without a secret every delivery would have to be trusted blindly;
        # refusing them makes the missing setting visible at once.
        raise InvalidRequest(
            "PAGERDUTY_WEBHOOK_SECRETS is not set; firebell refuses unsigned PagerDuty deliveries",
            status=401,
        )
    if header is None or not header.strip():
        raise InvalidRequest(f"missing {PAGERDUTY_SIGNATURE_HEADER} header", status=401)

    candidates = _v1_signatures(header)
    if not candidates:
        raise InvalidRequest(
            f"{PAGERDUTY_SIGNATURE_HEADER} header has no well-formed v1 signature",
            status=401,
        )

    expected = [
        hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().encode("ascii")
        for secret in usable_secrets
    ]
    for candidate in candidates:
        for digest in expected:
            if hmac.compare_digest(candidate, digest):
                return
    raise InvalidRequest(
        f"{PAGERDUTY_SIGNATURE_HEADER} does not match any configured secret",
        status=401,
    )


def _v1_signatures(header: str) -> list[bytes]:
    """The well-formed ``v1`` signatures in ``header``, lowercased, as bytes.

    Bytes rather than str because ``hmac.compare_digest`` raises TypeError on
    non-ASCII str, and a hostile header must give a 401, not a 500.
    """
    signatures: list[bytes] = []
    for entry in header.split(","):
        version, sep, value = entry.strip().partition("=")
        if not sep or version.strip().lower() != "v1":
            continue
        value = value.strip()
        if len(value) == _SHA256_HEX_LENGTH and all(c in _HEX_DIGITS for c in value):
            signatures.append(value.lower().encode("ascii"))
    return signatures


def verify_bearer(authorization: str | None, token: str | None, setting_name: str) -> None:
    """Accept only an ``Authorization: Bearer <token>`` header carrying ``token``.

    ``setting_name`` is the environment setting that holds the token (e.g.
    ``OPSGENIE_WEBHOOK_TOKEN``), named in the reason when it is not set.
    """
    if not token:
        # An unset token must not mean "anything goes".
        raise InvalidRequest(
            f"{setting_name} is not set; firebell refuses unauthenticated deliveries",
            status=401,
        )
    if authorization is None or not authorization.strip():
        raise InvalidRequest("missing Authorization header", status=401)
    scheme, _, presented = authorization.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise InvalidRequest("Authorization header is not a Bearer token", status=401)
    if not hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8")):
        raise InvalidRequest(f"bearer token does not match {setting_name}", status=401)
