"""PagerDuty signature and bearer-token checks."""

from __future__ import annotations

import pytest

from bot.alerts.signatures import verify_bearer, verify_pagerduty_signature
from bot.errors import InvalidRequest
from tests.samples import pagerduty_event, pagerduty_signature, to_body

BODY = to_body(pagerduty_event())
OLD_SECRET = "old-secret-6f1c2b0e"
NEW_SECRET = "new-secret-9a532f0a"


def reject_pagerduty(header: str | None, secrets: list[str]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        verify_pagerduty_signature(BODY, header, secrets)
    assert caught.value.status == 401
    return caught.value


def test_single_matching_signature_is_accepted() -> None:
    verify_pagerduty_signature(BODY, pagerduty_signature(BODY, NEW_SECRET), [NEW_SECRET])


def test_rotation_any_entry_may_match_any_secret() -> None:
    header = ",".join([pagerduty_signature(BODY, OLD_SECRET), pagerduty_signature(BODY, NEW_SECRET)])
    verify_pagerduty_signature(BODY, header, [NEW_SECRET])
    verify_pagerduty_signature(BODY, header, [OLD_SECRET])
    verify_pagerduty_signature(BODY, header, ["unrelated", NEW_SECRET])
    # And the other way round: one entry, two configured secrets.
    verify_pagerduty_signature(BODY, pagerduty_signature(BODY, OLD_SECRET), [NEW_SECRET, OLD_SECRET])


def test_spaces_uppercase_hex_and_other_versions_are_tolerated() -> None:
    signature = pagerduty_signature(BODY, NEW_SECRET)
    header = f"v2=abcdef, {signature.upper().replace('V1=', 'v1=')} "
    verify_pagerduty_signature(BODY, header, [NEW_SECRET])


def test_wrong_secret_is_rejected_without_leaking() -> None:
    header = pagerduty_signature(BODY, "attacker-guess")
    error = reject_pagerduty(header, [NEW_SECRET])
    assert "does not match" in error.reason
    assert NEW_SECRET not in error.reason
    assert header.removeprefix("v1=") not in error.reason


def test_tampered_body_is_rejected() -> None:
    header = pagerduty_signature(BODY, NEW_SECRET)
    with pytest.raises(InvalidRequest) as caught:
        verify_pagerduty_signature(BODY + b" ", header, [NEW_SECRET])
    assert caught.value.status == 401


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_rejected(header: str | None) -> None:
    error = reject_pagerduty(header, [NEW_SECRET])
    assert error.reason == "missing X-PagerDuty-Signature header"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=",
        "v1=not-hex-at-all",
        "v1=abc123",  # hex, but not a SHA-256 digest
        "v0=" + "a" * 64,  # only an unknown version
        "v1=" + "é" * 64,  # non-ASCII must give 401, not a TypeError
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    error = reject_pagerduty(header, [NEW_SECRET])
    assert "no well-formed v1 signature" in error.reason


@pytest.mark.parametrize("secrets", [[], [""]])
def test_no_configured_secret_refuses_everything(secrets: list[str]) -> None:
    error = reject_pagerduty(pagerduty_signature(BODY, NEW_SECRET), secrets)
    assert "PAGERDUTY_WEBHOOK_SECRETS is not set" in error.reason


def test_bearer_token_is_accepted() -> None:
    verify_bearer("Bearer s3cr3t-token", "s3cr3t-token", "OPSGENIE_WEBHOOK_TOKEN")
    verify_bearer("bearer  s3cr3t-token ", "s3cr3t-token", "OPSGENIE_WEBHOOK_TOKEN")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "Authorization header is not a Bearer token"),
        ("Bearer", "Authorization header is not a Bearer token"),
        (
            "Bearer wrong-token",
            "bearer token does not match ALERTMANAGER_WEBHOOK_TOKEN",
        ),
        ("Bearer tökén", "bearer token does not match ALERTMANAGER_WEBHOOK_TOKEN"),
    ],
)
def test_bad_bearer_is_rejected(authorization: str | None, reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        verify_bearer(authorization, "s3cr3t-token", "ALERTMANAGER_WEBHOOK_TOKEN")
    assert caught.value.status == 401
    assert caught.value.reason == reason
    assert "s3cr3t-token" not in caught.value.reason


@pytest.mark.parametrize("token", [None, ""])
def test_unset_token_refuses_everything(token: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        verify_bearer("Bearer anything", token, "OPSGENIE_WEBHOOK_TOKEN")
    assert caught.value.status == 401
    assert "OPSGENIE_WEBHOOK_TOKEN is not set" in caught.value.reason
