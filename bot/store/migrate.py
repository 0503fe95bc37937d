"""Applies the Alembic migrations to the configured database (run on start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.database import MIGRATIONS_DIR

# An arbitrary constant naming firebell's migration lock in pg_advisory_xact_lock.
MIGRATION_LOCK = 0x66697265  # "fire"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; a no-op when it is current."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together would race to create the schema;
            # the lock lets one migrate while the others wait, then find
            # nothing left to do. SQLite's BEGIN IMMEDIATE already serialises.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await connection.run_sync(upgrade)
