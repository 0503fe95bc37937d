"""Checking that a database backup exists, is fresh and actually restores.

This module owns finding the newest backup of a ``[runbooks.backups]`` source
and verifying it per engine:

* PostgreSQL (``pg_dump -Fc/-Ft/-Fd``): ``pg_restore --list`` must succeed and
  list table data; with a restore, the dump goes into a fresh scratch database
  ``firebell_verify_<hex>`` on ``scratch_url``'s server, each check query must
  return a row (in a read-only transaction), and the scratch database is
  dropped whatever happens.
* MySQL/MariaDB (``mysqldump`` SQL, optionally gzip'd): the gzip stream and the
  dump's completion trailer are checked and its tables counted; with a restore,
  the ``mysql`` client loads it into a scratch database, runs the checks and
  drops it. A dump that selects its own database (``--databases``) is never
  restored, since it would write outside the scratch database.
* MongoDB (``mongodump --archive``): gzip and archive header are checked, and
  ``mongorestore --dryRun`` reads the archive against ``scratch_url``.

Nothing here can restore anywhere but a scratch database it created itself.
External tools run as argv lists through ``asyncio.create_subprocess_exec``
(no shell); passwords go to them through ``PGPASSWORD`` or a private option
file, never on the command line where ``ps`` would show them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import gzip
import os
import re
import secrets
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import BackupSource

SCRATCH_PREFIX = "firebell_verify_"
POSTGRES_BINDIRS = "/usr/lib/postgresql/*/bin"
CONNECT_TIMEOUT = 15.0
GZIP_MAGIC = b"\x1f\x8b"
MONGO_ARCHIVE_MAGIC = b"\x6d\xe2\x99\x81"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupFile:
    path: str
    size: int
    """Bytes; for a directory-format dump, the sum of its files."""
    mtime: datetime
    is_dir: bool = False


@dataclass(frozen=True)
class Finding:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str


@dataclass
class BackupReport:
    source: str
    engine: str
    backup: BackupFile | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was not done and why (no scratch_url, restore refused…)."""
    log: list[str] = field(default_factory=list)
    """Commands run and their output, for the step's output file."""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.findings.append(Finding(name, ok, detail))
        return ok

    def summary(self) -> str:
        failed = [f for f in self.findings if not f.ok]
        if failed:
            return f"{self.source}: {failed[0].name}: {failed[0].detail}"[:200]
        parts = [
            f.detail
            for f in self.findings
            if f.name in ("age", "size", "contents", "read", "restore", "checks")
        ]
        parts += self.notes[:1]
        return f"{self.source}: " + "; ".join(parts)

    def render(self) -> str:
        lines = [f"backup source {self.source} ({self.engine})"]
        if self.backup:
            lines.append(f"file: {self.backup.path}")
        lines += [f"{'ok ' if f.ok else 'BAD'} {f.name}: {f.detail}" for f in self.findings]
        lines += [f"note: {note}" for note in self.notes]
        if self.log:
            lines += ["", *self.log]
        return "\n".join(lines)


# -- finding the backup -------------------------------------------------------------


def _is_pg_directory_dump(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "toc.dat"))


def _describe(path: str) -> BackupFile:
    stat = os.stat(path)
    size = stat.st_size
    if os.path.isdir(path):
        size = sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())
    return BackupFile(
        path=path, size=size, mtime=datetime.fromtimestamp(stat.st_mtime, UTC), is_dir=os.path.isdir(path)
    )


def newest_backup(pattern: str) -> BackupFile | None:
    """The newest backup at ``pattern``: a file, a directory of backups, or a glob.

    A directory holding ``toc.dat`` is itself a ``pg_dump -Fd`` backup; inside a
    directory of backups, files and such dump directories are candidates. Blocking:
    call it in a thread.
    """
    path = os.path.expanduser(pattern)
    if glob.has_magic(path):
        candidates = [p for p in glob.glob(path) if os.path.isfile(p) or _is_pg_directory_dump(p)]
    elif os.path.isdir(path) and not _is_pg_directory_dump(path):
        candidates = [
            entry.path
            for entry in os.scandir(path)
            if (entry.is_file() and not entry.name.startswith(".")) or _is_pg_directory_dump(entry.path)
        ]
    elif os.path.exists(path):
        candidates = [path]
    else:
        candidates = []
    if not candidates:
        return None
    return _describe(max(candidates, key=lambda p: (os.stat(p).st_mtime, p)))


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- running tools ------------------------------------------------------------------


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]
    exit_status: int
    stdout: str
    stderr: str

    def transcript(self, limit: int = 4000) -> str:
        text = f"$ {' '.join(self.argv)}\n[exit {self.exit_status}]"
        for label, stream in (("", self.stdout), ("--- stderr ---\n", self.stderr)):
            if stream:
                text += "\n" + label + _cut(stream.rstrip("\n"), limit)
        return text

    def error_tail(self, lines: int = 5) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        return " | ".join(text[-lines:]) or f"exit {self.exit_status}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[… cut: {len(text) - limit} more characters]"


def find_tool(name: str, *, postgres: bool = False) -> str | None:
    """``name`` on ``PATH``; for PostgreSQL tools also the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found or not postgres:
        return found

    def version(bindir: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(bindir).parent.name))

    for bindir in sorted(glob.glob(POSTGRES_BINDIRS), key=version, reverse=True):
        candidate = os.path.join(bindir, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


async def run_tool(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin_chunks: Callable[[], Iterator[bytes]] | None = None,
) -> ToolResult:
    """Run ``argv`` (no shell), feeding it ``stdin_chunks`` if given; killed if we are cancelled."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin_chunks else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env} if env else None,
    )
    feeder = asyncio.create_task(_feed(process, stdin_chunks)) if stdin_chunks else None
    try:
        stdout, stderr = await asyncio.gather(_drain(process.stdout), _drain(process.stderr))
        if feeder:
            await feeder
        status = await process.wait()
    finally:
        if feeder and not feeder.done():
            feeder.cancel()
        if process.returncode is None:
            process.kill()
            await asyncio.shield(process.wait())
    return ToolResult(
        list(argv), status, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    )


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream else b""


async def _feed(process: asyncio.subprocess.Process, chunks: Callable[[], Iterator[bytes]]) -> None:
    assert process.stdin is not None
    iterator = chunks()
    try:
        while True:
            chunk = await asyncio.to_thread(next, iterator, b"")
            if not chunk:
                break
            process.stdin.write(chunk)
            await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the tool stopped reading; its exit status and stderr say why
    finally:
        process.stdin.close()
        with suppress(BrokenPipeError, ConnectionResetError):
            await process.stdin.wait_closed()


# -- file-level checks shared by MySQL and MongoDB ----------------------------------


def is_gzip(path: str) -> bool:
    with open(path, "rb") as file:
        return file.read(2) == GZIP_MAGIC


def read_chunks(path: str) -> Iterator[bytes]:
    """The file's bytes, gunzipped when it is gzip'd. Raises ``OSError``/``EOFError``/``zlib.error``
    on a damaged gzip stream (the CRC and length are checked at its end)."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            yield chunk


def check_gzip(path: str) -> str | None:
    """``None`` when ``path`` is not gzip'd or its gzip stream is whole; the error otherwise. Blocking."""
    if not is_gzip(path):
        return None
    try:
        for _ in read_chunks(path):
            pass
    except (OSError, EOFError, zlib.error) as exc:
        return f"damaged gzip stream: {exc}"
    return None


# -- URLs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerUrl:
    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    query: str

    @classmethod
    def parse(cls, url: str) -> ServerUrl:
        parts = urlsplit(url)
        return cls(
            scheme=parts.scheme.split("+", 1)[0],
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname,
            port=parts.port,
            database=unquote(parts.path.lstrip("/")),
            query=parts.query,
        )

    def url(self, database: str | None = None, *, with_password: bool = True) -> str:
        """As a URL, optionally naming another database; without the password for command lines."""
        netloc = ""
        if self.user:
            netloc = _quote(self.user)
            if with_password and self.password is not None:
                netloc += ":" + _quote(self.password)
            netloc += "@"
        if self.host:
            netloc += f"[{self.host}]" if ":" in self.host else self.host
        if self.port:
            netloc += f":{self.port}"
        path = "/" + _quote(self.database if database is None else database)
        return urlunsplit((self.scheme, netloc, path, self.query, ""))


def _quote(text: str) -> str:
    return quote(text, safe="")


def scratch_name() -> str:
    return SCRATCH_PREFIX + secrets.token_hex(6)


# -- PostgreSQL ---------------------------------------------------------------------


def pg_list_argv(pg_restore: str, path: str) -> list[str]:
    return [pg_restore, "--list", path]


def pg_read_argv(pg_restore: str, path: str) -> list[str]:
    """Restore to nowhere: reads and decompresses every data block, which ``--list`` does not."""
    return [pg_restore, f"--file={os.devnull}", path]


def pg_restore_argv(pg_restore: str, path: str, scratch_url: str) -> list[str]:
    return [pg_restore, "--no-owner", "--no-privileges", "--dbname", scratch_url, path]


@dataclass(frozen=True)
class PgListing:
    database: str | None
    table_data: int
    entries: int


def parse_pg_list(text: str) -> PgListing:
    """The source database and how many TABLE DATA entries a ``pg_restore --list`` shows."""
    database = None
    table_data = entries = 0
    for line in text.splitlines():
        if line.startswith(";"):
            match = re.match(r";\s+dbname:\s*(.*)$", line)
            if match:
                database = match.group(1).strip()
            continue
        if line.strip():
            entries += 1
            if " TABLE DATA " in line:
                table_data += 1
    return PgListing(database, table_data, entries)


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _pg_connect(url: ServerUrl) -> Any:
    """An asyncpg connection; ``IntegrationError`` (without the password) when the server is unreachable."""
    try:
        return await asyncpg.connect(url.url(), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise IntegrationError(
            f"cannot connect to scratch_url ({url.url(with_password=False)}): {exc}", retryable=True
        ) from exc


async def _pg_admin(url: ServerUrl, *statements: str) -> None:
    connection = await _pg_connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _pg_drop(url: ServerUrl, name: str) -> None:
    try:
        await _pg_admin(url, f"DROP DATABASE IF EXISTS {_pg_ident(name)} WITH (FORCE)")
    except asyncpg.PostgresSyntaxError:  # before PostgreSQL 13
        await _pg_admin(url, f"DROP DATABASE IF EXISTS {_pg_ident(name)}")


async def _pg_checks(url: ServerUrl, queries: Sequence[str], report: BackupReport) -> None:
    connection = await _pg_connect(url)
    passed = 0
    try:
        for query in queries:
            try:
                async with connection.transaction(readonly=True):
                    rows = await connection.fetch(query)
            except asyncpg.PostgresError as exc:
                report.add("check", False, f"`{query}` failed: {exc}")
                continue
            if rows:
                passed += 1
            else:
                report.add("check", False, f"`{query}` returned no rows")
    finally:
        await connection.close()
    if passed == len(queries):
        report.add("checks", True, f"{passed}/{len(queries)} checks passed")
    report.data["checks_passed"] = passed


async def _verify_postgres(
    source: BackupSource, backup: BackupFile, restore: bool, report: BackupReport
) -> None:
    pg_restore = find_tool("pg_restore", postgres=True)
    if pg_restore is None:
        raise UserError(
            "pg_restore not found on PATH or in /usr/lib/postgresql/*/bin (install postgresql-client)"
        )
    listed = await run_tool(pg_list_argv(pg_restore, backup.path))
    listing = parse_pg_list(listed.stdout)
    if listed.exit_status != 0:
        report.log.append(listed.transcript())
        report.add("contents", False, f"pg_restore --list failed: {listed.error_tail()}")
        return
    report.log.append(listed.transcript(limit=2000))
    report.data.update(tables=listing.table_data, source_database=listing.database)
    if not report.add(
        "contents",
        listing.table_data > 0,
        f"{listing.table_data} tables with data ({listing.entries} entries)"
        if listing.table_data
        else "pg_restore --list shows no table data (schema-only dump?)",
    ):
        return
    server = ServerUrl.parse(source.scratch_url) if source.scratch_url else None
    if not restore:
        pass
    elif server is None:
        report.notes.append("list only: no scratch_url, so the dump was not restored")
    elif listing.database and server.database == listing.database:
        report.notes.append(
            f"list only: restore refused, scratch_url names `{listing.database}`, "
            "the database this backup came from"
        )
    else:
        await _pg_restore_and_check(source, backup, pg_restore, server, report)
        return
    # without a restore, at least read every data block: a dump cut short after its
    # table of contents still lists fine
    read = await run_tool(pg_read_argv(pg_restore, backup.path))
    report.log.append(read.transcript())
    report.add(
        "read",
        read.exit_status == 0,
        "every data block read" if read.exit_status == 0 else f"pg_restore failed: {read.error_tail()}",
    )


async def _pg_restore_and_check(
    source: BackupSource, backup: BackupFile, pg_restore: str, server: ServerUrl, report: BackupReport
) -> None:
    if not server.database:
        server = dataclasses.replace(server, database="postgres")
    name = scratch_name()
    await _pg_admin(server, f"CREATE DATABASE {_pg_ident(name)}")
    report.data["scratch_database"] = name
    report.log.append(f"created scratch database {name}")
    try:
        env = {"PGPASSWORD": server.password} if server.password is not None else None
        restored = await run_tool(
            pg_restore_argv(pg_restore, backup.path, server.url(name, with_password=False)), env=env
        )
        report.log.append(restored.transcript())
        if not report.add(
            "restore",
            restored.exit_status == 0,
            f"restored into scratch database {name}"
            if restored.exit_status == 0
            else f"pg_restore into {name} failed: {restored.error_tail()}",
        ):
            return
        report.data["restored"] = True
        if source.checks:
            await _pg_checks(dataclasses.replace(server, database=name), source.checks, report)
    finally:
        # a cancelled step still drops what it made
        await asyncio.shield(_pg_drop(server, name))
        report.log.append(f"dropped scratch database {name}")


# -- MySQL / MariaDB ----------------------------------------------------------------


@dataclass(frozen=True)
class MysqlDumpFacts:
    database: str | None
    tables: int
    inserts: int
    complete: bool
    selects_database: str | None
    """``USE``/``CREATE DATABASE`` found: restoring would write to that database."""


def scan_mysql_dump(chunks: Iterator[bytes]) -> MysqlDumpFacts:
    """What a mysqldump file holds, read as a stream (a gzip error propagates)."""
    database = selects = None
    tables = inserts = 0
    complete = False
    tail = b""
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            if line.startswith(b"CREATE TABLE"):
                tables += 1
            elif line.startswith(b"INSERT INTO"):
                inserts += 1
            elif line.startswith(b"-- Dump completed"):
                complete = True
            elif line.startswith(b"-- Host:") and b"Database:" in line:
                database = line.split(b"Database:", 1)[1].strip().decode("utf-8", "replace") or None
            elif selects is None and (line.startswith(b"USE ") or line.startswith(b"CREATE DATABASE")):
                selects = line.decode("utf-8", "replace")[:120]
    if tail.startswith(b"-- Dump completed"):
        complete = True
    return MysqlDumpFacts(database, tables, inserts, complete, selects)


def mysql_option_file(url: ServerUrl, directory: str) -> str:
    """A private ``[client]`` option file holding the connection and password. Blocking."""
    lines = ["[client]"]
    if url.user:
        lines.append(f"user={_mysql_option(url.user)}")
    if url.password is not None:
        lines.append(f"password={_mysql_option(url.password)}")
    if url.host:
        lines += [f"host={_mysql_option(url.host)}", "protocol=TCP"]
    if url.port:
        lines.append(f"port={url.port}")
    path = os.path.join(directory, "client.cnf")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return path


def _mysql_option(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def mysql_admin_argv(mysql: str, option_file: str, sql: str) -> list[str]:
    # --defaults-extra-file must be the first option
    return [mysql, f"--defaults-extra-file={option_file}", "--batch", "--skip-column-names", "-e", sql]


def mysql_restore_argv(mysql: str, option_file: str, database: str) -> list[str]:
    return [mysql, f"--defaults-extra-file={option_file}", f"--database={database}"]


def mysql_check_argv(mysql: str, option_file: str, database: str, query: str) -> list[str]:
    return [
        mysql, f"--defaults-extra-file={option_file}", "--batch", "--skip-column-names",
        f"--database={database}", "-e", f"SET SESSION TRANSACTION READ ONLY; {query}",
    ]  # fmt: skip


@contextmanager
def _private_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="firebell-backup-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _verify_mysql(
    source: BackupSource, backup: BackupFile, restore: bool, report: BackupReport
) -> None:
    if backup.is_dir:
        report.add("contents", False, "a directory, not a mysqldump file")
        return
    try:
        facts = await asyncio.to_thread(scan_mysql_dump, read_chunks(backup.path))
    except (OSError, EOFError, zlib.error) as exc:
        report.add("contents", False, f"damaged gzip stream: {exc}")
        return
    report.data.update(tables=facts.tables, source_database=facts.database)
    if not facts.complete:
        report.add("contents", False, "no '-- Dump completed' trailer: the dump is truncated or unfinished")
        return
    if not report.add(
        "contents",
        facts.tables > 0,
        f"{facts.tables} tables, {facts.inserts} INSERT statements"
        if facts.tables
        else "no CREATE TABLE found",
    ):
        return
    if not restore:
        return
    if not source.scratch_url:
        report.notes.append("scan only: no scratch_url, so the dump was not restored")
        return
    server = ServerUrl.parse(source.scratch_url)
    if facts.selects_database:
        report.notes.append(
            f"scan only: restore refused, the dump selects its own database ({facts.selects_database})"
        )
        return
    if facts.database and server.database == facts.database:
        report.notes.append(
            f"scan only: restore refused, scratch_url names `{facts.database}`, "
            "the database this backup came from"
        )
        return
    mysql = find_tool("mysql") or find_tool("mariadb")
    if mysql is None:
        report.notes.append("scan only: the mysql client is not installed, so the dump was not restored")
        return
    name = scratch_name()
    with _private_dir() as directory:
        options = await asyncio.to_thread(mysql_option_file, server, directory)
        created = await run_tool(mysql_admin_argv(mysql, options, f"CREATE DATABASE {_mysql_ident(name)}"))
        report.log.append(created.transcript())
        if created.exit_status != 0:
            raise IntegrationError(
                f"backup source {report.source}: cannot create a scratch database on scratch_url's server: "
                f"{created.error_tail()}",
                retryable=True,
            )
        report.data["scratch_database"] = name
        try:
            restored = await run_tool(
                mysql_restore_argv(mysql, options, name), stdin_chunks=lambda: read_chunks(backup.path)
            )
            report.log.append(restored.transcript())
            if not report.add(
                "restore",
                restored.exit_status == 0,
                f"restored into scratch database {name}"
                if restored.exit_status == 0
                else f"mysql restore into {name} failed: {restored.error_tail()}",
            ):
                return
            report.data["restored"] = True
            passed = 0
            for query in source.checks:
                checked = await run_tool(mysql_check_argv(mysql, options, name, query))
                report.log.append(checked.transcript())
                if checked.exit_status != 0:
                    report.add("check", False, f"`{query}` failed: {checked.error_tail()}")
                elif not checked.stdout.strip():
                    report.add("check", False, f"`{query}` returned no rows")
                else:
                    passed += 1
            report.data["checks_passed"] = passed
            if source.checks and passed == len(source.checks):
                report.add("checks", True, f"{passed}/{len(source.checks)} checks passed")
        finally:
            dropped = await asyncio.shield(
                run_tool(mysql_admin_argv(mysql, options, f"DROP DATABASE IF EXISTS {_mysql_ident(name)}"))
            )
            report.log.append(dropped.transcript())


# -- MongoDB ------------------------------------------------------------------------


def mongo_config_file(scratch_url: str, directory: str) -> str:
    """A private mongo tools ``--config`` file holding the URI (and so its password). Blocking."""
    path = os.path.join(directory, "mongo.yaml")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    escaped = scratch_url.replace("\\", "\\\\").replace('"', '\\"')
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f'uri: "{escaped}"\n')
    return path


def mongorestore_dry_run_argv(mongorestore: str, config_file: str, path: str, *, gzipped: bool) -> list[str]:
    argv = [mongorestore, f"--config={config_file}", "--dryRun", "--verbose", f"--archive={path}"]
    return [*argv, "--gzip"] if gzipped else argv


def _mongo_header(path: str) -> bytes:
    """The first 4 bytes of the archive, after gunzipping. Blocking."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as file:
        head: bytes = file.read(4)
        return head


async def _verify_mongodb(source: BackupSource, backup: BackupFile, report: BackupReport) -> None:
    if backup.is_dir:
        report.add("contents", False, "a directory: only mongodump --archive files are supported")
        return
    gzipped = await asyncio.to_thread(is_gzip, backup.path)
    damage = await asyncio.to_thread(check_gzip, backup.path)
    if damage:
        report.add("contents", False, damage)
        return
    if await asyncio.to_thread(_mongo_header, backup.path) != MONGO_ARCHIVE_MAGIC:
        report.add("contents", False, "not a mongodump archive (bad magic number)")
        return
    if source.checks:
        report.notes.append("checks are not run for MongoDB: firebell does not restore MongoDB backups yet")
    mongorestore = find_tool("mongorestore")
    if mongorestore is None or not source.scratch_url:
        why = "mongorestore is not installed" if mongorestore is None else "no scratch_url to dry-run against"
        report.add("contents", True, f"archive header ok{', gzip ok' if gzipped else ''}")
        report.notes.append(f"header only: {why}")
        return
    with _private_dir() as directory:
        config = await asyncio.to_thread(mongo_config_file, source.scratch_url, directory)
        dry = await run_tool(mongorestore_dry_run_argv(mongorestore, config, backup.path, gzipped=gzipped))
    report.log.append(dry.transcript())
    report.add(
        "contents",
        dry.exit_status == 0,
        "mongorestore --dryRun read the archive"
        if dry.exit_status == 0
        else f"mongorestore: {dry.error_tail()}",
    )


# -- the verdict --------------------------------------------------------------------


async def verify_backup(
    name: str, source: BackupSource, *, now: datetime, restore: bool = True
) -> BackupReport:
    """Find and check the newest backup of source ``name``; see the module doc for what is checked."""
    if source.host:
        raise UserError(
            f"backup source {name}: backups on another host (host = {source.host}) are not supported yet; "
            "check them where they are or copy them here"
        )
    report = BackupReport(source=name, engine=source.engine)
    backup = await asyncio.to_thread(newest_backup, source.path)
    if backup is None:
        report.add("found", False, f"no backup at {source.path}")
        return report
    report.backup = backup
    age_hours = max((now - backup.mtime).total_seconds() / 3600, 0.0)
    report.data.update(file=backup.path, size=backup.size, age_hours=round(age_hours, 2), restored=False)
    report.add(
        "age",
        age_hours <= source.max_age_hours,
        f"{age_hours:.1f} h old"
        if age_hours <= source.max_age_hours
        else f"older than {source.max_age_hours:g} h ({age_hours:.1f} h old, taken {backup.mtime:%F %H:%M})",
    )
    if not report.add(
        "size", backup.size > 0, _human_size(backup.size) if backup.size else "empty (0 bytes)"
    ):
        return report
    if source.engine == "postgresql":
        await _verify_postgres(source, backup, restore, report)
    elif source.engine == "mysql":
        await _verify_mysql(source, backup, restore, report)
    else:
        await _verify_mongodb(source, backup, report)
    return report
