"""The database engine: URL normalisation, connection tuning and migrations.

People write plain URLs (``sqlite:///path``, ``postgresql://user:pw@host/db``);
firebell maps them to the async drivers (aiosqlite, asyncpg) itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///firebell.db"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def async_database_url(url: str | None) -> URL:
    """Map a plain database URL to its async-driver form."""
    try:
        parsed = make_url(url or DEFAULT_DATABASE_URL)
    except ArgumentError as exc:
        raise ConfigurationError(f"FIREBELL_DATABASE_URL is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        query = dict(parsed.query)
        # asyncpg spells libpq's sslmode as ssl
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername="postgresql+asyncpg", query=query)
    raise ConfigurationError(
        f"FIREBELL_DATABASE_URL: unsupported database {backend!r}; use sqlite:// or postgresql://"
    )


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str | None) -> AsyncEngine:
    """An async engine for ``url``, tuned for firebell's write pattern."""
    async_url = async_database_url(url)
    if async_url.get_backend_name() == "sqlite":
        database = async_url.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite takes one writer at a time anyway, and
        # waiting in the pool's FIFO queue costs nothing, while waiting in
        # SQLite's busy handler sleeps in growing steps (p99 in seconds under
        # a webhook burst). Other processes still meet busy_timeout.
        # No rollback when a connection goes back to the pool: every
        # transaction here is ended explicitly, and on SQLite each driver call
        # is a hop to aiosqlite's thread (a fan-out commits thousands of times).
        engine = create_async_engine(
            async_url,
            connect_args={"timeout": 30},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            pool_reset_on_return=None,
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(async_url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _tune_sqlite(engine: AsyncEngine) -> None:
    # WAL lets readers (status page, /readyz) run beside the writer; NORMAL
    # sync keeps commits durable across a process crash (not a power cut),
    # which is what "kill -9 loses nothing" needs.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions into our own hands (see _begin_immediate).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # A deferred SQLite transaction that reads and then writes fails at once
    # with "database is locked" when another writer got there first, without
    # waiting for busy_timeout. Taking the write lock up front makes a second
    # writer (another task or another process) wait its turn instead.
    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def dialect_insert(engine: AsyncEngine) -> Any:
    """The INSERT construct with ON CONFLICT support for the engine's database."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
