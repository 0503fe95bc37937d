"""CDN providers behind one small protocol: purges and origin failover.

This module owns the wire formats of the three supported CDN APIs
(Cloudflare, Fastly, CloudFront), their input limits, the mapping of their
failures onto ``UserError`` / ``IntegrationError``, and AWS Signature
Version 4 (implemented here with ``hashlib``/``hmac`` so that no AWS SDK is
needed for one signed POST). The ``cdn`` step kind
(``bot.runbooks.steps.cdn``) picks a provider with :func:`provider_for` and
turns its :class:`CdnResult` into a step outcome.

Vendor types stay inside: httpx exceptions and XML/JSON decoding problems are
caught here and raised again as the project's own errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit

import httpx

from bot.clock import Clock
from bot.errors import IntegrationError, UserError
from bot.runbooks.config import CdnAccount
from bot.runbooks.secrets import SecretStore

CLOUDFLARE_API = "https://api.cloudflare.com"
FASTLY_API = "https://api.fastly.com"
CLOUDFRONT_API = "https://cloudfront.amazonaws.com"

CLOUDFLARE_BATCH = 30
"""URLs or tags per Cloudflare purge request: the documented per-call limit of
the Free/Pro/Business plans, so every plan accepts our batches."""
FASTLY_KEYS_BATCH = 256
"""Surrogate keys per Fastly bulk purge request (documented maximum)."""
FASTLY_MAX_URLS = 100
"""Fastly purges one URL per request; beyond this, surrogate keys are the tool."""
CLOUDFRONT_MAX_PATHS = 3000
"""CloudFront allows 3,000 file paths in progress per distribution."""
CLOUDFRONT_MAX_WILDCARDS = 15
"""…and 15 wildcard paths in progress."""
MAX_TAG_LENGTH = 1024

CLOUDFRONT_VERSION = "2020-05-31"
CLOUDFRONT_NS = f"http://cloudfront.amazonaws.com/doc/{CLOUDFRONT_VERSION}/"

_T = TypeVar("_T")
_TAG = re.compile(r"^[^\s,]+$")
_RETRY_MARGIN = 2.0
"""Seconds kept back after honouring a Retry-After, for the retried request itself."""


# --------------------------------------------------------------------------- results and protocol


@dataclass
class CdnResult:
    """What a provider did, in words and in facts."""

    summary: str
    """Short, e.g. ``purged 3 URLs``; the step prefixes the provider and target."""
    details: list[str] = field(default_factory=list)
    """Lines for the step's output (request ids, per-batch results)."""
    data: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    """False when the action was accepted but not finished in the time allowed."""


class Deadline:
    """The step's remaining time, on the event loop's monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._at = self._loop.time() + seconds

    def left(self) -> float:
        return max(0.0, self._at - self._loop.time())


class CdnProvider(Protocol):
    """One CDN account, ready to act. Methods validate all input before sending anything."""

    name: str
    """Display name: ``Cloudflare``, ``Fastly``, ``CloudFront``."""
    target: str
    """What is acted on, shortened for a summary: ``zone 023e105f…``."""

    async def purge_urls(self, urls: Sequence[str]) -> CdnResult: ...

    async def purge_tags(self, tags: Sequence[str]) -> CdnResult: ...

    async def purge_all(self) -> CdnResult: ...

    async def failover(self) -> CdnResult: ...

    async def failback(self) -> CdnResult: ...


# --------------------------------------------------------------------------- validation helpers


def short_id(value: str, keep: int = 8) -> str:
    """``023e105f4ecef8ad9ca31a8372d0c353`` → ``023e105f…`` for one-line summaries."""
    return value if len(value) <= keep + 1 else value[:keep] + "…"


def validate_http_urls(urls: Sequence[str], provider: str) -> list[str]:
    """The URLs, stripped; ``UserError`` unless each is an absolute http(s) URL with a host."""
    if not urls:
        raise UserError(f"{provider}: purge_urls needs at least one URL in `urls`")
    cleaned: list[str] = []
    for raw in urls:
        url = raw.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(
                f"{provider}: {raw!r} is not an http(s) URL (e.g. https://www.example.com/app.css)"
            )
        if any(ch.isspace() for ch in url):
            raise UserError(f"{provider}: URL {raw!r} contains whitespace")
        cleaned.append(url)
    return cleaned


def validate_tags(tags: Sequence[str], provider: str) -> list[str]:
    """The tags; ``UserError`` for an empty list, an empty tag, whitespace or commas
    (both providers separate tags with those in headers)."""
    if not tags:
        raise UserError(f"{provider}: purge_tags needs at least one tag in `tags`")
    for tag in tags:
        if not tag or not _TAG.match(tag):
            raise UserError(f"{provider}: tag {tag!r} must be non-empty, without whitespace or commas")
        if len(tag.encode()) > MAX_TAG_LENGTH:
            raise UserError(f"{provider}: tag {tag[:40]!r}… is longer than {MAX_TAG_LENGTH} bytes")
    return list(dict.fromkeys(tags))


def validate_cloudfront_paths(paths: Sequence[str]) -> list[str]:
    """Invalidation paths: each starts with ``/``; ``*`` only as the last character.

    An http(s) URL stands for its path, so a runbook written for a URL-purging
    CDN works unchanged on CloudFront (the host is the distribution's; the
    query string is dropped because invalidation paths do not match on it).
    """
    if not paths:
        raise UserError("CloudFront: purge_urls needs at least one path in `urls` (e.g. /index.html)")
    converted: list[str] = []
    for raw in paths:
        path = raw.strip()
        parts = urlsplit(path)
        if parts.scheme in ("http", "https") and parts.hostname:
            path = parts.path or "/"
        if not path.startswith("/"):
            raise UserError(f"CloudFront: {raw!r} is neither a path starting with '/' nor an http(s) URL")
        if any(ch.isspace() for ch in path):
            raise UserError(f"CloudFront: path {raw!r} contains whitespace (URL-encode it as %20)")
        if "*" in path[:-1]:
            raise UserError(f"CloudFront: path {raw!r} may use '*' only as its last character")
        converted.append(path)
    cleaned = list(dict.fromkeys(converted))
    if len(cleaned) > CLOUDFRONT_MAX_PATHS:
        raise UserError(
            f"CloudFront: {len(cleaned)} paths; at most {CLOUDFRONT_MAX_PATHS} may be in progress "
            "per distribution (use a wildcard such as /assets/*)"
        )
    wildcards = sum(1 for p in cleaned if p.endswith("*"))
    if wildcards > CLOUDFRONT_MAX_WILDCARDS:
        raise UserError(
            f"CloudFront: {wildcards} wildcard paths; at most {CLOUDFRONT_MAX_WILDCARDS} may be in progress"
        )
    return cleaned


def batches(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def account_problems(account: CdnAccount) -> list[str]:
    """What is missing from an account's configuration, one line each (empty when sound).

    Checks names only, never secret values, so ``firebell check`` can use it.
    """
    need: dict[str, tuple[str, ...]] = {
        "cloudflare": ("token_secret", "zone_id"),
        "fastly": ("token_secret", "service_id"),
        "cloudfront": ("access_key_secret", "secret_key_secret", "distribution_id"),
    }
    problems = [
        f"{account.provider} needs `{name}`" for name in need[account.provider] if not getattr(account, name)
    ]
    if account.api_url is not None:
        parts = urlsplit(account.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"api_url {account.api_url!r} is not an http(s) URL")
    if account.provider == "cloudflare" and account.failover:
        missing = [
            k for k in ("load_balancer_id", "primary_pool", "backup_pool") if not account.failover.get(k)
        ]
        if missing:
            problems.append("cloudflare failover needs " + ", ".join(f"`{k}`" for k in missing))
    return problems


# --------------------------------------------------------------------------- HTTP plumbing shared by adapters


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # An HTTP-date form is allowed too; without a clock reading here a
        # conservative minute is better than ignoring the hint.
        return 60.0


async def _send(
    client: httpx.AsyncClient, provider: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One request; transport failures become retryable ``IntegrationError``s.

    The message names the method and path only: URLs here never carry
    credentials, and request headers (which do) are never echoed.
    """
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise IntegrationError(
            f"{provider}: {method} {urlsplit(url).path} timed out", retryable=True
        ) from exc
    except httpx.HTTPError as exc:
        raise IntegrationError(
            f"{provider}: {method} {urlsplit(url).path} failed: {type(exc).__name__}", retryable=True
        ) from exc


def _status_error(
    provider: str, response: httpx.Response, detail: str, code: str | None = None
) -> IntegrationError:
    status = response.status_code
    retry_after = _retry_after(response)
    if status == 429:
        wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        return IntegrationError(
            f"{provider}: rate limited (HTTP 429): {detail}{wait}",
            retryable=True,
            retry_after=retry_after,
            code=code or "429",
        )
    hint = ""
    if status in (401, 403):
        hint = " (check the API token and its permissions)"
    return IntegrationError(
        f"{provider}: HTTP {status}: {detail}{hint}",
        retryable=status >= 500 or status == 408,
        retry_after=retry_after,
        code=code or str(status),
    )


async def _with_rate_limit_retry(deadline: Deadline, call: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``call``; after one 429 whose Retry-After fits the step's remaining
    time, wait that long and run it once more. Otherwise the 429 error stands,
    naming the delay, so the caller (or a human) can retry later."""
    try:
        return await call()
    except IntegrationError as exc:
        if exc.code != "429" or exc.retry_after is None:
            raise
        if exc.retry_after + _RETRY_MARGIN > deadline.left():
            raise IntegrationError(
                f"{exc} — longer than this step has left ({deadline.left():.0f} s), not waiting",
                retryable=True,
                retry_after=exc.retry_after,
                code="429",
            ) from exc
        await asyncio.sleep(exc.retry_after)
        return await call()


def _json(provider: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise IntegrationError(
            f"{provider}: HTTP {response.status_code} with a body that is not JSON",
            retryable=response.status_code >= 500,
        ) from exc


# --------------------------------------------------------------------------- Cloudflare


class CloudflareProvider:
    """Cloudflare API v4 with an API token (``Authorization: Bearer``).

    Purges go to ``/zones/{zone}/purge_cache``; failover reorders a Load
    Balancer's ``default_pools`` so the backup pool is tried first.
    """

    name = "Cloudflare"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        token: str,
        zone_id: str,
        deadline: Deadline,
        api_url: str | None = None,
        failover: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._zone = zone_id
        self._deadline = deadline
        self._base = (api_url or CLOUDFLARE_API).rstrip("/") + "/client/v4"
        self._failover = dict(failover or {})
        self.target = f"zone {short_id(zone_id)}"

    async def purge_urls(self, urls: Sequence[str]) -> CdnResult:
        files = list(dict.fromkeys(validate_http_urls(urls, self.name)))
        details = await self._purge_batches("files", files)
        noun = "URL" if len(files) == 1 else "URLs"
        return CdnResult(f"purged {len(files)} {noun}", details, {"count": len(files)})

    async def purge_tags(self, tags: Sequence[str]) -> CdnResult:
        valid = validate_tags(tags, self.name)
        details = await self._purge_batches("tags", valid)
        noun = "tag" if len(valid) == 1 else "tags"
        return CdnResult(f"purged {len(valid)} {noun}", details, {"count": len(valid)})

    async def purge_all(self) -> CdnResult:
        result = await self._call("POST", self._purge_path(), json={"purge_everything": True})
        return CdnResult("purged everything", [f"purge_everything accepted (id {_result_id(result)})"])

    async def failover(self) -> CdnResult:
        return await self._order_pools(backup_first=True)

    async def failback(self) -> CdnResult:
        return await self._order_pools(backup_first=False)

    # -- internals

    def _purge_path(self) -> str:
        return f"{self._base}/zones/{quote(self._zone, safe='')}/purge_cache"

    async def _purge_batches(self, key: str, items: list[str]) -> list[str]:
        details: list[str] = []
        parts = list(batches(items, CLOUDFLARE_BATCH))
        for number, batch in enumerate(parts, start=1):
            result = await self._call("POST", self._purge_path(), json={key: batch})
            details.append(
                f"batch {number}/{len(parts)}: {len(batch)} {key} purged (id {_result_id(result)})"
            )
        return details

    async def _order_pools(self, *, backup_first: bool) -> CdnResult:
        missing = [
            k for k in ("load_balancer_id", "primary_pool", "backup_pool") if not self._failover.get(k)
        ]
        if missing:
            raise UserError(
                "Cloudflare failover needs `failover` settings on the CDN account: missing "
                + ", ".join(missing)
            )
        lb_id = self._failover["load_balancer_id"]
        primary, backup = self._failover["primary_pool"], self._failover["backup_pool"]
        path = f"{self._base}/zones/{quote(self._zone, safe='')}/load_balancers/{quote(lb_id, safe='')}"
        current = await self._call("GET", path)
        before = [str(p) for p in _field(current, "default_pools")]
        # Keep any further pools, in their order, behind the two we swap:
        # PATCH replaces the whole list.
        first = [backup, primary] if backup_first else [primary, backup]
        wanted = first + [p for p in before if p not in first]
        verb = "failed over to" if backup_first else "failed back to"
        pool = backup if backup_first else primary
        lb = f"load balancer {short_id(lb_id)}"
        if before == wanted:
            return CdnResult(
                f"already on pool {short_id(pool)} ({lb})",
                [f"default_pools already {wanted}; nothing changed"],
                {"default_pools": wanted, "changed": False},
            )
        result = await self._call("PATCH", path, json={"default_pools": wanted})
        after = [str(p) for p in _field(result, "default_pools") or wanted]
        return CdnResult(
            f"{verb} pool {short_id(pool)} ({lb})",
            [f"default_pools before: {before}", f"default_pools after: {after}"],
            {"default_pools": after, "previous_pools": before, "changed": True},
        )

    async def _call(self, method: str, url: str, json: Any = None) -> Any:
        async def once() -> Any:
            response = await _send(self._client, self.name, method, url, json=json, headers=self._headers)
            return self._envelope(response)

        return await _with_rate_limit_retry(self._deadline, once)

    def _envelope(self, response: httpx.Response) -> Any:
        """``result`` of a ``{"success", "errors", "result"}`` envelope, or an error naming its messages."""
        if response.status_code == 429:
            body = _maybe_json(response)
            raise _status_error(self.name, response, _cloudflare_errors(body) or "too many requests")
        body = _json(self.name, response)
        if not isinstance(body, dict):
            raise IntegrationError(f"{self.name}: unexpected response shape", retryable=False)
        if response.is_success and body.get("success") is True:
            return body.get("result")
        messages = _cloudflare_errors(body) or f"request failed (HTTP {response.status_code})"
        codes = [str(e.get("code")) for e in body.get("errors") or [] if isinstance(e, dict)]
        if response.is_success:
            # success: false with HTTP 200 — the request itself was refused.
            raise IntegrationError(f"{self.name}: {messages}", retryable=False, code=",".join(codes) or None)
        raise _status_error(self.name, response, messages, code=",".join(codes) or None)


def _field(result: Any, name: str) -> list[Any]:
    value = result.get(name) if isinstance(result, dict) else None
    return list(value) if isinstance(value, list) else []


def _maybe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _cloudflare_errors(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message") or "").strip()
            parts.append(f"{message} (code {code})" if code is not None else message)
    return "; ".join(p for p in parts if p)


def _result_id(result: Any) -> str:
    if isinstance(result, dict) and result.get("id"):
        return str(result["id"])
    return "?"


# --------------------------------------------------------------------------- Fastly


class FastlyProvider:
    """Fastly API with an API token (``Fastly-Key``).

    URL purges use ``POST /purge/{host}/{path}`` (one URL per request);
    surrogate keys use the bulk ``POST /service/{id}/purge`` with a JSON body;
    purge-all uses ``POST /service/{id}/purge_all``.
    """

    name = "Fastly"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        token: str,
        service_id: str,
        deadline: Deadline,
        api_url: str | None = None,
    ) -> None:
        self._client = client
        self._headers = {"Fastly-Key": token, "Accept": "application/json"}
        self._service = service_id
        self._deadline = deadline
        self._base = (api_url or FASTLY_API).rstrip("/")
        self.target = f"service {short_id(service_id)}"

    async def purge_urls(self, urls: Sequence[str]) -> CdnResult:
        valid = list(dict.fromkeys(validate_http_urls(urls, self.name)))
        if len(valid) > FASTLY_MAX_URLS:
            raise UserError(
                f"Fastly: {len(valid)} URLs; purge at most {FASTLY_MAX_URLS} by URL "
                "(one request each) — use surrogate keys (purge_tags) for more"
            )
        details: list[str] = []
        ids: list[str] = []
        for url in valid:
            body = await self._call("POST", self._base + "/purge/" + _fastly_cached_url(url))
            purge_id = str(body.get("id", "?")) if isinstance(body, dict) else "?"
            ids.append(purge_id)
            details.append(f"{url}: purged (id {purge_id})")
        noun = "URL" if len(valid) == 1 else "URLs"
        return CdnResult(f"purged {len(valid)} {noun}", details, {"count": len(valid), "purge_ids": ids})

    async def purge_tags(self, keys: Sequence[str]) -> CdnResult:
        valid = validate_tags(keys, self.name)
        url = f"{self._base}/service/{quote(self._service, safe='')}/purge"
        details: list[str] = []
        for batch in batches(valid, FASTLY_KEYS_BATCH):
            body = await self._call("POST", url, json={"surrogate_keys": batch})
            if isinstance(body, dict):
                details.extend(f"{key}: purged (id {body.get(key, '?')})" for key in batch)
        noun = "surrogate key" if len(valid) == 1 else "surrogate keys"
        return CdnResult(f"purged {len(valid)} {noun}", details, {"count": len(valid)})

    async def purge_all(self) -> CdnResult:
        url = f"{self._base}/service/{quote(self._service, safe='')}/purge_all"
        body = await self._call("POST", url)
        status = body.get("status", "?") if isinstance(body, dict) else "?"
        return CdnResult("purged everything", [f"purge_all: {status}"])

    async def failover(self) -> CdnResult:
        raise UserError(
            "Fastly: failover is configured in the service's VCL or directors/backends "
            "(health checks pick the backup), not by this step; use a purge action here"
        )

    async def failback(self) -> CdnResult:
        raise UserError(
            "Fastly: failback is configured in the service's VCL or directors/backends, not by this step"
        )

    async def _call(self, method: str, url: str, json: Any = None) -> Any:
        async def once() -> Any:
            response = await _send(self._client, self.name, method, url, json=json, headers=self._headers)
            if response.is_success:
                return _json(self.name, response)
            raise _status_error(self.name, response, _fastly_error(response))

        return await _with_rate_limit_retry(self._deadline, once)


def _fastly_cached_url(url: str) -> str:
    """``https://www.example.com/a b?x=1`` → ``www.example.com/a%20b?x=1``: Fastly's
    ``cached_url`` is the URL without its scheme."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    path = quote(unquote(parts.path or "/"), safe="/:@!$&'()*+,;=-._~")
    return host + path + (f"?{parts.query}" if parts.query else "")


def _fastly_error(response: httpx.Response) -> str:
    body = _maybe_json(response)
    if isinstance(body, dict):
        msg = str(body.get("msg") or body.get("message") or "").strip()
        detail = str(body.get("detail") or "").strip()
        text = f"{msg}: {detail}" if msg and detail else msg or detail
        if text:
            return text
    return response.reason_phrase or "request failed"


# --------------------------------------------------------------------------- AWS Signature Version 4


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def sigv4_signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def sigv4_canonical_request(
    method: str, url: str, headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """The canonical request and its signed-headers list, for ``headers`` (all signed).

    The path is taken as sent (already percent-encoded) and each segment encoded
    once more, as SigV4 prescribes for every service except S3.
    """
    parts = urlsplit(url)
    segments = (parts.path or "/").split("/")
    canonical_uri = "/".join(_uri_encode(segment) for segment in segments)
    pairs: list[tuple[str, str]] = []
    if parts.query:
        for item in parts.query.split("&"):
            name, _, value = item.partition("=")
            pairs.append((_uri_encode(unquote(name)), _uri_encode(unquote(value))))
    canonical_query = "&".join(f"{n}={v}" for n, v in sorted(pairs))
    lowered = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join(
        [method.upper(), canonical_uri, canonical_query, canonical_headers, signed, _sha256_hex(body)]
    )
    return request, signed


def sigv4_sign(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """``headers`` plus ``Host`` (when absent), ``X-Amz-Date`` and ``Authorization``.

    Every header passed in is signed; send exactly the headers returned.
    """
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    date = stamp[:8]
    out = dict(headers)
    if not any(name.lower() == "host" for name in out):
        out["Host"] = _host_header(url)
    out["X-Amz-Date"] = stamp
    canonical, signed = sigv4_canonical_request(method, url, out, body)
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, _sha256_hex(canonical.encode("utf-8"))])
    signature = hmac.new(
        sigv4_signing_key(secret_key, date, region, service), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return out


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        host += f":{parts.port}"
    return host


# --------------------------------------------------------------------------- CloudFront


@dataclass(frozen=True)
class Invalidation:
    id: str
    status: str


class CloudFrontProvider:
    """CloudFront invalidations (REST/XML API ``2020-05-31``, SigV4 in us-east-1)."""

    name = "CloudFront"
    region = "us-east-1"
    service = "cloudfront"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        access_key: str,
        secret_key: str,
        distribution_id: str,
        clock: Clock,
        deadline: Deadline,
        wait_seconds: float = 0.0,
        poll_interval: float = 5.0,
        api_url: str | None = None,
    ) -> None:
        self._client = client
        self._access_key = access_key
        self._secret_key = secret_key
        self._distribution = distribution_id
        self._clock = clock
        self._deadline = deadline
        self._wait = wait_seconds
        self._poll = poll_interval
        self._base = (api_url or CLOUDFRONT_API).rstrip("/")
        self.target = f"distribution {distribution_id}"

    async def purge_urls(self, paths: Sequence[str]) -> CdnResult:
        return await self._invalidate(validate_cloudfront_paths(paths))

    async def purge_tags(self, tags: Sequence[str]) -> CdnResult:
        raise UserError(
            "CloudFront invalidates by path, not by tag: use purge_urls with paths such as /assets/*"
        )

    async def purge_all(self) -> CdnResult:
        return await self._invalidate(["/*"])

    async def failover(self) -> CdnResult:
        raise UserError(
            "CloudFront: failover to a backup origin is automatic with an origin group "
            "(failover criteria on the distribution), not a step action"
        )

    async def failback(self) -> CdnResult:
        raise UserError(
            "CloudFront: an origin group returns to the primary origin by itself; "
            "there is nothing to fail back"
        )

    # -- internals

    def _collection_url(self) -> str:
        distribution = quote(self._distribution, safe="")
        return f"{self._base}/{CLOUDFRONT_VERSION}/distribution/{distribution}/invalidation"

    async def _invalidate(self, paths: list[str]) -> CdnResult:
        body = invalidation_batch_xml(paths, self._caller_reference())
        created = await self._request("POST", self._collection_url(), body)
        invalidation = parse_invalidation(created)
        noun = "path" if len(paths) == 1 else "paths"
        details = [f"invalidation {invalidation.id} created for {len(paths)} {noun}: {invalidation.status}"]
        data: dict[str, Any] = {
            "count": len(paths),
            "invalidation_id": invalidation.id,
            "status": invalidation.status,
        }
        summary = f"invalidated {len(paths)} {noun} (invalidation {invalidation.id}, {invalidation.status})"
        if self._wait <= 0 or invalidation.status == "Completed":
            return CdnResult(summary, details, data)
        final, waited = await self._wait_for(invalidation)
        data["status"] = final.status
        details.append(f"after {waited:.0f} s: {final.status}")
        if final.status == "Completed":
            return CdnResult(
                f"invalidated {len(paths)} {noun} (invalidation {final.id}, Completed)", details, data
            )
        return CdnResult(
            f"invalidation {final.id} for {len(paths)} {noun} still {final.status} after {waited:.0f} s",
            details,
            data,
            ok=False,
        )

    async def _wait_for(self, invalidation: Invalidation) -> tuple[Invalidation, float]:
        """Poll until Completed, or until ``wait_seconds`` or the step's time runs out."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Leave time for the last poll itself inside the step's timeout.
        budget = min(self._wait, max(0.0, self._deadline.left() - _RETRY_MARGIN))
        url = f"{self._collection_url()}/{quote(invalidation.id, safe='')}"
        current = invalidation
        while True:
            left = budget - (loop.time() - started)
            if left <= 0:
                break
            await asyncio.sleep(min(self._poll, left))
            current = parse_invalidation(await self._request("GET", url, b""))
            if current.status == "Completed":
                break
        return current, loop.time() - started

    def _caller_reference(self) -> str:
        # Unique per request: CloudFront treats a repeated reference as the same invalidation.
        return f"firebell-{self._clock.now().astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"

    async def _request(self, method: str, url: str, body: bytes) -> bytes:
        async def once() -> bytes:
            headers = {"Content-Type": "application/xml"} if body else {}
            signed = sigv4_sign(
                method=method,
                url=url,
                headers=headers,
                body=body,
                access_key=self._access_key,
                secret_key=self._secret_key,
                region=self.region,
                service=self.service,
                now=self._clock.now(),
            )
            response = await _send(self._client, self.name, method, url, content=body or None, headers=signed)
            if response.is_success:
                return response.content
            raise self._error(response)

        result: bytes = await _with_rate_limit_retry(self._deadline, once)
        return result

    def _error(self, response: httpx.Response) -> IntegrationError:
        code, message = parse_aws_error(response.content)
        detail = f"{code}: {message}" if code else (message or response.reason_phrase or "request failed")
        if code in ("SignatureDoesNotMatch", "InvalidClientTokenId", "IncompleteSignature"):
            return IntegrationError(
                f"{self.name}: the request signature was rejected ({detail}); "
                "check the access key id and secret access key secrets",
                retryable=False,
                code=code,
            )
        if code in ("Throttling", "TooManyInvalidationsInProgress", "ServiceUnavailable"):
            retry_after = _retry_after(response)
            return IntegrationError(
                f"{self.name}: {detail}", retryable=True, retry_after=retry_after, code=code
            )
        if code == "AccessDenied":
            return IntegrationError(
                f"{self.name}: {detail} (the IAM user needs cloudfront:CreateInvalidation "
                "and cloudfront:GetInvalidation on this distribution)",
                retryable=False,
                code=code,
            )
        return _status_error(self.name, response, detail, code=code or None)


def invalidation_batch_xml(paths: Sequence[str], caller_reference: str) -> bytes:
    """The ``InvalidationBatch`` document of ``CreateInvalidation``."""
    root = ET.Element("InvalidationBatch", {"xmlns": CLOUDFRONT_NS})
    ET.SubElement(root, "CallerReference").text = caller_reference
    paths_el = ET.SubElement(root, "Paths")
    ET.SubElement(paths_el, "Quantity").text = str(len(paths))
    items = ET.SubElement(paths_el, "Items")
    for path in paths:
        ET.SubElement(items, "Path").text = path
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _parse_xml(data: bytes, what: str) -> ET.Element:
    try:
        # The document comes from the configured CloudFront endpoint; expat
        # (≥ 2.4) refuses entity-expansion bombs and never fetches external entities.
        return ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise IntegrationError(f"CloudFront: {what} is not valid XML", retryable=False) from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def parse_invalidation(data: bytes) -> Invalidation:
    """``Id`` and ``Status`` of an ``Invalidation`` document."""
    root = _parse_xml(data, "the invalidation response")
    if _local(root.tag) != "Invalidation":
        raise IntegrationError(
            f"CloudFront: expected an Invalidation document, got <{_local(root.tag)}>", retryable=False
        )
    invalidation_id = _child_text(root, "Id")
    status = _child_text(root, "Status")
    if not invalidation_id or not status:
        raise IntegrationError("CloudFront: the invalidation response lacks Id or Status", retryable=False)
    return Invalidation(id=invalidation_id, status=status)


def parse_aws_error(data: bytes) -> tuple[str, str]:
    """``(Code, Message)`` of an AWS ``ErrorResponse`` document; empty strings when absent."""
    if not data.strip():
        return "", ""
    try:
        root = ET.fromstring(data)  # noqa: S314  (see _parse_xml)
    except ET.ParseError:
        return "", ""
    error = root if _local(root.tag) == "Error" else next((e for e in root if _local(e.tag) == "Error"), None)
    if error is None:
        return "", ""
    return _child_text(error, "Code") or "", _child_text(error, "Message") or ""


# --------------------------------------------------------------------------- factory


def provider_for(
    account: CdnAccount,
    *,
    secrets: SecretStore,
    client: httpx.AsyncClient,
    clock: Clock,
    deadline: Deadline,
    wait_seconds: float = 0.0,
    poll_interval: float = 5.0,
) -> CdnProvider:
    """The adapter for ``account``, with its credentials read from ``secrets``.

    ``UserError`` when the account is incomplete or a secret is missing.
    """
    problems = account_problems(account)
    if problems:
        raise UserError("CDN account misconfigured: " + "; ".join(problems))
    # account_problems has checked that the provider's settings are present.
    if account.provider == "cloudflare":
        return CloudflareProvider(
            client,
            token=secrets.get(account.token_secret or ""),
            zone_id=account.zone_id or "",
            deadline=deadline,
            api_url=account.api_url,
            failover=account.failover,
        )
    if account.provider == "fastly":
        return FastlyProvider(
            client,
            token=secrets.get(account.token_secret or ""),
            service_id=account.service_id or "",
            deadline=deadline,
            api_url=account.api_url,
        )
    return CloudFrontProvider(
        client,
        access_key=secrets.get(account.access_key_secret or ""),
        secret_key=secrets.get(account.secret_key_secret or ""),
        distribution_id=account.distribution_id or "",
        clock=clock,
        deadline=deadline,
        wait_seconds=wait_seconds,
        poll_interval=poll_interval,
        api_url=account.api_url,
    )
