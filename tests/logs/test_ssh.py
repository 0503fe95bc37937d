"""SSH log sources against asyncssh's own server on 127.0.0.1: same report as a
local read, host keys enforced, remote paths sent literally."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from bot.errors import IntegrationError, UserError
from bot.logs import analyse_logs, analyse_logs_async
from bot.logs.ssh import materialise_sources
from bot.settings import DiagnosticsConfig
from tests.logs import logdata

HOSTILE = "/var/log/it's; rm -rf / $(touch pwned) `id` && echo.log"


@dataclass
class Server:
    port: int
    root: Path
    opened: list[bytes]
    config: DiagnosticsConfig


def _recording_sftp(root: Path, opened: list[bytes]) -> type[asyncssh.SFTPServer]:
    class Recording(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
            super().__init__(chan, chroot=os.fsencode(root))

        def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
            opened.append(path)
            return super().open(path, pflags, attrs)

    return Recording


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    root = tmp_path / "remote"
    (root / "var/log/nginx").mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(key_file)
    opened: list[bytes] = []
    listener = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
        sftp_factory=_recording_sftp(root, opened),
        allow_scp=False,
    )
    try:
        port = listener.sockets[0].getsockname()[1]
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
        config = DiagnosticsConfig(ssh_known_hosts=str(known_hosts), ssh_key_file=str(key_file))
        yield Server(port, root, opened, config)
    finally:
        listener.close()
        await listener.wait_closed()


async def test_remote_log_gives_the_same_report_as_a_local_read(server: Server, tmp_path: Path) -> None:
    logdata.write(server.root / "var/log/nginx/access.log", logdata.combined_rt)
    logdata.write(server.root / "var/log/nginx/access.log.1", logdata.combined_rt, compress=True)
    local = tmp_path / "local.log"
    logdata.write(local, logdata.combined_rt)
    local_gz = tmp_path / "local.log.1"
    logdata.write(local_gz, logdata.combined_rt, compress=True)
    expected = analyse_logs([str(local_gz), str(local)], workers=1).to_dict()

    entries = [
        f"ssh://tester@127.0.0.1:{server.port}/var/log/nginx/access.log.1",
        f"ssh://tester@127.0.0.1:{server.port}/var/log/nginx/access.log",
    ]
    async with materialise_sources(entries, server.config) as paths:
        assert len(paths) == 2
        report = await analyse_logs_async(paths, workers=1)
        fetched_dir = Path(paths[0]).parent
    assert not fetched_dir.exists()  # temp files cleaned up
    got = report.to_dict()
    assert len(got.pop("sources")) == len(expected.pop("sources")) == 2  # temp names differ
    assert got == expected
    assert report.status[502] == 200
    assert len(report.spikes) == 1


async def test_remote_globs_and_local_entries_mix(server: Server, tmp_path: Path) -> None:
    logdata.write(server.root / "var/log/nginx/access.log", logdata.combined, minutes=5)
    logdata.write(server.root / "var/log/nginx/access.log.1", logdata.combined, minutes=5)
    local = tmp_path / "here.log"
    logdata.write(local, logdata.combined, minutes=5)
    entries = [str(tmp_path / "here*.log"), f"ssh://127.0.0.1:{server.port}/var/log/nginx/access.log*"]
    async with materialise_sources(entries, server.config) as paths:
        assert paths[0] == str(local)
        assert len(paths) == 3


async def test_wrong_host_key_is_refused(server: Server, tmp_path: Path) -> None:
    logdata.write(server.root / "var/log/nginx/access.log", logdata.combined, minutes=5)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "wrong_known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {other}")
    config = server.config.model_copy(update={"ssh_known_hosts": str(known_hosts)})
    entry = f"ssh://127.0.0.1:{server.port}/var/log/nginx/access.log"
    with pytest.raises(IntegrationError, match="host key verification failed"):
        async with materialise_sources([entry], config):
            pass
    assert server.opened == []


async def test_missing_known_hosts_file_is_refused(server: Server, tmp_path: Path) -> None:
    config = server.config.model_copy(update={"ssh_known_hosts": str(tmp_path / "nope")})
    with pytest.raises(UserError, match="known_hosts"):
        async with materialise_sources([f"ssh://127.0.0.1:{server.port}/x.log"], config):
            pass


async def test_missing_remote_file_is_a_user_error(server: Server) -> None:
    with pytest.raises(UserError, match="no such file"):
        async with materialise_sources([f"ssh://127.0.0.1:{server.port}/var/log/none.log"], server.config):
            pass


async def test_path_needing_shell_quoting_arrives_literally(server: Server) -> None:
    target = server.root / HOSTILE.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = logdata.write(target, logdata.combined, minutes=5)
    entry = f"ssh://127.0.0.1:{server.port}{HOSTILE}"
    DiagnosticsConfig(log_sources={"web": [entry]})  # accepted by validation
    async with materialise_sources([entry], server.config) as paths:
        report = await analyse_logs_async(paths, workers=1)
    assert server.opened == [HOSTILE.encode()]
    assert report.parsed == sum(expected.values())
    assert not (server.root / "pwned").exists()


@pytest.mark.parametrize(
    "entry",
    ["ssh://host", "ssh://host:22relative.log", "ssh://user@/var/log/x", "ssh://h:99999/x", "ssh://-h/x"],
)
def test_bad_ssh_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match=r"log_sources\.web"):
        DiagnosticsConfig(log_sources={"web": [entry]})


def test_good_ssh_entries_are_accepted() -> None:
    config = DiagnosticsConfig(
        log_sources={"web": ["/var/log/a.log", "ssh://deploy@web1.example:2222/var/log/nginx/access.log*"]}
    )
    assert len(config.log_sources["web"]) == 2
