"""Running a command on an inventory host over SSH, and the SSH rules firebell shares.

This module owns how firebell opens SSH connections (also used by the SFTP
log fetcher in ``bot.logs.ssh``): host keys are always verified against a
known_hosts file that must exist, ``~/.ssh/config`` is never read (it could
turn that check off), password and keyboard-interactive logins are off, and
asyncssh/OS errors become ``UserError``/``IntegrationError`` in one place.

A command is an argv. SSH "exec" carries one string that the remote login
shell parses, so the argv is joined with ``shlex.join``: every element is
single-quoted for a POSIX shell, and ``x; rm -rf /``, ``$(id)`` or a newline
in a parameter arrive as one literal argument. Hosts whose login shell is not
POSIX (csh, fish) are not supported.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncssh

from bot.errors import FirebellError, IntegrationError, UserError
from bot.runbooks.config import SshHost

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
CUT_MARK = "\n[… output cut: {} more bytes]"
_READ_CHUNK = 65536


def known_hosts_file(configured: str | None, *, setting: str) -> str:
    """The known_hosts path to verify against; ``UserError`` naming ``setting`` when it is missing."""
    path = os.path.expanduser(configured or DEFAULT_KNOWN_HOSTS)
    if not os.path.isfile(path):
        raise UserError(
            f"SSH needs a known_hosts file to verify host keys; {path} does not exist. Set {setting}."
        )
    return path


def connect_options(*, known_hosts: str, key_file: str | None, timeout: float) -> dict[str, Any]:
    """asyncssh client options: verified host keys, no ssh config, no passwords, bounded waits."""
    options: dict[str, Any] = {
        "known_hosts": known_hosts,  # never None: host keys are always verified
        "config": None,  # ~/.ssh/config could disable the known_hosts check
        "connect_timeout": timeout,
        "login_timeout": timeout,
        "password_auth": False,  # nobody could type it; fail fast instead
        "kbdint_auth": False,
    }
    if key_file:
        options["client_keys"] = [os.path.expanduser(key_file)]
        options["agent_path"] = None
        options["ignore_encrypted"] = False  # an encrypted key is an error, not silently skipped
    return options


def ssh_error(where: str, exc: BaseException, *, known_hosts: str, key_setting: str) -> FirebellError:
    """The project error for an asyncssh/OS error raised while talking to ``where``."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return IntegrationError(
            f"{where}: host key verification failed — the server's key does not match "
            f"{known_hosts} (or the host is not listed there); refusing to connect ({exc.reason})",
            retryable=False,
            code="ssh_host_key",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return IntegrationError(
            f"{where}: SSH authentication failed (check {key_setting} or the agent)",
            retryable=False,
            code="ssh_auth",
        )
    if isinstance(exc, asyncssh.KeyImportError):
        return UserError(f"{key_setting}: cannot load the key ({exc})")
    if isinstance(exc, asyncssh.Error):
        return IntegrationError(f"{where}: SSH error: {exc.reason}", retryable=True)
    if isinstance(exc, TimeoutError):
        return IntegrationError(f"{where}: SSH connection timed out", retryable=True)
    if isinstance(exc, OSError):
        return IntegrationError(f"{where}: cannot connect: {exc.strerror or exc}", retryable=True)
    return IntegrationError(f"{where}: {exc}", retryable=True)


@dataclass(frozen=True)
class CommandResult:
    """What a remote command did. Output is decoded as UTF-8 (bad bytes replaced)."""

    command: str
    """The exact string sent to the remote shell (``shlex.join`` of the argv)."""
    exit_status: int | None
    """``None`` when the command ended without a status (killed by a signal)."""
    stdout: str
    stderr: str
    stdout_cut: bool = False
    stderr_cut: bool = False
    exit_signal: str | None = None

    def describe_exit(self) -> str:
        if self.exit_status is not None:
            return f"exit {self.exit_status}"
        return f"killed by signal {self.exit_signal}" if self.exit_signal else "no exit status"


def remote_command(argv: Sequence[str]) -> str:
    """The command string for SSH exec: every argv element quoted, so none is split or expanded."""
    if not argv:
        raise UserError("a remote command needs at least one argument")
    for arg in argv:
        if "\0" in arg:
            raise UserError("a remote command argument cannot contain a NUL character")
    if not argv[0]:
        raise UserError("a remote command cannot start with an empty program name")
    return shlex.join(argv)


async def _read_capped(stream: asyncssh.SSHReader[bytes], limit: int) -> tuple[str, bool, int]:
    """Read to EOF keeping at most ``limit`` bytes; the rest is drained so the remote never blocks."""
    kept = bytearray()
    dropped = 0
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            break
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        dropped += max(0, len(chunk) - max(room, 0))
    return kept.decode("utf-8", errors="replace"), dropped > 0, dropped


class SshSession:
    """One open connection to an inventory host; run several commands over it."""

    def __init__(
        self, conn: asyncssh.SSHClientConnection, where: str, known_hosts: str, key_setting: str
    ) -> None:
        self._conn = conn
        self._where = where
        self._known_hosts = known_hosts
        self._key_setting = key_setting

    async def run(self, argv: Sequence[str], *, max_output: int = 100_000) -> CommandResult:
        """Run ``argv`` (quoted, see module doc) with no stdin; each stream keeps ``max_output`` bytes.

        Bound it with ``asyncio.timeout`` if needed: cancelling closes the channel.
        """
        command = remote_command(argv)
        try:
            process = await self._conn.create_process(command, stdin=asyncssh.DEVNULL, encoding=None)
            try:
                (out, out_cut, out_more), (err, err_cut, err_more) = await asyncio.gather(
                    _read_capped(process.stdout, max_output), _read_capped(process.stderr, max_output)
                )
                await process.wait_closed()
            finally:
                process.close()
        except (asyncssh.Error, OSError) as exc:
            raise self._error(exc) from exc
        signal = process.exit_signal[0] if process.exit_signal else None
        return CommandResult(
            command=command,
            exit_status=process.exit_status if process.exit_status != -1 else None,
            stdout=out + (CUT_MARK.format(out_more) if out_cut else ""),
            stderr=err + (CUT_MARK.format(err_more) if err_cut else ""),
            stdout_cut=out_cut,
            stderr_cut=err_cut,
            exit_signal=signal,
        )

    def _error(self, exc: BaseException) -> FirebellError:
        return ssh_error(self._where, exc, known_hosts=self._known_hosts, key_setting=self._key_setting)


def _check_files(host: SshHost, name: str) -> str:
    """The known_hosts path; ``UserError`` before any connection when a configured file is missing."""
    known_hosts = known_hosts_file(host.known_hosts, setting=f"known_hosts under [runbooks.hosts.{name}]")
    if host.key_file and not os.path.isfile(os.path.expanduser(host.key_file)):
        raise UserError(f"runbooks.hosts.{name}.key_file: {host.key_file} does not exist")
    return known_hosts


@asynccontextmanager
async def ssh_session(
    host: SshHost, *, name: str, connect_timeout: float = 15.0
) -> AsyncIterator[SshSession]:
    """Connect to inventory host ``name`` (``host``); the connection closes when the block ends."""
    known_hosts = _check_files(host, name)
    where = f"{name} ({host.user}@{host.address}:{host.port})"
    key_setting = f"runbooks.hosts.{name}.key_file"
    options = connect_options(known_hosts=known_hosts, key_file=host.key_file, timeout=connect_timeout)
    try:
        conn = await asyncssh.connect(host.address, host.port, username=host.user, **options)
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise ssh_error(where, exc, known_hosts=known_hosts, key_setting=key_setting) from exc
    try:
        yield SshSession(conn, where, known_hosts, key_setting)
    finally:
        conn.close()
        # a cancelled step must not leave the connection half-open behind it
        await asyncio.shield(conn.wait_closed())


async def run_command(
    host: SshHost,
    argv: Sequence[str],
    *,
    name: str,
    connect_timeout: float = 15.0,
    max_output: int = 100_000,
) -> CommandResult:
    """Run one argv on inventory host ``name`` over a fresh connection."""
    remote_command(argv)  # refuse a bad argv before connecting
    async with ssh_session(host, name=name, connect_timeout=connect_timeout) as session:
        return await session.run(argv, max_output=max_output)
