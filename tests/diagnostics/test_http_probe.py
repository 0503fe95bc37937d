"""The HTTP probe against real local servers (plain and TLS), and the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.diagnostics.headers import CacheStatus
from bot.diagnostics.http_probe import CACHE_BUST_PARAM, ProbeOptions, parse_url, probe_http, probe_many
from bot.diagnostics.ssrf import OPEN_POLICY, AddressPolicy
from bot.diagnostics.verdict import report_json, summary, verdict
from bot.errors import UserError
from handlers.cli import cli
from tests.diagnostics.servers import CF_RAY, ProbeTarget
from tests.fakes import TlsMaterial

NO_BUST = ProbeOptions(cache_bust=False)


@pytest.fixture
def target() -> Iterator[ProbeTarget]:
    with ProbeTarget() as server:
        yield server


@pytest.fixture
def tls_target(tls: TlsMaterial) -> Iterator[ProbeTarget]:
    with ProbeTarget(tls=tls) as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_cdn_serves_a_cached_page_while_the_origin_sheds_load(target: ProbeTarget) -> None:
    result = await probe_http(f"{target.url}/cdn", policy=OPEN_POLICY)

    assert result.main.status == 200
    cache = result.main.report.cache
    assert (cache.cdn, cache.status, cache.pop, cache.age) == ("Cloudflare", CacheStatus.HIT, "AMS", 300)
    assert result.origin is not None
    assert result.origin.status == 503
    assert result.origin.report.retry_after == 120
    assert verdict(result).headline == (
        "origin answers 503 with Retry-After 120 while the CDN serves a cached 200: "
        "the origin is shedding load"
    )
    assert verdict(result).level == "degraded"
    # The cache-busting request carried a unique parameter and no-cache; the main one neither.
    plain, busted = sorted(target.calls("/cdn"), key=lambda request: CACHE_BUST_PARAM in request.query)
    assert CACHE_BUST_PARAM not in plain.query and plain.header("Cache-Control") is None
    assert len(busted.query[CACHE_BUST_PARAM]) == 16
    assert busted.header("Cache-Control") == "no-cache"
    assert busted.header("Pragma") == "no-cache"
    assert dict(result.main.report.request_ids)["cf-ray"] == CF_RAY


async def test_cached_error_page_and_plain_outage(target: ProbeTarget) -> None:
    cached, down = await probe_many(
        [f"{target.url}/cached-error", f"{target.url}/unavailable"], policy=OPEN_POLICY
    )
    assert verdict(cached).headline.startswith("the CDN serves a cached 503 while the origin answers 200")
    assert verdict(down).level == "down"
    assert verdict(down).headline.startswith("the site answers 503 with Retry-After 120")


async def test_redirect_chain_is_followed_hop_by_hop(target: ProbeTarget) -> None:
    result = await probe_http(f"{target.url}/redirect/start", policy=OPEN_POLICY, options=NO_BUST)
    hops = result.main.hops
    assert [hop.status for hop in hops] == [301, 302, 200]
    assert [hop.url for hop in hops] == [
        f"{target.url}/redirect/start",
        f"{target.url}/redirect/middle",
        f"{target.url}/redirect/end",
    ]
    assert hops[0].location == "/redirect/middle"
    assert all(hop.address == "127.0.0.1" and hop.timings.connect is not None for hop in hops)
    assert result.main.redirects == 2
    assert result.main.ok
    assert verdict(result).headline.startswith("up: answers 200 after 2 redirect(s)")


async def test_redirect_loop_stops_after_ten_hops(target: ProbeTarget) -> None:
    result = await probe_http(f"{target.url}/loop", policy=OPEN_POLICY, options=NO_BUST)
    assert result.main.failure is not None
    assert result.main.failure.kind == "redirect"
    assert len(result.main.hops) == 11
    assert verdict(result).headline.startswith("redirects go wrong: more than 10 redirects")


async def test_slow_first_byte_shows_in_the_timings(target: ProbeTarget) -> None:
    target.latency = 0.3
    result = await probe_http(f"{target.url}/ok", policy=OPEN_POLICY, options=NO_BUST)
    timings = result.main.final.timings
    assert timings.ttfb is not None and timings.ttfb >= 0.3 - 0.005
    assert timings.connect is not None and timings.connect < 0.3
    assert timings.dns is None  # an IP literal is not resolved
    assert timings.total >= timings.ttfb


async def test_no_first_byte_within_the_timeout(target: ProbeTarget) -> None:
    target.latency = 0.6
    result = await probe_http(f"{target.url}/ok", policy=OPEN_POLICY, options=ProbeOptions(timeout=0.2))
    assert result.main.failure is not None
    assert result.main.failure.kind == "timeout"
    assert result.main.failure.message == "no answer within 0.2 s (waiting for the first byte)"
    assert verdict(result).level == "down"
    await asyncio.sleep(0.6)  # let the server finish the answers nobody waits for


async def test_timings_include_dns_for_names(target: ProbeTarget) -> None:
    result = await probe_http(f"http://localhost:{target.port}/ok", policy=OPEN_POLICY, options=NO_BUST)
    assert result.main.status == 200
    assert result.main.final.timings.dns is not None


async def test_outage_headers_are_picked(target: ProbeTarget) -> None:
    result = await probe_http(f"{target.url}/ok", policy=OPEN_POLICY, options=NO_BUST)
    notable = dict(result.main.report.notable)
    assert notable["ETag"] == '"v1"'
    assert notable["Last-Modified"] == "Wed, 01 Oct 2025 10:00:00 GMT"
    assert notable["X-Request-Id"] == "req-123"
    assert "Content-Type" not in notable
    limited = await probe_http(f"{target.url}/ratelimited", policy=OPEN_POLICY, options=NO_BUST)
    assert limited.main.report.rate_limit is not None
    assert limited.main.report.rate_limit.exhausted
    assert verdict(limited).headline == (
        "rate limited: answers 429 with Retry-After 30 (limit 100, remaining 0, resets in 30 s)"
    )


async def test_intermittent_503s_show_in_the_samples(target: ProbeTarget) -> None:
    result = await probe_http(
        f"{target.url}/flaky", policy=OPEN_POLICY, options=ProbeOptions(count=20, cache_bust=False)
    )
    samples = result.samples
    assert samples is not None
    assert (samples.count, samples.succeeded, samples.success_ratio) == (20, 10, 0.5)
    assert dict(samples.outcomes) == {"200": 10, "503": 10}
    latency = samples.latency
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert len(target.calls("/flaky")) == 20
    judged = verdict(result)
    assert "10 of 20 requests succeeded (50%; 200×10, 503×10)" in judged.text
    assert "samples: 10/20 ok (50%)" in summary(result)


async def test_connection_refused_and_unresolvable(target: ProbeTarget) -> None:
    port = closed_port()
    refused = await probe_http(f"http://127.0.0.1:{port}/", policy=OPEN_POLICY)
    assert refused.main.failure is not None
    assert refused.main.failure.kind == "connect"
    assert (
        refused.main.failure.message
        == f"cannot connect to 127.0.0.1:{port}: connection refused (nothing listens on that port)"
    )

    async def no_such_name(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    missing = await probe_http("https://shop.invalid/", policy=OPEN_POLICY, resolver=no_such_name)
    assert missing.main.failure is not None
    assert missing.main.failure.kind == "dns"
    assert (
        verdict(missing).text
        == "shop.invalid does not resolve: Name or service not known (check the DNS records)"
    )


# ---------------------------------------------------------------- TLS


async def test_untrusted_certificate_is_reported_with_its_issuer(tls_target: ProbeTarget) -> None:
    result = await probe_http(f"{tls_target.url}/ok", policy=OPEN_POLICY, options=NO_BUST)
    failure = result.main.failure
    assert failure is not None
    assert failure.kind == "tls"
    assert failure.message.startswith("certificate verification failed: ")
    certificate = result.main.final.certificate  # read by a second, unverified handshake
    assert certificate is not None
    assert not certificate.verified
    assert certificate.issuer is not None and "firebell fake SaaS CA" in certificate.issuer
    assert certificate.not_after is not None
    assert "clients that verify certificates cannot connect" in verdict(result).headline
    assert tls_target.requests == []  # nothing was sent over the unverified connection


async def test_trusted_certificate_expiry_and_issuer(tls_target: ProbeTarget, tls: TlsMaterial) -> None:
    options = ProbeOptions(ca_file=str(tls.ca_file), cache_bust=False)
    for url in (f"{tls_target.url}/ok", f"https://localhost:{tls_target.port}/ok"):
        result = await probe_http(url, policy=OPEN_POLICY, options=options)
        assert result.main.status == 200
        certificate = result.main.certificate
        assert certificate is not None
        assert certificate.verified
        assert certificate.issuer is not None and "firebell fake SaaS CA" in certificate.issuer
        assert certificate.not_after is not None and certificate.not_after > result.checked_at
        assert "localhost" in certificate.names
        assert certificate.tls_version is not None and certificate.tls_version.startswith("TLS")
        assert result.main.final.timings.tls is not None


async def test_insecure_probe_still_reads_the_certificate(tls_target: ProbeTarget) -> None:
    result = await probe_http(
        f"{tls_target.url}/ok", policy=OPEN_POLICY, options=ProbeOptions(verify_tls=False)
    )
    assert result.main.status == 200
    certificate = result.main.certificate
    assert certificate is not None and not certificate.verified
    assert certificate.issuer is not None and "firebell fake SaaS CA" in certificate.issuer
    assert "TLS certificate not verified (verification was off)" in verdict(result).details


# ---------------------------------------------------------------- input


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://", "https://exa mple.com/", "http://[zz]/", "http://a%2fb/"]
)
def test_bad_urls_are_user_errors(url: str) -> None:
    with pytest.raises(UserError):
        parse_url(url)


def test_bare_hosts_mean_https() -> None:
    assert str(parse_url("example.com/health")) == "https://example.com/health"


@pytest.mark.parametrize("options", [{"count": 0}, {"timeout": 0}, {"max_redirects": 11}])
def test_bad_options_are_user_errors(options: dict[str, float]) -> None:
    with pytest.raises(UserError):
        ProbeOptions(**options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- CLI


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("FIREBELL_CONFIG", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_cli_json_prints_one_object_per_url(runner: CliRunner, target: ProbeTarget) -> None:
    result = runner.invoke(
        cli, ["diag", "http", f"{target.url}/cdn", f"{target.url}/redirect/start", "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    cdn, redirect = (json.loads(line) for line in lines)
    assert cdn["url"] == f"{target.url}/cdn"
    assert cdn["status"] == 200
    assert cdn["cdn"]["cdn"] == "Cloudflare"
    assert cdn["origin"]["status"] == 503
    assert cdn["verdict"]["text"].startswith(
        "origin answers 503 with Retry-After 120 while the CDN serves a cached 200: "
        "the origin is shedding load"
    )
    assert [hop["status"] for hop in redirect["chain"]] == [301, 302, 200]
    assert redirect["timings_ms"]["ttfb"] is not None


def test_cli_counts_and_tables(runner: CliRunner, target: ProbeTarget) -> None:
    result = runner.invoke(cli, ["diag", "http", f"{target.url}/flaky", "--count", "4", "--no-cache-bust"])
    assert result.exit_code == 0, result.output
    assert "samples" in result.stdout
    assert "2/4 ok (50%)" in result.stdout
    assert "verdict" in result.stdout


def test_cli_down_site_still_exits_zero(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["diag", "http", f"http://127.0.0.1:{closed_port()}/", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["failure"]["kind"] == "connect"


def test_cli_guard_flags(runner: CliRunner, target: ProbeTarget) -> None:
    url = f"{target.url}/ok"
    refused = runner.invoke(cli, ["diag", "http", url, "--deny-private", "--json"])
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["failure"]["kind"] == "refused"
    allowed = runner.invoke(
        cli, ["diag", "http", url, "--deny-private", "--allow-cidr", "127.0.0.0/8", "--json"]
    )
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["status"] == 200
    hosts = runner.invoke(cli, ["diag", "http", url, "--allow-host", "*.example.com", "--json"])
    assert hosts.exit_code == 2
    assert "not an allowed host" in json.loads(hosts.stdout)["failure"]["message"]
    assert target.calls("/ok") and len(target.calls("/ok")) == 2  # main + cache-busted of the allowed run


def test_cli_insecure_tls(runner: CliRunner, tls_target: ProbeTarget) -> None:
    result = runner.invoke(cli, ["diag", "http", f"{tls_target.url}/ok", "--insecure", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == 200
    assert payload["tls"]["verified"] is False
    assert "firebell fake SaaS CA" in payload["tls"]["issuer"]


@pytest.mark.parametrize(
    "arguments",
    [
        ["ftp://example.com/"],
        ["http://127.0.0.1/", "--allow-cidr", "not-a-cidr"],
        ["http://127.0.0.1/", "--allow-host", "http://x"],
        ["http://127.0.0.1/", "--count", "0"],
        ["http://127.0.0.1/", "--timeout", "0"],
        [],
    ],
)
def test_cli_bad_arguments_exit_2(runner: CliRunner, arguments: list[str]) -> None:
    result = runner.invoke(cli, ["diag", "http", *arguments])
    assert result.exit_code == 2, result.output


async def test_json_of_a_refused_probe_is_complete() -> None:
    payload = report_json(await probe_http("http://169.254.169.254/", policy=AddressPolicy()))
    assert payload["verdict"]["level"] == "refused"
    assert payload["origin"] is None and payload["samples"] is None


async def test_passwords_in_urls_are_masked_in_reports(target: ProbeTarget) -> None:
    url = f"http://probe:s3cret@127.0.0.1:{target.port}/ok"
    result = await probe_http(url, policy=OPEN_POLICY)
    assert result.main.status == 200
    assert target.last_call("/ok").header("Authorization") is not None  # the credentials were used
    assert "s3cret" not in json.dumps(report_json(result))
    assert "s3cret" not in summary(result)
    assert result.url == f"http://probe:***@127.0.0.1:{target.port}/ok"
