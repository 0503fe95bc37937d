"""Plain-words reading of an :class:`HttpDiagnosis` (pure: values in, text out).

* :func:`verdict` — what a responder should conclude, e.g. "origin answers 503
  with Retry-After 120 while the CDN serves a cached 200: the origin is
  shedding load", comparing the main answer, the cache-busted answer and the
  samples;
* :func:`summary` — a few lines for a chat message;
* :func:`report_rows` — ``(label, value)`` rows for a table or Block Kit fields;
* :func:`report_json` — one JSON-ready object per URL (``firebell diag http --json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.diagnostics.headers import CacheInfo, CacheStatus, HeaderReport
from bot.diagnostics.http_probe import (
    Certificate,
    Exchange,
    Hop,
    HttpDiagnosis,
    ProbeFailure,
    SampleStats,
    Timings,
)

Level = Literal["ok", "degraded", "down", "refused"]

SLOW_FIRST_BYTE_SECONDS = 2.0
CERT_WARNING_DAYS = 14

_CLOUDFLARE_ORIGIN_ERRORS = {
    520: "Cloudflare got an empty or unexpected answer from the origin (520)",
    521: "the origin refuses Cloudflare's connections (521)",
    522: "Cloudflare's connection to the origin times out (522)",
    523: "Cloudflare cannot reach the origin (523)",
    524: "the origin accepted the connection but did not answer in time (524)",
    525: "the TLS handshake between Cloudflare and the origin fails (525)",
    526: "the origin's certificate is invalid for Cloudflare (526)",
    527: "Cloudflare's Railgun connection to the origin fails (527)",
}


@dataclass(frozen=True)
class Verdict:
    level: Level
    headline: str
    details: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return ". ".join((self.headline, *self.details))


# ---------------------------------------------------------------- formatting helpers


def format_seconds(seconds: float | None) -> str:
    """``0.4 ms``, ``12 ms``, ``1.25 s``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    millis = seconds * 1000
    return f"{millis:.1f} ms" if millis < 10 else f"{millis:.0f} ms"


def _retry(report: HeaderReport) -> str:
    if report.retry_after is None:
        return ""
    raw = (report.retry_after_raw or "").strip()
    if raw.isdigit():
        return f" with Retry-After {raw}"
    return f" with Retry-After {report.retry_after:.0f} s ({raw})"


def _status_text(hop: Hop) -> str:
    return f"{hop.status} {hop.reason}" if hop.reason else str(hop.status)


def _cache_text(cache: CacheInfo) -> str:
    parts = [cache.cdn or "cache"]
    if cache.status is not None:
        parts.append(f"{cache.status.value.upper()}")
    if cache.pop:
        parts.append(f"POP {cache.pop}")
    if cache.age is not None:
        parts.append(f"age {cache.age} s")
    if cache.evidence:
        parts.append(f"({cache.evidence})")
    return " · ".join(parts)


def _meaning(status: int, report: HeaderReport, subject: str) -> str:
    """Why ``subject`` (``the origin``, ``the site``) answers ``status``."""
    if report.cache.cdn == "Cloudflare" and status in _CLOUDFLARE_ORIGIN_ERRORS:
        return _CLOUDFLARE_ORIGIN_ERRORS[status]
    if status == 503:
        if report.retry_after is not None:
            return f"{subject} is shedding load"
        return f"{subject} is unavailable (overloaded or in maintenance)"
    if status == 502:
        return f"{subject} answers bad gateway: a proxy cannot get a valid answer from its upstream"
    if status == 504:
        return f"{subject} answers gateway timeout: an upstream does not answer in time"
    if status == 500:
        return f"{subject} is failing (internal server error)"
    if status == 429:
        return f"{subject} is rate limiting this client"
    return f"{subject} is failing"


def _failure_meaning(failure: ProbeFailure) -> str:
    return f"the origin cannot be reached ({failure.message})"


def _certificate_text(certificate: Certificate, now: datetime) -> str:
    parts: list[str] = []
    if certificate.subject:
        parts.append(certificate.subject)
    if certificate.issuer:
        parts.append(f"issued by {certificate.issuer}")
    if certificate.not_after is not None:
        days = certificate.days_left(now) or 0.0
        when = certificate.not_after.strftime("%Y-%m-%d")
        parts.append(f"expired {when}" if days < 0 else f"expires {when} (in {days:.0f} days)")
    if certificate.tls_version:
        parts.append(certificate.tls_version)
    parts.append("verified" if certificate.verified else "not verified")
    return " · ".join(parts)


# ---------------------------------------------------------------- the verdict


def _failure_headline(exchange: Exchange, failure: ProbeFailure) -> str:
    final = exchange.final
    if failure.kind == "redirect":
        return f"redirects go wrong: {failure.message} (last {final.url})"
    if len(exchange.hops) > 1 and final.status is None:
        if failure.kind == "refused":
            return f"the redirect to {final.url} was not followed: {failure.message}"
        where = f"after {len(exchange.hops) - 1} redirect(s), {final.url}: "
    else:
        where = ""
    if failure.kind == "dns":
        return f"{where}{failure.message} (check the DNS records)"
    if failure.kind == "tls":
        text = f"{where}TLS fails: {failure.message}"
        certificate = final.certificate
        if certificate is not None and (certificate.issuer or certificate.not_after):
            facts = []
            if certificate.issuer:
                facts.append(f"issued by {certificate.issuer}")
            if certificate.not_after is not None:
                facts.append(f"valid until {certificate.not_after:%Y-%m-%d}")
            text += f" (certificate {', '.join(facts)})"
        return f"{text}: clients that verify certificates cannot connect"
    if failure.kind == "timeout" and "first byte" in failure.message:
        return f"{where}{failure.message}: the server accepts connections but does not answer"
    if failure.kind == "protocol":
        return f"{where}broken answer: {failure.message}"
    return f"{where}{failure.message}"


def _headline(diagnosis: HttpDiagnosis) -> tuple[str, Level]:
    main, origin = diagnosis.main, diagnosis.origin
    if main.failure is not None:
        level: Level = "refused" if main.failure.kind == "refused" else "down"
        if diagnosis.refused:
            return f"not probed: {main.failure.message}", level
        return _failure_headline(main, main.failure), level
    status = main.status or 0
    cache = main.report.cache
    cached = cache.from_cache or (cache.age or 0) > 0
    origin_failed = origin is not None and (origin.failure is not None or (origin.status or 0) >= 500)

    if status < 400 and origin is not None and (origin_failed or origin.status == 429):
        if origin.failure is not None:
            origin_part, meaning = "the origin request fails", _failure_meaning(origin.failure)
        else:
            origin_status = origin.status or 0
            origin_part = f"origin answers {origin_status}{_retry(origin.report)}"
            meaning = _meaning(origin_status, origin.report, "the origin")
        if cached:
            copy = "a stale" if cache.status is CacheStatus.STALE else "a cached"
            return f"{origin_part} while the CDN serves {copy} {status}: {meaning}", "degraded"
        return (
            f"answers {status}, but a cache-busted request got {origin.outcome}{_retry(origin.report)}: "
            f"{meaning} (intermittently, or for uncached pages)",
            "degraded",
        )

    if status >= 500:
        if cached and origin is not None and origin.ok:
            return (
                f"the CDN serves a cached {status} while the origin answers {origin.status}: "
                "the error page is cached; purge it or wait for it to expire",
                "degraded",
            )
        if origin is not None and origin.ok:
            return (
                f"answers {status}{_retry(main.report)}, but a cache-busted request got {origin.status}: "
                "the failure is intermittent",
                "degraded",
            )
        who = "the site"
        if cache.status is CacheStatus.ERROR and cache.cdn:
            who = cache.cdn
        also = ""
        if origin is not None and origin.status is not None and origin.status >= 500:
            also = " (cache-busted too)" if origin.status == status else f" (cache-busted: {origin.status})"
        return (
            f"{who} answers {status}{_retry(main.report)}{also}: {_meaning(status, main.report, who)}",
            "down",
        )

    if status == 429:
        limit = main.report.rate_limit
        extra = f" ({limit.describe()})" if limit is not None else ""
        return f"rate limited: answers 429{_retry(main.report)}{extra}", "degraded"
    if status >= 400:
        return (
            f"answers {_status_text(main.final)}: the server is up but refuses or lacks this URL",
            "degraded",
        )

    redirects = f" after {main.redirects} redirect(s)" if main.redirects else ""
    text = f"up: answers {status}{redirects} in {format_seconds(main.elapsed)}"
    if cache.status is CacheStatus.STALE:
        return f"{text}, but {cache.cdn or 'the cache'} serves a stale copy", "degraded"
    if cache.from_cache:
        text += f", from the {cache.cdn or 'cache'} cache ({cache.status.value if cache.status else 'age'})"
    return text, "ok"


def _sample_details(samples: SampleStats) -> list[str]:
    details: list[str] = []
    if samples.succeeded < samples.count:
        outcomes = ", ".join(f"{outcome}×{times}" for outcome, times in samples.outcomes)
        details.append(
            f"{samples.succeeded} of {samples.count} requests succeeded "
            f"({samples.success_ratio:.0%}; {outcomes})"
        )
    if samples.latency:
        latency = samples.latency
        details.append(
            f"latency p50 {format_seconds(latency['p50'])}, p95 {format_seconds(latency['p95'])}, "
            f"p99 {format_seconds(latency['p99'])}"
        )
    return details


def verdict(diagnosis: HttpDiagnosis) -> Verdict:
    """The plain-words conclusion for one URL."""
    headline, level = _headline(diagnosis)
    details: list[str] = []
    if diagnosis.refused:
        return Verdict(level, headline)

    samples = diagnosis.samples
    if samples is not None:
        intermittent = 0 < samples.succeeded < samples.count
        if intermittent and level == "ok":
            outcomes = ", ".join(f"{outcome}×{times}" for outcome, times in samples.outcomes)
            details.append(headline)
            headline = (
                f"intermittent failures: {samples.succeeded} of {samples.count} requests succeeded "
                f"({samples.success_ratio:.0%}; {outcomes})"
            )
            level = "degraded"
            details.extend(_sample_details(samples)[1:])
        else:
            if intermittent:
                details.append("intermittent")
            details.extend(_sample_details(samples))

    main = diagnosis.main
    limit = main.report.rate_limit
    if limit is not None and limit.exhausted and main.status != 429:
        details.append(f"rate limit exhausted ({limit.describe()})")

    answered = main.answered
    if answered is not None and (answered.timings.ttfb or 0) >= SLOW_FIRST_BYTE_SECONDS:
        details.append(f"slow: the first byte took {format_seconds(answered.timings.ttfb)}")

    certificate = main.certificate
    if certificate is not None and main.failure is None:
        days = certificate.days_left(diagnosis.checked_at)
        if days is not None and days < 0:
            details.append(f"the TLS certificate expired on {certificate.not_after:%Y-%m-%d}")
            if level == "ok":
                level = "degraded"
        elif days is not None and days < CERT_WARNING_DAYS:
            details.append(f"the TLS certificate expires in {days:.0f} days")
        if not certificate.verified:
            details.append("TLS certificate not verified (verification was off)")
    return Verdict(level, headline, tuple(details))


# ---------------------------------------------------------------- summary and rows


def _timings_text(timings: Timings) -> str:
    parts = [
        f"{label} {format_seconds(value)}"
        for label, value in (
            ("dns", timings.dns),
            ("connect", timings.connect),
            ("tls", timings.tls),
            ("ttfb", timings.ttfb),
            ("transfer", timings.transfer),
        )
        if value is not None
    ]
    parts.append(f"total {format_seconds(timings.total)}")
    return " · ".join(parts)


def _exchange_text(exchange: Exchange, *, cache: bool = True) -> str:
    if exchange.failure is not None and exchange.answered is None:
        return f"{exchange.failure.kind}: {exchange.failure.message}"
    parts = [_status_text(exchange.final) if exchange.failure is None else exchange.outcome]
    if exchange.report.retry_after is not None:
        parts.append(f"Retry-After {exchange.report.retry_after_raw}")
    if cache and exchange.report.cache.status is not None:
        parts.append(f"cache {exchange.report.cache.status.value.upper()}")
    parts.append(format_seconds(exchange.elapsed))
    return " · ".join(parts)


def _hop_outcome(hop: Hop) -> str:
    if hop.status is not None:
        return str(hop.status)
    return hop.failure.kind if hop.failure is not None else "?"


def _samples_text(samples: SampleStats) -> str:
    outcomes = ", ".join(f"{outcome}×{times}" for outcome, times in samples.outcomes)
    text = f"{samples.succeeded}/{samples.count} ok ({samples.success_ratio:.0%}) · {outcomes}"
    latency = samples.latency
    if latency:
        text += " · " + " · ".join(
            f"{key} {format_seconds(latency[key])}" for key in ("p50", "p95", "p99", "max")
        )
    return text


def summary(diagnosis: HttpDiagnosis, judged: Verdict | None = None) -> str:
    """A few lines for a chat message: answer, origin, samples, verdict."""
    judged = judged or verdict(diagnosis)
    main = diagnosis.main
    lines = [f"{diagnosis.url} → {_exchange_text(main, cache=False)}"]
    cache = main.report.cache
    if cache.cdn or cache.status is not None:
        lines[0] += f" · {_cache_text(cache)}"
    origin = diagnosis.origin
    if origin is not None and origin.outcome != main.outcome:
        lines.append(f"cache-busted: {_exchange_text(origin)}")
    if diagnosis.samples is not None:
        lines.append(f"samples: {_samples_text(diagnosis.samples)}")
    lines.append(f"verdict: {judged.text}")
    return "\n".join(lines)


def report_rows(diagnosis: HttpDiagnosis, judged: Verdict | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows describing one URL, for a table or chat fields."""
    judged = judged or verdict(diagnosis)
    main = diagnosis.main
    rows: list[tuple[str, str]] = [("URL", diagnosis.url)]
    if main.failure is not None and main.answered is None:
        rows.append(("status", f"{main.failure.kind}: {main.failure.message}"))
    else:
        rows.append(("status", _exchange_text(main)))
        if main.failure is not None:
            rows.append(("problem", f"{main.failure.kind}: {main.failure.message}"))
    if len(main.hops) > 1:
        chain = [f"{_hop_outcome(hop)} {hop.url}" for hop in main.hops]
        rows.append(("redirects", "\n→ ".join(chain)))
    answered = main.answered
    if answered is not None:
        where = [answered.address or "?"]
        if answered.http_version:
            where.append(answered.http_version)
        rows.append(("address", " · ".join(where)))
        rows.append(("timings", _timings_text(answered.timings)))
        if len(main.hops) > 1:
            rows.append(("all hops", format_seconds(main.elapsed)))
    elif main.hops and main.failure is not None and main.failure.kind != "refused":
        rows.append(("timings", _timings_text(main.final.timings)))
    cache = main.report.cache
    rows.append(("CDN", _cache_text(cache) if cache.cdn or cache.status else "none detected"))
    if diagnosis.origin is not None:
        rows.append(("cache-busted", _exchange_text(diagnosis.origin)))
    if main.report.notable:
        rows.append(("headers", "\n".join(f"{name}: {value}" for name, value in main.report.notable)))
    if main.report.rate_limit is not None:
        rows.append(("rate limit", main.report.rate_limit.describe()))
    certificate = main.certificate
    if certificate is not None:
        rows.append(("TLS", _certificate_text(certificate, diagnosis.checked_at)))
    if diagnosis.samples is not None:
        rows.append(("samples", _samples_text(diagnosis.samples)))
    rows.append(("verdict", judged.text))
    return rows


# ---------------------------------------------------------------- JSON


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _timings_json(timings: Timings) -> dict[str, float | None]:
    return {
        "dns": _ms(timings.dns),
        "connect": _ms(timings.connect),
        "tls": _ms(timings.tls),
        "ttfb": _ms(timings.ttfb),
        "transfer": _ms(timings.transfer),
        "total": _ms(timings.total),
    }


def _failure_json(failure: ProbeFailure | None) -> dict[str, str] | None:
    return None if failure is None else {"kind": failure.kind, "message": failure.message}


def _certificate_json(certificate: Certificate | None, now: datetime) -> dict[str, Any] | None:
    if certificate is None:
        return None
    days = certificate.days_left(now)
    return {
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "not_before": certificate.not_before.isoformat() if certificate.not_before else None,
        "not_after": certificate.not_after.isoformat() if certificate.not_after else None,
        "days_left": None if days is None else round(days, 2),
        "names": list(certificate.names),
        "verified": certificate.verified,
        "tls_version": certificate.tls_version,
    }


def _cache_json(cache: CacheInfo) -> dict[str, Any]:
    return {
        "cdn": cache.cdn,
        "cache_status": cache.status.value if cache.status else None,
        "from_cache": cache.from_cache,
        "evidence": cache.evidence,
        "pop": cache.pop,
        "age": cache.age,
    }


def _exchange_json(exchange: Exchange, now: datetime) -> dict[str, Any]:
    report = exchange.report
    return {
        "url": exchange.url,
        "status": exchange.status,
        "ok": exchange.ok,
        "final_url": exchange.final.url,
        "failure": _failure_json(exchange.failure),
        "elapsed_ms": _ms(exchange.elapsed),
        "chain": [
            {
                "url": hop.url,
                "status": hop.status,
                "reason": hop.reason,
                "location": hop.location,
                "address": hop.address,
                "http_version": hop.http_version,
                "timings_ms": _timings_json(hop.timings),
                "failure": _failure_json(hop.failure),
            }
            for hop in exchange.hops
        ],
        "headers": dict(report.notable),
        "retry_after_seconds": report.retry_after,
        "rate_limit": None
        if report.rate_limit is None
        else {
            "source": report.rate_limit.source,
            "limit": report.rate_limit.limit,
            "remaining": report.rate_limit.remaining,
            "reset_seconds": report.rate_limit.reset_seconds,
            "policy": report.rate_limit.policy,
        },
        "cdn": _cache_json(report.cache),
        "request_ids": dict(report.request_ids),
        "tls": _certificate_json(exchange.certificate, now),
    }


def report_json(diagnosis: HttpDiagnosis, judged: Verdict | None = None) -> dict[str, Any]:
    """One JSON-ready object for one URL (the ``--json`` line)."""
    judged = judged or verdict(diagnosis)
    main = _exchange_json(diagnosis.main, diagnosis.checked_at)
    answered = diagnosis.main.answered
    samples = diagnosis.samples
    return {
        "url": diagnosis.url,
        "checked_at": diagnosis.checked_at.isoformat(),
        **main,
        "timings_ms": _timings_json(answered.timings) if answered is not None else None,
        "origin": None
        if diagnosis.origin is None
        else _exchange_json(diagnosis.origin, diagnosis.checked_at),
        "samples": None
        if samples is None
        else {
            "count": samples.count,
            "succeeded": samples.succeeded,
            "success_ratio": round(samples.success_ratio, 4),
            "outcomes": dict(samples.outcomes),
            "latency_ms": {key: _ms(value) for key, value in samples.latency.items()},
        },
        "verdict": {"level": judged.level, "text": judged.text, "headline": judged.headline},
    }
