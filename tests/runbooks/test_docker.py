"""The ``docker`` step kind and its Engine API client, against a fake Docker Engine
on a Unix socket (and TCP) that speaks the documented API."""

from __future__ import annotations

import re
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import DockerEndpoint, RunbooksConfig
from bot.runbooks.docker import (
    DockerClient,
    LogLine,
    decode_multiplexed,
    decode_raw,
    parse_docker_time,
    validate_container,
)
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext
from bot.runbooks.steps.docker import STEP, DockerArgs, DockerStep
from tests.clock import FakeClock
from tests.runbooks.docker_fake import STDERR, STDOUT, FakeContainer, FakeDocker, frame

LONG_LINE = "GET /api/orders 200 " + "x" * 60
LOGS_QUERY = {"stdout": "1", "stderr": "1", "tail": "100", "timestamps": "1"}
BAD_NAMES = ["web; rm -rf /", "../x", "..", "", "a", "/web-1", "web 1", "web%2F..", "web/../../etc", "-web"]


@pytest.fixture
async def docker() -> AsyncIterator[FakeDocker]:
    # Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="fb-docker-", dir="/tmp"))
    fake = FakeDocker()
    await fake.start(directory / "docker.sock", tcp=True)
    fake.add(
        FakeContainer(
            "web-1",
            logs=[(STDOUT, "listening on :8080"), (STDERR, "warning: slow upstream"), (STDOUT, LONG_LINE)],
        )
    )
    try:
        yield fake
    finally:
        await fake.stop()
        shutil.rmtree(directory, ignore_errors=True)


def endpoint(fake: FakeDocker) -> DockerEndpoint:
    return DockerEndpoint(url=f"unix://{fake.socket_path}")


def context(fake: FakeDocker, *, timeout: float = 60, url: str | None = None) -> StepContext:
    config = RunbooksConfig(docker={"default": DockerEndpoint(url=url or f"unix://{fake.socket_path}")})
    return StepContext(
        config=config,
        secrets=SecretStore({}),
        clock=FakeClock(datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ssl_context=ssl.create_default_context(),
        timeout=timeout,
    )


def args(**values: object) -> DockerArgs:
    return DockerArgs.model_validate(values)


STEP_UNDER_TEST = DockerStep(poll_interval=0.01)


# --- the client ------------------------------------------------------------------------------


async def test_inspect_reads_state_health_restart_count_and_start(docker: FakeDocker) -> None:
    async with DockerClient("default", endpoint(docker)) as client:
        state = await client.inspect("web-1")

    assert (state.name, state.status, state.running, state.health) == ("web-1", "running", True, "healthy")
    assert state.restart_count == 3
    assert state.started_at == datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert state.id == docker.containers["web-1"].id
    assert state.ready and not state.tty
    assert [(r.method, r.path) for r in docker.requests] == [("GET", "/containers/web-1/json")]


async def test_inspect_by_id_prefix(docker: FakeDocker) -> None:
    short_id = docker.containers["web-1"].id[:12]
    async with DockerClient("default", endpoint(docker)) as client:
        state = await client.inspect(short_id)
    assert state.name == "web-1"
    assert docker.requests[-1].path == f"/containers/{short_id}/json"


async def test_logs_decode_the_multiplexed_stream_with_timestamps(docker: FakeDocker) -> None:
    async with DockerClient("default", endpoint(docker)) as client:
        lines = await client.logs("web-1", tail=100)

    stamp = "2024-05-01T10:00:00.000000000Z "
    assert lines == [
        LogLine("stdout", stamp + "listening on :8080"),
        LogLine("stderr", stamp + "warning: slow upstream"),
        LogLine("stdout", stamp + LONG_LINE),  # sent as two frames, read as one line
    ]
    logs = [r for r in docker.requests if r.path.endswith("/logs")]
    assert [(r.method, r.path, r.query) for r in logs] == [("GET", "/containers/web-1/logs", LOGS_QUERY)]


async def test_logs_of_a_tty_container_are_raw_text(docker: FakeDocker) -> None:
    docker.add(FakeContainer("console", tty=True, logs=[(STDOUT, f"line {n}") for n in range(5)]))
    async with DockerClient("default", endpoint(docker)) as client:
        lines = await client.logs("console", tail=2)

    assert [line.text[-6:] for line in lines] == ["line 3", "line 4"]
    assert docker.requests[-1].query["tail"] == "2"


async def test_missing_container_is_a_user_error(docker: FakeDocker) -> None:
    async with DockerClient("default", endpoint(docker)) as client:
        with pytest.raises(UserError, match="no such container ghost on docker endpoint default"):
            await client.inspect("ghost")
        with pytest.raises(UserError, match="no such container ghost"):
            await client.restart("ghost")
    assert [(r.method, r.path) for r in docker.requests] == [
        ("GET", "/containers/ghost/json"),
        ("POST", "/containers/ghost/restart"),
    ]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_container_names_are_refused_before_any_request(docker: FakeDocker, name: str) -> None:
    async with DockerClient("default", endpoint(docker)) as client:
        with pytest.raises(UserError, match="not a valid container name"):
            await client.inspect(name)
        with pytest.raises(UserError, match="not a valid container name"):
            await client.restart(name)
        with pytest.raises(UserError, match="not a valid container name"):
            await client.logs(name, tty=False)
    with pytest.raises(ValidationError, match="not a valid container name"):
        args(action="restart", container=name)
    assert docker.requests == []


async def test_server_errors_are_retryable_integration_errors(docker: FakeDocker) -> None:
    docker.fail_with = 500
    async with DockerClient("default", endpoint(docker)) as client:
        with pytest.raises(IntegrationError, match="failed \\(500\\): daemon exploded") as caught:
            await client.inspect("web-1")
    assert caught.value.retryable


async def test_conflicts_are_not_retryable(docker: FakeDocker) -> None:
    docker.fail_with = 409
    async with DockerClient("default", endpoint(docker)) as client:
        with pytest.raises(IntegrationError, match="refused \\(409\\)") as caught:
            await client.restart("web-1")
    assert not caught.value.retryable


async def test_an_absent_socket_is_a_retryable_integration_error(tmp_path: Path) -> None:
    gone = DockerEndpoint(url=f"unix://{tmp_path}/nothing.sock")
    async with DockerClient("default", gone) as client:
        with pytest.raises(IntegrationError, match="cannot reach docker endpoint default") as caught:
            await client.inspect("web-1")
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ssh://host", "is not unix:///path"),
        ("npipe:////./pipe/docker_engine", "is not unix:///path"),
        ("unix://", "names no socket path"),
    ],
)
def test_unusable_endpoints_are_user_errors(url: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        DockerClient("default", DockerEndpoint(url=url))


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(UserError, match="cert_file and key_file go together"):
        DockerClient("remote", DockerEndpoint(url="tcp://10.0.0.5:2376", cert_file="/x/cert.pem"))


def test_missing_tls_files_are_user_errors(tmp_path: Path) -> None:
    remote = DockerEndpoint(url="tcp://10.0.0.5:2376", ca_file=str(tmp_path / "ca.pem"))
    with pytest.raises(UserError, match="cannot load its TLS files"):
        DockerClient("remote", remote)


# --- the step --------------------------------------------------------------------------------


async def test_restart_waits_until_running_and_healthy(docker: FakeDocker) -> None:
    outcome = await STEP_UNDER_TEST.run(args(action="restart", container="web-1"), context(docker))

    assert outcome.ok, outcome
    assert outcome.summary.startswith("web-1 restarted, running, healthy after ")
    assert outcome.summary.endswith(" s")
    assert docker.containers["web-1"].restarts == 1
    restarts = docker.calls("POST")
    assert [(r.path, r.query) for r in restarts] == [("/containers/web-1/restart", {"t": "10"})]
    # Several inspects while the health check said "starting", then the log tail.
    inspects = [r for r in docker.requests if r.path == "/containers/web-1/json"]
    assert len(inspects) >= 4
    assert docker.requests[-1].path == "/containers/web-1/logs"
    assert docker.requests[-1].query == LOGS_QUERY
    assert "before restart: running, healthy" in outcome.output
    assert "listening on :8080" in outcome.output
    assert LONG_LINE in outcome.output
    assert outcome.data["health"] == "healthy"
    assert outcome.data["restarted"] is True


async def test_restart_passes_the_stop_timeout(docker: FakeDocker) -> None:
    await STEP_UNDER_TEST.run(
        args(action="restart", container="web-1", stop_seconds=3, tail=5), context(docker)
    )
    assert docker.calls("POST")[0].query == {"t": "3"}
    assert docker.requests[-1].query["tail"] == "5"


async def test_restart_of_a_container_without_healthcheck_waits_for_running(docker: FakeDocker) -> None:
    docker.add(FakeContainer("worker", healthcheck=False, logs=[(STDOUT, "consuming queue")]))
    outcome = await STEP_UNDER_TEST.run(args(action="restart", container="worker"), context(docker))

    assert outcome.ok, outcome
    assert outcome.summary.startswith("worker restarted, running after ")
    assert outcome.data["health"] is None


async def test_a_container_that_exits_after_restart_fails_with_its_log_tail(docker: FakeDocker) -> None:
    docker.add(
        FakeContainer(
            "api",
            restart_policy="no",
            after_restart="exits",
            logs=[(STDOUT, "starting api"), (STDERR, "FATAL: cannot connect to database")],
        )
    )
    outcome = await STEP_UNDER_TEST.run(
        args(action="restart", container="api", wait_seconds=30), context(docker)
    )

    assert not outcome.ok
    assert outcome.summary == "api restarted but exited (code 1)"
    assert "FATAL: cannot connect to database" in outcome.output
    assert "state:         exited (code 1)" in outcome.output
    assert outcome.data["status"] == "exited"


async def test_an_unhealthy_container_fails_at_wait_seconds_with_health_output_and_logs(
    docker: FakeDocker,
) -> None:
    docker.add(FakeContainer("cache", after_restart="unhealthy", logs=[(STDERR, "redis: out of memory")]))
    outcome = await STEP_UNDER_TEST.run(
        args(action="restart", container="cache", wait_seconds=0.2), context(docker)
    )

    assert not outcome.ok
    assert outcome.summary.startswith("cache restarted but not ready after ")
    assert outcome.summary.endswith("running, unhealthy")
    assert "health check:  connection refused" in outcome.output
    assert "redis: out of memory" in outcome.output


async def test_restart_of_a_missing_container_changes_nothing(docker: FakeDocker) -> None:
    with pytest.raises(UserError, match="no such container ghost"):
        await STEP_UNDER_TEST.run(args(action="restart", container="ghost"), context(docker))
    assert docker.calls("POST") == []


async def test_status_reports_facts_and_log_tail(docker: FakeDocker) -> None:
    outcome = await STEP_UNDER_TEST.run(args(action="status", container="web-1", tail=2), context(docker))

    assert outcome.ok
    assert outcome.summary == "web-1 running, healthy, 3 restarts"
    assert "restart count: 3 (restart policy: unless-stopped)" in outcome.output
    assert "started at:    2024-05-01 09:00:00 UTC" in outcome.output
    assert "warning: slow upstream" in outcome.output
    assert "listening on :8080" not in outcome.output  # tail=2
    assert outcome.data["restart_count"] == 3
    assert outcome.data["started_at"] == "2024-05-01T09:00:00.123456+00:00"
    assert docker.calls("POST") == []


async def test_status_of_an_unhealthy_container_is_not_ok(docker: FakeDocker) -> None:
    docker.add(FakeContainer("cache", health="unhealthy"))
    outcome = await STEP_UNDER_TEST.run(args(action="status", container="cache"), context(docker))
    assert not outcome.ok
    assert outcome.summary == "cache running, unhealthy, 3 restarts"


async def test_status_without_readable_logs_still_reports_the_state(docker: FakeDocker) -> None:
    docker.add(FakeContainer("quiet", logs_readable=False))
    outcome = await STEP_UNDER_TEST.run(args(action="status", container="quiet"), context(docker))
    assert outcome.ok
    assert "(could not read the logs: docker endpoint default failed (501)" in outcome.output
    with pytest.raises(IntegrationError, match="does not support reading"):
        await STEP_UNDER_TEST.run(args(action="logs", container="quiet"), context(docker))


async def test_logs_action(docker: FakeDocker) -> None:
    outcome = await STEP_UNDER_TEST.run(args(action="logs", container="web-1"), context(docker))
    assert outcome.ok
    assert outcome.summary == "web-1: last 3 log lines (running, healthy)"
    assert outcome.output.splitlines()[0].endswith("listening on :8080")


async def test_status_over_tcp(docker: FakeDocker) -> None:
    assert docker.tcp_port is not None
    outcome = await STEP_UNDER_TEST.run(
        args(action="status", container="web-1"), context(docker, url=f"tcp://127.0.0.1:{docker.tcp_port}")
    )
    assert outcome.ok
    assert [r.path for r in docker.requests] == ["/containers/web-1/json", "/containers/web-1/logs"]


async def test_endpoint_resolution(docker: FakeDocker) -> None:
    ctx = context(docker)
    ctx.config = RunbooksConfig(docker={"edge": endpoint(docker)})
    outcome = await STEP_UNDER_TEST.run(args(action="status", container="web-1"), ctx)
    assert outcome.ok  # the only endpoint is the default

    ctx.config = RunbooksConfig(docker={"edge": endpoint(docker), "core": endpoint(docker)})
    with pytest.raises(UserError, match=re.escape("needs `endpoint`: one of [runbooks.docker] (core, edge)")):
        await STEP_UNDER_TEST.run(args(action="status", container="web-1"), ctx)
    with pytest.raises(UserError, match="no docker endpoint 'nope'"):
        await STEP_UNDER_TEST.run(args(action="status", container="web-1", endpoint="nope"), ctx)


def test_describe_and_destructive() -> None:
    restart = args(action="restart", container="web-1", endpoint="edge", wait_seconds=30)
    assert STEP.destructive(restart)
    assert STEP.describe(restart).startswith("restart container web-1 on docker endpoint edge")
    assert not STEP.destructive(args(action="status", container="web-1"))
    assert not STEP.destructive(args(action="logs", container="web-1"))
    assert STEP.kind == "docker"


def test_args_are_strict() -> None:
    with pytest.raises(ValidationError):
        args(action="remove", container="web-1")
    with pytest.raises(ValidationError):
        args(action="logs", container="web-1", tail=0)
    with pytest.raises(ValidationError):
        args(action="logs", container="web-1", command="sh")


# --- pure decoding ---------------------------------------------------------------------------


def test_decode_multiplexed_joins_frames_and_split_characters() -> None:
    snowman = "☃".encode()
    data = (
        frame(1, b"hello ")
        + frame(1, b"world\nsecond " + snowman[:1])
        + frame(1, snowman[1:] + b"\n")
        + frame(2, b"oops\n")
        + frame(1, b"tail without newline")
        + bytes([1, 0, 0, 0, 0, 0, 0, 99])  # a truncated frame at the end is dropped
    )
    assert decode_multiplexed(data) == [
        LogLine("stdout", "hello world"),
        LogLine("stdout", "second ☃"),
        LogLine("stderr", "oops"),
        LogLine("stdout", "tail without newline"),
    ]
    assert decode_multiplexed(b"") == []


def test_decode_raw() -> None:
    assert decode_raw(b"a\r\nb\r\n") == [LogLine("stdout", "a"), LogLine("stdout", "b")]
    assert decode_raw(b"") == []


def test_validate_container_accepts_names_and_ids() -> None:
    assert validate_container("web-1") == "web-1"
    assert validate_container("my_app.web.1") == "my_app.web.1"
    assert validate_container("0123456789ab") == "0123456789ab"


def test_parse_docker_time() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("2024-05-01T10:00:00.5+02:00") == datetime(
        2024, 5, 1, 8, 0, 0, 500000, tzinfo=UTC
    )
    assert parse_docker_time("garbage") is None
