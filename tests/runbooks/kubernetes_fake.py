"""A fake Kubernetes API server for the ``kubernetes`` step tests.

``FakeKubernetes`` is an ``aiohttp.web`` app serving HTTPS on 127.0.0.1
(port 0, in the test's own loop) with a certificate from a private ``trustme``
CA. It requires ``Authorization: Bearer <token>`` or a client certificate from
that CA (401 ``Status`` otherwise), and serves:

* ``GET``/``PATCH /apis/apps/v1/namespaces/{ns}/{deployments|statefulsets|daemonsets}/{name}``
  — the PATCH must be ``application/strategic-merge-patch+json`` (415
  otherwise) and is merged into the object; a change to the pod template bumps
  ``metadata.generation`` and starts a rollout;
* ``GET``/``PATCH .../{name}/scale`` — an ``autoscaling/v1`` ``Scale``; the
  PATCH takes a (strategic) merge patch of ``spec.replicas``;
* ``GET /api/v1/namespaces/{ns}/pods?labelSelector=…`` — the workload's pods,
  filtered by ``k=v`` selectors.

A deployment's rollout advances one step per ``GET`` (controller observes the
new generation, then one new replica updated and available per poll, then the
surge pod goes), so a client polling ``rollout status`` sees it progress. A
``stuck`` deployment never gets past its first new pod, which is in
``CrashLoopBackOff``. Every request is recorded with its method, path, query,
content type and JSON body.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_RESOURCES = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


@dataclass
class ClusterTls:
    """The fake's CA, server certificate and a client certificate, as files."""

    ca_file: Path
    client_cert_file: Path
    client_key_file: Path
    server_context: ssl.SSLContext


def make_cluster_tls(directory: Path) -> ClusterTls:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="fake kubernetes CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("firebell@example.test")
    ca_file = directory / "k8s-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file, key_file = directory / "client.crt", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    return ClusterTls(ca_file, cert_file, key_file, context)


@dataclass
class Workload:
    resource: str
    namespace: str
    name: str
    replicas: int = 3
    generation: int = 1
    observed: int = 1
    updated: int = 3
    available: int = 3
    total: int = 3
    paused: bool = False
    stuck: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = self.labels or {"app": self.name}
        self.updated = self.available = self.total = self.replicas

    def advance(self) -> None:
        """One controller step of the rollout."""
        if self.resource != "deployments":
            self.observed = self.generation
            return
        if self.observed < self.generation:
            self.observed = self.generation
            return
        if self.stuck:
            self.updated, self.total, self.available = 1, self.replicas + 1, self.replicas
            return
        if self.updated < self.replicas:
            self.updated += 1
            self.total = self.replicas + 1
            self.available = min(self.replicas, self.available + 1)
        elif self.total != self.replicas or self.updated != self.replicas:
            self.updated = self.total = self.available = self.replicas
        else:
            self.available = self.replicas

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "selector": {"matchLabels": dict(self.labels)},
            "template": {
                "metadata": {"labels": dict(self.labels), "annotations": dict(self.annotations)},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        }
        status: dict[str, Any] = {"observedGeneration": self.observed}
        if self.resource == "daemonsets":
            spec["updateStrategy"] = {"type": "RollingUpdate"}
            status.update(
                desiredNumberScheduled=self.replicas,
                updatedNumberScheduled=self.updated,
                numberReady=self.available,
                numberAvailable=self.available,
            )
        else:
            spec["replicas"] = self.replicas
            status.update(
                replicas=self.total,
                updatedReplicas=self.updated,
                readyReplicas=self.available,
                availableReplicas=self.available,
            )
        if self.resource == "deployments":
            spec["paused"] = self.paused
            spec["strategy"] = {"type": "RollingUpdate"}
        if self.resource == "statefulsets":
            spec["updateStrategy"] = {"type": "RollingUpdate"}
            status.update(currentRevision=f"{self.name}-r1", updateRevision=f"{self.name}-r1")
        return {
            "apiVersion": "apps/v1",
            "kind": _RESOURCES[self.resource],
            "metadata": {"name": self.name, "namespace": self.namespace, "generation": self.generation},
            "spec": spec,
            "status": status,
        }

    def pods(self) -> list[dict[str, Any]]:
        pods = [_pod(f"{self.name}-5d8f7b-{n:05d}", self, ready=True) for n in range(self.replicas)]
        if self.stuck:
            pods.append(_pod(f"{self.name}-79c4d1-crash", self, ready=False))
        return pods


def _pod(name: str, workload: Workload, *, ready: bool) -> dict[str, Any]:
    if ready:
        container = {
            "name": "app",
            "ready": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": "2024-05-01T09:00:00Z"}},
        }
    else:
        container = {
            "name": "app",
            "ready": False,
            "restartCount": 5,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 2m40s restarting failed container=app pod={name}",
                }
            },
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
    return {
        "metadata": {"name": name, "namespace": workload.namespace, "labels": dict(workload.labels)},
        "spec": {"nodeName": "node-2" if not ready else "node-1", "containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [container],
        },
    }


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


class FakeKubernetes:
    def __init__(self, tls: ClusterTls, token: str) -> None:
        self.tls = tls
        self.token = token
        self.workloads: dict[tuple[str, str, str], Workload] = {}
        self.requests: list[Recorded] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def add(self, workload: Workload) -> Workload:
        self.workloads[(workload.resource, workload.namespace, workload.name)] = workload
        return workload

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        base = "/apis/apps/v1/namespaces/{ns}/{resource}/{name}"
        app.router.add_route("GET", base, self._get)
        app.router.add_route("PATCH", base, self._patch)
        app.router.add_route("GET", base + "/scale", self._get_scale)
        app.router.add_route("PATCH", base + "/scale", self._patch_scale)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=self.tls.server_context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Content-Type", ""),
                body,
            )
        )
        has_cert = request.transport is not None and bool(request.transport.get_extra_info("peercert"))
        if request.headers.get("Authorization") != f"Bearer {self.token}" and not has_cert:
            return _status(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    def _workload(self, request: web.Request) -> Workload | web.Response:
        resource = request.match_info["resource"]
        if resource not in _RESOURCES:
            return _status(404, "NotFound", "the server could not find the requested resource")
        key = (resource, request.match_info["ns"], request.match_info["name"])
        workload = self.workloads.get(key)
        if workload is None:
            kind = resource.removesuffix("s")
            return _status(404, "NotFound", f'{kind}.apps "{key[2]}" not found')
        return workload

    async def _get(self, request: web.Request) -> web.Response:
        workload = self._workload(request)
        if isinstance(workload, web.Response):
            return workload
        workload.advance()
        return web.json_response(workload.to_json())

    async def _patch(self, request: web.Request) -> web.Response:
        workload = self._workload(request)
        if isinstance(workload, web.Response):
            return workload
        if request.content_type != "application/strategic-merge-patch+json":
            return _status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {request.content_type}",
            )
        patch = await request.json()
        obj = workload.to_json()
        _merge(obj, patch)
        annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
        if annotations != workload.annotations:
            workload.annotations = dict(annotations)
            workload.generation += 1
            workload.updated = 0
        return web.json_response(workload.to_json())

    def _scale_json(self, workload: Workload) -> dict[str, Any]:
        selector = ",".join(f"{k}={v}" for k, v in workload.labels.items())
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": workload.name, "namespace": workload.namespace},
            "spec": {"replicas": workload.replicas},
            "status": {"replicas": workload.total, "selector": selector},
        }

    async def _get_scale(self, request: web.Request) -> web.Response:
        workload = self._workload(request)
        if isinstance(workload, web.Response):
            return workload
        return web.json_response(self._scale_json(workload))

    async def _patch_scale(self, request: web.Request) -> web.Response:
        workload = self._workload(request)
        if isinstance(workload, web.Response):
            return workload
        if request.content_type not in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            return _status(415, "UnsupportedMediaType", f"unknown format: {request.content_type}")
        replicas = (await request.json())["spec"]["replicas"]
        if replicas != workload.replicas:
            workload.replicas = replicas
            workload.generation += 1
        return web.json_response(self._scale_json(workload))

    async def _pods(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        wanted = dict(
            part.split("=", 1) for part in request.query.get("labelSelector", "").split(",") if part
        )
        items = [
            pod
            for workload in self.workloads.values()
            if workload.namespace == namespace
            for pod in workload.pods()
            if all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": items})
