"""A small Kubernetes API client for runbook steps.

It owns how firebell reaches a cluster (a kubeconfig context, or the pod's
service account when it runs in-cluster), the checks on namespaces and names
(DNS-1123) that keep anything but a name out of the URL path, and four
operations on a deployment, statefulset or daemonset:

* ``rollout restart`` exactly as ``kubectl rollout restart`` does it (a
  strategic merge patch setting ``kubectl.kubernetes.io/restartedAt`` on the
  pod template);
* the rollout-status decision ``kubectl rollout status`` makes, and waiting for it;
* ``scale`` through the ``/scale`` subresource;
* the state of the workload's pods (phase, readiness, restarts, node, and
  reasons such as ``CrashLoopBackOff``), as ``kubectl get pods`` shows it.

Every httpx or HTTP failure leaves as ``UserError`` (no such workload, an
unusable kubeconfig) or ``IntegrationError``. The ``kubernetes`` step kind
(``bot.runbooks.steps.kubernetes``) is its only caller inside firebell.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import httpx
import yaml

from bot.diagnostics.ssrf import is_loopback_host
from bot.errors import IntegrationError, UserError
from bot.runbooks.config import KubernetesCluster

WorkloadKind = Literal["deployment", "statefulset", "daemonset"]
WORKLOAD_KINDS: tuple[WorkloadKind, ...] = ("deployment", "statefulset", "daemonset")
_RESOURCES: dict[str, str] = {
    "deployment": "deployments",
    "statefulset": "statefulsets",
    "daemonset": "daemonsets",
}
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def validate_namespace(value: str) -> str:
    """``value`` when it is a valid namespace (a DNS-1123 label), else ``UserError``."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise UserError(f"{value!r} is not a valid namespace (lowercase letters, digits and '-', at most 63)")
    return value


def validate_name(value: str) -> str:
    """``value`` when it is a valid workload name (a DNS-1123 subdomain), else ``UserError``."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise UserError(
            f"{value!r} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)"
        )
    return value


def _kind(kind: str) -> str:
    resource = _RESOURCES.get(kind)
    if resource is None:
        raise UserError(f"workload kind must be one of {', '.join(WORKLOAD_KINDS)}, not {kind!r}")
    return resource


def rfc3339(moment: datetime) -> str:
    """``moment`` as Go's ``time.RFC3339`` prints a UTC time: ``2024-05-01T10:00:00Z``."""
    if moment.tzinfo is None:
        raise ValueError("rfc3339 needs an aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- reaching a cluster ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterConnection:
    """Where a cluster's API is and how to authenticate to it."""

    name: str
    server: str
    ssl_context: ssl.SSLContext
    token: str | None = None
    namespace: str | None = None
    """The kubeconfig context's (or service account's) namespace, when it names one."""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _named(doc: Mapping[str, Any], section: str, name: str, key: str, where: str) -> dict[str, Any]:
    for entry in _list(doc.get(section)):
        if isinstance(entry, dict) and entry.get("name") == name:
            return _dict(entry.get(key))
    raise UserError(f"{where} has no {key} named {name!r}")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _b64(value: str, what: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{where}: {what} is not valid base64") from None


def _check_server(server: str, where: str) -> str:
    url = urlsplit(server)
    if url.scheme == "https" and url.hostname:
        return server.rstrip("/")
    if url.scheme == "http" and url.hostname and is_loopback_host(url.hostname):
        # Plain HTTP only to this machine (``kubectl proxy``): credentials never cross a network.
        return server.rstrip("/")
    raise UserError(f"{where}: server {server!r} must be an https:// URL")


def _tls_context(
    *,
    where: str,
    ca_file: Path | None,
    ca_data: bytes | None,
    cert: tuple[Path | None, bytes | None],
    key: tuple[Path | None, bytes | None],
    fallback: ssl.SSLContext | None,
) -> ssl.SSLContext:
    cert_file, cert_data = cert
    key_file, key_data = key
    has_cert = cert_file is not None or cert_data is not None
    has_key = key_file is not None or key_data is not None
    if has_cert != has_key:
        raise UserError(f"{where}: a client certificate needs its key (and a key its certificate)")
    try:
        if ca_file is None and ca_data is None and not has_cert:
            return fallback or ssl.create_default_context()
        if ca_file is not None:
            context = ssl.create_default_context(cafile=str(ca_file))
        elif ca_data is not None:
            context = ssl.create_default_context(cadata=ca_data.decode("ascii"))
        else:
            context = ssl.create_default_context()
        if has_cert:
            _load_client_cert(context, cert_file, cert_data, key_file, key_data)
    except (OSError, ssl.SSLError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: cannot load its TLS certificates: {exc}") from exc
    return context


def _load_client_cert(
    context: ssl.SSLContext,
    cert_file: Path | None,
    cert_data: bytes | None,
    key_file: Path | None,
    key_data: bytes | None,
) -> None:
    if cert_data is None and key_data is None and cert_file and key_file:
        context.load_cert_chain(str(cert_file), str(key_file))
        return
    # The ssl module loads client certificates only from files: inline data
    # goes into a private (0700) directory that is gone once loaded.
    with tempfile.TemporaryDirectory(prefix="firebell-kube-") as scratch:
        if cert_data is not None:
            cert_file = Path(scratch) / "client.crt"
            cert_file.write_bytes(cert_data)
        if key_data is not None:
            key_file = Path(scratch) / "client.key"
            key_file.touch(mode=0o600)
            key_file.write_bytes(key_data)
        assert cert_file is not None and key_file is not None
        context.load_cert_chain(str(cert_file), str(key_file))


def load_kubeconfig(
    path: str | Path,
    context: str | None = None,
    *,
    name: str | None = None,
    fallback_ssl: ssl.SSLContext | None = None,
) -> ClusterConnection:
    """The cluster, user and namespace of ``context`` (default: ``current-context``) in ``path``.

    Supports ``server``, ``certificate-authority(-data)``,
    ``client-certificate(-data)``/``client-key(-data)`` and ``token``/``tokenFile``;
    relative paths are relative to the kubeconfig's directory, as kubectl
    resolves them. ``insecure-skip-tls-verify``, exec plugins, auth providers
    and basic auth are refused with ``UserError``. ``fallback_ssl`` is the
    trust used when the cluster names no certificate authority.
    """
    path = Path(path).expanduser()
    where = f"kubeconfig {path}"
    try:
        doc = yaml.safe_load(_read_text(path, "kubeconfig"))
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{where} is not a kubeconfig (no mapping at the top)")
    context_name = context or _str(doc.get("current-context"))
    if not context_name:
        raise UserError(f"{where} has no current-context: set `context` for this cluster")
    ctx = _named(doc, "contexts", context_name, "context", where)
    cluster_name = _str(ctx.get("cluster"))
    if not cluster_name:
        raise UserError(f"{where}: context {context_name!r} names no cluster")
    cluster = _named(doc, "clusters", cluster_name, "cluster", where)
    user_name = _str(ctx.get("user"))
    user = _named(doc, "users", user_name, "user", where) if user_name else {}
    where = f"{where}, context {context_name!r}"

    if cluster.get("insecure-skip-tls-verify") is True:
        raise UserError(
            f"{where}: cluster {cluster_name!r} sets insecure-skip-tls-verify; firebell always "
            "verifies the API server's certificate: give certificate-authority(-data) instead"
        )
    for unsupported, hint in (
        ("exec", "exec credential plugins"),
        ("auth-provider", "auth providers"),
        ("username", "basic authentication"),
    ):
        if user.get(unsupported):
            raise UserError(
                f"{where}: user {user_name!r} uses {hint}, which firebell does not support; "
                "give it a service-account token (token/tokenFile) or a client certificate"
            )
    server = _check_server(_str(cluster.get("server")), where)
    base = path.parent

    def file(value: object) -> Path | None:
        return (base / value).expanduser() if isinstance(value, str) and value else None

    def data(section: Mapping[str, Any], key: str) -> bytes | None:
        value = section.get(key)
        return _b64(value, key, where) if isinstance(value, str) and value else None

    ssl_context = _tls_context(
        where=where,
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=data(cluster, "certificate-authority-data"),
        cert=(file(user.get("client-certificate")), data(user, "client-certificate-data")),
        key=(file(user.get("client-key")), data(user, "client-key-data")),
        fallback=fallback_ssl,
    )
    token = _str(user.get("token")) or None
    token_file = file(user.get("tokenFile"))
    if token is None and token_file is not None:
        token = _read_text(token_file, "token file").strip() or None
    namespace = _str(ctx.get("namespace")) or None
    return ClusterConnection(name or context_name, server, ssl_context, token, namespace)


def load_in_cluster(
    environ: Mapping[str, str],
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    *,
    name: str = "in-cluster",
) -> ClusterConnection:
    """The API server as a pod sees it: ``KUBERNETES_SERVICE_HOST``/``_PORT`` from
    ``environ`` (or, when neither is given, ``kubernetes.default.svc:443``), and
    the service account's ``token``, ``ca.crt`` and ``namespace`` files."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host and not port:
        host, port = "kubernetes.default.svc", "443"
    elif not host or not port:
        raise UserError(
            "in-cluster Kubernetes needs both KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"
        )
    if not port.isdigit():
        raise UserError(f"KUBERNETES_SERVICE_PORT {port!r} is not a port number")
    if ":" in host:
        host = f"[{host}]"
    directory = Path(service_account_dir)
    token = _read_text(directory / "token", "service account token").strip()
    if not token:
        raise UserError(f"the service account token {directory / 'token'} is empty")
    ca = directory / "ca.crt"
    if not ca.is_file():
        raise UserError(f"the service account CA {ca} does not exist")
    ssl_context = _tls_context(
        where="in-cluster service account",
        ca_file=ca,
        ca_data=None,
        cert=(None, None),
        key=(None, None),
        fallback=None,
    )
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text(encoding="utf-8").strip() if namespace_file.is_file() else None
    return ClusterConnection(name, f"https://{host}:{port}", ssl_context, token, namespace or None)


def cluster_connection(
    name: str,
    cluster: KubernetesCluster,
    *,
    environ: Mapping[str, str],
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    fallback_ssl: ssl.SSLContext | None = None,
) -> ClusterConnection:
    """How to reach the configured cluster ``name``: in-cluster, or its kubeconfig
    (default: the first file in ``KUBECONFIG``, else ``~/.kube/config``)."""
    if cluster.in_cluster:
        if cluster.kubeconfig or cluster.context:
            raise UserError(f"kubernetes cluster {name}: in_cluster excludes kubeconfig and context")
        return load_in_cluster(environ, service_account_dir, name=name)
    path = cluster.kubeconfig
    if not path:
        path = next((p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p), "~/.kube/config")
    return load_kubeconfig(path, cluster.context, name=name, fallback_ssl=fallback_ssl)


# --- what the API says, as values --------------------------------------------------------------


@dataclass(frozen=True)
class RolloutStatus:
    """``kubectl rollout status``'s verdict on one workload object."""

    done: bool
    message: str
    failed: bool = False
    """Waiting will not help: the progress deadline passed, or the strategy has no rollout status."""
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0

    def counts(self) -> str:
        return f"{self.updated}/{self.desired} updated, {self.ready} ready, {self.available} available"


def _verdict(
    counts: tuple[int, int, int, int], done: bool, message: str, *, failed: bool = False
) -> RolloutStatus:
    desired, updated, ready, available = counts
    return RolloutStatus(done, message, failed, desired, updated, ready, available)


def rollout_status(kind: str, obj: Mapping[str, Any]) -> RolloutStatus:
    """Whether the workload's rollout is complete, decided as ``kubectl rollout status`` decides."""
    name = _str(_dict(obj.get("metadata")).get("name"))
    generation = _int(_dict(obj.get("metadata")).get("generation"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    observed = _int(status.get("observedGeneration"))
    if kind == "deployment":
        return _deployment_status(name, generation, observed, spec, status)
    if kind == "statefulset":
        return _statefulset_status(name, generation, observed, spec, status)
    if kind == "daemonset":
        return _daemonset_status(name, generation, observed, spec, status)
    raise UserError(f"workload kind must be one of {', '.join(WORKLOAD_KINDS)}, not {kind!r}")


def _deployment_status(
    name: str, generation: int, observed: int, spec: dict[str, Any], status: dict[str, Any]
) -> RolloutStatus:
    desired = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"))
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    counts = (desired, updated, _int(status.get("readyReplicas")), available)
    if generation > observed:
        return _verdict(counts, False, "waiting for deployment spec update to be observed")
    for condition in _list(status.get("conditions")):
        condition = _dict(condition)
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return _verdict(counts, False, f'deployment "{name}" exceeded its progress deadline', failed=True)
    if updated < desired:
        message = f"{updated} out of {desired} new replicas have been updated"
        return _verdict(counts, False, message)
    if replicas > updated:
        return _verdict(counts, False, f"{replicas - updated} old replicas are pending termination")
    if available < updated:
        return _verdict(counts, False, f"{available} of {updated} updated replicas are available")
    return _verdict(counts, True, f'deployment "{name}" successfully rolled out')


def _statefulset_status(
    name: str, generation: int, observed: int, spec: dict[str, Any], status: dict[str, Any]
) -> RolloutStatus:
    desired = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    updated = _int(status.get("updatedReplicas"))
    counts = (desired, updated, ready, _int(status.get("availableReplicas"), ready))
    strategy = _dict(spec.get("updateStrategy"))
    if _str(strategy.get("type")) not in ("", "RollingUpdate"):
        return _verdict(
            counts, False, "rollout status is only available for RollingUpdate strategy type", failed=True
        )
    if observed == 0 or generation > observed:
        return _verdict(counts, False, "waiting for statefulset spec update to be observed")
    if ready < desired:
        return _verdict(counts, False, f"waiting for {desired - ready} pods to be ready")
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, dict):
        partition = rolling.get("partition")
        if isinstance(partition, int) and updated < desired - partition:
            message = f"waiting for partitioned roll out to finish: {updated} out of {desired - partition}"
            return _verdict(counts, False, message + " new pods have been updated")
        return _verdict(counts, True, f"partitioned roll out complete: {updated} new pods have been updated")
    update_revision = _str(status.get("updateRevision"))
    if update_revision != _str(status.get("currentRevision")):
        message = (
            f"waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}"
        )
        return _verdict(counts, False, message)
    current = _int(status.get("currentReplicas"))
    return _verdict(
        counts, True, f"statefulset rolling update complete {current} pods at revision {update_revision}"
    )


def _daemonset_status(
    name: str, generation: int, observed: int, spec: dict[str, Any], status: dict[str, Any]
) -> RolloutStatus:
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    counts = (desired, updated, _int(status.get("numberReady")), available)
    if _str(_dict(spec.get("updateStrategy")).get("type")) not in ("", "RollingUpdate"):
        return _verdict(
            counts, False, "rollout status is only available for RollingUpdate strategy type", failed=True
        )
    if generation > observed:
        return _verdict(counts, False, "waiting for daemon set spec update to be observed")
    if updated < desired:
        return _verdict(counts, False, f"{updated} out of {desired} new pods have been updated")
    if available < desired:
        return _verdict(counts, False, f"{available} of {desired} updated pods are available")
    return _verdict(counts, True, f'daemon set "{name}" successfully rolled out')


def label_selector(selector: Mapping[str, Any]) -> str:
    """A workload's ``spec.selector`` (matchLabels and matchExpressions) as a ``labelSelector`` query."""
    parts = [f"{key}={value}" for key, value in sorted(_dict(selector.get("matchLabels")).items())]
    for expression in _list(selector.get("matchExpressions")):
        expression = _dict(expression)
        key = _str(expression.get("key"))
        operator = expression.get("operator")
        values = ",".join(str(v) for v in _list(expression.get("values")))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


@dataclass(frozen=True)
class PodState:
    """One pod as ``kubectl get pods -o wide`` shows it, with the reasons behind its state."""

    name: str
    phase: str
    status: str
    """kubectl's STATUS column: Running, Pending, CrashLoopBackOff, OOMKilled, Terminating…"""
    ready: int
    containers: int
    restarts: int
    node: str
    reasons: tuple[str, ...]
    """Per container: waiting/terminated reasons and messages, and the last termination."""

    @property
    def is_ready(self) -> bool:
        return self.status == "Running" and self.containers > 0 and self.ready == self.containers

    def facts(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "ready": f"{self.ready}/{self.containers}",
            "restarts": self.restarts,
            "node": self.node,
        }


def pod_state(pod: Mapping[str, Any]) -> PodState:
    """A ``PodState`` from a pod object (follows kubectl's printer for the STATUS column)."""
    metadata = _dict(pod.get("metadata"))
    spec = _dict(pod.get("spec"))
    status = _dict(pod.get("status"))
    phase = _str(status.get("phase")) or "Unknown"
    shown = _str(status.get("reason")) or phase
    reasons: list[str] = []
    restarts = 0
    initializing = False
    init_statuses = [_dict(c) for c in _list(status.get("initContainerStatuses"))]
    for index, container in enumerate(init_statuses):
        restarts += _int(container.get("restartCount"))
        state = _dict(container.get("state"))
        terminated = _dict(state.get("terminated"))
        waiting = _dict(state.get("waiting"))
        if terminated and _int(terminated.get("exitCode")) == 0:
            continue
        initializing = True
        if terminated:
            shown = "Init:" + (
                _str(terminated.get("reason")) or f"ExitCode:{_int(terminated.get('exitCode'))}"
            )
        elif waiting and _str(waiting.get("reason")) not in ("", "PodInitializing"):
            shown = "Init:" + _str(waiting.get("reason"))
        else:
            shown = f"Init:{index}/{len(_list(spec.get('initContainers')))}"
        reasons.extend(_container_reasons(container, init=True))
        break
    statuses = [_dict(c) for c in _list(status.get("containerStatuses"))]
    ready = 0
    if not initializing:
        restarts = 0
        has_running = False
        for container in reversed(statuses):
            restarts += _int(container.get("restartCount"))
            state = _dict(container.get("state"))
            waiting = _dict(state.get("waiting"))
            terminated = _dict(state.get("terminated"))
            if _str(waiting.get("reason")):
                shown = _str(waiting.get("reason"))
            elif terminated:
                shown = _str(terminated.get("reason")) or f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif container.get("ready") is True and "running" in state:
                has_running = True
                ready += 1
        if shown == "Completed" and has_running:
            shown = "Running" if _pod_ready(status) else "NotReady"
        for container in statuses:
            reasons.extend(_container_reasons(container, init=False))
    if metadata.get("deletionTimestamp"):
        shown = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return PodState(
        name=_str(metadata.get("name")),
        phase=phase,
        status=shown,
        ready=ready,
        containers=len(_list(spec.get("containers"))) or len(statuses),
        restarts=restarts,
        node=_str(spec.get("nodeName")) or "-",
        reasons=tuple(reasons),
    )


def _pod_ready(status: Mapping[str, Any]) -> bool:
    return any(
        _dict(c).get("type") == "Ready" and _dict(c).get("status") == "True"
        for c in _list(status.get("conditions"))
    )


def _container_reasons(container: Mapping[str, Any], *, init: bool) -> list[str]:
    name = ("init " if init else "") + _str(container.get("name"))
    state = _dict(container.get("state"))
    found: list[str] = []
    for key in ("waiting", "terminated"):
        detail = _dict(state.get(key))
        reason = _str(detail.get("reason"))
        if reason and reason not in ("ContainerCreating", "PodInitializing", "Completed"):
            text = f"{name}: {reason}"
            if key == "terminated":
                text += f" (exit {_int(detail.get('exitCode'))})"
            message = _str(detail.get("message")).strip()
            found.append(f"{text} — {message[:300]}" if message else text)
    last = _dict(_dict(container.get("lastState")).get("terminated"))
    if last and (_str(last.get("reason")) or _int(last.get("exitCode"))):
        found.append(
            f"{name}: last terminated {_str(last.get('reason')) or 'Error'} "
            f"(exit {_int(last.get('exitCode'))})"
        )
    return found


def format_pods(pods: Sequence[PodState]) -> str:
    """A table of pods, each followed by the reasons behind its state."""
    if not pods:
        return "(no pods)"
    header = ("NAME", "READY", "STATUS", "RESTARTS", "NODE")
    rows = [(p.name, f"{p.ready}/{p.containers}", p.status, str(p.restarts), p.node) for p in pods]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines: list[str] = []
    for row, pod in zip([header, *rows], [None, *pods], strict=True):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if pod is not None:
            lines.extend(f"    {reason}" for reason in pod.reasons)
    return "\n".join(lines)


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutWait:
    done: bool
    status: RolloutStatus
    workload: dict[str, Any]
    """The workload object last read."""
    elapsed: float
    reason: str
    """Why the wait ended: ``done``, ``failed`` or ``timeout``."""


class KubernetesClient:
    """One cluster's API. Use ``async with`` so the connection is closed."""

    def __init__(
        self,
        connection: ClusterConnection,
        *,
        timeout: float = 30.0,
        poll_interval: float = 2.0,
    ) -> None:
        self.name = connection.name
        self._poll = poll_interval
        headers = {"Accept": "application/json", "User-Agent": "firebell"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        # trust_env=False: proxy variables must not reroute the cluster's credentials.
        self._client = httpx.AsyncClient(
            base_url=connection.server,
            verify=connection.ssl_context,
            headers=headers,
            timeout=timeout,
            trust_env=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @staticmethod
    def workload_path(kind: str, namespace: str, name: str) -> str:
        """``/apis/apps/v1/namespaces/{namespace}/{resource}/{name}``, with every part checked."""
        resource = _kind(kind)
        return f"/apis/apps/v1/namespaces/{validate_namespace(namespace)}/{resource}/{validate_name(name)}"

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The deployment, statefulset or daemonset object."""
        path = self.workload_path(kind, namespace, name)
        return await self._json("GET", path, f"{kind} {name} in namespace {namespace}")

    async def rollout_restart(self, kind: str, namespace: str, name: str, *, now: datetime) -> dict[str, Any]:
        """``kubectl rollout restart``: stamp the pod template with ``restartedAt``.

        Returns the patched object.

        A paused deployment is refused, as kubectl refuses it.
        """
        path = self.workload_path(kind, namespace, name)
        what = f"{kind} {name} in namespace {namespace}"
        current = await self._json("GET", path, what)
        if kind == "deployment" and _dict(current.get("spec")).get("paused") is True:
            raise UserError(f"can't restart paused deployment {name} (run rollout resume first)")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: rfc3339(now)}}}}}
        return await self._json("PATCH", path, what, json=patch, content_type=STRATEGIC_MERGE_PATCH)

    async def rollout_status(
        self, kind: str, namespace: str, name: str
    ) -> tuple[RolloutStatus, dict[str, Any]]:
        """The rollout verdict now, and the workload object it was made from."""
        workload = await self.get_workload(kind, namespace, name)
        return rollout_status(kind, workload), workload

    async def wait_for_rollout(
        self, kind: str, namespace: str, name: str, *, wait_seconds: float
    ) -> RolloutWait:
        """Poll until the rollout completes, cannot complete, or ``wait_seconds`` pass (0: look once)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            status, workload = await self.rollout_status(kind, namespace, name)
            elapsed = loop.time() - started
            if status.done:
                return RolloutWait(True, status, workload, elapsed, "done")
            if status.failed:
                return RolloutWait(False, status, workload, elapsed, "failed")
            if elapsed + self._poll > wait_seconds:
                return RolloutWait(False, status, workload, elapsed, "timeout")
            await asyncio.sleep(self._poll)

    async def get_scale(self, kind: str, namespace: str, name: str) -> int:
        """The workload's desired replicas, from its ``/scale`` subresource."""
        path = self._scale_path(kind, namespace, name)
        scale = await self._json("GET", path, f"{kind} {name} in namespace {namespace}")
        return _int(_dict(scale.get("spec")).get("replicas"))

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> int:
        """Set the desired replicas (merge patch on ``/scale``); returns what the cluster now wants."""
        if not isinstance(replicas, int) or replicas < 0:
            raise UserError("replicas must be a whole number ≥ 0")
        path = self._scale_path(kind, namespace, name)
        scale = await self._json(
            "PATCH",
            path,
            f"{kind} {name} in namespace {namespace}",
            json={"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
        )
        return _int(_dict(scale.get("spec")).get("replicas"), replicas)

    async def pods(
        self, kind: str, namespace: str, name: str, *, workload: Mapping[str, Any] | None = None
    ) -> list[PodState]:
        """The pods the workload's selector matches (``workload``: an object already read)."""
        if workload is None:
            workload = await self.get_workload(kind, namespace, name)
        selector = label_selector(_dict(_dict(workload.get("spec")).get("selector")))
        if not selector:
            raise IntegrationError(f"{kind} {name} has no pod selector", retryable=False)
        body = await self._json(
            "GET",
            f"/api/v1/namespaces/{validate_namespace(namespace)}/pods",
            f"pods of {kind} {name} in namespace {namespace}",
            params={"labelSelector": selector},
        )
        pods = [pod_state(_dict(item)) for item in _list(body.get("items"))]
        return sorted(pods, key=lambda pod: pod.name)

    def _scale_path(self, kind: str, namespace: str, name: str) -> str:
        if kind == "daemonset":
            raise UserError("a daemonset runs one pod per matching node: it cannot be scaled")
        return self.workload_path(kind, namespace, name) + "/scale"

    async def _json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: object = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Content-Type": content_type} if content_type else None
        try:
            response = await self._client.request(method, path, json=json, headers=headers, params=params)
        except httpx.TimeoutException as exc:
            raise IntegrationError(
                f"kubernetes cluster {self.name} did not answer in time", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            # A certificate the configured CA does not vouch for will not fix itself.
            untrusted = "CERTIFICATE_VERIFY_FAILED" in detail
            raise IntegrationError(
                f"cannot reach kubernetes cluster {self.name}: {detail}", retryable=not untrusted
            ) from exc
        except httpx.HTTPError as exc:
            raise IntegrationError(f"kubernetes cluster {self.name}: {exc}", retryable=False) from exc
        if response.status_code >= 400:
            raise self._error(response, what)
        try:
            body = response.json()
        except ValueError as exc:
            raise IntegrationError(
                f"kubernetes cluster {self.name} answered with something that is not JSON", retryable=False
            ) from exc
        if not isinstance(body, dict):
            raise IntegrationError(
                f"kubernetes cluster {self.name} answered with an unexpected shape", retryable=False
            )
        return body

    def _error(self, response: httpx.Response, what: str) -> UserError | IntegrationError:
        status = response.status_code
        message = _status_message(response)
        if status == 401:
            return IntegrationError(
                f"kubernetes cluster {self.name} rejected firebell's credentials (401 Unauthorized): "
                "check the token or client certificate in its configuration",
                retryable=False,
                code="unauthorized",
            )
        if status == 403:
            return IntegrationError(
                f"kubernetes cluster {self.name} forbids this (403): {message} — see the RBAC rules "
                "in docs/runbooks/kubernetes.md",
                retryable=False,
                code="forbidden",
            )
        if status == 404:
            return UserError(f"no {what} on kubernetes cluster {self.name}")
        if status in (400, 422):
            return UserError(f"kubernetes cluster {self.name} refused the change to {what}: {message}")
        if status in (409, 429) or status >= 500:
            retry_after = response.headers.get("Retry-After", "")
            return IntegrationError(
                f"kubernetes cluster {self.name} failed ({status}): {message}",
                retryable=True,
                retry_after=float(retry_after) if retry_after.isdigit() else None,
                code=str(status),
            )
        return IntegrationError(
            f"kubernetes cluster {self.name} refused ({status}): {message}", retryable=False
        )


def _status_message(response: httpx.Response) -> str:
    """The ``message`` of the API's ``Status`` object, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:500]
    return response.reason_phrase
