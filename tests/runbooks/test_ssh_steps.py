"""The ``ssh`` and ``systemd`` step kinds against a real SSH server on 127.0.0.1
(asyncssh's, with an emulated remote side: see ``tests.runbooks.ssh_server``)."""

from __future__ import annotations

import json
import shlex
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pydantic
import pytest

from bot.clock import SystemClock
from bot.errors import IntegrationError, UserError
from bot.runbooks.config import RunbooksConfig, SshHost
from bot.runbooks.secrets import SecretStore
from bot.runbooks.ssh import remote_command, run_command
from bot.runbooks.step import StepContext, StepOutcome
from bot.runbooks.steps.ssh import STEP as SSH_STEP
from bot.runbooks.steps.ssh import SshArgs
from bot.runbooks.steps.systemd import STEP as SYSTEMD_STEP
from bot.runbooks.steps.systemd import SystemdArgs, SystemdStep, journal_argv, systemctl_argv
from tests.runbooks.ssh_server import FakeUnit, SshTestServer, ssh_test_server

HOSTILE = [
    "x; touch /tmp/pwned",
    "$(id)",
    "`id`",
    "a\nb; id",
    'it\'s "quoted" && echo $HOME | cat > /etc/passwd',
    "",
    "--help",
    "*",
    "~root",
    "a\\",
    "tab\there",
]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SshTestServer]:
    async with ssh_test_server(tmp_path) as server:
        yield server


def context(hosts: dict[str, SshHost], **changes: Any) -> StepContext:
    return StepContext(
        config=RunbooksConfig(hosts=hosts, **changes),
        secrets=SecretStore({}),
        clock=SystemClock(),
        ssl_context=ssl.create_default_context(),
        timeout=60,
    )


async def run_ssh(server: SshTestServer, **args: Any) -> StepOutcome:
    parsed = SshArgs.model_validate({"host": "web1", **args})
    return await SSH_STEP.run(parsed, context({"web1": server.host()}))


# -- ssh: arguments arrive as they were given ---------------------------------------


async def test_shell_syntax_in_arguments_arrives_as_literal_argv_elements(server: SshTestServer) -> None:
    outcome = await run_ssh(server, argv=["show-args", *HOSTILE])
    assert outcome.ok, outcome.output
    assert server.commands == [shlex.join(["show-args", *HOSTILE])]
    assert server.argvs == [["show-args", *HOSTILE]]
    assert json.loads(outcome.output.splitlines()[-1]) == HOSTILE
    assert outcome.data == {"exit_status": 0, "host": "web1"}


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_each_hostile_parameter_is_one_argument(server: SshTestServer, hostile: str) -> None:
    result = await run_command(server.host(), ["show-args", "before", hostile, "after"], name="web1")
    assert result.exit_status == 0
    assert json.loads(result.stdout) == ["before", hostile, "after"]


async def test_exit_status_decides_ok_and_stderr_is_kept(server: SshTestServer) -> None:
    failed = await run_ssh(server, argv=["exit-with", "3", "disk full"])
    assert not failed.ok
    assert failed.data["exit_status"] == 3
    assert "exit 3" in failed.summary
    assert "--- stderr ---\ndisk full" in failed.output
    tolerated = await run_ssh(server, argv=["exit-with", "3"], ok_exit_codes=[0, 3])
    assert tolerated.ok


async def test_output_is_capped_and_marked(server: SshTestServer) -> None:
    result = await run_command(server.host(), ["flood", "5000"], name="web1", max_output=1000)
    assert result.stdout_cut
    assert result.stdout.startswith("x" * 1000)
    assert "output cut: 4000 more bytes" in result.stdout
    assert not result.stderr_cut


async def test_unknown_host_key_is_refused(server: SshTestServer, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "other_known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {stranger}")
    host = server.host(known_hosts=str(known_hosts))
    with pytest.raises(IntegrationError, match="host key verification failed") as caught:
        await run_command(host, ["show-args", "x"], name="web1")
    assert caught.value.code == "ssh_host_key"
    assert not caught.value.retryable
    assert server.commands == []


async def test_host_missing_from_known_hosts_is_refused(server: SshTestServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(IntegrationError, match="host key verification failed"):
        await run_command(server.host(known_hosts=str(empty)), ["show-args"], name="web1")
    assert server.commands == []


async def test_missing_known_hosts_file_is_refused_before_connecting(
    server: SshTestServer, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match=r"known_hosts.*does not exist"):
        await run_command(server.host(known_hosts=str(tmp_path / "nope")), ["show-args"], name="web1")


async def test_wrong_client_key_is_a_clear_auth_error(server: SshTestServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(wrong)
    with pytest.raises(IntegrationError, match=r"SSH authentication failed \(check .*key_file") as caught:
        await run_command(server.host(key_file=str(wrong)), ["show-args"], name="web1")
    assert caught.value.code == "ssh_auth"
    assert server.commands == []


async def test_missing_key_file_is_a_user_error(server: SshTestServer, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="key_file"):
        await run_command(server.host(key_file=str(tmp_path / "none")), ["show-args"], name="web1")


async def test_closed_port_is_a_retryable_integration_error(tmp_path: Path, server: SshTestServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(IntegrationError, match="cannot connect") as caught:
        await run_command(server.host(port=port), ["show-args"], name="web1")
    assert caught.value.retryable


async def test_unknown_inventory_host_is_a_user_error(server: SshTestServer) -> None:
    parsed = SshArgs(host="db9", argv=["show-args"])
    with pytest.raises(UserError, match=r"unknown host `db9` \(known under \[runbooks.hosts\]: web1\)"):
        await SSH_STEP.run(parsed, context({"web1": server.host()}))


@pytest.mark.parametrize(
    "args",
    [
        {"host": "web1", "argv": []},
        {"host": "web1", "argv": ["", "x"]},
        {"host": "web1", "argv": ["a\0b"]},
        {"host": "web1", "argv": "rm -rf /"},
        {"host": "web1", "argv": ["ls"], "shell": True},
    ],
)
def test_bad_ssh_args_are_rejected(args: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        SshArgs.model_validate(args)


def test_ssh_is_destructive_unless_the_author_says_otherwise() -> None:
    args = SshArgs(host="web1", argv=["uptime"])
    assert SSH_STEP.destructive(args)
    assert not SSH_STEP.destructive(SshArgs(host="web1", argv=["uptime"], destructive=False))
    assert SSH_STEP.describe(SshArgs(host="web1", argv=["echo", "a b"])) == "run `echo 'a b'` on web1"


def test_remote_command_quotes_every_element() -> None:
    assert remote_command(["echo", "$(id)", "a b", ""]) == "echo '$(id)' 'a b' ''"
    with pytest.raises(UserError):
        remote_command([])


# -- systemd ------------------------------------------------------------------------


def systemd_args(**args: Any) -> SystemdArgs:
    return SystemdArgs.model_validate({"host": "web1", **args})


async def run_systemd(server: SshTestServer, **args: Any) -> StepOutcome:
    step = SystemdStep(poll_seconds=0.01)
    return await step.run(systemd_args(**args), context({"web1": server.host()}))


async def test_restart_waits_until_the_unit_is_active(server: SshTestServer) -> None:
    server.units["web.service"] = FakeUnit(after_start=["activating", "activating", "activating", "active"])
    outcome = await run_systemd(server, unit="web.service", action="restart", wait_seconds=60)
    assert outcome.ok, outcome.output
    assert outcome.data["state"] == "active"
    assert server.argvs[0] == ["systemctl", "restart", "--", "web.service"]
    polls = [argv for argv in server.argvs if argv[:2] == ["systemctl", "is-active"]]
    assert len(polls) == 4  # activating ×3, then active
    assert polls[0] == ["systemctl", "is-active", "--", "web.service"]
    assert "web.service: activating" in outcome.output
    assert "web.service: active" in outcome.output
    assert not any(argv[0] == "journalctl" for argv in server.argvs)


async def test_a_unit_that_fails_after_restart_is_not_ok_and_shows_its_journal(
    server: SshTestServer,
) -> None:
    server.units["worker.service"] = FakeUnit(
        after_start=["activating", "failed"],
        journal=["2024-05-01T09:59:58+0000 host worker[42]: panic: cannot bind :8080"],
    )
    outcome = await run_systemd(server, unit="worker.service", action="restart", sudo=True)
    assert not outcome.ok
    assert outcome.data["state"] == "failed"
    assert "unit failed" in outcome.summary
    assert server.argvs[0] == ["sudo", "-n", "systemctl", "restart", "--", "worker.service"]
    assert server.argvs[-1] == [
        "sudo", "-n", "journalctl", "-u", "worker.service", "-n", "50", "--no-pager", "-o", "short-iso",
    ]  # fmt: skip
    assert "last 50 journal lines" in outcome.output
    assert "panic: cannot bind :8080" in outcome.output


async def test_a_failing_restart_command_is_not_ok_and_shows_its_journal(server: SshTestServer) -> None:
    server.units["db.service"] = FakeUnit(start_exit=1, journal=["db[1]: bad config"])
    outcome = await run_systemd(server, unit="db.service", action="restart")
    assert not outcome.ok
    assert "failed (exit 1)" in outcome.summary
    assert "Job for db.service failed." in outcome.output
    assert "db[1]: bad config" in outcome.output
    assert not any(argv[1:2] == ["is-active"] for argv in server.argvs)


async def test_a_unit_that_stays_activating_times_out(server: SshTestServer) -> None:
    server.units["slow.service"] = FakeUnit(after_start=["activating"])
    outcome = await run_systemd(server, unit="slow.service", action="start", wait_seconds=0.05)
    assert not outcome.ok
    assert "still activating after" in outcome.summary
    assert any(argv[0] == "journalctl" for argv in server.argvs)


async def test_status_reports_the_state_and_changes_nothing(server: SshTestServer) -> None:
    server.units["web.service"] = FakeUnit(state="inactive")
    outcome = await run_systemd(server, unit="web.service", action="status")
    assert not outcome.ok
    assert outcome.data["state"] == "inactive"
    assert server.argvs[0] == [
        "systemctl",
        "status",
        "--no-pager",
        "--full",
        "--lines=20",
        "--",
        "web.service",
    ]
    assert server.units["web.service"].starts == 0
    server.units["web.service"].state = "active"
    assert (await run_systemd(server, unit="web.service", action="status")).ok


async def test_stop_does_not_wait(server: SshTestServer) -> None:
    server.units["web.service"] = FakeUnit()
    outcome = await run_systemd(server, unit="web.service", action="stop")
    assert outcome.ok
    assert server.argvs == [["systemctl", "stop", "--", "web.service"]]


@pytest.mark.parametrize("unit", ["--help", "-x.service", "a b", "web;reboot", "$(id)", "a\nb", "", "x/y"])
async def test_bad_unit_names_are_rejected_before_connecting(server: SshTestServer, unit: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="systemd unit name"):
        systemd_args(unit=unit, action="restart")
    with pytest.raises(ValueError, match="systemd unit name"):
        systemctl_argv("restart", unit, sudo=False)
    with pytest.raises(ValueError, match="systemd unit name"):
        journal_argv(unit, sudo=False)
    assert server.commands == []


@pytest.mark.parametrize("unit", ["nginx.service", "getty@tty1.service", "php8.2-fpm", "sys-fs-fuse:x.mount"])
def test_good_unit_names_are_accepted(unit: str) -> None:
    assert systemd_args(unit=unit, action="status").unit == unit


def test_systemd_destructive_and_describe() -> None:
    assert not SYSTEMD_STEP.destructive(systemd_args(unit="a.service", action="status"))
    for action in ("restart", "reload", "start", "stop"):
        assert SYSTEMD_STEP.destructive(systemd_args(unit="a.service", action=action))
    text = SYSTEMD_STEP.describe(systemd_args(unit="a.service", action="restart", sudo=True, wait_seconds=10))
    assert text == "systemctl restart a.service on web1 (sudo), wait up to 10 s for active"
    with pytest.raises(pydantic.ValidationError):
        systemd_args(unit="a.service", action="kill")
