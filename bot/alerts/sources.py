"""The alert sources firebell accepts webhooks from: each checks its
signature or token over the raw body, then parses the body into events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.alerts.alertmanager import parse_alertmanager
from bot.alerts.event import AlertEvent
from bot.alerts.opsgenie import app_url_for, parse_opsgenie
from bot.alerts.pagerduty import parse_pagerduty
from bot.alerts.signatures import verify_bearer, verify_pagerduty_signature
from bot.settings import Settings

Headers = Mapping[str, str]


@dataclass(frozen=True)
class AlertSource:
    """One webhook source: ``verify`` raises ``InvalidRequest`` (401),
    ``parse`` raises ``InvalidRequest`` (400) or returns the events."""

    name: str
    verify: Callable[[bytes, Headers], None]
    parse: Callable[[bytes, Headers], list[AlertEvent]]


def alert_sources(settings: Settings) -> dict[str, AlertSource]:
    secrets = settings.pagerduty_secrets
    opsgenie_token = settings.opsgenie_webhook_token
    alertmanager_token = settings.alertmanager_webhook_token
    opsgenie_app = app_url_for(settings.opsgenie_api_url)
    return {
        "pagerduty": AlertSource(
            "pagerduty",
            lambda body, headers: verify_pagerduty_signature(
                body, headers.get("x-pagerduty-signature"), secrets
            ),
            lambda body, headers: parse_pagerduty(body, headers.get("x-webhook-id")),
        ),
        "opsgenie": AlertSource(
            "opsgenie",
            lambda _body, headers: verify_bearer(
                headers.get("authorization"), opsgenie_token, "OPSGENIE_WEBHOOK_TOKEN"
            ),
            lambda body, _headers: parse_opsgenie(body, opsgenie_app),
        ),
        "alertmanager": AlertSource(
            "alertmanager",
            lambda _body, headers: verify_bearer(
                headers.get("authorization"), alertmanager_token, "ALERTMANAGER_WEBHOOK_TOKEN"
            ),
            lambda body, _headers: parse_alertmanager(body),
        ),
    }
