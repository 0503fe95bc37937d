"""A small Docker Engine API client for runbook steps.

It owns the connection to one configured ``DockerEndpoint`` (a Unix socket, or
TCP with optional TLS client certificates), the checks on container names
that keep anything but a name out of the URL path, the reading of
``GET /containers/{id}/json`` into a typed ``ContainerState``, restarting and
waiting for a container to come back (running, and healthy when it has a
health check), and the decoding of ``GET /containers/{id}/logs`` (the
multiplexed stream of a container without a TTY, raw text with one).

Every httpx or HTTP failure leaves as ``UserError`` (no such container, bad
endpoint configuration) or ``IntegrationError``. The ``docker`` step kind
(``bot.runbooks.steps.docker``) is its only caller inside firebell.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import DockerEndpoint

# Docker's own rule for container names (daemon/names.RestrictedNameChars);
# a hex id matches it as well. A leading '.', '/' or any ';', space or '%'
# is refused, so a name can never become another path segment or query.
_CONTAINER = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}")
MAX_TAIL = 10_000
# Logs are read as a stream and cut here: a chatty container must not fill memory.
MAX_LOG_BYTES = 4 * 1024 * 1024
_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}


def validate_container(name: str) -> str:
    """``name`` when it is a valid Docker container name or id, else ``UserError``."""
    if not isinstance(name, str) or not _CONTAINER.fullmatch(name):
        raise UserError(
            f"{name!r} is not a valid container name or id "
            "(letters, digits, '_', '.' and '-', starting with a letter or digit)"
        )
    return name


def parse_docker_time(value: object) -> datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds, ``Z`` or an offset); ``None`` for the zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    # Python keeps microseconds; Docker sends nanoseconds.
    micro = (fraction or "").ljust(6, "0")[:6]
    parsed = datetime.fromisoformat(f"{whole}.{micro}{'+00:00' if zone == 'Z' else zone}")
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class ContainerState:
    """What ``docker inspect`` says about a container, reduced to what a responder needs."""

    id: str
    name: str
    image: str
    status: str
    """created, running, paused, restarting, removing, exited or dead."""
    running: bool
    health: str | None
    """starting, healthy or unhealthy; ``None`` when the container has no health check."""
    health_output: str
    """Output of the latest health check, when there is one."""
    restart_count: int
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int
    oom_killed: bool
    error: str
    tty: bool
    restart_policy: str

    @property
    def ready(self) -> bool:
        """Running, and healthy when it has a health check."""
        return self.running and self.health in (None, "healthy")

    @property
    def condition(self) -> str:
        """``running, healthy`` / ``exited (code 1)`` — the state in a few words."""
        if self.running:
            return f"running, {self.health}" if self.health else "running"
        if self.status == "exited":
            detail = f"code {self.exit_code}" + (", OOM-killed" if self.oom_killed else "")
            return f"exited ({detail})"
        return self.status

    def facts(self) -> dict[str, Any]:
        """The state as plain values, for ``StepOutcome.data``."""
        return {
            "container": self.name,
            "id": self.id[:12],
            "image": self.image,
            "status": self.status,
            "running": self.running,
            "health": self.health,
            "restart_count": self.restart_count,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
        }

    def describe(self) -> list[str]:
        """Human-readable lines for a step's output."""
        lines = [
            f"container:     {self.name} ({self.id[:12]})",
            f"image:         {self.image}",
            f"state:         {self.condition}",
            f"started at:    {_show_time(self.started_at)}",
            f"restart count: {self.restart_count} (restart policy: {self.restart_policy or 'no'})",
        ]
        if not self.running and self.finished_at:
            lines.append(f"finished at:   {_show_time(self.finished_at)}")
        if self.error:
            lines.append(f"error:         {self.error}")
        if self.health and self.health != "healthy" and self.health_output:
            lines.append(f"health check:  {self.health_output.strip()[:500]}")
        return lines


def _show_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def container_state(inspect: dict[str, Any]) -> ContainerState:
    """A ``ContainerState`` from the JSON of ``GET /containers/{id}/json``."""
    state = _dict(inspect.get("State"))
    config = _dict(inspect.get("Config"))
    health = _dict(state.get("Health"))
    health_status = _str(health.get("Status")) or None
    if health_status == "none":
        health_status = None
    log = health.get("Log")
    last_output = _str(_dict(log[-1]).get("Output")) if isinstance(log, list) and log else ""
    return ContainerState(
        id=_str(inspect.get("Id")),
        name=_str(inspect.get("Name")).lstrip("/"),
        image=_str(config.get("Image")) or _str(inspect.get("Image")),
        status=_str(state.get("Status")) or "unknown",
        running=state.get("Running") is True,
        health=health_status,
        health_output=last_output,
        restart_count=_int(inspect.get("RestartCount")),
        started_at=parse_docker_time(state.get("StartedAt")),
        finished_at=parse_docker_time(state.get("FinishedAt")),
        exit_code=_int(state.get("ExitCode")),
        oom_killed=state.get("OOMKilled") is True,
        error=_str(state.get("Error")),
        tty=config.get("Tty") is True,
        restart_policy=_str(_dict(_dict(inspect.get("HostConfig")).get("RestartPolicy")).get("Name")),
    )


@dataclass(frozen=True)
class LogLine:
    stream: str
    """stdout, stderr (or stdin); a TTY container's output is all ``stdout``."""
    text: str


def decode_multiplexed(data: bytes) -> list[LogLine]:
    """Lines of Docker's multiplexed log stream (used when the container has no TTY).

    Each frame is an 8-byte header — stream type (0 stdin, 1 stdout, 2 stderr),
    three zero bytes, a big-endian 32-bit length — followed by that many bytes.
    Consecutive frames of one stream are joined before decoding, because the
    daemon may split a long line (or a UTF-8 character) across frames.
    """
    chunks: list[tuple[str, bytearray]] = []
    offset = 0
    while offset + 8 <= len(data):
        stream = _STREAMS.get(data[offset], "stdout")
        size = int.from_bytes(data[offset + 4 : offset + 8], "big")
        payload = data[offset + 8 : offset + 8 + size]
        offset += 8 + size
        if chunks and chunks[-1][0] == stream:
            chunks[-1][1].extend(payload)
        else:
            chunks.append((stream, bytearray(payload)))
    lines: list[LogLine] = []
    for stream, chunk in chunks:
        lines.extend(LogLine(stream, text) for text in _split(bytes(chunk)))
    return lines


def decode_raw(data: bytes) -> list[LogLine]:
    """Lines of a TTY container's log, which the daemon sends as plain bytes."""
    return [LogLine("stdout", text) for text in _split(data)]


def _split(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def render_logs(lines: list[LogLine]) -> str:
    """The log tail as ``docker logs`` would print it."""
    return "\n".join(line.text for line in lines)


@dataclass(frozen=True)
class WaitResult:
    ready: bool
    state: ContainerState
    elapsed: float
    reason: str
    """Why the wait ended: ``ready``, ``timeout`` or ``stopped``."""


def _connection(
    name: str, endpoint: DockerEndpoint, ssl_context: ssl.SSLContext | None
) -> tuple[httpx.AsyncHTTPTransport, str]:
    """The transport and base URL for ``endpoint``; ``UserError`` for an unusable configuration."""
    url = urlsplit(endpoint.url)
    if url.scheme == "unix":
        path = url.path or url.netloc
        if not path:
            raise UserError(f"docker endpoint {name}: {endpoint.url!r} names no socket path")
        return httpx.AsyncHTTPTransport(uds=path), "http://docker"
    if url.scheme not in ("tcp", "http", "https") or not url.hostname:
        raise UserError(
            f"docker endpoint {name}: {endpoint.url!r} is not unix:///path, tcp://host:port or https://host:port"
        )
    if bool(endpoint.cert_file) != bool(endpoint.key_file):
        raise UserError(f"docker endpoint {name}: cert_file and key_file go together")
    # tcp:// follows the Docker CLI: TLS when certificates are configured.
    tls = url.scheme == "https" or (url.scheme == "tcp" and bool(endpoint.ca_file or endpoint.cert_file))
    if url.scheme == "http" and (endpoint.ca_file or endpoint.cert_file):
        raise UserError(f"docker endpoint {name}: certificates are set but the URL is http://")
    try:
        port = url.port or (2376 if tls else 2375)
    except ValueError as exc:
        raise UserError(f"docker endpoint {name}: {endpoint.url!r} has a bad port") from exc
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    if not tls:
        return httpx.AsyncHTTPTransport(), f"http://{host}:{port}"
    try:
        if endpoint.ca_file or endpoint.cert_file:
            context = ssl.create_default_context(cafile=endpoint.ca_file)
            if endpoint.cert_file and endpoint.key_file:
                context.load_cert_chain(endpoint.cert_file, endpoint.key_file)
        else:
            context = ssl_context or ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"docker endpoint {name}: cannot load its TLS files: {exc}") from exc
    return httpx.AsyncHTTPTransport(verify=context), f"https://{host}:{port}"


class DockerClient:
    """One Docker Engine API endpoint. Use ``async with`` so the connection is closed."""

    def __init__(
        self,
        name: str,
        endpoint: DockerEndpoint,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        """``ssl_context`` is the trust for ``https://`` endpoints without their own ``ca_file``."""
        self.name = name
        self.url = endpoint.url
        self._timeout = timeout
        self._poll = poll_interval
        transport, base_url = _connection(name, endpoint, ssl_context)
        # trust_env=False: proxy variables must not reroute a root-equivalent API.
        self._client = httpx.AsyncClient(
            transport=transport, base_url=base_url, timeout=timeout, trust_env=False
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

    async def inspect(self, container: str) -> ContainerState:
        """The container's state (``GET /containers/{id}/json``)."""
        container = validate_container(container)
        response = await self._request("GET", f"/containers/{container}/json", container)
        try:
            body = response.json()
        except ValueError as exc:
            raise IntegrationError(
                f"docker endpoint {self.name} answered inspect with something that is not JSON",
                retryable=False,
            ) from exc
        if not isinstance(body, dict):
            raise IntegrationError(
                f"docker endpoint {self.name} answered inspect with an unexpected shape", retryable=False
            )
        return container_state(body)

    async def restart(self, container: str, *, stop_seconds: int = 10) -> None:
        """``POST /containers/{id}/restart?t=N``: stop (SIGKILL after N seconds) and start again."""
        container = validate_container(container)
        if stop_seconds < 0:
            raise UserError("the stop timeout cannot be negative")
        # The daemon answers only once the container is stopped and started again.
        timeout = httpx.Timeout(self._timeout, read=stop_seconds + self._timeout)
        await self._request(
            "POST",
            f"/containers/{container}/restart",
            container,
            params={"t": str(stop_seconds)},
            request_timeout=timeout,
        )

    async def wait_until_ready(self, container: str, *, wait_seconds: float) -> WaitResult:
        """Poll until the container runs (and is healthy, with a health check) or ``wait_seconds`` pass.

        A container that stopped and has no restart policy to bring it back
        ends the wait early (``reason="stopped"``).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            state = await self.inspect(container)
            elapsed = loop.time() - started
            if state.ready:
                return WaitResult(True, state, elapsed, "ready")
            if state.status in ("exited", "dead") and state.restart_policy in ("", "no"):
                return WaitResult(False, state, elapsed, "stopped")
            if elapsed + self._poll > wait_seconds:
                return WaitResult(False, state, elapsed, "timeout")
            await asyncio.sleep(self._poll)

    async def logs(self, container: str, *, tail: int = 100, tty: bool | None = None) -> list[LogLine]:
        """The last ``tail`` lines of stdout and stderr, with timestamps.

        ``tty`` says how the stream is framed; without it the container is
        inspected first, as the Docker CLI does.
        """
        container = validate_container(container)
        if not 0 < tail <= MAX_TAIL:
            raise UserError(f"tail must be between 1 and {MAX_TAIL} lines")
        if tty is None:
            tty = (await self.inspect(container)).tty
        params = {"stdout": "1", "stderr": "1", "tail": str(tail), "timestamps": "1"}
        data = bytearray()
        try:
            async with self._client.stream("GET", f"/containers/{container}/logs", params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response, container)
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) >= MAX_LOG_BYTES:
                        break
                media_type = response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        # The daemon (API ≥ 1.42) names the framing; older ones leave it to Config.Tty.
        if "multiplexed-stream" in media_type:
            tty = False
        elif "raw-stream" in media_type:
            tty = True
        return decode_raw(bytes(data)) if tty else decode_multiplexed(bytes(data))

    async def _request(
        self,
        method: str,
        path: str,
        container: str,
        *,
        params: dict[str, str] | None = None,
        request_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        try:
            if request_timeout is None:
                response = await self._client.request(method, path, params=params)
            else:
                response = await self._client.request(method, path, params=params, timeout=request_timeout)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            self._raise_for(response, container)
        return response

    def _transport_error(self, exc: httpx.HTTPError) -> IntegrationError:
        if isinstance(exc, httpx.TimeoutException):
            return IntegrationError(
                f"docker endpoint {self.name} ({self.url}) did not answer in time", retryable=True
            )
        if isinstance(exc, httpx.TransportError):
            detail = str(exc) or type(exc).__name__
            # A certificate the configured CA does not vouch for will not fix itself.
            untrusted = "CERTIFICATE_VERIFY_FAILED" in detail
            return IntegrationError(
                f"cannot reach docker endpoint {self.name} ({self.url}): {detail}", retryable=not untrusted
            )
        return IntegrationError(f"docker endpoint {self.name}: {exc}", retryable=False)

    def _raise_for(self, response: httpx.Response, container: str) -> None:
        message = _error_message(response)
        status = response.status_code
        if status == 404:
            raise UserError(f"no such container {container} on docker endpoint {self.name}")
        if status >= 500 or status == 429:
            raise IntegrationError(
                f"docker endpoint {self.name} failed ({status}): {message}", retryable=True, code=str(status)
            )
        raise IntegrationError(
            f"docker endpoint {self.name} refused ({status}): {message}", retryable=False, code=str(status)
        )


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return response.reason_phrase
