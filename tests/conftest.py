"""Shared fixtures: the fake SaaS servers, TLS material and a firebell factory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FakeOpsgenie, FakePagerDuty, FakeSlack, TlsMaterial, make_tls
from tests.harness import FirebellServer
from tests.samples import pagerduty_signature

pytest_plugins = ["tests.postgres"]

PD_SECRET = "pd-webhook-secret"
OPSGENIE_TOKEN = "og-webhook-token"
ALERTMANAGER_TOKEN = "am-webhook-token"
SLACK_SIGNING_SECRET = "slack-signing-secret"
PD_FROM = "firebell-bot@acme.test"


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def pagerduty(tls: TlsMaterial) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls=tls) as fake:
        fake.add_user(PD_FROM, "firebell bot")
        yield fake


@pytest.fixture
def opsgenie() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie() as fake:
        yield fake


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_toml(path: Path, config: dict[str, dict[str, Any]]) -> Path:
    """A firebell.toml from nested dicts (tables with dotted names allowed)."""
    lines: list[str] = []
    for table, values in config.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def firebell_env(
    tmp_path: Path, slack: FakeSlack, pagerduty: FakePagerDuty, opsgenie: FakeOpsgenie, tls: TlsMaterial
) -> Callable[..., dict[str, str]]:
    """Environment for a firebell wired to the fakes; keyword args add or
    override variables, ``config=`` gives extra firebell.toml tables."""

    def make(config: dict[str, dict[str, Any]] | None = None, **overrides: str) -> dict[str, str]:
        tables: dict[str, dict[str, Any]] = {
            "work": {"poll_seconds": 0.1, "max_backoff_seconds": 1, "lease_seconds": 2}
        }
        for table, values in (config or {}).items():
            tables.setdefault(table, {}).update(values)
        env = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            "SLACK_API_URL": f"{slack.url}/api/",
            "FIREBELL_DATABASE_URL": f"sqlite:///{tmp_path / 'firebell.db'}",
            "FIREBELL_CONFIG": str(write_toml(tmp_path / "firebell.toml", tables)),
            "PAGERDUTY_API_TOKEN": "pd-test-token",
            "PAGERDUTY_FROM_EMAIL": PD_FROM,
            "PAGERDUTY_WEBHOOK_SECRETS": PD_SECRET,
            "PAGERDUTY_API_URL": pagerduty.url,
            "OPSGENIE_API_KEY": "og-test-key",
            "OPSGENIE_WEBHOOK_TOKEN": OPSGENIE_TOKEN,
            "OPSGENIE_API_URL": opsgenie.url,
            "ALERTMANAGER_WEBHOOK_TOKEN": ALERTMANAGER_TOKEN,
            "SSL_CERT_FILE": str(tls.ca_file),
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v != ""}

    return make


@pytest.fixture
def start_firebell() -> Iterator[Callable[[dict[str, str]], FirebellServer]]:
    """Start firebell servers; all are stopped at the end of the test."""
    started: list[FirebellServer] = []

    def start(env: dict[str, str]) -> FirebellServer:
        server = FirebellServer(env).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


def send_pagerduty(
    firebell: FirebellServer | str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str = PD_SECRET,
    webhook_id: str | None = None,
) -> httpx.Response:
    """POST a PagerDuty v3 delivery, signed as PagerDuty signs it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": pagerduty_signature(body, secret)}
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    url = firebell if isinstance(firebell, str) else firebell.url
    return httpx.post(f"{url}/webhooks/pagerduty", content=body, headers=headers, timeout=10)


def send_bearer(
    firebell: FirebellServer | str, source: str, payload: dict[str, Any] | bytes, token: str
) -> httpx.Response:
    """POST an Opsgenie or Alertmanager delivery with its bearer token."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    url = firebell if isinstance(firebell, str) else firebell.url
    return httpx.post(
        f"{url}/webhooks/{source}",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=10,
    )
