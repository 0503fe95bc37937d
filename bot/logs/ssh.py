"""Log sources on remote hosts, fetched over SSH (SFTP) into a private temp dir.

Only operator-configured ``ssh://[user@]host[:port]/path`` entries from
``[diagnostics.log_sources]`` reach this module; nothing typed in Slack does.
The remote path is sent as one SFTP file name: no shell ever sees it, so
quotes, ``;`` or spaces in it mean nothing. Host keys are always checked
against a known_hosts file (``ssh_known_hosts`` or ``~/.ssh/known_hosts``);
``~/.ssh/config`` is not read, so it cannot turn that check off (these rules
are shared with runbooks: ``bot.runbooks.ssh``). gzip'd files are fetched as
they are and recognised by the analyser's magic-byte check.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncssh

from bot.errors import IntegrationError, UserError
from bot.runbooks.ssh import connect_options, known_hosts_file, ssh_error
from bot.settings import SSH_PREFIX, DiagnosticsConfig, SshLogSource, parse_ssh_source

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _known_hosts(config: DiagnosticsConfig) -> str:
    return known_hosts_file(config.ssh_known_hosts, setting="`ssh_known_hosts` under [diagnostics]")


def _connect_options(config: DiagnosticsConfig) -> dict[str, Any]:
    return connect_options(
        known_hosts=_known_hosts(config), key_file=config.ssh_key_file, timeout=config.timeout_seconds
    )


def _error(source: SshLogSource, exc: BaseException, known_hosts: str) -> Exception:
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return UserError(f"{source.label}:{source.path}: no such file on the remote host")
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return UserError(f"{source.label}:{source.path}: permission denied on the remote host")
    if isinstance(exc, asyncssh.SFTPError):
        return IntegrationError(f"{source.label}:{source.path}: SFTP error: {exc.reason}", retryable=True)
    return ssh_error(source.label, exc, known_hosts=known_hosts, key_setting="ssh_key_file")


async def fetch_ssh_sources(
    sources: Sequence[SshLogSource], config: DiagnosticsConfig, directory: str
) -> dict[SshLogSource, list[str]]:
    """Copy each remote file (globs expanded by SFTP) into ``directory``; one connection per host."""
    options = _connect_options(config)
    by_host: dict[tuple[str | None, str, int], list[SshLogSource]] = {}
    for source in sources:
        by_host.setdefault((source.user, source.host, source.port), []).append(source)
    fetched: dict[SshLogSource, list[str]] = {}
    count = 0
    for (user, host, port), group in by_host.items():
        current = group[0]
        login = {"username": user} if user else {}
        try:
            async with (
                asyncssh.connect(host, port, **login, **options) as conn,
                conn.start_sftp_client() as sftp,
            ):
                for source in group:
                    current = source
                    remote: Sequence[str | bytes] = [source.path]
                    if glob.has_magic(source.path):
                        try:
                            remote = sorted(await sftp.glob(source.path))
                        except asyncssh.SFTPNoSuchFile:
                            remote = []
                    local_paths: list[str] = []
                    for name in remote:
                        text = os.fsdecode(name)
                        count += 1
                        base = _SAFE_NAME.sub("_", os.path.basename(text))[:80] or "log"
                        local = os.path.join(directory, f"{count:04d}-{_SAFE_NAME.sub('_', host)}-{base}")
                        await sftp.get(text, local, preserve=False)
                        local_paths.append(local)
                    fetched[source] = local_paths
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise _error(current, exc, options["known_hosts"]) from exc
    return fetched


def _local_paths(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]


@asynccontextmanager
async def materialise_sources(entries: Sequence[str], config: DiagnosticsConfig) -> AsyncIterator[list[str]]:
    """Local paths for configured ``log_sources`` entries, valid inside the ``async with``.

    Local files and globs are expanded as they are; ``ssh://`` entries are
    fetched into a private temp dir that is removed on exit. Order follows
    ``entries``; duplicates are dropped.
    """
    remote = list(dict.fromkeys(parse_ssh_source(e) for e in entries if e.startswith(SSH_PREFIX)))
    async with AsyncExitStack() as stack:
        fetched: dict[SshLogSource, list[str]] = {}
        if remote:
            directory = await asyncio.to_thread(tempfile.mkdtemp, prefix="firebell-ssh-")
            stack.push_async_callback(asyncio.to_thread, shutil.rmtree, directory, True)
            fetched = await fetch_ssh_sources(remote, config, directory)
        found: list[str] = []
        for entry in entries:
            if entry.startswith(SSH_PREFIX):
                found.extend(fetched[parse_ssh_source(entry)])
            else:
                found.extend(_local_paths(entry))
        yield list(dict.fromkeys(found))
