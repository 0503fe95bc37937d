"""Pure tests: header analysis, percentiles, the verdict and its renderings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.diagnostics.headers import (
    CacheStatus,
    analyze_headers,
    detect_cache,
    header_map,
    notable_headers,
    parse_rate_limit,
    parse_retry_after,
    request_ids,
)
from bot.diagnostics.http_probe import (
    Certificate,
    Exchange,
    Hop,
    HttpDiagnosis,
    ProbeFailure,
    Timings,
    sample_stats,
)
from bot.diagnostics.stats import percentile, percentiles
from bot.diagnostics.verdict import format_seconds, report_json, report_rows, summary, verdict

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------- stats


def test_percentiles_interpolate_linearly() -> None:
    values = [float(n) for n in range(10, 0, -1)]  # order does not matter
    found = percentiles(values, [0, 50, 90, 100])
    assert found == {0: 1.0, 50: 5.5, 90: pytest.approx(9.1), 100: 10.0}
    assert percentiles(values, [50])[50.0] == 5.5  # int and float keys are the same key


def test_percentiles_nearest_rank_returns_observed_values() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 5.0]
    assert percentiles(values, [50, 95, 99], method="nearest") == {50: 0.3, 95: 5.0, 99: 5.0}
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize(
    ("values", "ps"), [([], [50]), ([1.0], [101]), ([1.0], [-1]), ([float("nan")], [50])]
)
def test_percentiles_reject_undefined_input(values: list[float], ps: list[float]) -> None:
    with pytest.raises(ValueError):
        percentiles(values, ps)


# ---------------------------------------------------------------- headers


def test_retry_after_seconds_dates_and_garbage() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Sun, 01 Mar 2026 12:02:00 GMT", NOW) == 120
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", NOW) == 0
    assert parse_retry_after("soon", NOW) is None


def test_dated_retry_after_is_measured_from_the_servers_date() -> None:
    # Our clock is 10 minutes ahead of the server's: the server's view wins.
    report = analyze_headers(
        [("Date", "Sun, 01 Mar 2026 11:50:00 GMT"), ("Retry-After", "Sun, 01 Mar 2026 11:51:00 GMT")], NOW
    )
    assert report.retry_after == 60


def test_notable_headers_keep_outage_headers_in_a_stable_order() -> None:
    headers = [
        ("Content-Type", "text/html"),
        ("Server", "nginx"),
        ("X-RateLimit-Remaining", "0"),
        ("ETag", '"abc"'),
        ("Retry-After", "120"),
        ("Set-Cookie", "a=1"),
        ("Cache-Control", "no-store"),
        ("X-Request-Id", "r-1"),
        ("Via", "1.1 varnish"),
        ("Via", "1.1 cloudfront"),
    ]
    assert notable_headers(headers) == (
        ("Retry-After", "120"),
        ("Cache-Control", "no-store"),
        ("ETag", '"abc"'),
        ("X-RateLimit-Remaining", "0"),
        ("Server", "nginx"),
        ("Via", "1.1 varnish, 1.1 cloudfront"),
        ("X-Request-Id", "r-1"),
    )
    assert request_ids(headers) == (("x-request-id", "r-1"),)


AKAMAI_MISS = "TCP_MISS from a23-1-2-3.deploy.akamaitechnologies.com (AkamaiGHost/22.1) (-)"
AKAMAI_STALE = "TCP_REFRESH_FAIL_HIT from a1.deploy.akamaitechnologies.com"
FASTLY_NODES = "cache-iad-kiad7000025-IAD, cache-ams21038-AMS"


@pytest.mark.parametrize(
    ("headers", "cdn", "status", "pop"),
    [
        ({"cf-cache-status": "HIT", "cf-ray": "8f1c2d3e-AMS"}, "Cloudflare", CacheStatus.HIT, "AMS"),
        ({"cf-cache-status": "UPDATING", "server": "cloudflare"}, "Cloudflare", CacheStatus.STALE, None),
        ({"cf-cache-status": "DYNAMIC"}, "Cloudflare", CacheStatus.DYNAMIC, None),
        ({"server": "cloudflare"}, "Cloudflare", None, None),
        (
            {"x-cache": "Hit from cloudfront", "x-amz-cf-pop": "FRA56-P3"},
            "CloudFront",
            CacheStatus.HIT,
            "FRA56-P3",
        ),
        (
            {"x-cache": "RefreshHit from cloudfront", "x-amz-cf-id": "a"},
            "CloudFront",
            CacheStatus.REVALIDATED,
            None,
        ),
        (
            {"x-cache": "Error from cloudfront", "via": "1.1 x (CloudFront)"},
            "CloudFront",
            CacheStatus.ERROR,
            None,
        ),
        ({"x-served-by": FASTLY_NODES, "x-cache": "MISS, HIT"}, "Fastly", CacheStatus.HIT, "AMS"),
        ({"x-served-by": "cache-ams21038-AMS", "x-cache": "HIT-STALE"}, "Fastly", CacheStatus.STALE, "AMS"),
        ({"x-cache": AKAMAI_MISS}, "Akamai", CacheStatus.MISS, None),
        ({"x-cache": AKAMAI_STALE, "server": "AkamaiGHost"}, "Akamai", CacheStatus.STALE, None),
        ({"akamai-cache-status": "Hit from child", "akamai-grn": "0.1"}, "Akamai", CacheStatus.HIT, None),
        ({"x-vercel-cache": "STALE"}, "Vercel", CacheStatus.STALE, None),
        ({"x-cache": "HIT", "via": "1.1 varnish"}, "Varnish", CacheStatus.HIT, None),
        ({"cache-status": "ExampleCache; hit, Edge; fwd=uri-miss"}, None, CacheStatus.MISS, None),
        ({"cache-status": "Origin; fwd=uri-miss, Edge; hit; ttl=30"}, None, CacheStatus.HIT, None),
        ({"age": "120"}, None, CacheStatus.HIT, None),
        ({"server": "nginx"}, None, None, None),
    ],
)
def test_detect_cache(
    headers: dict[str, str], cdn: str | None, status: CacheStatus | None, pop: str | None
) -> None:
    found = detect_cache(header_map(headers.items()))
    assert (found.cdn, found.status, found.pop) == (cdn, status, pop)


def test_cache_evidence_names_the_header() -> None:
    found = detect_cache(header_map([("CF-Cache-Status", "HIT")]))
    assert found.evidence == "CF-Cache-Status: HIT"
    assert found.from_cache


def test_x_ratelimit_with_an_epoch_reset() -> None:
    reset = int((NOW + timedelta(seconds=90)).timestamp())
    limit = parse_rate_limit(
        header_map(
            [("X-RateLimit-Limit", "5000"), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", str(reset))]
        ),
        NOW,
    )
    assert limit is not None
    assert (limit.source, limit.limit, limit.remaining, limit.reset_seconds) == ("X-RateLimit", 5000, 0, 90)
    assert limit.exhausted


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # draft-08 and later: structured fields
        ({"ratelimit": '"default";r=50;t=30', "ratelimit-policy": '"default";q=100;w=60'}, (100, 50, 30)),
        # draft-07: one header
        ({"ratelimit": "limit=100, remaining=0, reset=5"}, (100, 0, 5)),
        # draft-03 to -06: separate fields
        ({"ratelimit-limit": "10", "ratelimit-remaining": "9", "ratelimit-reset": "7"}, (10, 9, 7)),
    ],
)
def test_ietf_ratelimit_drafts(headers: dict[str, str], expected: tuple[int, int, int]) -> None:
    limit = parse_rate_limit(header_map(headers.items()), NOW)
    assert limit is not None
    assert limit.source == "RateLimit"
    assert (limit.limit, limit.remaining, limit.reset_seconds) == expected


def test_no_rate_limit_headers() -> None:
    assert parse_rate_limit(header_map([("Server", "x")]), NOW) is None


# ---------------------------------------------------------------- verdict


def exchange(
    status: int | None,
    headers: dict[str, str] | None = None,
    *,
    failure: ProbeFailure | None = None,
    total: float = 0.05,
    ttfb: float = 0.01,
    certificate: Certificate | None = None,
    url: str = "https://shop.example.com/",
) -> Exchange:
    pairs = tuple((headers or {}).items())
    hop = Hop(
        url=url,
        status=status,
        reason={200: "OK", 503: "Service Unavailable", 404: "Not Found"}.get(status or 0),
        timings=Timings(connect=0.01, ttfb=ttfb, total=total),
        headers=pairs,
        certificate=certificate,
        failure=failure,
    )
    report = analyze_headers(pairs, NOW) if status is not None else analyze_headers((), NOW)
    return Exchange(url=url, hops=(hop,), failure=failure, report=report)


def diagnosis(
    main: Exchange, origin: Exchange | None = None, samples: list[Exchange] | None = None
) -> HttpDiagnosis:
    return HttpDiagnosis(
        url=main.url,
        checked_at=NOW,
        main=main,
        origin=origin,
        samples=sample_stats(samples) if samples else None,
    )


CACHED_200 = {
    "CF-Cache-Status": "HIT",
    "Age": "300",
    "Cache-Control": "public, max-age=600",
    "CF-Ray": "1-AMS",
}


def test_origin_shedding_load_behind_a_cached_page() -> None:
    origin = exchange(503, {"Retry-After": "120", "CF-Cache-Status": "MISS"})
    judged = verdict(diagnosis(exchange(200, CACHED_200), origin))
    assert judged.level == "degraded"
    assert judged.headline == (
        "origin answers 503 with Retry-After 120 while the CDN serves a cached 200: "
        "the origin is shedding load"
    )


def test_stale_copy_and_unreachable_origin() -> None:
    origin = exchange(
        None, failure=ProbeFailure("timeout", "no answer within 10 s (waiting for the first byte)")
    )
    judged = verdict(diagnosis(exchange(200, {"CF-Cache-Status": "STALE"}), origin))
    assert judged.headline.startswith("the origin request fails while the CDN serves a stale 200")
    assert "no answer within 10 s" in judged.headline


def test_cached_error_page() -> None:
    judged = verdict(
        diagnosis(exchange(503, {"X-Cache": "HIT", "Age": "42"}), exchange(200, {"X-Cache": "MISS"}))
    )
    assert judged.level == "degraded"
    assert judged.headline.startswith("the CDN serves a cached 503 while the origin answers 200")


def test_down_everywhere() -> None:
    judged = verdict(diagnosis(exchange(503, {"Retry-After": "120"}), exchange(503, {"Retry-After": "120"})))
    assert judged.level == "down"
    assert (
        judged.headline
        == "the site answers 503 with Retry-After 120 (cache-busted too): the site is shedding load"
    )


def test_cloudflare_origin_error_codes_are_explained() -> None:
    judged = verdict(
        diagnosis(exchange(522, {"Server": "cloudflare"}), exchange(522, {"Server": "cloudflare"}))
    )
    assert judged.level == "down"
    assert "Cloudflare's connection to the origin times out (522)" in judged.headline


def test_up_from_cache() -> None:
    judged = verdict(diagnosis(exchange(200, CACHED_200), exchange(200, {"CF-Cache-Status": "MISS"})))
    assert judged.level == "ok"
    assert judged.headline == "up: answers 200 in 50 ms, from the Cloudflare cache (hit)"


def test_intermittent_failures_from_samples() -> None:
    samples = [exchange(200, total=0.01 * (n + 1)) if n % 2 else exchange(503) for n in range(20)]
    judged = verdict(diagnosis(exchange(200), exchange(200), samples))
    assert judged.level == "degraded"
    assert judged.headline == "intermittent failures: 10 of 20 requests succeeded (50%; 200×10, 503×10)"
    assert any(detail.startswith("latency p50") for detail in judged.details)


def test_not_found_and_rate_limited() -> None:
    assert verdict(diagnosis(exchange(404))).headline.startswith("answers 404 Not Found: the server is up")
    limited = exchange(429, {"Retry-After": "30", "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0"})
    assert verdict(diagnosis(limited)).headline == (
        "rate limited: answers 429 with Retry-After 30 (limit 100, remaining 0)"
    )


def test_failures_read_plainly() -> None:
    refused = diagnosis(exchange(None, failure=ProbeFailure("refused", "refused 10.0.0.1: private address")))
    assert verdict(refused).level == "refused"
    assert verdict(refused).text == "not probed: refused 10.0.0.1: private address"
    slow = exchange(
        None, failure=ProbeFailure("timeout", "no answer within 5 s (waiting for the first byte)")
    )
    assert verdict(diagnosis(slow)).headline.endswith("the server accepts connections but does not answer")
    certificate = Certificate(
        subject="CN=shop.example.com",
        issuer="CN=Evil CA",
        not_before=None,
        not_after=NOW + timedelta(days=300),
    )
    tls = exchange(
        None,
        failure=ProbeFailure("tls", "certificate verification failed: self-signed certificate"),
        certificate=certificate,
    )
    assert verdict(diagnosis(tls)).headline == (
        "TLS fails: certificate verification failed: self-signed certificate "
        "(certificate issued by CN=Evil CA, valid until 2026-12-26): "
        "clients that verify certificates cannot connect"
    )


def test_certificate_expiry_and_slow_first_byte_are_details() -> None:
    soon = Certificate(
        subject="CN=a",
        issuer="CN=R3, O=Let's Encrypt",
        not_before=None,
        not_after=NOW + timedelta(days=3),
        verified=True,
    )
    judged = verdict(diagnosis(exchange(200, ttfb=2.5, total=2.6, certificate=soon)))
    assert judged.level == "ok"
    assert "the TLS certificate expires in 3 days" in judged.details
    assert "slow: the first byte took 2.50 s" in judged.details
    expired = Certificate(subject="CN=a", issuer="CN=b", not_before=None, not_after=NOW - timedelta(days=1))
    judged = verdict(diagnosis(exchange(200, certificate=expired)))
    assert judged.level == "degraded"
    assert "the TLS certificate expired on 2026-02-28" in judged.details


def test_renderings_agree() -> None:
    samples = [exchange(200), exchange(503)]
    diag = diagnosis(exchange(200, CACHED_200), exchange(503, {"Retry-After": "120"}), samples)
    judged = verdict(diag)
    text = summary(diag)
    assert text.splitlines()[0].startswith("https://shop.example.com/ → 200 OK")
    assert "cache-busted: 503 Service Unavailable · Retry-After 120" in text
    assert text.splitlines()[-1] == f"verdict: {judged.text}"
    rows = dict(report_rows(diag))
    assert rows["CDN"].startswith("Cloudflare · HIT · POP AMS · age 300 s")
    assert "Retry-After" not in rows["headers"] and "CF-Cache-Status: HIT" in rows["headers"]
    assert rows["samples"].startswith("1/2 ok (50%)")
    payload = report_json(diag)
    assert json.loads(json.dumps(payload)) == payload
    assert payload["status"] == 200
    assert payload["cdn"]["cache_status"] == "hit"
    assert payload["origin"]["status"] == 503
    assert payload["origin"]["retry_after_seconds"] == 120
    assert payload["samples"]["outcomes"] == {"200": 1, "503": 1}
    assert payload["verdict"]["level"] == "degraded"


def test_format_seconds() -> None:
    assert [format_seconds(v) for v in (None, 0.0004, 0.012, 0.5, 1.234)] == [
        "-",
        "0.4 ms",
        "12 ms",
        "500 ms",
        "1.23 s",
    ]
