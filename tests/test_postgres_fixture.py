"""The private PostgreSQL server fixtures of ``tests.postgres``."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.postgres import PostgresServer

pytestmark = pytest.mark.postgres


async def fetch_one(url: str, query: str) -> object:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def test_postgres_url_accepts_connections(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    assert await fetch_one(postgres_url, "select 1") == 1


async def test_each_postgres_url_is_a_separate_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    other_url = postgres_server.create_database("other")

    assert other_url != postgres_url
    assert await fetch_one(postgres_url, "select current_database()") == postgres_url.rsplit("/", 1)[1]
    assert await fetch_one(other_url, "select current_database()") == other_url.rsplit("/", 1)[1]

    # a table made in one database is not visible in the other
    connection = await asyncpg.connect(postgres_url, timeout=10)
    try:
        await connection.execute("create table marker (id int)")
    finally:
        await connection.close()
    assert await fetch_one(postgres_url, "select to_regclass('marker') is not null") is True
    assert await fetch_one(other_url, "select to_regclass('marker') is not null") is False


SEEN_URLS: set[str] = set()


@pytest.mark.parametrize("run", [1, 2])
def test_every_test_gets_its_own_postgres_url(run: int, postgres_url: str) -> None:
    assert postgres_url not in SEEN_URLS
    SEEN_URLS.add(postgres_url)


def test_admin_url_names_the_maintenance_database(postgres_server: PostgresServer) -> None:
    assert postgres_server.admin_url.startswith("postgresql://")
    assert postgres_server.admin_url.endswith("/postgres")


def test_create_database_rejects_unsafe_prefixes(postgres_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="prefix"):
        postgres_server.create_database('x"; drop database postgres; --')
