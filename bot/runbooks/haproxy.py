"""A small asyncio client for HAProxy's runtime API (the ``stats socket``).

It owns the wire protocol (one command per connection, HAProxy's
non-interactive mode), the parsing of ``show stat`` into typed rows, the
mapping of HAProxy's error replies onto ``IntegrationError``, and the checks
on backend/server names that keep anything from smuggling a second command
onto the line. The ``haproxy`` step kind (``bot.runbooks.steps.haproxy``) is
its only caller inside firebell.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from bot.errors import IntegrationError, UserError

ServerState = Literal["ready", "drain", "maint"]
SERVER_STATES: tuple[ServerState, ...] = ("ready", "drain", "maint")

# HAProxy's own rule for proxy and server names (cfgparse's invalid_char):
# letters, digits, '-', '_', '.' and ':'. Anything else (space, ';', newline)
# would let a name end the command or start another one.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

# Replies HAProxy gives instead of a result, and what they mean for a retry.
_KNOWN_ERRORS: tuple[tuple[str, str, bool], ...] = (
    ("No such server", "no_such_server", False),
    ("No such backend", "no_such_backend", False),
    ("No such proxy", "no_such_proxy", False),
    ("Permission denied", "permission_denied", False),
    ("Unknown command", "unknown_command", False),
    ("Require 'backend/server'", "bad_arguments", False),
    ("expects", "bad_arguments", False),
)


def validate_identifier(value: str, what: str = "name") -> str:
    """``value`` if it is a valid HAProxy backend/server name, else ``UserError``."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise UserError(
            f"{what} {value!r} is not a valid HAProxy name "
            "(letters, digits, '-', '_', '.' and ':' only, at most 128)"
        )
    return value


class StatType(enum.IntEnum):
    """``show stat``'s ``type`` column."""

    FRONTEND = 0
    BACKEND = 1
    SERVER = 2
    LISTENER = 3


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class StatRow:
    """One line of ``show stat``.

    ``backend`` is the proxy name (``pxname``), which for FRONTEND rows is the
    frontend's name; ``server`` is ``svname`` (``FRONTEND``/``BACKEND`` for the
    aggregate rows). Every column stays available in ``fields``.
    """

    backend: str
    server: str
    type: StatType
    status: str
    """``UP``, ``DOWN``, ``DRAIN``, ``MAINT``, ``no check``, ``UP 1/3``…"""
    scur: int
    """Current sessions."""
    qcur: int
    """Requests waiting in this server's (or backend's) queue."""
    smax: int | None = None
    stot: int | None = None
    weight: int | None = None
    check_status: str = ""
    lastchg: int | None = None
    """Seconds since the last UP/DOWN change."""
    addr: str = ""
    fields: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_server(self) -> bool:
        return self.type is StatType.SERVER

    @property
    def draining(self) -> bool:
        return self.status.startswith("DRAIN")

    @property
    def in_maintenance(self) -> bool:
        return self.status.startswith("MAINT")

    def summary(self) -> str:
        """``web/s1 DRAIN, 3 sessions, 0 queued`` — for progress messages."""
        return f"{self.backend}/{self.server} {self.status}, {self.scur} sessions, {self.qcur} queued"


def parse_show_stat(text: str) -> list[StatRow]:
    """Rows of a ``show stat`` reply (CSV with a ``# pxname,svname,…`` header).

    ``IntegrationError`` when the text is not such a reply — an error message
    HAProxy sent instead, or a cut-off header.
    """
    lines = text.lstrip("\n").splitlines()
    if not lines or not lines[0].startswith("# pxname,"):
        raise _reply_error("show stat", text)
    header = [name.strip() for name in lines[0][2:].split(",")]
    for required in ("svname", "status", "scur", "qcur", "type"):
        if required not in header:
            raise IntegrationError(
                f"HAProxy's show stat has no {required} column", retryable=False, code="bad_reply"
            )
    rows: list[StatRow] = []
    for values in csv.reader(line for line in lines[1:] if line.strip()):
        columns = {name: value for name, value in zip(header, values, strict=False) if name and name != "-"}
        row_type = _int(columns.get("type"))
        try:
            kind = StatType(row_type) if row_type is not None else StatType.SERVER
        except ValueError:
            continue  # a row type newer than this parser: not ours to act on
        rows.append(
            StatRow(
                backend=columns.get("pxname", ""),
                server=columns.get("svname", ""),
                type=kind,
                status=columns.get("status", ""),
                scur=_int(columns.get("scur")) or 0,
                qcur=_int(columns.get("qcur")) or 0,
                smax=_int(columns.get("smax")),
                stot=_int(columns.get("stot")),
                weight=_int(columns.get("weight")),
                check_status=columns.get("check_status", ""),
                lastchg=_int(columns.get("lastchg")),
                addr=columns.get("addr", ""),
                fields=columns,
            )
        )
    return rows


def _reply_error(command: str, reply: str) -> IntegrationError:
    text = reply.strip()
    first = text.splitlines()[0] if text else "(empty reply)"
    for marker, code, retryable in _KNOWN_ERRORS:
        if marker in first:
            return IntegrationError(f"HAProxy refused {command!r}: {first}", retryable=retryable, code=code)
    return IntegrationError(
        f"HAProxy gave an unexpected reply to {command!r}: {first[:200]}", retryable=False, code="bad_reply"
    )


@dataclass(frozen=True)
class DrainResult:
    """What ``wait_drained`` saw last."""

    drained: bool
    row: StatRow
    waited: float
    """Seconds spent waiting."""


class HAProxyClient:
    """HAProxy's runtime API at ``address``: a Unix socket path (also
    ``unix:///path``) or ``tcp://host:port`` (``tcp://[::1]:9999``).

    Every command opens its own connection, sends one line and reads until
    HAProxy closes it; nothing stays open between calls (or after a cancel).
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._unix_path: str | None = None
        self._host: str | None = None
        self._port: int | None = None
        if address.startswith("tcp://"):
            try:
                parts = urlsplit(address)
                host, port = parts.hostname, parts.port
            except ValueError as exc:
                raise UserError(f"HAProxy socket {address!r} is not tcp://host:port") from exc
            if not host or port is None or parts.path not in ("", "/"):
                raise UserError(f"HAProxy socket {address!r} is not tcp://host:port")
            self._host, self._port = host, port
        elif address.startswith("unix://"):
            self._unix_path = address[len("unix://") :]
        elif "://" in address:
            raise UserError(f"HAProxy socket {address!r}: use a socket path or tcp://host:port")
        else:
            self._unix_path = address
        if self._unix_path is not None and not self._unix_path:
            raise UserError("HAProxy socket path is empty")

    async def command(self, line: str) -> str:
        """Send one command line and return HAProxy's whole reply.

        The line must not contain a newline or ``;`` (HAProxy's command
        separator); callers build it only from validated names.
        """
        if "\n" in line or "\r" in line or ";" in line:
            raise UserError("an HAProxy command is one line without ';'")
        try:
            return await asyncio.wait_for(self._exchange(line), self.timeout)
        except TimeoutError as exc:
            raise IntegrationError(
                f"HAProxy at {self.address} did not answer {line.split(' ')[0]!r} within {self.timeout:g}s",
                retryable=True,
                code="timeout",
            ) from exc

    async def _exchange(self, line: str) -> str:
        writer: asyncio.StreamWriter | None = None
        try:
            if self._unix_path is not None:
                reader, writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                reader, writer = await asyncio.open_connection(self._host, self._port)
            writer.write(line.encode("ascii") + b"\n")
            await writer.drain()
            # Non-interactive mode: HAProxy closes the connection after the reply.
            reply = await reader.read()
            return reply.decode("utf-8", errors="replace")
        except FileNotFoundError as exc:
            raise IntegrationError(
                f"HAProxy socket {self.address} does not exist (is HAProxy running?)",
                retryable=True,
                code="unreachable",
            ) from exc
        except PermissionError as exc:
            raise IntegrationError(
                f"no permission to use the HAProxy socket {self.address}",
                retryable=False,
                code="permission_denied",
            ) from exc
        except (ConnectionError, OSError) as exc:
            raise IntegrationError(
                f"cannot talk to HAProxy at {self.address}: {exc.strerror or exc}",
                retryable=True,
                code="unreachable",
            ) from exc
        except UnicodeEncodeError as exc:
            raise UserError("an HAProxy command must be ASCII") from exc
        finally:
            if writer is not None:
                writer.close()
                # The reply is already read; a reset while closing changes nothing.
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def show_stat(self, backend: str | None = None, server: str | None = None) -> list[StatRow]:
        """``show stat``, optionally only ``backend``'s rows or one server's row.

        Naming a backend or server that does not exist is an
        ``IntegrationError`` (``code`` ``no_such_backend`` / ``no_such_server``).
        """
        if server is not None and backend is None:
            raise UserError("a server is named within its backend")
        if server is not None:
            validate_identifier(server, "server")
        if backend is not None:
            validate_identifier(backend, "backend")
            # HAProxy filters by proxy name itself and says "No such proxy." for unknown ones.
            try:
                reply = await self.command(f"show stat {backend} -1 -1")
                rows = parse_show_stat(reply)
            except IntegrationError as exc:
                if exc.code != "no_such_proxy":
                    raise
                raise IntegrationError(
                    f"HAProxy has no backend {backend}", retryable=False, code="no_such_backend"
                ) from exc
        else:
            rows = parse_show_stat(await self.command("show stat"))
        if backend is not None:
            # The proxy filter also matches a frontend of that name; keep the backend side.
            rows = [row for row in rows if row.backend == backend and row.type is not StatType.FRONTEND]
            if not rows:
                raise IntegrationError(
                    f"HAProxy has no backend {backend}", retryable=False, code="no_such_backend"
                )
        if server is not None:
            rows = [row for row in rows if row.server == server and row.is_server]
            if not rows:
                raise IntegrationError(
                    f"HAProxy backend {backend} has no server {server}",
                    retryable=False,
                    code="no_such_server",
                )
        return rows

    async def server(self, backend: str, server: str) -> StatRow:
        """The ``show stat`` row of ``backend/server``."""
        return (await self.show_stat(backend, server))[0]

    async def set_server_state(self, backend: str, server: str, state: ServerState) -> None:
        """``set server BACKEND/SERVER state ready|drain|maint``."""
        validate_identifier(backend, "backend")
        validate_identifier(server, "server")
        if state not in SERVER_STATES:
            raise UserError(f"server state {state!r} is not one of {', '.join(SERVER_STATES)}")
        line = f"set server {backend}/{server} state {state}"
        reply = await self.command(line)
        # Success is an empty reply; anything else is HAProxy explaining a refusal.
        if reply.strip():
            raise _reply_error(line, reply)

    async def wait_drained(
        self,
        backend: str,
        server: str,
        timeout: float,  # noqa: ASYNC109 (a deadline that ends in a result, not a cancellation)
        *,
        include_queue: bool = True,
        interval: float = 0.5,
    ) -> DrainResult:
        """Poll ``backend/server`` until it has no current sessions (and, with
        ``include_queue``, nothing queued) or ``timeout`` seconds pass.

        Returns the last row seen; ``drained`` says which of the two happened.
        """
        validate_identifier(backend, "backend")
        validate_identifier(server, "server")
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + max(timeout, 0.0)
        while True:
            row = await self.server(backend, server)
            if row.scur == 0 and (row.qcur == 0 or not include_queue):
                return DrainResult(True, row, loop.time() - started)
            now = loop.time()
            if now >= deadline:
                return DrainResult(False, row, now - started)
            await asyncio.sleep(min(interval, deadline - now))


def format_rows(rows: Sequence[StatRow]) -> str:
    """A fixed-width table of rows, for step output."""
    table = [("backend", "server", "status", "sessions", "queued", "check")]
    table += [(r.backend, r.server, r.status, str(r.scur), str(r.qcur), r.check_status) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table
    )
