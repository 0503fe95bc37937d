"""A test SSH server on 127.0.0.1 that records every exec command and emulates a few programs.

It is asyncssh's own server with a fresh host key (written to a known_hosts
file) and one accepted client key (written to ``key_file``). Each exec request
is recorded exactly as received, split with ``shlex.split`` — how a POSIX
shell would split it — and handed to a small emulation, never to a shell:

``show-args ARG…``
    prints its arguments as a JSON list, to prove where argument boundaries fell.
``exit-with CODE [MESSAGE]``
    writes MESSAGE to stderr and exits with CODE.
``flood BYTES``
    writes BYTES bytes of ``x`` to stdout.
``systemctl`` / ``journalctl`` (optionally behind ``sudo -n``)
    a fake systemd with per-unit state, see :class:`FakeUnit`.

Anything else answers ``command not found`` with exit 127.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from bot.runbooks.config import SshHost


@dataclass
class FakeUnit:
    """A unit: ``state`` now, ``after_start`` the states ``is-active`` reports after a
    (re)start/reload, one per query, the last one sticking."""

    state: str = "active"
    after_start: list[str] = field(default_factory=lambda: ["activating", "activating", "active"])
    start_exit: int = 0
    journal: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    starts: int = 0


@dataclass
class SshTestServer:
    port: int
    known_hosts: Path
    key_file: Path
    host_key: asyncssh.SSHKey
    commands: list[str] = field(default_factory=list)
    """Every exec command string, exactly as received."""
    argvs: list[list[str]] = field(default_factory=list)
    """The same, split as a POSIX shell would."""
    units: dict[str, FakeUnit] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    """Paths that exist, for ``test -e``, ``touch --`` and ``rm -f --``."""

    def host(self, **changes: object) -> SshHost:
        values: dict[str, object] = {
            "address": "127.0.0.1",
            "port": self.port,
            "user": "tester",
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
        }
        values.update(changes)
        return SshHost.model_validate(values)

    # -- the emulation ------------------------------------------------------------

    def execute(self, argv: list[str]) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) for one argv."""
        if argv[:2] == ["sudo", "-n"]:
            argv = argv[2:]
        if not argv:
            return 1, "", "empty command\n"
        program, args = argv[0], argv[1:]
        if program == "show-args":
            return 0, json.dumps(args) + "\n", ""
        if program == "exit-with":
            return int(args[0]), "", (args[1] + "\n") if len(args) > 1 else ""
        if program == "flood":
            return 0, "x" * int(args[0]), ""
        if program == "test" and len(args) == 2 and args[0] == "-e":
            return (0 if args[1] in self.files else 1), "", ""
        if program == "touch" and len(args) == 2 and args[0] == "--":
            self.files.add(args[1])
            return 0, "", ""
        if program == "rm" and len(args) == 3 and args[:2] == ["-f", "--"]:
            self.files.discard(args[2])
            return 0, "", ""
        if program == "systemctl":
            return self._systemctl(args)
        if program == "journalctl":
            return self._journalctl(args)
        return 127, "", f"sh: 1: {program}: not found\n"

    def _systemctl(self, args: list[str]) -> tuple[int, str, str]:
        if not args:
            return 1, "", "too few arguments\n"
        verb, rest = args[0], args[1:]
        names: list[str] = []
        options_done = False
        for arg in rest:
            if options_done:
                names.append(arg)
            elif arg == "--":
                options_done = True
            elif arg.startswith("-"):
                if arg not in ("--no-pager", "--full", "--lines=20"):
                    return 1, "", f"systemctl: unrecognized option '{arg}'\n"
            else:
                names.append(arg)
        if len(names) != 1:
            return 1, "", "expected one unit\n"
        unit = self.units.get(names[0])
        if unit is None:
            if verb == "is-active":
                return 3, "inactive\n", ""
            return 5, "", f"Failed to {verb} {names[0]}: Unit {names[0]} not found.\n"
        if verb in ("restart", "start", "reload"):
            unit.starts += 1
            unit.journal.append(f"2024-05-01T10:00:0{unit.starts}+0000 host systemd[1]: {verb} {names[0]}")
            unit.pending = list(unit.after_start)
            unit.state = unit.pending[0] if unit.pending else "active"
            if unit.start_exit:
                return unit.start_exit, "", f"Job for {names[0]} failed.\n"
            return 0, "", ""
        if verb == "stop":
            unit.state, unit.pending = "inactive", []
            return 0, "", ""
        if verb == "is-active":
            if unit.pending:
                unit.state = unit.pending.pop(0) if len(unit.pending) > 1 else unit.pending[0]
            return (0 if unit.state == "active" else 3), unit.state + "\n", ""
        if verb == "status":
            return (0 if unit.state == "active" else 3), f"● {names[0]}\n     Active: {unit.state}\n", ""
        return 1, "", f"Unknown command verb {verb}.\n"

    def _journalctl(self, args: list[str]) -> tuple[int, str, str]:
        if len(args) < 2 or args[0] != "-u":
            return 1, "", "expected -u UNIT\n"
        unit = self.units.get(args[1])
        if unit is None:
            return 0, "-- No entries --\n", ""
        return 0, "".join(line + "\n" for line in unit.journal), ""

    async def handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        self.commands.append(command)
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            process.stderr.write(f"sh: syntax error: {exc}\n")
            process.exit(2)
            return
        self.argvs.append(argv)
        status, out, err = self.execute(argv)
        if out:
            process.stdout.write(out)
        if err:
            process.stderr.write(err)
        process.exit(status)


@asynccontextmanager
async def ssh_test_server(directory: Path) -> AsyncIterator[SshTestServer]:
    """Start the server; key files go into ``directory``."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = directory / "id_ed25519"
    client_key.write_private_key(key_file)
    known_hosts = directory / "known_hosts"
    server: SshTestServer | None = None

    async def factory(process: asyncssh.SSHServerProcess[str]) -> None:
        assert server is not None
        await server.handle(process)

    listener = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
        process_factory=factory,
        allow_scp=False,
    )
    try:
        port = listener.sockets[0].getsockname()[1]
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
        server = SshTestServer(port=port, known_hosts=known_hosts, key_file=key_file, host_key=host_key)
        yield server
    finally:
        listener.close()
        await listener.wait_closed()
