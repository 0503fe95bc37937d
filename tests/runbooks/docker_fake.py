"""A fake Docker Engine for the ``docker`` step tests, speaking the documented API.

``FakeDocker`` is an ``aiohttp.web`` app serving, on a Unix socket (and, when
asked, TCP on 127.0.0.1 port 0) in the test's own loop:

* ``GET /containers/{id}/json`` — the inspect shape (``Id``, ``Name`` with its
  leading ``/``, ``RestartCount``, ``State`` with ``Health``, ``Config.Tty``,
  ``HostConfig.RestartPolicy``);
* ``POST /containers/{id}/restart?t=N`` — 204; afterwards the container
  reports ``restarting`` / health ``starting`` for a few inspects before it
  settles (healthy, unhealthy or exited, as the test scripted it);
* ``GET /containers/{id}/logs`` — multiplexed 8-byte-header frames for a
  container without a TTY (one long line split across two frames), raw bytes
  with one; ``tail`` and ``timestamps`` honoured;
* 404 ``{"message": "No such container: x"}`` for anything unknown.

Every request (matched or not) is recorded with method, path and query.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STDOUT, STDERR = 1, 2


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class FakeContainer:
    name: str
    tty: bool = False
    healthcheck: bool = True
    restart_policy: str = "unless-stopped"
    after_restart: Literal["healthy", "unhealthy", "exits"] = "healthy"
    settle_inspects: int = 2
    """Inspects that still show the restart in progress before it settles."""
    logs: list[tuple[int, str]] = field(default_factory=list)
    logs_readable: bool = True
    """False: a logging driver the daemon cannot read back (``none``, ``syslog``)."""
    status: str = "running"
    health: str | None = None
    restart_count: int = 3
    started_at: str = "2024-05-01T09:00:00.123456789Z"
    exit_code: int = 0
    restarts: int = 0
    _pending: int = 0

    def __post_init__(self) -> None:
        if self.health is None and self.healthcheck:
            self.health = "healthy"

    @property
    def id(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def restart(self) -> None:
        self.restarts += 1
        self.started_at = f"2024-05-01T10:00:{self.restarts:02d}.000000001Z"
        self._pending = self.settle_inspects
        self.status = "running" if self.healthcheck else "restarting"
        self.health = "starting" if self.healthcheck else None

    def inspect(self) -> dict[str, object]:
        if self._pending > 0:
            self._pending -= 1
        elif self.restarts and self.status in ("running", "restarting") and self.health in (None, "starting"):
            self._settle()
        state: dict[str, object] = {
            "Status": self.status,
            "Running": self.status == "running",
            "Paused": False,
            "Restarting": self.status == "restarting",
            "OOMKilled": False,
            "Dead": False,
            "Pid": 4242 if self.status == "running" else 0,
            "ExitCode": self.exit_code,
            "Error": "",
            "StartedAt": self.started_at,
            "FinishedAt": "0001-01-01T00:00:00Z" if self.status == "running" else "2024-05-01T10:00:09.5Z",
        }
        if self.healthcheck:
            output = "connection refused" if self.health == "unhealthy" else "ok"
            state["Health"] = {
                "Status": self.health,
                "FailingStreak": 3 if self.health == "unhealthy" else 0,
                "Log": [{"Start": self.started_at, "End": self.started_at, "ExitCode": 0, "Output": output}],
            }
        config: dict[str, object] = {"Image": "example/web:1.4", "Tty": self.tty}
        if self.healthcheck:
            config["Healthcheck"] = {"Test": ["CMD", "curl", "-f", "http://localhost/health"]}
        return {
            "Id": self.id,
            "Created": "2024-04-30T08:00:00.000000000Z",
            "Name": f"/{self.name}",
            "Image": "sha256:" + "ab" * 32,
            "RestartCount": self.restart_count,
            "State": state,
            "Config": config,
            "HostConfig": {"RestartPolicy": {"Name": self.restart_policy, "MaximumRetryCount": 0}},
        }

    def _settle(self) -> None:
        if self.after_restart == "exits":
            self.status, self.exit_code, self.health = (
                "exited",
                1,
                ("unhealthy" if self.healthcheck else None),
            )
        elif self.after_restart == "unhealthy":
            self.status, self.health = "running", "unhealthy"
        else:
            self.status, self.health = "running", ("healthy" if self.healthcheck else None)


def frame(stream: int, payload: bytes) -> bytes:
    """One frame of Docker's multiplexed stream."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


class FakeDocker:
    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.requests: list[Recorded] = []
        self._runner: web.AppRunner | None = None
        self.socket_path: Path | None = None
        self.tcp_port: int | None = None
        self.fail_with: int | None = None
        """When set, every request is answered with this status (and a Docker error body)."""

    def add(self, container: FakeContainer) -> FakeContainer:
        self.containers[container.name] = container
        return container

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    async def start(self, socket_path: Path, *, tcp: bool = False) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/containers/{id}/json", self._inspect)
        app.router.add_post("/containers/{id}/restart", self._restart)
        app.router.add_get("/containers/{id}/logs", self._logs)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(socket_path)).start()
        self.socket_path = socket_path
        if tcp:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            self.tcp_port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path, dict(request.query)))
        if self.fail_with is not None:
            return web.json_response({"message": "daemon exploded"}, status=self.fail_with)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.json_response({"message": "page not found"}, status=404)

    def _container(self, request: web.Request) -> FakeContainer:
        key = request.match_info["id"]
        for container in self.containers.values():
            if key in (container.name, container.id) or (len(key) >= 12 and container.id.startswith(key)):
                return container
        raise _missing(key)

    async def _inspect(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(self._container(request).inspect())
        except _Missing as exc:
            return exc.response

    async def _restart(self, request: web.Request) -> web.Response:
        try:
            container = self._container(request)
        except _Missing as exc:
            return exc.response
        container.restart()
        return web.Response(status=204)

    async def _logs(self, request: web.Request) -> web.Response:
        try:
            container = self._container(request)
        except _Missing as exc:
            return exc.response
        if not container.logs_readable:
            message = "configured logging driver does not support reading"
            return web.json_response({"message": message}, status=501)
        wanted = {STDOUT} if request.query.get("stdout") == "1" else set()
        if request.query.get("stderr") == "1":
            wanted.add(STDERR)
        lines = [(s, t) for s, t in container.logs if s in wanted]
        tail = request.query.get("tail", "all")
        if tail != "all":
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        stamp = "2024-05-01T10:00:00.000000000Z " if request.query.get("timestamps") == "1" else ""
        if container.tty:
            body = b"".join(f"{stamp}{text}\r\n".encode() for _, text in lines)
            return web.Response(body=body, content_type="application/vnd.docker.raw-stream")
        chunks: list[bytes] = []
        for stream, text in lines:
            payload = f"{stamp}{text}\n".encode()
            if len(payload) > 40:
                # The daemon splits long lines into several frames.
                chunks += [frame(stream, payload[:20]), frame(stream, payload[20:])]
            else:
                chunks.append(frame(stream, payload))
        return web.Response(body=b"".join(chunks), content_type="application/vnd.docker.multiplexed-stream")


class _Missing(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _missing(key: str) -> _Missing:
    return _Missing(web.json_response({"message": f"No such container: {key}"}, status=404))
