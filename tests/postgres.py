"""A real, private PostgreSQL server for the test suite.

Load this module as a pytest plugin (``pytest_plugins = ["tests.postgres"]`` in
``tests/conftest.py``) and request one of its fixtures:

``postgres_server`` (session)
    A :class:`PostgresServer` with ``admin_url`` and ``create_database()``.
``postgres_url`` (function)
    The plain URL (``postgresql://postgres@127.0.0.1:PORT/<db>``) of a fresh,
    empty database created for the calling test.

Where the server comes from:

* ``FIREBELL_TEST_POSTGRES_URL`` set: it is the admin URL of an existing server,
  which is used as is. Databases created on it are dropped at session end.
* Otherwise a throw-away cluster is created with ``initdb`` in a temporary
  directory under ``/tmp`` and started with ``pg_ctl`` on a free loopback port,
  tuned for speed (no fsync), and stopped and deleted at session end. The
  binaries are looked up in ``/usr/lib/postgresql/<highest version>/bin``, then
  on ``PATH``. PostgreSQL refuses to run as root, so under root the cluster is
  run as the ``postgres`` system user through ``runuser``.

Without PostgreSQL binaries the tests that need them are skipped, unless
``FIREBELL_REQUIRE_POSTGRES=1`` (CI) turns the skip into a failure.

Databases are created with asyncpg in a worker thread with its own event loop,
so ``create_database()`` works both from plain and from async code and leaves
no event loop behind.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

__all__ = ["PostgresServer", "postgres_server", "postgres_url"]

URL_ENV = "FIREBELL_TEST_POSTGRES_URL"
REQUIRE_ENV = "FIREBELL_REQUIRE_POSTGRES"
NOT_INSTALLED = "PostgreSQL not installed: apt-get install postgresql (make test does it)"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
START_ATTEMPTS = 3
COMMAND_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,30}")
_T = TypeVar("_T")


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    admin_url: str
    """URL of the maintenance database, e.g. ``postgresql://postgres@127.0.0.1:PORT/postgres``."""
    startup_seconds: float | None = None
    """How long creating and starting the private server took; ``None`` for an external server."""
    created: list[str] = field(default_factory=list)
    """Names of the databases made by :meth:`create_database`, oldest first."""

    def create_database(self, name_prefix: str = "t") -> str:
        """Create a fresh, uniquely named database and return its plain URL."""
        if not _PREFIX.fullmatch(name_prefix):
            raise ValueError(f"database name prefix must match {_PREFIX.pattern}: {name_prefix!r}")
        name = f"{name_prefix}_{uuid.uuid4().hex}"
        _execute(self.admin_url, f"CREATE DATABASE {_quote_ident(name)}")
        self.created.append(name)
        return _with_database(self.admin_url, name)

    def drop_created(self) -> None:
        """Drop every database :meth:`create_database` made, closing their connections."""
        statements = [f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)" for name in self.created]
        if statements:
            _execute(self.admin_url, *statements)
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server: external (``FIREBELL_TEST_POSTGRES_URL``) or private."""
    external = os.environ.get(URL_ENV, "").strip()
    if external:
        server = PostgresServer(admin_url=_plain_url(external))
        try:
            _execute(server.admin_url, "SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            where = urlsplit(server.admin_url)
            _fail(f"{URL_ENV}: cannot reach PostgreSQL at {where.hostname}:{where.port}: {exc!r}")
        try:
            yield server
        finally:
            server.drop_created()
        return
    with _private_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """Plain URL of a fresh, empty database for this test."""
    return postgres_server.create_database()


# -- the private server ---------------------------------------------------------


class _Cluster:
    """Runs the server binaries of one bin directory, as ``postgres`` when we are root."""

    def __init__(self, bindir: Path | None, workdir: Path, as_user: str | None) -> None:
        self.bindir = bindir
        self.workdir = workdir
        self.as_user = as_user
        self.data = workdir / "data"
        self.sockets = workdir / "sockets"
        self.log = workdir / "postgres.log"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        executable = str(self.bindir / program) if self.bindir else program
        argv = [executable, *args]
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--", *argv]
        return subprocess.run(
            argv,
            cwd=self.workdir,  # readable by the server user, unlike the caller's directory maybe
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def initdb(self) -> None:
        result = self.run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
            "--no-sync",
        )  # fmt: skip
        if result.returncode != 0:
            _fail(f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")

    def start(self, port: int) -> subprocess.CompletedProcess[str]:
        options = " ".join(
            [
                f"-p {port}",
                f"-k {shlex.quote(str(self.sockets))}",
                f"-h {HOST}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        # -l keeps the server off our pipes; without it pg_ctl's output never ends
        return self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@contextmanager
def _private_server() -> Iterator[PostgresServer]:
    """Create and start a throw-away cluster; stop and delete it on exit."""
    began = time.monotonic()
    bindir = _find_bindir()
    as_user = _server_user()
    workdir = Path(tempfile.mkdtemp(prefix="firebell-pg-", dir=_temp_parent()))
    cluster = _Cluster(bindir, workdir, as_user)
    running = False
    try:
        cluster.sockets.mkdir()
        if as_user:
            _chown_tree(workdir, as_user)
        cluster.initdb()
        port = _start(cluster)
        running = True
        yield PostgresServer(
            admin_url=f"postgresql://{SUPERUSER}@{HOST}:{port}/postgres",
            startup_seconds=time.monotonic() - began,
        )
    finally:
        if running:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _start(cluster: _Cluster) -> int:
    """Start ``cluster`` on a free port and return the port."""
    failure = ""
    for _ in range(START_ATTEMPTS):  # another process may take the free port before the server does
        port = _free_port()
        result = cluster.start(port)
        if result.returncode == 0:
            return port
        failure = f"{result.stdout}{result.stderr}\n-- server log --\n{cluster.log_tail()}"
        cluster.stop()  # in case it half-started
    _fail(f"pg_ctl start failed {START_ATTEMPTS} times:\n{failure}")


def postgres_tool(name: str) -> str:
    """A client program (pg_dump, pg_restore …) of the same version as the test server."""
    bindir = _find_bindir()
    if bindir is not None and (bindir / name).is_file():
        return str(bindir / name)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed (apt-get install postgresql-client)")
    return found


def _find_bindir() -> Path | None:
    """The bin directory holding the server binaries, ``None`` for ``PATH``; skip if there is none."""
    candidates: list[tuple[tuple[int, ...], Path]] = []
    for bindir in DEBIAN_BINDIRS.glob("*/bin"):
        version = tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))
        if version and all((bindir / program).is_file() for program in SERVER_BINARIES):
            candidates.append((version, bindir))
    if candidates:
        return max(candidates)[1]
    if all(shutil.which(program) for program in SERVER_BINARIES):
        return None
    if os.environ.get(REQUIRE_ENV) == "1":
        _fail(NOT_INSTALLED)
    pytest.skip(NOT_INSTALLED)


def _server_user() -> str | None:
    """The user to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        _fail(
            f"PostgreSQL refuses to run as root and there is no {SYSTEM_USER!r} system user to run it as;"
            f" install the postgresql package (it creates the user) or run the tests as another user"
        )
    if shutil.which("runuser") is None:
        _fail(f"running as root but 'runuser' is missing, so PostgreSQL cannot be run as {SYSTEM_USER!r}")
    return SYSTEM_USER


def _temp_parent() -> str:
    """``/tmp``: world-traversable, and short enough for Unix socket paths."""
    return "/tmp" if Path("/tmp").is_dir() else tempfile.gettempdir()


def _chown_tree(root: Path, user: str) -> None:
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, user=user, group=pwd.getpwnam(user).pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


# -- SQL ------------------------------------------------------------------------


def _execute(url: str, *statements: str) -> None:
    """Run ``statements`` (outside a transaction) over one connection to ``url``."""

    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    _run_in_thread(run)


def _run_in_thread(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """``asyncio.run(main())`` in a worker thread, so it also works while an event loop runs here."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-fixture") as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain_url(url: str) -> str:
    """``url`` without a SQLAlchemy driver suffix (``postgresql+asyncpg`` -> ``postgresql``)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
