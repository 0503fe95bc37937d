"""The response headers that explain an outage (pure: headers in, values out).

* :func:`notable_headers` keeps the headers a responder wants to see — caching
  (``Cache-Control``, ``Age``, ``Expires``, ``ETag``, ``Last-Modified``),
  back-off (``Retry-After``, ``X-RateLimit-*``, IETF ``RateLimit*``), who
  answered (``Server``, ``Via``, CDN headers) and request ids.
* :func:`detect_cache` names the CDN in front (Cloudflare, CloudFront, Fastly,
  Akamai; Varnish, Vercel and RFC 9211 ``Cache-Status`` too) and whether the
  answer came from its cache.
* :func:`parse_retry_after` and :func:`parse_rate_limit` turn the back-off
  headers into numbers.

Headers are given as ``(name, value)`` pairs, as they came off the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

HeaderPairs = Iterable[tuple[str, str]]

# Shown in this order; a trailing "*" is a prefix.
_NOTABLE = (
    "retry-after",
    "cache-control",
    "age",
    "expires",
    "etag",
    "last-modified",
    "vary",
    "x-ratelimit-*",
    "x-rate-limit-*",
    "ratelimit",
    "ratelimit-*",
    "server",
    "via",
    "cache-status",
    "cf-cache-status",
    "cf-ray",
    "x-cache",
    "x-cache-hits",
    "x-cache-status",
    "x-served-by",
    "x-amz-cf-pop",
    "x-amz-cf-id",
    "akamai-cache-status",
    "akamai-grn",
    "x-vercel-cache",
    "x-varnish",
)

REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-trace-id",
    "traceparent",
    "x-amzn-requestid",
    "x-amzn-trace-id",
    "x-amz-request-id",
    "x-amz-cf-id",
    "cf-ray",
    "x-fastly-request-id",
    "x-github-request-id",
    "x-ms-request-id",
    "x-cloud-trace-context",
    "x-b3-traceid",
    "x-vercel-id",
    "akamai-grn",
)


class CacheStatus(StrEnum):
    """Where the answer came from, as far as the cache headers say."""

    HIT = "hit"
    STALE = "stale"
    """Served from cache past its freshness (origin unreachable or updating)."""
    REVALIDATED = "revalidated"
    """Served from cache after the origin confirmed it (304)."""
    MISS = "miss"
    EXPIRED = "expired"
    """The cached copy had expired; fetched from the origin."""
    BYPASS = "bypass"
    """The cache was deliberately skipped (cookies, no-cache, pass rules)."""
    DYNAMIC = "dynamic"
    """Not eligible for caching; fetched from the origin."""
    ERROR = "error"
    """The CDN itself answered with an error."""
    UNKNOWN = "unknown"

    @property
    def from_cache(self) -> bool:
        return self in (CacheStatus.HIT, CacheStatus.STALE, CacheStatus.REVALIDATED)


@dataclass(frozen=True)
class CacheInfo:
    """The CDN or cache in front and what it did for this answer."""

    cdn: str | None = None
    status: CacheStatus | None = None
    evidence: str | None = None
    """The header that told, e.g. ``CF-Cache-Status: HIT``."""
    pop: str | None = None
    """The CDN location that answered (``AMS``, ``FRA56-P3`` …)."""
    age: int | None = None

    @property
    def from_cache(self) -> bool:
        return self.status is not None and self.status.from_cache


@dataclass(frozen=True)
class RateLimit:
    """Rate-limit fields from ``X-RateLimit-*`` or the IETF ``RateLimit`` headers."""

    source: str
    """``X-RateLimit`` or ``RateLimit`` (IETF draft)."""
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None
    """Seconds until the window resets (epoch timestamps are converted)."""
    policy: str | None = None

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def describe(self) -> str:
        parts: list[str] = []
        if self.limit is not None:
            parts.append(f"limit {self.limit}")
        if self.remaining is not None:
            parts.append(f"remaining {self.remaining}")
        if self.reset_seconds is not None:
            parts.append(f"resets in {self.reset_seconds:g} s")
        if self.policy:
            parts.append(f"policy {self.policy}")
        return ", ".join(parts) or self.source


@dataclass(frozen=True)
class HeaderReport:
    """Everything :func:`analyze_headers` found in one response's headers."""

    notable: tuple[tuple[str, str], ...] = ()
    retry_after: float | None = None
    """Seconds the server asks clients to wait (``Retry-After``)."""
    retry_after_raw: str | None = None
    rate_limit: RateLimit | None = None
    cache: CacheInfo = CacheInfo()
    request_ids: tuple[tuple[str, str], ...] = ()
    server: str | None = None
    via: str | None = None
    cache_control: str | None = None


def header_map(headers: HeaderPairs) -> dict[str, str]:
    """Lower-cased names to values; repeated headers are joined with ``", "``."""
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _is_notable(name: str) -> int | None:
    for index, pattern in enumerate(_NOTABLE):
        if (pattern.endswith("*") and name.startswith(pattern[:-1])) or name == pattern:
            return index
    if name in REQUEST_ID_HEADERS:
        return len(_NOTABLE)
    return None


def notable_headers(headers: HeaderPairs) -> tuple[tuple[str, str], ...]:
    """The outage-relevant headers in a stable order, names as the server spelled them."""
    first_spelling: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if _is_notable(key) is None:
            continue
        first_spelling.setdefault(key, name)
        values.setdefault(key, []).append(value)
    ordered = sorted(values, key=lambda key: (_is_notable(key) or 0, key))
    return tuple((first_spelling[key], ", ".join(values[key])) for key in ordered)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header from a plain mapping, whatever the case of its name."""
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date.

    A date in the past gives 0; anything unparsable (or no header) gives None.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.match(r"\s*(-?\d+)", value)
    return int(match.group(1)) if match else None


def _reset(value: str | None, now: datetime) -> float | None:
    number = _int(value)
    if number is None:
        return None
    # GitHub and others send an epoch timestamp; the drafts send delta-seconds.
    if number > 1_000_000_000:
        return max(0.0, number - now.timestamp())
    return float(number)


_PARAM = re.compile(r"([A-Za-z][\w-]*)\s*=\s*(\"[^\"]*\"|[^;,\s]+)")


def _params(value: str) -> dict[str, str]:
    return {key.lower(): raw.strip('"') for key, raw in _PARAM.findall(value)}


def parse_rate_limit(headers: Mapping[str, str], now: datetime) -> RateLimit | None:
    """Rate-limit state from ``X-RateLimit-*`` (and ``X-Rate-Limit-*``) or the
    IETF ``RateLimit`` headers (draft-03 to -06 separate fields, draft-07
    ``limit=, remaining=, reset=``, draft-08+ ``"policy";r=;t=`` with
    ``RateLimit-Policy: "policy";q=;w=``). ``headers`` is a :func:`header_map`."""
    for prefix in ("x-ratelimit-", "x-rate-limit-"):
        if any(name.startswith(prefix) for name in headers):
            return RateLimit(
                source="X-RateLimit",
                limit=_int(headers.get(f"{prefix}limit")),
                remaining=_int(headers.get(f"{prefix}remaining")),
                reset_seconds=_reset(
                    headers.get(f"{prefix}reset") or headers.get(f"{prefix}reset-after"), now
                ),
                policy=headers.get(f"{prefix}policy"),
            )
    combined = headers.get("ratelimit")
    policy = headers.get("ratelimit-policy")
    if combined is not None:
        fields = _params(combined)
        policy_fields = _params(policy or "")
        limit = _int(fields.get("limit")) or _int(policy_fields.get("q"))
        if limit is None and policy:
            limit = _int(policy)
        return RateLimit(
            source="RateLimit",
            limit=limit,
            remaining=_int(fields.get("remaining") or fields.get("r")),
            reset_seconds=_reset(fields.get("reset") or fields.get("t"), now),
            policy=policy,
        )
    if any(name.startswith("ratelimit-") for name in headers):
        return RateLimit(
            source="RateLimit",
            limit=_int(headers.get("ratelimit-limit")),
            remaining=_int(headers.get("ratelimit-remaining")),
            reset_seconds=_reset(headers.get("ratelimit-reset"), now),
            policy=policy,
        )
    return None


# ---------------------------------------------------------------- CDN and cache

_CLOUDFLARE = {
    "hit": CacheStatus.HIT,
    "stale": CacheStatus.STALE,
    "updating": CacheStatus.STALE,
    "revalidated": CacheStatus.REVALIDATED,
    "miss": CacheStatus.MISS,
    "expired": CacheStatus.EXPIRED,
    "bypass": CacheStatus.BYPASS,
    "dynamic": CacheStatus.DYNAMIC,
}
_CLOUDFRONT = {
    "hit": CacheStatus.HIT,
    "refreshhit": CacheStatus.REVALIDATED,
    "miss": CacheStatus.MISS,
    "error": CacheStatus.ERROR,
}
_SIMPLE = {
    "hit": CacheStatus.HIT,
    "stale": CacheStatus.STALE,
    "hit-stale": CacheStatus.STALE,
    "updating": CacheStatus.STALE,
    "revalidated": CacheStatus.REVALIDATED,
    "miss": CacheStatus.MISS,
    "expired": CacheStatus.EXPIRED,
    "pass": CacheStatus.BYPASS,
    "bypass": CacheStatus.BYPASS,
    "prerender": CacheStatus.HIT,
}


def _akamai_status(token: str) -> CacheStatus:
    token = token.upper()
    if "REFRESH_FAIL" in token or "STALE" in token:
        return CacheStatus.STALE
    if "REFRESH_HIT" in token:
        return CacheStatus.REVALIDATED
    if "HIT" in token:
        return CacheStatus.HIT
    if "MISS" in token:
        return CacheStatus.MISS
    if "DENIED" in token:
        return CacheStatus.ERROR
    if "COOKIE_DENY" in token:
        return CacheStatus.BYPASS
    return CacheStatus.UNKNOWN


def _simple_status(token: str) -> CacheStatus:
    token = token.strip().lower()
    if token in _SIMPLE:
        return _SIMPLE[token]
    if token.startswith("hit"):
        return CacheStatus.HIT
    return CacheStatus.UNKNOWN


def _rfc9211(value: str) -> CacheStatus:
    """RFC 9211 ``Cache-Status``: the last member is the cache nearest the client."""
    nearest = value.split(",")[-1]
    params = [part.strip().lower() for part in nearest.split(";")[1:]]
    if "hit" in params:
        return CacheStatus.HIT
    for param in params:
        if param.startswith("fwd="):
            reason = param[4:]
            return {
                "stale": CacheStatus.EXPIRED,
                "bypass": CacheStatus.BYPASS,
                "uri-miss": CacheStatus.MISS,
                "vary-miss": CacheStatus.MISS,
                "miss": CacheStatus.MISS,
                "request": CacheStatus.BYPASS,
            }.get(reason, CacheStatus.MISS)
    return CacheStatus.UNKNOWN


def detect_cache(headers: Mapping[str, str]) -> CacheInfo:
    """The CDN in front and its cache status; ``headers`` is a :func:`header_map`."""
    age = _int(headers.get("age"))
    server = headers.get("server", "").lower()
    via = headers.get("via", "").lower()
    x_cache = headers.get("x-cache")

    if "cf-cache-status" in headers or "cf-ray" in headers or server == "cloudflare":
        raw = headers.get("cf-cache-status")
        ray = headers.get("cf-ray", "")
        return CacheInfo(
            cdn="Cloudflare",
            status=_CLOUDFLARE.get(raw.strip().lower(), CacheStatus.UNKNOWN) if raw else None,
            evidence=f"CF-Cache-Status: {raw}" if raw else None,
            pop=ray.rsplit("-", 1)[1] if "-" in ray else None,
            age=age,
        )

    if "x-amz-cf-pop" in headers or "x-amz-cf-id" in headers or "cloudfront" in via:
        status = None
        if x_cache and "cloudfront" in x_cache.lower():
            first = x_cache.split()[0].lower()
            status = _CLOUDFRONT.get(first, CacheStatus.UNKNOWN)
        return CacheInfo(
            cdn="CloudFront",
            status=status,
            evidence=f"X-Cache: {x_cache}" if status is not None else None,
            pop=headers.get("x-amz-cf-pop"),
            age=age,
        )

    akamai_status = headers.get("akamai-cache-status")
    if (
        akamai_status is not None
        or "akamai-grn" in headers
        or any(name.startswith("x-akamai-") for name in headers)
        or "akamai" in server
        or (x_cache is not None and "akamai" in x_cache.lower())
    ):
        status = None
        evidence = None
        if x_cache and x_cache.upper().startswith("TCP_"):
            status, evidence = _akamai_status(x_cache.split()[0]), f"X-Cache: {x_cache}"
        elif akamai_status:
            first = akamai_status.split(",")[0].split()[0]
            status, evidence = _simple_status(first), f"Akamai-Cache-Status: {akamai_status}"
        return CacheInfo(cdn="Akamai", status=status, evidence=evidence, age=age)

    served_by = headers.get("x-served-by", "")
    if served_by.startswith("cache-") or "x-fastly-request-id" in headers or "fastly" in server:
        status = None
        if x_cache:
            # With shielding the header lists every cache, the client's edge last.
            status = _simple_status(x_cache.split(",")[-1])
        last_node = served_by.split(",")[-1].strip()
        return CacheInfo(
            cdn="Fastly",
            status=status,
            evidence=f"X-Cache: {x_cache}" if x_cache else None,
            pop=last_node.rsplit("-", 1)[1] if last_node.count("-") >= 2 else None,
            age=age,
        )

    if "x-vercel-cache" in headers:
        raw = headers["x-vercel-cache"]
        return CacheInfo(cdn="Vercel", status=_simple_status(raw), evidence=f"X-Vercel-Cache: {raw}", age=age)

    cdn = "Varnish" if "varnish" in via or "x-varnish" in headers else None
    if "cache-status" in headers:
        raw = headers["cache-status"]
        return CacheInfo(cdn=cdn, status=_rfc9211(raw), evidence=f"Cache-Status: {raw}", age=age)
    for name, label in (("x-cache", "X-Cache"), ("x-cache-status", "X-Cache-Status")):
        if name in headers:
            raw = headers[name]
            token = raw.split(",")[-1].split()[0] if raw.strip() else ""
            return CacheInfo(cdn=cdn, status=_simple_status(token), evidence=f"{label}: {raw}", age=age)
    if age is not None and age > 0:
        return CacheInfo(cdn=cdn, status=CacheStatus.HIT, evidence=f"Age: {age}", age=age)
    return CacheInfo(cdn=cdn, age=age)


def request_ids(headers: HeaderPairs) -> tuple[tuple[str, str], ...]:
    """Request and trace ids, to quote to the vendor or grep in the logs."""
    found = header_map(headers)
    return tuple((name, found[name]) for name in REQUEST_ID_HEADERS if name in found)


def _server_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def analyze_headers(headers: HeaderPairs, now: datetime) -> HeaderReport:
    """All of the above for one response. A dated ``Retry-After`` is measured
    from the response's ``Date`` (the server's clock) when present, else ``now``."""
    pairs = list(headers)
    found = header_map(pairs)
    retry_raw = found.get("retry-after")
    reference = _server_date(found.get("date")) or now
    return HeaderReport(
        notable=notable_headers(pairs),
        retry_after=parse_retry_after(retry_raw, reference) if retry_raw is not None else None,
        retry_after_raw=retry_raw,
        rate_limit=parse_rate_limit(found, now),
        cache=detect_cache(found),
        request_ids=request_ids(pairs),
        server=found.get("server"),
        via=found.get("via"),
        cache_control=found.get("cache-control"),
    )
