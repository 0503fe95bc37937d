"""Settings: the one module that reads the environment and ``firebell.toml``.

Secrets and endpoints come from environment variables (the names are part of
the external contract); the shape of the deployment (services, grouping,
severity mapping, channel naming) comes from ``firebell.toml``, whose path is
``FIREBELL_CONFIG`` or ``./firebell.toml`` when that file exists.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigurationError
from bot.notices.config import NoticesConfig
from bot.runbooks.config import RunbooksConfig

DEFAULT_CONFIG_FILE = "firebell.toml"


class ServiceConfig(BaseModel):
    """Per-service choices: channel privacy, who is invited besides on-call,
    and how the service is paged when an incident is declared or escalated."""

    model_config = {"extra": "forbid"}

    private: bool = False
    slack_users: list[str] = Field(default_factory=list)
    slack_usergroups: list[str] = Field(default_factory=list)
    opsgenie_schedule: str | None = None
    opsgenie_team: str | None = None
    opsgenie_escalation: str | None = None
    pagerduty_service_id: str | None = None
    pagerduty_escalation_policy: str | None = None

    @property
    def pageable(self) -> bool:
        """Whether firebell knows where to page this service."""
        return bool(self.pagerduty_service_id or self.opsgenie_team)


class SlackConfig(BaseModel):
    model_config = {"extra": "forbid"}

    channel_prefix: str = "inc"
    incidents_channel: str | None = None

    @field_validator("channel_prefix")
    @classmethod
    def _prefix_is_slack_safe(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
        if not value or not set(value) <= allowed or len(value) > 20:
            raise ValueError(
                "channel_prefix must be 1-20 characters of lowercase letters, digits, '-' or '_'"
            )
        return value


class GroupingConfig(BaseModel):
    """Folds alert storms: a new alert for a service that already has an open
    incident opened within ``window_minutes`` joins that incident."""

    model_config = {"extra": "forbid"}

    window_minutes: float = 0.0
    by: list[str] = Field(default_factory=lambda: ["service"])

    @field_validator("by")
    @classmethod
    def _known_keys(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"service", "source"}
        if unknown:
            raise ValueError(f"grouping.by accepts 'service' and 'source', not {sorted(unknown)}")
        return value


class WorkConfig(BaseModel):
    model_config = {"extra": "forbid"}

    concurrency: int = Field(default=16, ge=1, le=256)
    poll_seconds: float = Field(default=1.0, gt=0)
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    lease_seconds: float = Field(default=30.0, ge=1)
    # /incident commands acknowledged but still at work; more are refused at once.
    max_commands_in_flight: int = Field(default=64, ge=1, le=10_000)


class UpdatesConfig(BaseModel):
    """Status-update cadence and reminders."""

    model_config = {"extra": "forbid"}

    # Minutes between internal status updates per severity ("1" = SEV1); 0 = none.
    cadence_minutes: dict[str, float] = Field(
        default_factory=lambda: {"1": 15.0, "2": 30.0, "3": 60.0, "4": 0.0}
    )
    snooze_minutes: float = Field(default=10.0, gt=0)
    digest: bool = False
    unacknowledged_nudge_minutes: float = Field(default=10.0, ge=0)
    tick_seconds: float = Field(default=15.0, gt=0)

    @field_validator("cadence_minutes")
    @classmethod
    def _severities(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - {"1", "2", "3", "4"}
        if unknown:
            raise ValueError(f"cadence_minutes keys are severities 1-4, not {sorted(unknown)}")
        if any(minutes < 0 for minutes in value.values()):
            raise ValueError("cadence_minutes values must be 0 (no updates) or more")
        return value

    def cadence(self, severity: int) -> float:
        """Minutes between updates for ``severity``; 0 means no reminders."""
        return float(self.cadence_minutes.get(str(severity), 0.0))


class PermissionsConfig(BaseModel):
    """Who may do what: Slack user group ids; an empty list means everyone."""

    model_config = {"extra": "forbid"}

    declare: list[str] = Field(default_factory=list)
    resolve: list[str] = Field(default_factory=list)
    severity: list[str] = Field(default_factory=list)


class LogConfig(BaseModel):
    model_config = {"extra": "forbid"}

    json_format: bool = Field(default=False, alias="json")
    level: str = "INFO"


_DURATION_TEXT = re.compile(r"^\s*(\d+(\.\d+)?(ms|s|m|h|d)?\s*)+$")


class ResourceThresholdsConfig(BaseModel):
    """``[diagnostics.resources]``: when ``diag resources`` turns figures into warnings (percent)."""

    model_config = {"extra": "forbid"}

    cpu_busy_pct: float = Field(default=90.0, gt=0, le=100)
    load_per_core: float = Field(default=1.5, gt=0)
    memory_available_pct: float = Field(default=10.0, ge=0, le=100)
    swap_used_pct: float = Field(default=50.0, ge=0, le=100)
    disk_used_pct: float = Field(default=90.0, gt=0, le=100)
    inodes_used_pct: float = Field(default=90.0, gt=0, le=100)
    fds_used_pct: float = Field(default=80.0, gt=0, le=100)


_LOG_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SSH_PREFIX = "ssh://"
# ssh://[user@]host[:port]/absolute/path — the path is taken literally (no
# percent-decoding, no shell): it goes to the server as one SFTP file name.
_SSH_SOURCE = re.compile(
    r"^ssh://(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/.*)$",
    re.DOTALL,
)


class SshLogSource(BaseModel):
    """One remote log file (or glob) from a ``log_sources`` ``ssh://`` entry."""

    model_config = {"frozen": True}

    user: str | None
    host: str
    port: int
    path: str

    @property
    def label(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


def parse_ssh_source(entry: str) -> SshLogSource:
    """``ssh://[user@]host[:port]/path`` → its parts; ``ValueError`` with a clear message otherwise."""
    match = _SSH_SOURCE.match(entry)
    if not match:
        raise ValueError(f"{entry!r} is not ssh://[user@]host[:port]/absolute/path")
    path = match["path"]
    if "\x00" in path or "\n" in path or path.startswith("//"):
        raise ValueError(f"{entry!r}: the remote path must be a plain absolute path")
    port = int(match["port"] or 22)
    if not 0 < port < 65536:
        raise ValueError(f"{entry!r}: port must be 1-65535")
    return SshLogSource(user=match["user"], host=match["host"].strip("[]"), port=port, path=path)


class DiagnosticsConfig(BaseModel):
    """Guard for diagnostics asked for from Slack (``/incident diag``).

    Slack is guarded by default: loopback, private, link-local and cloud
    metadata addresses are refused. ``allow_hosts`` (``example.com``,
    ``*.example.com``) restricts probes to matching hosts when non-empty;
    ``allow_cidrs`` opens address ranges (internal services) that would
    otherwise be refused. The command line (``firebell diag``) trusts its
    operator and takes the same rules as flags instead.
    """

    model_config = {"extra": "forbid"}

    allow_hosts: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_count: int = Field(default=50, ge=1, le=1000)

    # diag timeouts / resources: defaults for the command-line flags.
    app_timeout: str | None = None
    app_keepalive_timeout: str | None = None
    nginx_config: str | None = None
    haproxy_config: str | None = None
    prometheus_url: str | None = None
    resources: ResourceThresholdsConfig = Field(default_factory=ResourceThresholdsConfig)
    log_sources: dict[str, list[str]] = Field(default_factory=dict)
    """``/incident diag logs NAME``: access logs by name (files or globs), set by
    the operator. Slack users pick a name; they never give a path. An entry may
    also be ``ssh://[user@]host[:port]/absolute/path`` for a log on a remote host."""
    ssh_known_hosts: str | None = None
    """known_hosts file that ``ssh://`` log sources' host keys are checked against
    (default ``~/.ssh/known_hosts``); hosts not listed there are refused."""
    ssh_key_file: str | None = None
    """Private key for ``ssh://`` log sources; without it the SSH agent and the
    default keys in ``~/.ssh`` are tried."""

    @field_validator("log_sources")
    @classmethod
    def _log_sources(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, paths in value.items():
            if not _LOG_SOURCE_NAME.match(name):
                raise ValueError(
                    f"log_sources: {name!r} must be a name such as web or api-eu (letters, digits, - _ .)"
                )
            if not paths:
                raise ValueError(f"log_sources.{name}: list at least one file or glob")
            for path in paths:
                if path.startswith(SSH_PREFIX):
                    try:
                        parse_ssh_source(path)
                    except ValueError as exc:
                        raise ValueError(f"log_sources.{name}: {exc}") from None
            bad = [path for path in paths if not path.startswith(SSH_PREFIX) and not os.path.isabs(path)]
            if bad:
                raise ValueError(f"log_sources.{name}: paths must be absolute, not {bad}")
        return value

    @field_validator("app_timeout", "app_keepalive_timeout")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION_TEXT.match(value):
            raise ValueError(f"{value!r} is not a duration such as 90s, 1m30s or 1500ms")
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _host_patterns(cls, value: list[str]) -> list[str]:
        label = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
        pattern = re.compile(rf"^(\*\.)?{label}(\.{label})*\.?$")
        bad = [host for host in value if not pattern.match(host.strip().lower())]
        if bad:
            raise ValueError(f"allow_hosts entries must look like example.com or *.example.com, not {bad}")
        return value

    @field_validator("allow_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"allow_cidrs: {cidr!r} is not a network such as 10.0.0.0/8") from exc
        return value


class FirebellConfig(BaseModel):
    """The contents of ``firebell.toml``."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    slack: SlackConfig = Field(default_factory=SlackConfig)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    severity: dict[str, dict[str, int]] = Field(default_factory=dict)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    work: WorkConfig = Field(default_factory=WorkConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    updates: UpdatesConfig = Field(default_factory=UpdatesConfig)
    permissions: PermissionsConfig = Field(default_factory=PermissionsConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    runbooks: RunbooksConfig = Field(default_factory=RunbooksConfig)
    notices: NoticesConfig = Field(default_factory=NoticesConfig)

    def service(self, name: str) -> ServiceConfig:
        return self.services.get(name) or ServiceConfig()


def _csv(value: object) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part) for part in value]
    return []


class Settings(BaseSettings):
    """Environment settings; every name is part of the external contract."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    slack_bot_token: str | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")

    database_url: str | None = Field(default=None, validation_alias="FIREBELL_DATABASE_URL")
    config_file: str | None = Field(default=None, validation_alias="FIREBELL_CONFIG")
    public_url: str | None = Field(default=None, validation_alias="FIREBELL_PUBLIC_URL")

    pagerduty_api_token: str | None = Field(default=None, validation_alias="PAGERDUTY_API_TOKEN")
    pagerduty_from_email: str | None = Field(default=None, validation_alias="PAGERDUTY_FROM_EMAIL")
    pagerduty_webhook_secrets: str | None = Field(default=None, validation_alias="PAGERDUTY_WEBHOOK_SECRETS")
    pagerduty_api_url: str = Field(default="https://api.pagerduty.com", validation_alias="PAGERDUTY_API_URL")

    opsgenie_api_key: str | None = Field(default=None, validation_alias="OPSGENIE_API_KEY")
    opsgenie_webhook_token: str | None = Field(default=None, validation_alias="OPSGENIE_WEBHOOK_TOKEN")
    opsgenie_api_url: str = Field(default="https://api.opsgenie.com", validation_alias="OPSGENIE_API_URL")

    alertmanager_webhook_token: str | None = Field(
        default=None, validation_alias="ALERTMANAGER_WEBHOOK_TOKEN"
    )

    uptimerobot_api_key: str | None = Field(default=None, validation_alias="UPTIMEROBOT_API_KEY")
    uptimerobot_api_url: str = Field(
        default="https://api.uptimerobot.com/v2", validation_alias="UPTIMEROBOT_API_URL"
    )
    pingdom_api_token: str | None = Field(default=None, validation_alias="PINGDOM_API_TOKEN")
    pingdom_api_url: str = Field(
        default="https://api.pingdom.com/api/3.1", validation_alias="PINGDOM_API_URL"
    )
    statuscake_api_token: str | None = Field(default=None, validation_alias="STATUSCAKE_API_TOKEN")
    statuscake_api_url: str = Field(
        default="https://api.statuscake.com/v1", validation_alias="STATUSCAKE_API_URL"
    )

    smtp_url: str | None = Field(default=None, validation_alias="FIREBELL_SMTP_URL")
    email_from: str | None = Field(default=None, validation_alias="FIREBELL_EMAIL_FROM")

    ssl_cert_file: str | None = Field(default=None, validation_alias="SSL_CERT_FILE")
    log_json: bool | None = Field(default=None, validation_alias=AliasChoices("FIREBELL_LOG_JSON"))
    log_level: str | None = Field(default=None, validation_alias="FIREBELL_LOG_LEVEL")

    config: FirebellConfig = Field(default_factory=FirebellConfig, exclude=True)
    environ: dict[str, str] = Field(
        default_factory=dict, exclude=True, validation_alias="__firebell_environ__"
    )
    """The environment these settings were read from: where named runbook secrets are looked up."""

    @property
    def pagerduty_secrets(self) -> list[str]:
        return _csv(self.pagerduty_webhook_secrets)

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_bot_token)

    @property
    def pagerduty_configured(self) -> bool:
        return bool(self.pagerduty_api_token)

    @property
    def opsgenie_configured(self) -> bool:
        return bool(self.opsgenie_api_key)


def read_config_file(path: Path) -> FirebellConfig:
    """Parse and validate ``firebell.toml``; problems become ``ConfigurationError``."""
    try:
        with path.open("rb") as handle:
            raw: dict[str, Any] = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return FirebellConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as one readable line: ``where: what; where: what``."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from ``environ`` (default: the process environment)."""
    env = dict(os.environ if environ is None else environ)
    try:
        settings = Settings.model_validate(env)
    except ValidationError as exc:
        raise ConfigurationError(f"environment: {_describe(exc)}") from exc
    config_path = settings.config_file or (
        DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).exists() else None
    )
    if config_path is not None:
        settings.config = read_config_file(Path(config_path))
    settings.environ = env
    return settings
