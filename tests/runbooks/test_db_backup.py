"""The ``db_backup`` step kind: real ``pg_dump -Fc`` files of a database in the test
PostgreSQL, verified by listing, restoring into a scratch database and querying it.
MySQL and MongoDB: the file checks and the argv built, plus live tests that run
only where their client tools and a server are available."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import shutil
import ssl
import stat
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pydantic
import pytest

from bot.clock import SystemClock
from bot.errors import UserError
from bot.runbooks import backup
from bot.runbooks.backup import (
    MONGO_ARCHIVE_MAGIC,
    ServerUrl,
    find_tool,
    mongo_config_file,
    mongorestore_dry_run_argv,
    mysql_admin_argv,
    mysql_check_argv,
    mysql_option_file,
    mysql_restore_argv,
    newest_backup,
    parse_pg_list,
    pg_restore_argv,
    scan_mysql_dump,
)
from bot.runbooks.config import BackupSource, RunbooksConfig
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext, StepOutcome
from bot.runbooks.steps.db_backup import STEP, DbBackupArgs
from tests.postgres import PostgresServer, postgres_tool

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric NOT NULL);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');
INSERT INTO orders VALUES (1, 1, 12.50), (2, 2, 99.00), (3, 2, 7.25);
"""
CHECKS = ["SELECT 1 FROM orders WHERE id = 2", "SELECT count(*) FROM customers HAVING count(*) = 2"]


def context(**backups: BackupSource) -> StepContext:
    return StepContext(
        config=RunbooksConfig(backups=backups),
        secrets=SecretStore({}),
        clock=SystemClock(),
        ssl_context=ssl.create_default_context(),
        timeout=120,
    )


async def run_step(source: BackupSource, **args: Any) -> StepOutcome:
    parsed = DbBackupArgs.model_validate({"source": "shop", **args})
    return await STEP.run(parsed, context(shop=source))


def pg_dump_binary() -> str:
    return postgres_tool("pg_dump")


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def scratch_databases(server: PostgresServer) -> list[str]:
    connection = await asyncpg.connect(server.admin_url)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'firebell_verify_%'"
        )
    finally:
        await connection.close()
    return [row["datname"] for row in rows]


async def make_dump(server: PostgresServer, path: Path, *extra: str) -> str:
    """A ``pg_dump -Fc`` of a fresh database filled with SCHEMA; that database's URL."""
    url = server.create_database("shop")
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        pg_dump_binary(), "-Fc", *extra, "-f", str(path), url, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return url


@pytest.fixture
async def dump(postgres_server: PostgresServer, tmp_path: Path) -> tuple[Path, str]:
    """(the backups directory holding an older dump and the newest one, the source DB's URL)."""
    backups = tmp_path / "backups"
    backups.mkdir()
    older = backups / "shop-older.dump"
    older.write_bytes(b"not even a dump")
    hour_ago = time.time() - 3600
    os.utime(older, (hour_ago, hour_ago))
    url = await make_dump(postgres_server, backups / "shop-latest.dump")
    return backups, url


# -- PostgreSQL ---------------------------------------------------------------------


@pytest.mark.postgres
async def test_fresh_dump_restores_and_passes_its_checks(
    dump: tuple[Path, str], postgres_server: PostgresServer
) -> None:
    backups, _ = dump
    source = BackupSource(
        engine="postgresql", path=str(backups), scratch_url=postgres_server.admin_url, checks=CHECKS
    )
    outcome = await run_step(source)
    assert outcome.ok, outcome.output
    assert outcome.data["file"] == str(backups / "shop-latest.dump")  # the newest, not the broken older one
    assert outcome.data["tables"] == 2
    assert outcome.data["restored"] is True
    assert outcome.data["checks_passed"] == 2
    assert outcome.data["age_hours"] < 1
    assert outcome.data["size"] > 0
    assert re.search(
        r"shop: 0\.0 h old; [\d.]+ KB; 2 tables with data .*; restored into scratch", outcome.summary
    )
    assert "2/2 checks passed" in outcome.summary
    scratch = outcome.data["scratch_database"]
    assert scratch.startswith("firebell_verify_")
    assert f"dropped scratch database {scratch}" in outcome.output
    assert await scratch_databases(postgres_server) == []


@pytest.mark.postgres
async def test_a_check_without_rows_fails_and_the_scratch_database_is_still_dropped(
    dump: tuple[Path, str], postgres_server: PostgresServer
) -> None:
    backups, _ = dump
    checks = ["SELECT 1 FROM orders WHERE total > 1000", "SELECT nope FROM orders", *CHECKS]
    source = BackupSource(
        engine="postgresql", path=str(backups), scratch_url=postgres_server.admin_url, checks=checks
    )
    outcome = await run_step(source)
    assert not outcome.ok
    assert "`SELECT 1 FROM orders WHERE total > 1000` returned no rows" in outcome.summary
    assert 'column "nope" does not exist' in outcome.output
    assert outcome.data["checks_passed"] == 2
    assert await scratch_databases(postgres_server) == []


@pytest.mark.postgres
async def test_checks_run_read_only(dump: tuple[Path, str], postgres_server: PostgresServer) -> None:
    backups, _ = dump
    source = BackupSource(
        engine="postgresql",
        path=str(backups),
        scratch_url=postgres_server.admin_url,
        checks=["DELETE FROM orders RETURNING id"],
    )
    outcome = await run_step(source)
    assert not outcome.ok
    assert "read-only transaction" in outcome.output


@pytest.mark.postgres
async def test_truncated_dump_fails_with_pg_restores_error(
    dump: tuple[Path, str], postgres_server: PostgresServer
) -> None:
    backups, _ = dump
    latest = backups / "shop-latest.dump"
    latest.write_bytes(latest.read_bytes()[:300])
    source = BackupSource(
        engine="postgresql", path=str(backups), scratch_url=postgres_server.admin_url, checks=CHECKS
    )
    outcome = await run_step(source)
    assert not outcome.ok
    assert outcome.summary.startswith("shop: contents: pg_restore --list failed: ")
    assert "pg_restore: error:" in outcome.summary
    assert "pg_restore: error:" in outcome.output
    assert "scratch_database" not in outcome.data
    assert await scratch_databases(postgres_server) == []


@pytest.mark.postgres
@pytest.mark.parametrize("restore", [False, True])
async def test_dump_cut_after_its_table_of_contents_fails(
    dump: tuple[Path, str], postgres_server: PostgresServer, restore: bool
) -> None:
    backups, _ = dump
    latest = backups / "shop-latest.dump"
    latest.write_bytes(latest.read_bytes()[:-40])
    source = BackupSource(engine="postgresql", path=str(latest), scratch_url=postgres_server.admin_url)
    outcome = await run_step(source, restore=restore)
    assert not outcome.ok
    assert "ok  contents: 2 tables with data" in outcome.output  # --list alone does not notice
    assert "pg_restore: error:" in outcome.summary
    assert outcome.summary.startswith("shop: restore: " if restore else "shop: read: pg_restore failed")
    assert await scratch_databases(postgres_server) == []


@pytest.mark.postgres
async def test_garbage_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.dump"
    path.write_bytes(b"PGDMP" + os.urandom(200))
    outcome = await run_step(BackupSource(engine="postgresql", path=str(path)))
    assert not outcome.ok
    assert "pg_restore --list failed" in outcome.summary


@pytest.mark.postgres
async def test_old_dump_is_not_ok(dump: tuple[Path, str]) -> None:
    backups, _ = dump
    latest = backups / "shop-latest.dump"
    long_ago = time.time() - 30 * 3600
    os.utime(latest, (long_ago, long_ago))
    os.utime(backups / "shop-older.dump", (long_ago - 60, long_ago - 60))
    outcome = await run_step(BackupSource(engine="postgresql", path=str(latest)), restore=False)
    assert not outcome.ok
    assert re.match(r"shop: age: older than 26 h \(30\.0 h old, taken ", outcome.summary)
    assert "ok  contents: 2 tables with data" in outcome.output  # the rest is still checked


@pytest.mark.postgres
async def test_glob_picks_the_newest_match(dump: tuple[Path, str]) -> None:
    backups, _ = dump
    outcome = await run_step(BackupSource(engine="postgresql", path=str(backups / "shop-*.dump")))
    assert outcome.data["file"] == str(backups / "shop-latest.dump")


@pytest.mark.postgres
async def test_without_scratch_url_it_only_lists(
    dump: tuple[Path, str], postgres_server: PostgresServer
) -> None:
    backups, _ = dump
    outcome = await run_step(BackupSource(engine="postgresql", path=str(backups), checks=CHECKS))
    assert outcome.ok
    assert "list only: no scratch_url" in outcome.summary
    assert outcome.data["restored"] is False
    assert "ok  read: every data block read" in outcome.output


@pytest.mark.postgres
async def test_restore_false_only_lists(dump: tuple[Path, str], postgres_server: PostgresServer) -> None:
    backups, _ = dump
    source = BackupSource(engine="postgresql", path=str(backups), scratch_url=postgres_server.admin_url)
    outcome = await run_step(source, restore=False)
    assert outcome.ok
    assert outcome.data["restored"] is False
    assert "scratch_database" not in outcome.data


@pytest.mark.postgres
async def test_scratch_url_naming_the_source_database_is_refused(
    dump: tuple[Path, str], postgres_server: PostgresServer
) -> None:
    backups, source_url = dump
    source = BackupSource(engine="postgresql", path=str(backups), scratch_url=source_url, checks=CHECKS)
    outcome = await run_step(source)
    assert "restore refused, scratch_url names" in outcome.summary
    assert database_name(source_url) in outcome.summary
    assert outcome.data["restored"] is False
    assert "scratch_database" not in outcome.data
    assert await scratch_databases(postgres_server) == []


@pytest.mark.postgres
async def test_schema_only_dump_is_not_ok(postgres_server: PostgresServer, tmp_path: Path) -> None:
    path = tmp_path / "schema.dump"
    await make_dump(postgres_server, path, "--schema-only")
    outcome = await run_step(BackupSource(engine="postgresql", path=str(path)))
    assert not outcome.ok
    assert "no table data" in outcome.summary


@pytest.mark.postgres
async def test_unreachable_scratch_server_is_an_integration_error(dump: tuple[Path, str]) -> None:
    from bot.errors import IntegrationError

    backups, _ = dump
    source = BackupSource(
        engine="postgresql", path=str(backups), scratch_url="postgresql://u:hunter22@127.0.0.1:1/postgres"
    )
    with pytest.raises(IntegrationError, match="cannot connect to scratch_url") as caught:
        await run_step(source)
    assert "hunter22" not in str(caught.value)


def test_parse_pg_list() -> None:
    text = """;
; Archive created at 2024-05-01 10:00:00 UTC
;     dbname: shop
;     TOC Entries: 12
;
215; 1259 16390 TABLE public customers postgres
3352; 0 16390 TABLE DATA public customers postgres
3353; 0 16395 TABLE DATA public orders postgres
"""
    listing = parse_pg_list(text)
    assert (listing.database, listing.table_data, listing.entries) == ("shop", 2, 3)


def test_restore_argv_has_no_password_and_no_shell() -> None:
    url = ServerUrl.parse("postgresql+asyncpg://admin:s3cr%40t@db.internal:5433/postgres?sslmode=require")
    assert url.password == "s3cr@t"
    target = url.url("firebell_verify_ab", with_password=False)
    assert target == "postgresql://admin@db.internal:5433/firebell_verify_ab?sslmode=require"
    assert pg_restore_argv("/usr/bin/pg_restore", "/b/x; rm -rf /", target) == [
        "/usr/bin/pg_restore", "--no-owner", "--no-privileges", "--dbname", target, "/b/x; rm -rf /",
    ]  # fmt: skip


# -- common -------------------------------------------------------------------------


async def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    outcome = await run_step(BackupSource(engine="postgresql", path=str(empty)))
    assert not outcome.ok
    assert outcome.summary == "shop: size: empty (0 bytes)"
    outcome = await run_step(BackupSource(engine="postgresql", path=str(tmp_path / "none" / "*.dump")))
    assert not outcome.ok
    assert "no backup at" in outcome.summary


async def test_remote_backups_are_not_supported_yet(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not supported yet"):
        await run_step(BackupSource(engine="postgresql", path="/var/backups/x.dump", host="db1"))


async def test_unknown_source_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown backup source `nope`"):
        await STEP.run(DbBackupArgs(source="nope"), context())


def test_step_shape() -> None:
    args = DbBackupArgs(source="shop")
    assert not STEP.destructive(args)
    assert "scratch database" in STEP.describe(args)
    with pytest.raises(pydantic.ValidationError):
        DbBackupArgs.model_validate({"source": "shop", "target_url": "postgresql://prod/db"})


def test_newest_backup_treats_a_pg_directory_dump_as_one_backup(tmp_path: Path) -> None:
    dumpdir = tmp_path / "backups" / "2024-05-01"
    dumpdir.mkdir(parents=True)
    (dumpdir / "toc.dat").write_bytes(b"x" * 10)
    (dumpdir / "3352.dat.gz").write_bytes(b"y" * 5)
    found = newest_backup(str(tmp_path / "backups"))
    assert found is not None
    assert (found.path, found.size, found.is_dir) == (str(dumpdir), 15, True)
    assert newest_backup(str(dumpdir)) == found


# -- MySQL / MariaDB ----------------------------------------------------------------

MYSQL_DUMP = b"""-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: shop
-- ------------------------------------------------------
DROP TABLE IF EXISTS `orders`;
CREATE TABLE `orders` (
  `id` int NOT NULL
) ENGINE=InnoDB;
INSERT INTO `orders` VALUES (1),(2);
CREATE TABLE `customers` (
  `id` int NOT NULL
) ENGINE=InnoDB;
-- Dump completed on 2024-05-01 10:00:00
"""


def test_mysql_dump_scan() -> None:
    facts = scan_mysql_dump(iter([MYSQL_DUMP[:100], MYSQL_DUMP[100:]]))
    assert (facts.database, facts.tables, facts.inserts, facts.complete) == ("shop", 2, 1, True)
    assert facts.selects_database is None
    truncated = scan_mysql_dump(iter([MYSQL_DUMP[:-60]]))
    assert not truncated.complete
    own = scan_mysql_dump(
        iter([b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`;\nUSE `shop`;\n" + MYSQL_DUMP])
    )
    assert own.selects_database is not None and "shop" in own.selects_database


async def test_mysql_file_checks(tmp_path: Path) -> None:
    good = tmp_path / "shop.sql.gz"
    good.write_bytes(gzip.compress(MYSQL_DUMP))
    outcome = await run_step(BackupSource(engine="mysql", path=str(good)))
    assert outcome.ok, outcome.output
    assert "2 tables, 1 INSERT statements" in outcome.summary
    assert "scan only: no scratch_url" in outcome.summary

    corrupt = tmp_path / "corrupt.sql.gz"
    corrupt.write_bytes(gzip.compress(MYSQL_DUMP)[:-12])
    outcome = await run_step(BackupSource(engine="mysql", path=str(corrupt)))
    assert not outcome.ok
    assert "damaged gzip stream" in outcome.summary

    truncated = tmp_path / "truncated.sql"
    truncated.write_bytes(MYSQL_DUMP[:-60])
    outcome = await run_step(BackupSource(engine="mysql", path=str(truncated)))
    assert not outcome.ok
    assert "truncated or unfinished" in outcome.summary


async def test_mysql_dump_selecting_its_own_database_is_never_restored(tmp_path: Path) -> None:
    path = tmp_path / "all.sql"
    path.write_bytes(b"CREATE DATABASE `shop`;\nUSE `shop`;\n" + MYSQL_DUMP)
    source = BackupSource(engine="mysql", path=str(path), scratch_url="mysql://root@127.0.0.1:1/scratch")
    outcome = await run_step(source)
    assert "restore refused, the dump selects its own database" in outcome.summary
    assert outcome.data["restored"] is False


def test_mysql_argv_and_option_file(tmp_path: Path) -> None:
    url = ServerUrl.parse("mysql://verify:p%22w%5Cd@db.internal:3307/scratch")
    option_file = mysql_option_file(url, str(tmp_path))
    assert stat.S_IMODE(os.stat(option_file).st_mode) == 0o600
    assert Path(option_file).read_text() == (
        '[client]\nuser="verify"\npassword="p\\"w\\\\d"\nhost="db.internal"\nprotocol=TCP\nport=3307\n'
    )
    defaults = f"--defaults-extra-file={option_file}"
    assert mysql_admin_argv("mysql", option_file, "CREATE DATABASE `firebell_verify_1`") == [
        "mysql", defaults, "--batch", "--skip-column-names", "-e", "CREATE DATABASE `firebell_verify_1`",
    ]  # fmt: skip
    assert mysql_restore_argv("mysql", option_file, "firebell_verify_1") == [
        "mysql", defaults, "--database=firebell_verify_1",
    ]  # fmt: skip
    assert mysql_check_argv("mysql", option_file, "firebell_verify_1", "SELECT 1 FROM orders") == [
        "mysql", defaults, "--batch", "--skip-column-names", "--database=firebell_verify_1",
        "-e", "SET SESSION TRANSACTION READ ONLY; SELECT 1 FROM orders",
    ]  # fmt: skip


MYSQL_URL_ENV = "FIREBELL_TEST_MYSQL_URL"


@pytest.mark.skipif(
    find_tool("mysql") is None or not os.environ.get(MYSQL_URL_ENV),
    reason=f"needs the mysql client and a server in {MYSQL_URL_ENV} (mysql://root:pw@127.0.0.1:3306/mysql)",
)
async def test_mysql_restore_into_a_scratch_database(tmp_path: Path) -> None:
    path = tmp_path / "shop.sql"
    path.write_bytes(MYSQL_DUMP)
    source = BackupSource(
        engine="mysql",
        path=str(path),
        scratch_url=os.environ[MYSQL_URL_ENV],
        checks=["SELECT 1 FROM orders WHERE id = 2"],
    )
    outcome = await run_step(source)
    assert outcome.ok, outcome.output
    assert outcome.data["restored"] is True
    assert outcome.data["checks_passed"] == 1


# -- MongoDB ------------------------------------------------------------------------


async def test_mongodb_archive_header_and_gzip(tmp_path: Path) -> None:
    archive = tmp_path / "shop.archive.gz"
    archive.write_bytes(gzip.compress(MONGO_ARCHIVE_MAGIC + b"\x00" * 64))
    outcome = await run_step(BackupSource(engine="mongodb", path=str(archive), checks=["x"]))
    if find_tool("mongorestore") is None:
        assert outcome.ok, outcome.output
        assert "archive header ok, gzip ok" in outcome.summary
        assert "header only: mongorestore is not installed" in outcome.output
    assert "checks are not run for MongoDB" in outcome.output

    not_archive = tmp_path / "x.archive"
    not_archive.write_bytes(b"hello world")
    outcome = await run_step(BackupSource(engine="mongodb", path=str(not_archive)))
    assert not outcome.ok
    assert "not a mongodump archive" in outcome.summary

    corrupt = tmp_path / "corrupt.archive.gz"
    corrupt.write_bytes(gzip.compress(MONGO_ARCHIVE_MAGIC + os.urandom(4096))[:-100])
    outcome = await run_step(BackupSource(engine="mongodb", path=str(corrupt)))
    assert not outcome.ok
    assert "damaged gzip stream" in outcome.summary


def test_mongorestore_argv_keeps_the_uri_in_a_private_file(tmp_path: Path) -> None:
    uri = 'mongodb://verify:pa"ss@127.0.0.1:27017/?authSource=admin'
    config = mongo_config_file(uri, str(tmp_path))
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert Path(config).read_text() == 'uri: "mongodb://verify:pa\\"ss@127.0.0.1:27017/?authSource=admin"\n'
    argv = mongorestore_dry_run_argv("mongorestore", config, "/b/shop.archive.gz", gzipped=True)
    assert argv == [
        "mongorestore", f"--config={config}", "--dryRun", "--verbose",
        "--archive=/b/shop.archive.gz", "--gzip",
    ]  # fmt: skip
    assert not any("verify:" in arg for arg in argv)
    assert "--gzip" not in mongorestore_dry_run_argv("mongorestore", config, "/b/x", gzipped=False)


MONGO_URL_ENV = "FIREBELL_TEST_MONGODB_URL"


@pytest.mark.skipif(
    find_tool("mongodump") is None or find_tool("mongorestore") is None or not os.environ.get(MONGO_URL_ENV),
    reason=f"needs mongodump/mongorestore and a server in {MONGO_URL_ENV}",
)
async def test_mongorestore_dry_run_reads_a_real_archive(tmp_path: Path) -> None:
    archive = tmp_path / "all.archive.gz"
    process = await asyncio.create_subprocess_exec(
        "mongodump", f"--uri={os.environ[MONGO_URL_ENV]}", f"--archive={archive}", "--gzip"
    )
    assert await process.wait() == 0
    source = BackupSource(engine="mongodb", path=str(archive), scratch_url=os.environ[MONGO_URL_ENV])
    outcome = await run_step(source)
    assert outcome.ok, outcome.output
    assert "mongorestore --dryRun read the archive" in outcome.summary


def test_backup_module_finds_pg_restore() -> None:
    if shutil.which("pg_restore") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_restore")):
        pytest.skip("pg_restore not installed")
    assert backup.find_tool("pg_restore", postgres=True) is not None
