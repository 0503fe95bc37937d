"""The ``haproxy`` step kind and its runtime-API client, against a real HAProxy.

HAProxy (the Debian package) runs in front of two tiny HTTP servers; the
tests drain, park and re-enable servers through its admin socket and check
both what ``show stat`` says and where requests actually go.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import HAProxyRuntime, RunbooksConfig
from bot.runbooks.haproxy import HAProxyClient, StatRow, StatType, parse_show_stat
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext
from bot.runbooks.steps.haproxy import STEP, HAProxyArgs
from tests.clock import FakeClock
from tests.runbooks.haproxy_servers import Backend, HAProxyProcess, haproxy_binary

HAPROXY = haproxy_binary()
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed (Debian package: haproxy)")


async def until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 15) -> None:
    """Wait for a state HAProxy reaches on its own (health checks); fail saying which."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never reached: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    with Backend("s1") as s1, Backend("s2") as s2:
        yield {"s1": s1, "s2": s2}


@pytest.fixture
async def haproxy(tmp_path: Path, backends: dict[str, Backend]) -> AsyncIterator[HAProxyProcess]:
    if HAPROXY is None:
        pytest.skip("haproxy not installed (Debian package: haproxy)")
    with HAProxyProcess(HAPROXY, tmp_path, backends) as process:
        client = HAProxyClient(str(process.socket_path))

        async def all_up() -> bool:
            rows = await client.show_stat("web")
            return all(row.status == "UP" for row in rows if row.is_server)

        await until(all_up, "both servers UP")
        yield process


@pytest.fixture
def client(haproxy: HAProxyProcess) -> HAProxyClient:
    return HAProxyClient(str(haproxy.socket_path))


def context(socket: str, timeout: float = 30) -> StepContext:
    return StepContext(
        config=RunbooksConfig(haproxy={"edge": HAProxyRuntime(socket=socket)}),
        secrets=SecretStore({}),
        clock=FakeClock(),
        ssl_context=ssl.create_default_context(),
        timeout=timeout,
    )


async def answers(url: str, count: int) -> list[str]:
    """Which server answered each of ``count`` requests through the frontend."""
    async with httpx.AsyncClient(trust_env=False) as http:
        return [(await http.get(url)).text for _ in range(count)]


# --------------------------------------------------------------------- show stat


@needs_haproxy
async def test_show_stat_gives_typed_rows(client: HAProxyClient, backends: dict[str, Backend]) -> None:
    rows = await client.show_stat()
    by_name = {(row.backend, row.server): row for row in rows}
    assert by_name[("fe", "FRONTEND")].type is StatType.FRONTEND
    assert by_name[("fe", "FRONTEND")].status == "OPEN"
    assert by_name[("web", "BACKEND")].type is StatType.BACKEND
    s1 = by_name[("web", "s1")]
    assert s1.type is StatType.SERVER and s1.is_server
    assert (s1.status, s1.scur, s1.qcur, s1.weight) == ("UP", 0, 0, 1)
    assert s1.addr == f"127.0.0.1:{backends['s1'].port}"
    assert s1.check_status == "L7OK"
    assert s1.fields["svname"] == "s1"

    only_web = await client.show_stat("web")
    assert {(row.backend, row.server) for row in only_web} == {
        ("web", "s1"),
        ("web", "s2"),
        ("web", "BACKEND"),
    }
    assert (await client.server("web", "s2")).server == "s2"


@needs_haproxy
async def test_the_tcp_runtime_api_works_the_same(haproxy: HAProxyProcess) -> None:
    client = HAProxyClient(f"tcp://127.0.0.1:{haproxy.tcp_port}")
    row = await client.server("web", "s1")
    assert row.status == "UP"


def test_parse_show_stat_handles_quoting_and_unknown_columns() -> None:
    text = (
        "# pxname,svname,qcur,scur,status,type,check_desc,future_column,\n"
        'web,s1,2,5,DRAIN,2,"Layer7 check passed, fine",x,\n'
        "web,BACKEND,0,5,UP,1,,,\n"
        "\n"
    )
    s1, backend = parse_show_stat(text)
    assert s1 == StatRow(backend="web", server="s1", type=StatType.SERVER, status="DRAIN", scur=5, qcur=2)
    assert s1.draining and not s1.in_maintenance
    assert s1.fields["check_desc"] == "Layer7 check passed, fine"
    assert s1.summary() == "web/s1 DRAIN, 5 sessions, 2 queued"
    assert backend.type is StatType.BACKEND


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("No such proxy.\n\n", "no_such_proxy"),
        ("Permission denied\n\n", "permission_denied"),
        (
            "Unknown command, but maybe one of the following ones is a better match:\n  help\n",
            "unknown_command",
        ),
        ("", "bad_reply"),
        ("pxname,svname\n", "bad_reply"),
    ],
)
def test_parse_show_stat_turns_error_replies_into_integration_errors(reply: str, code: str) -> None:
    with pytest.raises(IntegrationError) as caught:
        parse_show_stat(reply)
    assert caught.value.code == code
    assert not caught.value.retryable


# --------------------------------------------------------------------- changing state


@needs_haproxy
async def test_drain_moves_traffic_away_and_ready_brings_it_back(
    client: HAProxyClient, haproxy: HAProxyProcess
) -> None:
    await client.set_server_state("web", "s1", "drain")
    s1 = await client.server("web", "s1")
    assert s1.status == "DRAIN" and s1.draining
    assert set(await answers(haproxy.url, 6)) == {"s2"}

    await client.set_server_state("web", "s1", "ready")
    assert (await client.server("web", "s1")).status == "UP"
    assert set(await answers(haproxy.url, 6)) == {"s1", "s2"}


@needs_haproxy
async def test_maint_takes_a_server_out(client: HAProxyClient, haproxy: HAProxyProcess) -> None:
    await client.set_server_state("web", "s2", "maint")
    s2 = await client.server("web", "s2")
    assert s2.status == "MAINT" and s2.in_maintenance
    assert set(await answers(haproxy.url, 4)) == {"s1"}


@needs_haproxy
async def test_wait_drained_returns_once_the_last_session_ends(
    client: HAProxyClient, haproxy: HAProxyProcess, backends: dict[str, Backend]
) -> None:
    await client.set_server_state("web", "s2", "maint")  # so the held request lands on s1
    async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
        held = asyncio.create_task(http.get(f"{haproxy.url}/hold"))
        assert await asyncio.to_thread(backends["s1"].entered.wait, 15)
        assert (await client.server("web", "s1")).scur == 1

        await client.set_server_state("web", "s1", "drain")
        # The session is held open, so a wait that must end now cannot report it drained.
        still = await client.wait_drained("web", "s1", timeout=0)
        assert not still.drained and still.row.scur == 1

        waiting = asyncio.create_task(client.wait_drained("web", "s1", timeout=60, interval=0.05))
        backends["s1"].release.set()
        result = await waiting
        response = await held
    assert result.drained
    assert (result.row.status, result.row.scur, result.row.qcur) == ("DRAIN", 0, 0)
    assert response.status_code == 200 and response.text == "s1"


# --------------------------------------------------------------------- errors


@needs_haproxy
async def test_unknown_names_give_clear_errors(client: HAProxyClient) -> None:
    with pytest.raises(IntegrationError, match=r"No such server") as caught:
        await client.set_server_state("web", "s9", "drain")
    assert caught.value.code == "no_such_server" and not caught.value.retryable

    with pytest.raises(IntegrationError, match=r"No such backend") as caught:
        await client.set_server_state("api", "s1", "drain")
    assert caught.value.code == "no_such_backend"

    with pytest.raises(IntegrationError, match=r"HAProxy backend web has no server s9") as caught:
        await client.server("web", "s9")
    assert caught.value.code == "no_such_server"

    with pytest.raises(IntegrationError, match=r"HAProxy has no backend api") as caught:
        await client.show_stat("api")
    assert caught.value.code == "no_such_backend"


class RecordingSocket:
    """A Unix socket that counts connections: proof that nothing was sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RecordingSocket:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()
            await writer.wait_closed()

        self.server = await asyncio.start_unix_server(handle, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


BAD_NAMES = ["s1\nset server web/s2 state maint", "s1;show info", "s1 state maint", "s1\r", "", "s/1", "sé"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_names_that_could_smuggle_a_command_are_rejected_before_sending(
    name: str, tmp_path: Path
) -> None:
    async with RecordingSocket(tmp_path / "rec.sock") as recorder:
        client = HAProxyClient(str(recorder.path))
        with pytest.raises(UserError, match="not a valid HAProxy name"):
            await client.set_server_state("web", name, "drain")
        with pytest.raises(UserError, match="not a valid HAProxy name"):
            await client.set_server_state(name, "s1", "drain")
        with pytest.raises(UserError, match="not a valid HAProxy name"):
            await client.show_stat("web", name)
        with pytest.raises(UserError, match="not a valid HAProxy name"):
            await client.wait_drained("web", name, timeout=1)
        with pytest.raises(UserError):
            await client.command(f"show stat;{name}\nshow info")
        assert recorder.connections == 0


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_the_step_arguments_reject_those_names_too(name: str) -> None:
    with pytest.raises(ValidationError, match="not a valid HAProxy name"):
        HAProxyArgs.model_validate({"target": "edge", "action": "drain", "backend": "web", "server": name})


@needs_haproxy
async def test_a_rejected_name_changes_nothing_on_haproxy(client: HAProxyClient) -> None:
    with pytest.raises(UserError):
        await client.set_server_state("web", "s1\nset server web/s2 state maint", "drain")
    assert [(await client.server("web", name)).status for name in ("s1", "s2")] == ["UP", "UP"]


async def test_a_missing_socket_is_a_retryable_integration_error(tmp_path: Path) -> None:
    with pytest.raises(IntegrationError, match="does not exist") as caught:
        await HAProxyClient(str(tmp_path / "absent.sock")).show_stat()
    assert caught.value.retryable and caught.value.code == "unreachable"


@pytest.mark.parametrize("address", ["tcp://", "tcp://host", "tcp://host:notaport", "http://host:1", ""])
def test_bad_socket_addresses_are_user_errors(address: str) -> None:
    with pytest.raises(UserError):
        HAProxyClient(address)


# --------------------------------------------------------------------- the step kind


@needs_haproxy
async def test_step_drain_waits_for_sessions_and_reports(
    haproxy: HAProxyProcess, client: HAProxyClient
) -> None:
    args = HAProxyArgs.model_validate(
        {"target": "edge", "action": "drain", "backend": "web", "server": "s1", "wait_seconds": 20}
    )
    assert STEP.destructive(args)
    assert STEP.describe(args) == (
        "drain web/s1 on HAProxy edge, then wait up to 20s for its sessions to end"
    )
    outcome = await STEP.run(args, context(str(haproxy.socket_path)))
    assert outcome.ok, outcome.summary
    assert outcome.data == {"status": "DRAIN", "scur": 0, "qcur": 0, "drained": True}
    assert "web/s1 has no sessions left" in outcome.summary
    assert "DRAIN" in outcome.output
    assert (await client.server("web", "s1")).status == "DRAIN"

    ready = HAProxyArgs.model_validate(
        {"target": "edge", "action": "ready", "backend": "web", "server": "s1"}
    )
    outcome = await STEP.run(ready, context(str(haproxy.socket_path)))
    assert outcome.ok and outcome.data["status"] == "UP"


@needs_haproxy
async def test_step_drain_that_does_not_finish_in_time_fails(
    haproxy: HAProxyProcess, client: HAProxyClient, backends: dict[str, Backend]
) -> None:
    await client.set_server_state("web", "s2", "maint")
    async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
        held = asyncio.create_task(http.get(f"{haproxy.url}/hold"))
        assert await asyncio.to_thread(backends["s1"].entered.wait, 15)
        args = HAProxyArgs.model_validate(
            {"target": "edge", "action": "drain", "backend": "web", "server": "s1", "wait_seconds": 0.2}
        )
        outcome = await STEP.run(args, context(str(haproxy.socket_path)))
        backends["s1"].release.set()
        await held
    assert not outcome.ok
    assert outcome.data["drained"] is False and outcome.data["scur"] == 1
    assert "web/s1 set to drain; web/s1 still has 1 sessions" in outcome.summary


@needs_haproxy
async def test_step_show_stat_and_wait_drained_are_read_only(haproxy: HAProxyProcess) -> None:
    show = HAProxyArgs.model_validate({"target": "edge", "action": "show_stat", "backend": "web"})
    assert not STEP.destructive(show)
    outcome = await STEP.run(show, context(str(haproxy.socket_path)))
    assert outcome.ok
    assert outcome.summary == "backend web: 2 servers (2 UP)"
    assert outcome.data["servers"]["web/s1"] == {"status": "UP", "scur": 0, "qcur": 0}
    assert "BACKEND" in outcome.output

    wait = HAProxyArgs.model_validate(
        {"target": "edge", "action": "wait_drained", "backend": "web", "server": "s2"}
    )
    assert not STEP.destructive(wait)
    outcome = await STEP.run(wait, context(str(haproxy.socket_path)))
    assert outcome.ok and outcome.data["drained"] is True


async def test_step_unknown_target_is_a_user_error() -> None:
    args = HAProxyArgs.model_validate({"target": "core", "action": "show_stat"})
    with pytest.raises(UserError, match=r"no HAProxy target 'core'.*\(edge\)"):
        await STEP.run(args, context("/nonexistent.sock"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"action": "drain", "backend": "web"}, "needs both backend and server"),
        ({"action": "wait_drained", "server": "s1"}, "needs both backend and server"),
        ({"action": "show_stat", "server": "s1"}, "needs its backend too"),
        ({"action": "maint", "backend": "web", "server": "s1", "wait_seconds": 5}, "only with drain"),
        ({"action": "restart", "backend": "web", "server": "s1"}, "action"),
        ({"action": "drain", "backend": "web", "server": "s1", "socket": "/x"}, "Extra inputs"),
    ],
)
def test_step_argument_shapes(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HAProxyArgs.model_validate({"target": "edge", **raw})
