"""``[runbooks]`` in ``firebell.toml``: where runbooks live and what they may touch.

Runbooks name targets (a host, a Docker endpoint, a cluster, an HAProxy
socket, a CDN account, a maintenance site, a backup source) by the names
given here; addresses, sockets and credentials stay in configuration, and
credentials are named secrets (see ``bot.runbooks.secrets``), never values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class _Strict(BaseModel):
    model_config = {"extra": "forbid"}


class SshHost(_Strict):
    """A host of the inventory, reached over SSH (``ssh``, ``systemd``, remote
    ``maintenance`` and ``db_backup``). Host keys are always verified."""

    address: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str
    key_file: str | None = None
    """Private key file; without it the SSH agent is used."""
    known_hosts: str | None = None
    """known_hosts file (default ``~/.ssh/known_hosts``); unknown hosts are refused."""
    services: list[str] = Field(default_factory=list)
    """firebell services this host serves: a ``host`` parameter offers only these for such an incident."""


class DockerEndpoint(_Strict):
    """A Docker Engine API: ``unix:///var/run/docker.sock`` or ``https://host:2376``."""

    url: str = "unix:///var/run/docker.sock"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class KubernetesCluster(_Strict):
    """A cluster from a kubeconfig (``kubeconfig`` + ``context``) or, with
    ``in_cluster``, the pod's service account."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    namespace: str = "default"


class HAProxyRuntime(_Strict):
    """HAProxy's runtime API: a Unix socket path or ``tcp://host:port``."""

    socket: str


class CdnAccount(_Strict):
    provider: Literal["cloudflare", "fastly", "cloudfront"]
    token_secret: str | None = None
    """Secret holding the API token (Cloudflare, Fastly)."""
    access_key_secret: str | None = None
    """CloudFront: secrets holding the AWS access key id and secret key."""
    secret_key_secret: str | None = None
    zone_id: str | None = None
    """Cloudflare zone."""
    service_id: str | None = None
    """Fastly service."""
    distribution_id: str | None = None
    """CloudFront distribution."""
    api_url: str | None = None
    """Overrides the provider's API base URL (a proxy, or a test server)."""
    failover: dict[str, str] = Field(default_factory=dict)
    """Provider-specific names for failing over to a backup origin, e.g.
    Cloudflare ``load_balancer_id``, ``primary_pool``, ``backup_pool``."""


class MaintenanceSite(_Strict):
    """A maintenance flag file that the shipped nginx/Apache snippet checks."""

    flag_file: str
    host: str | None = None
    """Inventory host when the flag lives on another machine (set over SSH)."""


class BackupSource(_Strict):
    engine: Literal["postgresql", "mysql", "mongodb"]
    path: str
    """The backup file, or a directory/glob of them (the newest is checked)."""
    host: str | None = None
    """Inventory host when the backups live on another machine."""
    scratch_url: str | None = None
    """A server to restore into a scratch database for checking; never production."""
    checks: list[str] = Field(default_factory=list)
    """Read-only queries that must return at least one row after the restore."""
    max_age_hours: float = Field(default=26, gt=0)


class AutomationRule(_Strict):
    """Run ``runbook`` when a matching incident opens (all its steps must be automation-safe)."""

    runbook: str
    source: str | None = None
    service: str | None = None
    severity: list[int] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)


class RunbooksConfig(_Strict):
    paths: list[str] = Field(default_factory=list)
    """Directories (or files) of runbooks besides the shipped ``runbooks/``."""
    include_shipped: bool = True
    secrets_dir: str | None = None
    """Directory of secret files (one file per secret name); the environment is tried first."""
    approvers: dict[str, list[str]] = Field(default_factory=dict)
    """Approver role → Slack user group handles or IDs, e.g. ``sre = ["S0123ABC"]``."""
    hosts: dict[str, SshHost] = Field(default_factory=dict)
    docker: dict[str, DockerEndpoint] = Field(default_factory=dict)
    kubernetes: dict[str, KubernetesCluster] = Field(default_factory=dict)
    haproxy: dict[str, HAProxyRuntime] = Field(default_factory=dict)
    cdn: dict[str, CdnAccount] = Field(default_factory=dict)
    maintenance: dict[str, MaintenanceSite] = Field(default_factory=dict)
    backups: dict[str, BackupSource] = Field(default_factory=dict)
    automation: list[AutomationRule] = Field(default_factory=list)
    browser_executable: str = "/usr/bin/chromium"
    """Chromium for ``smoke`` browser journeys (Debian's package by default)."""
    step_output_chars: int = Field(default=200_000, ge=1000)
    """Output kept per step (the rest is cut, marked as cut)."""
