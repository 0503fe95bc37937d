"""The ``maintenance`` step kind, its flag file, and the shipped nginx snippet on a real nginx.

The step switches the flag; nginx, configured with the shipped snippet, must
then answer 503 with Retry-After and the shipped page, and pass traffic
through again once the flag is gone. (Apache is not installed in CI; its
snippet is only checked for the pieces it needs.)
"""

from __future__ import annotations

import json
import os
import ssl
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import MaintenanceSite, RunbooksConfig
from bot.runbooks.maintenance import MaintenanceFlag
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext
from bot.runbooks.steps.maintenance import STEP, MaintenanceArgs
from tests.clock import FakeClock
from tests.runbooks.maint_nginx import (
    APACHE_SNIPPET,
    PAGE,
    SHIPPED_FLAG,
    SHIPPED_PAGE,
    SITE_BODY,
    NginxSite,
    nginx_binary,
)
from tests.runbooks.ssh_server import ssh_test_server

NGINX = nginx_binary()
START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def context(sites: dict[str, MaintenanceSite]) -> StepContext:
    return StepContext(
        config=RunbooksConfig(maintenance=sites),
        secrets=SecretStore({}),
        clock=FakeClock(START),
        ssl_context=ssl.create_default_context(),
        timeout=30,
    )


class Flag:
    """The flag file, looked at synchronously (the tests' own file access is tiny)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def touch(self, text: str = "") -> None:
        self.path.write_text(text)

    def remove(self) -> None:
        self.path.unlink()

    def exists(self) -> bool:
        return self.path.exists()

    def json(self) -> object:
        return json.loads(self.path.read_text())

    def mode(self) -> int:
        return stat.S_IMODE(self.path.stat().st_mode)

    def inode(self) -> int:
        return self.path.stat().st_ino

    def directory_listing(self) -> list[str]:
        return sorted(p.name for p in self.path.parent.iterdir())


def args(**raw: object) -> MaintenanceArgs:
    return MaintenanceArgs.model_validate({"site": "www", **raw})


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    (tmp_path / "flags").mkdir()
    return tmp_path / "flags" / "www.flag"


@pytest.fixture
def flag(flag_file: Path) -> Flag:
    return Flag(flag_file)


@pytest.fixture
def www(flag_file: Path) -> StepContext:
    return context({"www": MaintenanceSite(flag_file=str(flag_file))})


@pytest.fixture
def nginx(tmp_path: Path, flag_file: Path) -> Iterator[NginxSite]:
    if NGINX is None:
        pytest.skip("nginx not installed (Debian package: nginx)")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    with NginxSite(NGINX, prefix, flag_file) as site:
        yield site


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        yield client


# --------------------------------------------------------------------- real nginx


async def test_nginx_shows_the_page_with_503_only_while_the_flag_exists(
    nginx: NginxSite, www: StepContext, http: httpx.AsyncClient
) -> None:
    normal = await http.get(f"{nginx.url}/")
    assert normal.status_code == 200 and normal.text == SITE_BODY
    assert "retry-after" not in normal.headers

    outcome = await STEP.run(args(action="on", message="database upgrade", retry_after_seconds=600), www)
    assert outcome.ok, outcome.summary

    page = PAGE.read_text()
    for path in ("/", "/index.html", "/some/deep/path?q=1"):
        response = await http.get(f"{nginx.url}{path}")
        assert response.status_code == 503, path
        assert response.text == page
        assert response.headers["retry-after"] == "300"
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
    # A form post gets the page too (nginx turns the internal redirect into a GET).
    posted = await http.post(f"{nginx.url}/login", data={"user": "a"})
    assert posted.status_code == 503 and posted.text == page
    # The page itself stays reachable, e.g. to preview it.
    direct = await http.get(f"{nginx.url}/firebell-maintenance.html")
    assert direct.status_code == 200 and direct.text == page

    outcome = await STEP.run(args(action="off"), www)
    assert outcome.ok and outcome.data["changed"] is True
    back = await http.get(f"{nginx.url}/")
    assert back.status_code == 200 and back.text == SITE_BODY
    assert "retry-after" not in back.headers


async def test_nginx_honours_a_flag_touched_by_hand(
    nginx: NginxSite, flag: Flag, http: httpx.AsyncClient
) -> None:
    flag.touch()
    assert (await http.get(f"{nginx.url}/")).status_code == 503
    flag.remove()
    assert (await http.get(f"{nginx.url}/")).status_code == 200


def test_the_page_is_self_contained() -> None:
    page = PAGE.read_text()
    assert "under maintenance" in page
    lowered = page.lower()
    for remote in ("http://", "https://", "//fonts", "<script", "<link", "<img", "@import", "url("):
        assert remote not in lowered, remote


def test_the_apache_snippet_has_the_pieces_it_needs() -> None:
    text = APACHE_SNIPPET.read_text()
    rules = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert f"RewriteCond {SHIPPED_FLAG} -f" in rules
    assert "RewriteCond %{REQUEST_URI} !=/firebell-maintenance.html" in rules
    assert "RewriteRule ^ - [R=503,L]" in rules
    assert "ErrorDocument 503 /firebell-maintenance.html" in rules
    assert f"Alias /firebell-maintenance.html {SHIPPED_PAGE}" in rules
    assert any(
        line.startswith('Header always set Retry-After "300"') and SHIPPED_FLAG in line for line in rules
    )


# --------------------------------------------------------------------- the flag file


async def test_on_writes_the_flag_atomically_with_its_details(www: StepContext, flag: Flag) -> None:
    outcome = await STEP.run(args(action="on", message="db upgrade", retry_after_seconds=900), www)
    assert outcome.ok
    assert outcome.summary == "maintenance page of www is on"
    assert outcome.data == {"maintenance": True, "changed": True, "since": START.isoformat()}
    assert flag.json() == {
        "since": START.isoformat(),
        "message": "db upgrade",
        "retry_after_seconds": 900,
    }
    # Readable by the web server's user, and no temporary file left beside it.
    assert flag.mode() == 0o644
    assert flag.directory_listing() == ["www.flag"]

    # Switching on again replaces the file by rename (a new inode), never edits it in place.
    inode = flag.inode()
    again = await STEP.run(args(action="on"), www)
    assert again.ok and again.summary == "maintenance page of www is on (it already was)"
    assert again.data["changed"] is False
    assert flag.inode() != inode
    assert flag.json() == {"since": START.isoformat()}


async def test_status_reads_back_what_on_wrote(www: StepContext) -> None:
    off = await STEP.run(args(action="status"), www)
    assert off.ok and off.summary == "maintenance page of www is off"
    assert off.data["maintenance"] is False

    await STEP.run(args(action="on", message="db upgrade", retry_after_seconds=900), www)
    on = await STEP.run(args(action="status"), www)
    assert on.summary == "maintenance page of www is on since 2025-03-01T09:30+00:00"
    assert on.data == {"maintenance": True, "changed": False, "since": START.isoformat()}
    assert "message: db upgrade" in on.output
    assert "retry after: 900s" in on.output


async def test_a_hand_made_flag_counts_as_on(flag: Flag) -> None:
    flag.touch("switched on by hand, see #ops\n")
    state = await MaintenanceFlag(flag.path).status()
    assert state.on and state.since is None and state.message is None


async def test_off_removes_the_flag_and_is_idempotent(www: StepContext, flag: Flag) -> None:
    flag.touch()
    first = await STEP.run(args(action="off"), www)
    assert first.ok and first.data["changed"] is True and first.summary == "maintenance page of www is off"
    assert not flag.exists()
    second = await STEP.run(args(action="off"), www)
    assert second.ok and second.data["changed"] is False
    assert second.summary == "maintenance page of www is off (it already was)"


async def test_a_missing_flag_directory_is_a_user_error(tmp_path: Path) -> None:
    ctx = context({"www": MaintenanceSite(flag_file=str(tmp_path / "absent" / "www.flag"))})
    with pytest.raises(UserError, match="does not exist"):
        await STEP.run(args(action="on"), ctx)


async def test_a_flag_path_that_is_a_directory_is_a_user_error(tmp_path: Path) -> None:
    ctx = context({"www": MaintenanceSite(flag_file=str(tmp_path))})
    with pytest.raises(UserError, match="is a directory"):
        await STEP.run(args(action="status"), ctx)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
async def test_an_unwritable_directory_is_an_integration_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        ctx = context({"www": MaintenanceSite(flag_file=str(locked / "www.flag"))})
        with pytest.raises(IntegrationError, match="no permission") as caught:
            await STEP.run(args(action="on"), ctx)
        assert not caught.value.retryable
    finally:
        locked.chmod(0o700)


def test_a_relative_flag_path_is_refused() -> None:
    with pytest.raises(UserError, match="absolute"):
        MaintenanceFlag("maint.flag")


# --------------------------------------------------------------------- configuration and arguments


async def test_a_remote_site_is_switched_over_ssh(tmp_path: Path) -> None:
    flag = "/var/lib/firebell/maintenance flag"  # a space: still one argument
    async with ssh_test_server(tmp_path) as server:
        ctx = context({"www": MaintenanceSite(flag_file=flag, host="web1")})
        ctx.config.hosts["web1"] = server.host()
        on = await STEP.run(args(action="on"), ctx)
        assert on.ok and on.data["maintenance"] is True and on.data["changed"] is True
        assert flag in server.files
        status = await STEP.run(args(action="status"), ctx)
        assert status.summary == "maintenance page of www is on"
        off = await STEP.run(args(action="off"), ctx)
        assert off.data == {"maintenance": False, "changed": True, "since": None}
        assert server.files == set()
        assert ["touch", "--", flag] in server.argvs and ["rm", "-f", "--", flag] in server.argvs


async def test_a_remote_site_on_an_unknown_host_is_a_user_error() -> None:
    ctx = context({"www": MaintenanceSite(flag_file="/var/lib/firebell/maintenance.flag", host="web1")})
    with pytest.raises(UserError, match="host 'web1' is not under"):
        await STEP.run(args(action="on"), ctx)


async def test_an_unknown_site_is_a_user_error(www: StepContext) -> None:
    with pytest.raises(UserError, match=r"no maintenance site 'shop'.*\(www\)"):
        await STEP.run(MaintenanceArgs.model_validate({"site": "shop", "action": "on"}), www)


def test_bare_yaml_on_and_off_are_understood() -> None:
    # PyYAML reads `action: on` as True; the step takes it as meant.
    assert args(action=True).action == "on"
    assert args(action=False).action == "off"


def test_describe_and_destructive() -> None:
    assert STEP.describe(args(action="on")) == "switch the maintenance page of www on"
    assert STEP.describe(args(action="off")) == "switch the maintenance page of www off"
    assert STEP.describe(args(action="status")) == "check whether the maintenance page of www is on"
    assert STEP.destructive(args(action="on")) and STEP.destructive(args(action="off"))
    assert not STEP.destructive(args(action="status"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"action": "off", "message": "x"}, "only with action on"),
        ({"action": "status", "retry_after_seconds": 60}, "only with action on"),
        ({"action": "on", "retry_after_seconds": 0}, "greater than or equal to 1"),
        ({"action": "on", "message": "x" * 1001}, "at most 1000"),
        ({"action": "toggle"}, "action"),
        ({"action": "on", "flag_file": "/tmp/x"}, "Extra inputs"),
    ],
)
def test_argument_shapes(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        args(**raw)
