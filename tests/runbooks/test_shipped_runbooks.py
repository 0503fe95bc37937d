"""Every shipped runbook (``runbooks/*.yaml``) is valid and works end to end.

Each runbook runs the way Slack and the command line run it — a
``RunbookService`` built from a ``firebell.toml`` (loaded with
``load_settings``), plan → request → execute on a migrated SQLite database —
against real targets (HAProxy, nginx with the shipped maintenance snippet,
PostgreSQL) or the local fakes of the step kinds' own tests (Cloudflare, an SSH
server emulating systemd, the Docker Engine and Kubernetes APIs). The tests
check what an operator would see: each step's status, the target's state
afterwards, and the audit trail; one runbook also runs through the real
``firebell runbook run`` process, and ``firebell runbook validate`` accepts the
shipped files and points at the file, step and field of a broken copy.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import yaml

from bot.errors import UserError
from bot.runbooks.haproxy import HAProxyClient
from bot.runbooks.kubernetes import RESTARTED_AT, rfc3339
from bot.runbooks.library import SHIPPED_DIR, runbook_files, validate_files
from bot.runbooks.plan import RunbookInvalid, check_runbook
from bot.runbooks.runs import RunStore, approval_refusal
from bot.store.database import create_engine
from tests.diagnostics.servers import ProbeTarget
from tests.logs import logdata
from tests.postgres import PostgresServer, postgres_tool
from tests.runbooks.cdn_fakes import FakeCloudflare
from tests.runbooks.docker_fake import STDOUT, FakeContainer, FakeDocker
from tests.runbooks.haproxy_servers import Backend, HAProxyProcess, haproxy_binary
from tests.runbooks.kubernetes_fake import FakeKubernetes, Workload, make_cluster_tls
from tests.runbooks.maint_nginx import SITE_BODY, NginxSite, nginx_binary
from tests.runbooks.shipped_fixtures import (
    HEALTHY_BODY,
    FailingBackend,
    Finished,
    HealthySite,
    RecordingInteraction,
    RunbookWorld,
)
from tests.runbooks.ssh_server import FakeUnit, ssh_test_server

SHIPPED = {
    "cdn-purge",
    "maintenance-off",
    "maintenance-on",
    "post-incident-validation",
    "restart-service",
    "verify-backup",
    "web-503",
}
CF_TOKEN = "cf-token-0123456789abcdef"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
K8S_TOKEN = "k8s-token-0123456789"
SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric NOT NULL);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');
INSERT INTO orders VALUES (1, 1, 12.50), (2, 2, 99.00);
"""


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[RunbookWorld]:
    """firebell's configuration for the test: diagnostics may probe 127.0.0.1 and
    read the ``web`` access log; targets are added by the fixtures that start them."""
    log = tmp_path / "access.log"
    logdata.write(log, logdata.combined)
    world = RunbookWorld(tmp_path, environ={"CF_TOKEN": CF_TOKEN})
    world.add("diagnostics", allow_cidrs=["127.0.0.1/32"], timeout_seconds=10)
    world.add("diagnostics.log_sources", web=[str(log)])
    yield world
    await world.close()


@pytest.fixture
async def cloudflare(world: RunbookWorld) -> AsyncIterator[FakeCloudflare]:
    async with FakeCloudflare(token=CF_TOKEN, zone_id=ZONE) as fake:
        world.add(
            "runbooks.cdn.main",
            provider="cloudflare",
            token_secret="CF_TOKEN",
            zone_id=ZONE,
            api_url=fake.url,
        )
        yield fake


async def until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 15) -> None:
    """Wait for a state a target reaches on its own (HAProxy's health checks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never reached: {what}")
        await asyncio.sleep(0.05)


async def server_status(haproxy: HAProxyProcess, server: str) -> str:
    """What ``show stat`` says about ``web/<server>``."""
    return (await HAProxyClient(str(haproxy.socket_path)).server("web", server)).status


@contextmanager
def start_haproxy(directory: Path, world: RunbookWorld, backends: dict[str, Any]) -> Iterator[HAProxyProcess]:
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy not installed (Debian package: haproxy)")
    with HAProxyProcess(binary, directory, backends) as process:
        world.add("runbooks.haproxy.edge", socket=str(process.socket_path))
        yield process


@pytest.fixture
def one_bad_server() -> Iterator[dict[str, Any]]:
    """s1's app answers 503 (its health check passes); s2 is fine."""
    with FailingBackend() as s1, Backend("s2") as s2:
        yield {"s1": s1, "s2": s2}


@pytest.fixture
async def haproxy(
    tmp_path: Path, world: RunbookWorld, one_bad_server: dict[str, Any]
) -> AsyncIterator[HAProxyProcess]:
    directory = tmp_path / "haproxy"
    directory.mkdir()
    with start_haproxy(directory, world, one_bad_server) as process:

        async def both_up() -> bool:
            return [await server_status(process, s) for s in ("s1", "s2")] == ["UP", "UP"]

        await until(both_up, "s1 and s2 UP")
        yield process


@pytest.fixture
def probe_target() -> Iterator[ProbeTarget]:
    with ProbeTarget() as server:
        yield server


@pytest.fixture
def nginx(tmp_path: Path, world: RunbookWorld) -> Iterator[NginxSite]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx not installed (Debian package: nginx)")
    (tmp_path / "flags").mkdir()
    flag = tmp_path / "flags" / "www.flag"
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    with NginxSite(binary, prefix, flag) as site:
        world.add("runbooks.maintenance.main", flag_file=str(flag))
        yield site


def assert_audited(run: Finished, final: str) -> None:
    """The audit trail: requested, running, one row per step as it finished (or
    was found not to run), then the ending with every step's result."""
    assert run.actions[:2] == ["requested", "running"]
    assert run.actions[-1] == final
    assert sorted(run.audited_steps) == sorted(run.steps)
    assert run.audit[0]["actor"] == "alice"
    assert run.audit[0]["detail"]["runbook"] == run.plan.runbook.name
    assert run.audit[1]["detail"] == {"approved_by": "bob"}
    ending = run.audit[-1]["detail"]["steps"]
    assert [(("↩ " if s["rollback"] else "") + s["id"], s["status"]) for s in ending] == run.steps
    assert run.row.status.value == final
    assert run.row.origin == "test"
    assert (run.row.requested_by, run.row.approved_by) == ("alice", "bob")


# -------------------------------------------------------------------------- all of them


def test_every_shipped_runbook_loads_and_passes_its_checks(tmp_path: Path) -> None:
    world = RunbookWorld(tmp_path)
    world.add("runbooks.hosts.web1", address="127.0.0.1", user="deploy")
    settings = world.settings()
    files = runbook_files(settings.config.runbooks)
    assert {path.name for path in files if path.parent == SHIPPED_DIR} == {f"{n}.yaml" for n in SHIPPED}

    library, problems = validate_files(files, settings.config.runbooks, services=[])
    assert problems == []
    assert set(library.runbooks) == SHIPPED
    for spec in library.runbooks.values():
        assert check_runbook(spec, hosts=["web1"], services=[]) == []
    # Only the runbooks that just look may run without a person; docs/runbooks.md
    # binds post-incident-validation in its [[runbooks.automation]] example.
    automation_safe = {name for name, spec in library.runbooks.items() if spec.automation_safe}
    assert automation_safe == {"verify-backup", "post-incident-validation"}


def firebell_command() -> list[str]:
    entry = Path(sys.executable).parent / "firebell"
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "handlers.cli"]


def cli_environ(world: RunbookWorld) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FIREBELL_", "SLACK_", "PAGERDUTY_", "OPSGENIE_", "CF_"))
    }
    world.settings()  # writes firebell.toml
    return {
        **inherited,
        **world.environ,
        "FIREBELL_CONFIG": str(world.config_path),
        "FIREBELL_DATABASE_URL": world.database_url,
    }


def test_validate_command_accepts_the_shipped_runbooks_and_points_at_a_broken_copy(
    tmp_path: Path,
) -> None:
    world = RunbookWorld(tmp_path)
    world.add("runbooks.hosts.web1", address="127.0.0.1", user="deploy")
    env = cli_environ(world)

    def validate(*paths: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*firebell_command(), "runbook", "validate", *paths],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    every = validate()
    assert every.returncode == 0, every.stderr
    assert every.stdout.strip() == f"{len(SHIPPED)} runbook files valid"  # a new one needs its test here
    shipped_dir = validate(str(SHIPPED_DIR))
    assert shipped_dir.returncode == 0, shipped_dir.stderr

    broken = tmp_path / "restart-service.yaml"
    text = (SHIPPED_DIR / "restart-service.yaml").read_text()
    assert text.count('unit: "{{ unit }}"') == 1
    broken.write_text(text.replace('unit: "{{ unit }}"', 'units: "{{ unit }}"'))
    result = validate(str(broken))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert f"{broken}: step systemd: args.unit: Field required" in lines
    assert f"{broken}: step systemd: args.units: Extra inputs are not permitted" in lines


# ------------------------------------------------------------------------------ web-503


async def test_web_503_drains_the_failing_server_purges_the_page_and_the_site_recovers(
    world: RunbookWorld, haproxy: HAProxyProcess, cloudflare: FakeCloudflare
) -> None:
    url = f"{haproxy.url}/"
    async with httpx.AsyncClient(trust_env=False) as http:
        before = [(await http.get(url)).status_code for _ in range(4)]
    assert sorted(before) == [200, 200, 503, 503]  # round robin over a good and a bad server

    service = await world.service()
    plan = service.plan(service.find("web-503"), {"url": url, "backend": "web", "server": "s1"})
    assert plan.destructive
    # Two-person rule: the requester may not approve their own drain.
    assert approval_refusal(
        plan.runbook, plan, requested_by="alice", approver="alice", approver_in_role=False
    )
    assert not approval_refusal(
        plan.runbook, plan, requested_by="alice", approver="bob", approver_in_role=False
    )

    run = await world.run("web-503", {"url": url, "backend": "web", "server": "s1"})

    assert run.steps == [
        ("probe", "ok"),
        ("logs", "ok"),
        ("drain", "ok"),
        ("purge", "ok"),
        ("smoke", "ok"),
    ], run.report.outputs()
    assert run.data("probe")["level"] in ("degraded", "down")
    assert run.summary("logs").startswith("2,400 requests")
    assert "5xx spike 12:30–12:40 UTC" in run.record("logs").output
    assert re.fullmatch(
        r"web/s1 set to drain; web/s1 has no sessions left \(DRAIN, after \d+s\)", run.summary("drain")
    )
    assert run.summary("purge") == "Cloudflare: purged 1 URL (zone 023e105f…)"
    assert run.summary("smoke") == "all 1 requests passed"
    assert_audited(run, "succeeded")

    # The target's real state: s1 drained, traffic only on s2, the page purged.
    assert await server_status(haproxy, "s1") == "DRAIN"
    assert await server_status(haproxy, "s2") == "UP"
    async with httpx.AsyncClient(trust_env=False) as http:
        after = [await http.get(url) for _ in range(4)]
    assert [(r.status_code, r.text) for r in after] == [(200, "s2")] * 4
    assert [r.json() for r in cloudflare.requests] == [{"files": [url]}]
    assert cloudflare.requests[0].header("Authorization") == f"Bearer {CF_TOKEN}"
    assert CF_TOKEN not in run.report.outputs()


async def test_web_503_changes_nothing_when_the_probe_finds_the_site_healthy(
    world: RunbookWorld, haproxy: HAProxyProcess, cloudflare: FakeCloudflare, probe_target: ProbeTarget
) -> None:
    url = f"{probe_target.url}/ok"
    run = await world.run("web-503", {"url": url, "backend": "web", "server": "s1"})

    assert run.steps == [
        ("probe", "ok"),
        ("logs", "ok"),
        ("drain", "skipped"),
        ("purge", "skipped"),
        ("smoke", "ok"),
    ], run.report.outputs()
    assert run.data("probe") == {"level": "ok", "status": 200}
    assert run.summary("drain") == 'skipped: `probe.data.level != "ok"` is false'
    assert_audited(run, "succeeded")
    assert await server_status(haproxy, "s1") == "UP"
    assert cloudflare.requests == []


async def test_web_503_puts_the_server_back_when_the_drain_fails(
    tmp_path: Path, world: RunbookWorld, cloudflare: FakeCloudflare, probe_target: ProbeTarget
) -> None:
    """A session outlives the drain's wait: the drain fails, ``ready-again`` puts
    s1 back into rotation, and nothing after the drain runs. (The wait is cut
    from 60 s to 0.5 s in a copy of the shipped file — everything else is as shipped.)"""
    shipped = (SHIPPED_DIR / "web-503.yaml").read_text()
    assert shipped.count("wait_seconds: 60") == 1
    copy = tmp_path / "web-503.yaml"
    copy.write_text(shipped.replace("wait_seconds: 60", "wait_seconds: 0.5"))
    directory = tmp_path / "haproxy"
    directory.mkdir()
    with (
        Backend("s1") as s1,
        Backend("s2") as s2,
        start_haproxy(directory, world, {"s1": s1, "s2": s2}) as haproxy,
    ):

        async def both_up() -> bool:
            return [await server_status(haproxy, s) for s in ("s1", "s2")] == ["UP", "UP"]

        await until(both_up, "s1 and s2 UP")
        async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
            # Round robin: two held requests, one open session on each server.
            held = [asyncio.create_task(http.get(f"{haproxy.url}/hold")) for _ in range(2)]

            async def both_held() -> bool:
                return s1.entered.is_set() and s2.entered.is_set()

            await until(both_held, "a held session on s1 and s2")
            try:
                run = await world.run(
                    str(copy),
                    {"url": f"{probe_target.url}/unavailable", "backend": "web", "server": "s1"},
                )
                status_after = await server_status(haproxy, "s1")
            finally:
                s1.release.set()
                s2.release.set()
                answers = await asyncio.gather(*held)
        assert sorted(r.text for r in answers) == ["s1", "s2"]  # the sessions were left to finish

    assert run.steps == [
        ("probe", "ok"),
        ("logs", "ok"),
        ("drain", "failed"),
        ("purge", "not run"),
        ("smoke", "not run"),
        ("↩ ready-again", "ok"),
    ], run.report.outputs()
    assert run.data("probe") == {"level": "down", "status": 503}
    assert re.fullmatch(
        r"web/s1 set to drain; web/s1 still has 1 sessions and 0 queued after \ds", run.summary("drain")
    )
    assert run.summary("ready-again").startswith("web/s1 set to ready: now UP")
    assert status_after == "UP"
    assert cloudflare.requests == []
    assert_audited(run, "failed")
    # The audit tells the story in the order it happened: the rollback ran
    # before the rest of the plan was marked as not run.
    assert run.audited_steps == [
        ("probe", "ok"),
        ("logs", "ok"),
        ("drain", "failed"),
        ("↩ ready-again", "ok"),
        ("purge", "not run"),
        ("smoke", "not run"),
    ]


# ---------------------------------------------------------------------- restart-service


async def test_restart_service_systemd_restarts_the_unit_over_ssh(
    tmp_path: Path, world: RunbookWorld
) -> None:
    async with ssh_test_server(tmp_path) as ssh:
        unit = ssh.units["nginx.service"] = FakeUnit(after_start=["activating", "active"])
        host = ssh.host()
        world.add(
            "runbooks.hosts.web1",
            address=host.address,
            port=host.port,
            user=host.user,
            key_file=str(host.key_file),
            known_hosts=str(host.known_hosts),
        )
        run = await world.run(
            "restart-service", {"method": "systemd", "host": "web1", "unit": "nginx.service"}
        )
        argvs = list(ssh.argvs)

    # The plan holds only the chosen method's step.
    assert run.steps == [("systemd", "ok")], run.report.outputs()
    assert run.summary("systemd") == "restart nginx.service on web1: active"
    assert run.data("systemd") == {
        "unit": "nginx.service",
        "host": "web1",
        "exit_status": 0,
        "state": "active",
    }
    assert (unit.starts, unit.state) == (1, "active")
    assert argvs[0] == ["systemctl", "restart", "--", "nginx.service"]
    assert set(map(tuple, argvs[1:])) == {("systemctl", "is-active", "--", "nginx.service")}
    assert_audited(run, "succeeded")


async def test_restart_service_systemd_without_a_host_is_refused_at_planning(
    tmp_path: Path, world: RunbookWorld
) -> None:
    world.add("runbooks.hosts.web1", address="127.0.0.1", user="deploy")
    service = await world.service()
    with pytest.raises(RunbookInvalid) as refused:
        service.plan(service.find("restart-service"), {"method": "systemd", "unit": "nginx.service"})
    assert [str(p) for p in refused.value.problems] == ["step systemd: needs host (give host=…)"]
    with pytest.raises(UserError, match="host: `db9` is not an inventory host"):
        service.plan(service.find("restart-service"), {"method": "systemd", "host": "db9", "unit": "x"})


@pytest.fixture
async def docker(world: RunbookWorld) -> AsyncIterator[FakeDocker]:
    # Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="fb-shipped-", dir="/tmp"))
    fake = FakeDocker()
    await fake.start(directory / "docker.sock")
    # The only endpoint, not named `default`: the runbook names none, so the kind picks it.
    world.add("runbooks.docker.local", url=f"unix://{fake.socket_path}")
    try:
        yield fake
    finally:
        await fake.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_restart_service_docker_restarts_the_container_until_healthy(
    world: RunbookWorld, docker: FakeDocker
) -> None:
    container = docker.add(FakeContainer("web-1", logs=[(STDOUT, "listening on :8080")]))
    run = await world.run("restart-service", {"method": "docker", "container": "web-1"})

    assert run.steps == [("docker", "ok")], run.report.outputs()
    assert re.fullmatch(r"web-1 restarted, running, healthy after [\d.]+ s", run.summary("docker"))
    assert run.data("docker")["restarted"] is True
    assert "listening on :8080" in run.record("docker").output
    assert container.restarts == 1
    [restart] = docker.calls("POST")
    assert (restart.path, restart.query) == ("/containers/web-1/restart", {"t": "10"})
    assert (container.status, container.health) == ("running", "healthy")
    assert_audited(run, "succeeded")


@pytest.fixture
async def kubernetes(tmp_path: Path, world: RunbookWorld) -> AsyncIterator[FakeKubernetes]:
    tls = make_cluster_tls(tmp_path / "k8s-tls")
    fake = FakeKubernetes(tls, K8S_TOKEN)
    await fake.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "prod",
                        "cluster": {"server": fake.url, "certificate-authority": str(tls.ca_file)},
                    }
                ],
                "users": [{"name": "firebell", "user": {"token": K8S_TOKEN}}],
                "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "firebell"}}],
                "current-context": "prod",
            }
        )
    )
    # The only cluster, not named `default`, with its own namespace.
    world.add("runbooks.kubernetes.prod", kubeconfig=str(kubeconfig), namespace="shop")
    try:
        yield fake
    finally:
        await fake.stop()


async def test_restart_service_kubernetes_rolls_the_deployment_out_again(
    world: RunbookWorld, kubernetes: FakeKubernetes
) -> None:
    """Without cluster or namespace parameters the cluster's configured namespace
    is used (a same-named deployment in `default` is left alone); a namespace
    parameter still wins."""
    shop = kubernetes.add(Workload("deployments", "shop", "web", replicas=1))
    other = kubernetes.add(Workload("deployments", "default", "web", replicas=1))
    run = await world.run("restart-service", {"method": "kubernetes", "deployment": "web"})

    assert run.steps == [("kubernetes", "ok")], run.report.outputs()
    summary = run.summary("kubernetes")
    assert re.fullmatch(r"deployment web restarted, 1/1 ready after [\d.]+ s", summary), summary
    stamp = rfc3339(world.clock.now())
    [patch] = kubernetes.calls("PATCH")
    assert patch.path == "/apis/apps/v1/namespaces/shop/deployments/web"
    assert patch.body == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    assert shop.annotations == {RESTARTED_AT: stamp}
    assert (shop.generation, shop.observed, shop.updated, shop.available) == (2, 2, 1, 1)
    assert run.data("kubernetes")["rolled_out"] is True
    assert run.data("kubernetes")["namespace"] == "shop"
    assert (other.generation, other.annotations) == (1, {})
    assert_audited(run, "succeeded")

    chosen = await world.run(
        "restart-service", {"method": "kubernetes", "namespace": "default", "deployment": "web"}
    )
    assert chosen.steps == [("kubernetes", "ok")], chosen.report.outputs()
    assert [p.path for p in kubernetes.calls("PATCH")][1:] == [
        "/apis/apps/v1/namespaces/default/deployments/web"
    ]
    assert other.annotations == {RESTARTED_AT: stamp}


# ----------------------------------------------------- maintenance and post-incident checks


async def test_maintenance_on_shows_the_page_validation_fails_and_off_restores_the_site(
    world: RunbookWorld, nginx: NginxSite
) -> None:
    url = f"{nginx.url}/"

    on = await world.run("maintenance-on", {"url": url})
    assert on.steps == [("switch-on", "ok"), ("check", "ok")], on.report.outputs()
    assert on.summary("switch-on") == "maintenance page of main is on"
    assert re.fullmatch(rf"GET {re.escape(url)} → 503 in \d+ ms", on.summary("check"))
    assert nginx.flag_file.exists()
    async with httpx.AsyncClient(trust_env=False) as http:
        page = await http.get(f"{nginx.url}/checkout")
    assert (page.status_code, page.headers["retry-after"]) == (503, "300")
    assert "under maintenance" in page.text
    assert_audited(on, "succeeded")

    # While the page is up, the post-incident check fails at its first step.
    validation = await world.run("post-incident-validation", {"url": url, "max_seconds": "60"})
    assert validation.steps == [("journey", "failed"), ("verdict", "not run"), ("healthy", "not run")]
    assert validation.summary("journey") == (
        f"2 of 2 failed — GET {url}: status 503, expected 200; body contains `under maintenance`"
    )
    assert validation.notes == []
    assert_audited(validation, "failed")

    off = await world.run("maintenance-off", {"url": url})
    assert off.steps == [("switch-off", "ok"), ("check", "ok")], off.report.outputs()
    assert off.summary("switch-off") == "maintenance page of main is off"
    assert not nginx.flag_file.exists()
    async with httpx.AsyncClient(trust_env=False) as http:
        page = await http.get(url)
    assert (page.status_code, page.text) == (200, SITE_BODY)
    assert "retry-after" not in page.headers
    assert_audited(off, "succeeded")


async def test_maintenance_without_a_url_only_switches_and_a_second_switch_says_so(
    world: RunbookWorld, nginx: NginxSite
) -> None:
    first = await world.run("maintenance-on")
    again = await world.run("maintenance-on")
    assert first.steps == again.steps == [("switch-on", "ok")]  # no url: the check is not in the plan
    assert again.summary("switch-on") == "maintenance page of main is on (it already was)"
    off = await world.run("maintenance-off")
    assert off.steps == [("switch-off", "ok")]
    assert not nginx.flag_file.exists()


async def test_post_incident_validation_passes_and_posts_for_a_healthy_site(world: RunbookWorld) -> None:
    with HealthySite() as site:
        interaction = RecordingInteraction()
        url = f"{site.url}/"
        run = await world.run(
            "post-incident-validation", {"url": url, "max_seconds": "60"}, interaction=interaction
        )
        seen = [(r.method, r.path) for r in site.requests]

    assert run.steps == [("journey", "ok"), ("verdict", "ok"), ("healthy", "ok")], run.report.outputs()
    assert run.summary("journey") == "all 2 requests passed"
    assert run.data("verdict") == {"level": "ok", "status": 200}
    assert interaction.notes == [f"Post-incident validation passed for {url}"]
    assert ("HEAD", "/") in seen
    assert seen.count(("GET", "/")) >= 6  # the journey's GET and diag's five samples (+ cache-busted)
    assert HEALTHY_BODY.strip() in run.record("journey").output  # the page the journey read
    assert_audited(run, "succeeded")


async def test_post_incident_validation_does_not_announce_a_site_whose_origin_still_fails(
    world: RunbookWorld, probe_target: ProbeTarget
) -> None:
    """The CDN serves a cached 200, so the journey passes; the diagnostics'
    cache-busted request reaches the failing origin, so nothing is announced."""
    run = await world.run("post-incident-validation", {"url": f"{probe_target.url}/cdn", "max_seconds": "60"})
    assert run.steps == [("journey", "ok"), ("verdict", "ok"), ("healthy", "skipped")], run.report.outputs()
    assert run.data("verdict")["level"] == "degraded"
    assert run.notes == []
    assert_audited(run, "succeeded")


# -------------------------------------------------------------------------------- cdn-purge


@pytest.mark.parametrize(
    ("params", "step", "sent", "summary"),
    [
        (
            {"url": "https://www.example.com/app.css"},
            "purge-url",
            {"files": ["https://www.example.com/app.css"]},
            "Cloudflare: purged 1 URL (zone 023e105f…)",
        ),
        (
            {"what": "tag", "tag": "product-42"},
            "purge-tag",
            {"tags": ["product-42"]},
            "Cloudflare: purged 1 tag (zone 023e105f…)",
        ),
        (
            {"what": "everything"},
            "purge-everything",
            {"purge_everything": True},
            "Cloudflare: purged everything (zone 023e105f…)",
        ),
    ],
    ids=["url", "tag", "everything"],
)
async def test_cdn_purge_sends_exactly_the_chosen_purge(
    world: RunbookWorld,
    cloudflare: FakeCloudflare,
    params: dict[str, str],
    step: str,
    sent: dict[str, Any],
    summary: str,
) -> None:
    run = await world.run("cdn-purge", params)
    assert run.steps == [(step, "ok")], run.report.outputs()
    assert run.summary(step) == summary
    assert [r.json() for r in cloudflare.requests] == [sent]
    assert [r.path for r in cloudflare.requests] == [f"/client/v4/zones/{ZONE}/purge_cache"]
    assert_audited(run, "succeeded")


async def test_cdn_purge_without_what_it_needs_is_refused_before_anything_is_sent(
    world: RunbookWorld, cloudflare: FakeCloudflare
) -> None:
    service = await world.service()
    spec = service.find("cdn-purge")
    with pytest.raises(RunbookInvalid, match=r"step purge-url: needs url \(give url=…\)"):
        service.plan(spec, {})
    with pytest.raises(RunbookInvalid, match=r"step purge-tag: needs tag \(give tag=…\)"):
        service.plan(spec, {"what": "tag"})
    with pytest.raises(UserError, match="tag: `a b` does not match"):
        service.plan(spec, {"what": "tag", "tag": "a b"})
    with pytest.raises(UserError, match="what: one of url, tag, everything"):
        service.plan(spec, {"what": "some"})
    assert cloudflare.requests == []


async def test_cdn_purge_through_the_firebell_command(
    world: RunbookWorld, cloudflare: FakeCloudflare, tmp_path: Path
) -> None:
    """``firebell runbook run`` in its own process, with FIREBELL_CONFIG and
    FIREBELL_DATABASE_URL; the fake Cloudflare answers from this test's loop."""
    env = cli_environ(world)
    process = await asyncio.create_subprocess_exec(
        *firebell_command(),
        "runbook",
        "run",
        "cdn-purge",
        "--yes",
        "-p",
        "what=tag",
        "-p",
        "tag=product-42",
        "--output",
        str(tmp_path / "out.txt"),
        env=env,
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    stdout = out.decode()
    assert process.returncode == 0, f"{stdout}\n{err.decode()}"
    lines = stdout.splitlines()
    assert lines[0].startswith("Runbook cdn-purge (cdn=main, what=tag, ")
    assert lines[1] == (
        '  1. purge-tag: Purge 1 tag on CDN account main: product-42 (only if params.what == "tag")'
        " ⚠ changes something"
    )
    assert re.fullmatch(r"  ✓ purge-tag \([\d.]+ s\) — Cloudflare: purged 1 tag \(zone 023e105f…\)", lines[2])
    assert lines[-1] == "cdn-purge: succeeded"
    assert [r.json() for r in cloudflare.requests] == [{"tags": ["product-42"]}]
    assert "Cloudflare: purged 1 tag" in (tmp_path / "out.txt").read_text()
    assert CF_TOKEN not in stdout + err.decode()

    engine = create_engine(world.database_url)
    try:
        store = RunStore(engine)
        row = await store.get(1)
        assert row is not None
        assert (row.runbook, row.origin, row.status.value) == ("cdn-purge", "cli", "succeeded")
        assert row.requested_by.startswith("cli:")
        trail = await store.audit_trail(1)
    finally:
        await engine.dispose()
    assert [r["action"] for r in trail] == ["requested", "running", "step", "succeeded"]
    assert trail[2]["detail"]["id"] == "purge-tag" and trail[2]["detail"]["status"] == "ok"


# ----------------------------------------------------------------------------- verify-backup


def pg_dump_binary() -> str:
    return postgres_tool("pg_dump")


async def make_dump(server: PostgresServer, path: Path) -> None:
    url = server.create_database("shop")
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()
    process = await asyncio.create_subprocess_exec(
        pg_dump_binary(), "-Fc", "-f", str(path), url, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()


async def scratch_databases(server: PostgresServer) -> list[str]:
    connection = await asyncpg.connect(server.admin_url)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'firebell_verify_%'"
        )
    finally:
        await connection.close()
    return [row["datname"] for row in rows]


@pytest.mark.postgres
async def test_verify_backup_restores_the_newest_dump_into_a_scratch_database_and_drops_it(
    world: RunbookWorld, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    older = backups / "shop-older.dump"
    older.write_bytes(b"not a dump")
    hour_ago = time.time() - 3600
    os.utime(older, (hour_ago, hour_ago))
    await make_dump(postgres_server, backups / "shop-latest.dump")
    world.add(
        "runbooks.backups.main",
        engine="postgresql",
        path=str(backups),
        scratch_url=postgres_server.admin_url,
        checks=["SELECT 1 FROM orders WHERE id = 2", "SELECT count(*) FROM customers HAVING count(*) = 2"],
    )
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "shop.dump").write_bytes(b"PGDMP but cut short")
    world.add(
        "runbooks.backups.broken",
        engine="postgresql",
        path=str(garbage),
        scratch_url=postgres_server.admin_url,
    )

    run = await world.run("verify-backup")
    assert run.steps == [("verify", "ok")], run.report.outputs()
    data = run.data("verify")
    assert data["file"] == str(backups / "shop-latest.dump")
    assert (data["tables"], data["restored"], data["checks_passed"]) == (2, True, 2)
    assert data["scratch_database"].startswith("firebell_verify_")
    assert await scratch_databases(postgres_server) == []  # the scratch database is gone
    assert_audited(run, "succeeded")

    listed = await world.run("verify-backup", {"restore": "false"})
    assert listed.steps == [("verify", "ok")], listed.report.outputs()
    assert listed.data("verify")["tables"] == 2
    assert "scratch_database" not in listed.data("verify")  # restore=false: nothing created

    broken = await world.run("verify-backup", {"source": "broken"})
    assert broken.steps == [("verify", "failed")], broken.report.outputs()
    assert_audited(broken, "failed")
    assert await scratch_databases(postgres_server) == []
