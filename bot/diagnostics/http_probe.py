"""The HTTP probe engine behind ``firebell diag http`` and ``/incident diag http``.

:func:`probe_http` fetches one URL and returns an :class:`HttpDiagnosis`:

* the **main exchange** — redirects followed by hand (at most
  ``max_redirects``), every hop checked by the SSRF guard
  (:mod:`bot.diagnostics.ssrf`) and connected to the checked address; per hop
  the status, the phase timings (DNS measured around resolution; connect, TLS,
  time to first byte and transfer from httpx's ``trace`` extension), the
  response headers and the TLS certificate (expiry, issuer);
* a **cache-busting exchange** — a unique query parameter
  (:data:`CACHE_BUST_PARAM`) plus ``Cache-Control: no-cache``, so a stale page
  served by a CDN can be told from the origin's own answer;
* with ``count > 1``, **samples** — the main exchange repeated, summarised as
  a success ratio and latency percentiles, so intermittent failures show.

The probe never raises for what the target does (refused, unresolvable, TLS
failure, timeout …): that is recorded as a :class:`ProbeFailure` in the result.
Only a malformed URL or bad options raise ``UserError``. Rendering (verdict,
summary, JSON) lives in :mod:`bot.diagnostics.verdict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import ssl
import tempfile
import time
import typing
from collections import Counter
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx

from bot.clock import Clock, SystemClock
from bot.diagnostics.headers import HeaderReport, analyze_headers
from bot.diagnostics.ssrf import (
    AddressPolicy,
    CheckedTarget,
    GuardedTransport,
    ResolutionFailed,
    Resolver,
    TargetRefused,
    check_target,
    parse_ip,
    system_resolver,
)
from bot.diagnostics.stats import percentiles
from bot.errors import UserError
from bot.tls import client_ssl_context

if TYPE_CHECKING:
    from bot.settings import DiagnosticsConfig

CACHE_BUST_PARAM = "_firebell"
"""Query parameter carrying a random token on the cache-busting request."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_BODY_BYTES = 1024 * 1024
"""Bodies are read (for the transfer time) up to this size, then dropped."""
USER_AGENT = "firebell-diag/1 (incident HTTP probe)"
_MASK = "***"
_HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")

FailureKind = Literal["refused", "dns", "connect", "tls", "timeout", "protocol", "redirect"]


@dataclass(frozen=True)
class ProbeFailure:
    """Why an exchange has no (final) answer."""

    kind: FailureKind
    message: str


@dataclass(frozen=True)
class Timings:
    """Seconds per phase of one request; None when the phase did not happen
    (no DNS for an IP literal, no TLS for http://, nothing after a failure)."""

    dns: float | None = None
    connect: float | None = None
    tls: float | None = None
    ttfb: float | None = None
    """From the request sent to the response headers received (server time)."""
    transfer: float | None = None
    """Reading the body (up to :data:`MAX_BODY_BYTES`)."""
    total: float = 0.0
    """Everything, from resolution to the end of the body."""


@dataclass(frozen=True)
class Certificate:
    """The server's TLS certificate, as far as it could be read."""

    subject: str | None
    issuer: str | None
    not_before: datetime | None
    not_after: datetime | None
    names: tuple[str, ...] = ()
    """Subject alternative names (DNS names and IP addresses)."""
    verified: bool = False
    """Whether the chain and host name were verified on this connection."""
    tls_version: str | None = None

    def days_left(self, now: datetime) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - now).total_seconds() / 86400


@dataclass(frozen=True)
class Hop:
    """One request of a redirect chain."""

    url: str
    status: int | None = None
    reason: str | None = None
    location: str | None = None
    address: str | None = None
    """The IP address the connection went to."""
    http_version: str | None = None
    timings: Timings = field(default_factory=Timings)
    headers: tuple[tuple[str, str], ...] = ()
    body_bytes: int = 0
    certificate: Certificate | None = None
    failure: ProbeFailure | None = None


@dataclass(frozen=True)
class Exchange:
    """One request with its redirects followed."""

    url: str
    hops: tuple[Hop, ...]
    failure: ProbeFailure | None = None
    report: HeaderReport = field(default_factory=HeaderReport)
    """Analysis of the last answered response's headers."""
    cache_busted: bool = False

    @property
    def final(self) -> Hop:
        return self.hops[-1]

    @property
    def answered(self) -> Hop | None:
        """The last hop that got an HTTP answer."""
        return next((hop for hop in reversed(self.hops) if hop.status is not None), None)

    @property
    def status(self) -> int | None:
        """The final status, None when the exchange failed before an answer."""
        return self.final.status

    @property
    def ok(self) -> bool:
        return self.failure is None and self.status is not None and self.status < 400

    @property
    def redirects(self) -> int:
        return sum(1 for hop in self.hops if hop.status in REDIRECT_STATUSES and hop is not self.final)

    @property
    def elapsed(self) -> float:
        return sum(hop.timings.total for hop in self.hops)

    @property
    def certificate(self) -> Certificate | None:
        """The certificate of the last TLS hop (the one the user ends up on)."""
        return next((hop.certificate for hop in reversed(self.hops) if hop.certificate), None)

    @property
    def outcome(self) -> str:
        """``"200"``, ``"503"`` or the failure kind — what the samples count."""
        if self.failure is not None:
            return self.failure.kind
        return str(self.status)


@dataclass(frozen=True)
class SampleStats:
    """Repeated requests: how many succeeded (final status below 400) and how fast."""

    count: int
    succeeded: int
    outcomes: tuple[tuple[str, int], ...]
    """``(outcome, how many)``, most frequent first (``("503", 9)``, ``("timeout", 1)``)."""
    latency: Mapping[str, float] = field(default_factory=dict)
    """Seconds: ``p50``, ``p95``, ``p99``, ``min``, ``max`` over the answered requests."""

    @property
    def success_ratio(self) -> float:
        return self.succeeded / self.count if self.count else 0.0


@dataclass(frozen=True)
class HttpDiagnosis:
    """Everything :func:`probe_http` learned about one URL."""

    url: str
    checked_at: datetime
    main: Exchange
    origin: Exchange | None = None
    """The cache-busting exchange (None when disabled or the URL was refused)."""
    samples: SampleStats | None = None
    """With ``count > 1``: the main request repeated (the main one included)."""
    verify_tls: bool = True
    timeout: float = 10.0

    @property
    def refused(self) -> bool:
        """Refused by the guard before any request was sent."""
        failure = self.main.failure
        return failure is not None and failure.kind == "refused" and len(self.main.hops) == 1


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe; the defaults suit a one-off check."""

    count: int = 1
    timeout: float = 10.0
    """Seconds per request (each redirect hop, each sample)."""
    verify_tls: bool = True
    ca_file: str | None = None
    """CA bundle replacing the system trust store (``SSL_CERT_FILE``)."""
    cache_bust: bool = True
    max_redirects: int = MAX_REDIRECTS
    sample_concurrency: int = 4
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UserError("count must be at least 1")
        if not self.timeout > 0:
            raise UserError("timeout must be more than 0 seconds")
        if not 0 <= self.max_redirects <= MAX_REDIRECTS:
            raise UserError(f"max_redirects must be between 0 and {MAX_REDIRECTS}")
        if self.sample_concurrency < 1:
            raise UserError("sample_concurrency must be at least 1")

    @classmethod
    def for_chat(
        cls, config: DiagnosticsConfig, *, count: int = 1, ca_file: str | None = None
    ) -> ProbeOptions:
        """Options for a probe asked for from Slack, within ``[diagnostics]`` limits."""
        if not 1 <= count <= config.max_count:
            raise UserError(f"count must be between 1 and {config.max_count}")
        return cls(count=count, timeout=config.timeout_seconds, ca_file=ca_file)


def parse_url(url: str) -> httpx.URL:
    """The URL to probe; a bare ``host[/path]`` means ``https://``. ``UserError``
    for anything that is not an http(s) URL with a host."""
    text = url.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise UserError(f"{url!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UserError(f"{url!r}: only http:// and https:// URLs can be probed")
    if not parsed.host:
        raise UserError(f"{url!r}: the URL has no host")
    host = parsed.raw_host.decode("ascii", errors="replace")
    if parse_ip(host) is None and not _HOST_NAME.match(host):
        raise UserError(f"{url!r}: {parsed.host!r} is not a valid host name")
    return parsed


def shown(url: httpx.URL) -> str:
    """A URL as reports show it: a password in it is masked."""
    if url.password:
        return str(url.copy_with(username=url.username, password=_MASK))
    return str(url)


async def probe_http(
    url: str,
    *,
    policy: AddressPolicy,
    options: ProbeOptions | None = None,
    resolver: Resolver = system_resolver,
    clock: Clock | None = None,
) -> HttpDiagnosis:
    """Probe ``url`` (see the module notes). Raises ``UserError`` only for a
    malformed URL; everything the target does is in the result."""
    options = options or ProbeOptions()
    target = parse_url(url)
    checked_at = (clock or SystemClock()).now()
    prober = _Prober(policy, options, resolver, checked_at)
    main = await prober.exchange(target)
    diagnosis = HttpDiagnosis(
        url=shown(target),
        checked_at=checked_at,
        main=main,
        verify_tls=options.verify_tls,
        timeout=options.timeout,
    )
    if diagnosis.refused:
        return diagnosis

    gate = asyncio.Semaphore(options.sample_concurrency)

    async def sample() -> Exchange:
        async with gate:
            return await prober.exchange(target)

    async with asyncio.TaskGroup() as group:
        origin = group.create_task(prober.exchange(target, cache_bust=True)) if options.cache_bust else None
        extra = [group.create_task(sample()) for _ in range(options.count - 1)]
    return HttpDiagnosis(
        url=diagnosis.url,
        checked_at=checked_at,
        main=main,
        origin=origin.result() if origin is not None else None,
        samples=sample_stats([main, *(task.result() for task in extra)]) if options.count > 1 else None,
        verify_tls=options.verify_tls,
        timeout=options.timeout,
    )


async def probe_many(
    urls: Sequence[str],
    *,
    policy: AddressPolicy,
    options: ProbeOptions | None = None,
    resolver: Resolver = system_resolver,
    clock: Clock | None = None,
) -> list[HttpDiagnosis]:
    """:func:`probe_http` for each URL, concurrently; results in the given order.
    Every URL is validated before any is probed."""
    for url in urls:
        parse_url(url)
    return list(
        await asyncio.gather(
            *(probe_http(url, policy=policy, options=options, resolver=resolver, clock=clock) for url in urls)
        )
    )


def sample_stats(exchanges: Sequence[Exchange]) -> SampleStats:
    """Success ratio, outcome counts and latency percentiles of repeated exchanges."""
    outcomes = Counter(exchange.outcome for exchange in exchanges)
    latencies = [exchange.elapsed for exchange in exchanges if exchange.failure is None]
    latency: dict[str, float] = {}
    if latencies:
        found = percentiles(latencies, (50, 95, 99))
        latency = {"p50": found[50], "p95": found[95], "p99": found[99], "min": min(latencies)}
        latency["max"] = max(latencies)
    return SampleStats(
        count=len(exchanges),
        succeeded=sum(1 for exchange in exchanges if exchange.ok),
        outcomes=tuple(sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))),
        latency=latency,
    )


# ---------------------------------------------------------------- the engine


class _Prober:
    def __init__(
        self, policy: AddressPolicy, options: ProbeOptions, resolver: Resolver, checked_at: datetime
    ) -> None:
        self._policy = policy
        self._options = options
        self._resolver = resolver
        self._checked_at = checked_at
        self._ssl = client_ssl_context(options.ca_file) if options.verify_tls else _unverified_context()

    async def exchange(self, url: httpx.URL, *, cache_bust: bool = False) -> Exchange:
        headers = {"User-Agent": self._options.user_agent, "Accept": "*/*"}
        if cache_bust:
            url = url.copy_merge_params({CACHE_BUST_PARAM: secrets.token_hex(8)})
            headers |= {"Cache-Control": "no-cache", "Pragma": "no-cache"}
        hops: list[Hop] = []
        current = url
        failure: ProbeFailure | None = None
        while True:
            hop = await self._hop(current, headers)
            hops.append(hop)
            if hop.failure is not None:
                failure = hop.failure
                break
            if hop.status not in REDIRECT_STATUSES or not hop.location:
                break
            if len(hops) > self._options.max_redirects:
                failure = ProbeFailure("redirect", f"more than {self._options.max_redirects} redirects")
                break
            try:
                current = current.join(hop.location)
            except httpx.InvalidURL as exc:
                failure = ProbeFailure("redirect", f"invalid redirect Location {hop.location!r}: {exc}")
                break
            if current.scheme not in ("http", "https"):
                failure = ProbeFailure("redirect", f"redirect to a non-HTTP URL: {hop.location}")
                break
        answered = next((hop for hop in reversed(hops) if hop.status is not None), None)
        report = analyze_headers(answered.headers, self._checked_at) if answered else HeaderReport()
        return Exchange(
            url=shown(url), hops=tuple(hops), failure=failure, report=report, cache_busted=cache_bust
        )

    async def _hop(self, url: httpx.URL, headers: Mapping[str, str]) -> Hop:
        started = time.monotonic()
        trace = _TraceRecorder()
        target: CheckedTarget | None = None
        port = url.port or (443 if url.scheme == "https" else 80)
        failure: ProbeFailure
        try:
            async with asyncio.timeout(self._options.timeout):
                target = await check_target(url.host, port, self._policy, self._resolver)
                return await self._fetch(url, target, headers, trace, started)
        except TargetRefused as exc:
            failure = ProbeFailure("refused", str(exc))
        except ResolutionFailed as exc:
            failure = ProbeFailure("dns", str(exc))
        except (TimeoutError, httpx.TimeoutException):
            where = "resolving the name" if target is None else trace.pending_phase()
            failure = ProbeFailure("timeout", f"no answer within {self._options.timeout:g} s ({where})")
        except httpx.HTTPError as exc:
            failure = _describe_error(exc, f"{url.host}:{port}")
        certificate = None
        if failure.kind == "tls" and target is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._options.timeout):
                    certificate = await peek_certificate(target)
        return Hop(
            url=shown(url),
            timings=trace.timings(started, target.dns_seconds if target else None, time.monotonic()),
            certificate=certificate,
            failure=failure,
        )

    async def _fetch(
        self,
        url: httpx.URL,
        target: CheckedTarget,
        headers: Mapping[str, str],
        trace: _TraceRecorder,
        started: float,
    ) -> Hop:
        # trust_env=False: proxy variables would route around the guarded transport.
        async with (
            httpx.AsyncClient(
                transport=GuardedTransport(target, self._ssl),
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(self._options.timeout),
            ) as client,
            client.stream("GET", url, headers=headers, extensions={"trace": trace}) as response,
        ):
            stream = response.extensions.get("network_stream")
            certificate = _certificate_of(stream, verified=self._options.verify_tls)
            peer = stream.get_extra_info("server_addr") if stream is not None else None
            body = 0
            raw_chunks = typing.cast(AsyncGenerator[bytes, None], response.aiter_raw())
            async with contextlib.aclosing(raw_chunks) as chunks:
                async for chunk in chunks:
                    body += len(chunk)
                    if body >= MAX_BODY_BYTES:
                        break
            ended = time.monotonic()
        return Hop(
            url=shown(url),
            status=response.status_code,
            reason=response.reason_phrase or None,
            location=response.headers.get("location"),
            address=str(peer[0]) if isinstance(peer, tuple) and peer else None,
            http_version=response.http_version,
            timings=trace.timings(started, target.dns_seconds, ended),
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw
            ),
            body_bytes=body,
            certificate=certificate,
        )


_PHASES = (
    ("connection.connect_tcp", "connecting"),
    ("connection.start_tls", "during the TLS handshake"),
    ("http11.send_request_headers", "sending the request"),
    ("http11.send_request_body", "sending the request"),
    ("http11.receive_response_headers", "waiting for the first byte"),
    ("http11.receive_response_body", "reading the body"),
)


class _TraceRecorder:
    """httpx's ``trace`` extension callback: the first time each event is seen."""

    def __init__(self) -> None:
        self.events: dict[str, float] = {}

    async def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        self.events.setdefault(name, time.monotonic())

    def _span(self, start: str | None, end: str | None) -> float | None:
        if start is None or end is None or start not in self.events:
            return None
        if end not in self.events and end.endswith(".complete"):
            end = end.removesuffix(".complete") + ".failed"  # time until a phase failed
        if end not in self.events:
            return None
        return max(0.0, self.events[end] - self.events[start])

    def timings(self, started: float, dns: float | None, ended: float) -> Timings:
        sent = next(
            (
                name
                for name in ("http11.send_request_body.complete", "http11.send_request_headers.complete")
                if name in self.events
            ),
            None,
        )
        first_byte = "http11.receive_response_headers.complete"
        transfer = None
        if first_byte in self.events:
            transfer = max(0.0, ended - self.events[first_byte])
        return Timings(
            dns=dns,
            connect=self._span("connection.connect_tcp.started", "connection.connect_tcp.complete"),
            tls=self._span("connection.start_tls.started", "connection.start_tls.complete"),
            ttfb=self._span(sent, first_byte),
            transfer=transfer,
            total=max(0.0, ended - started),
        )

    def pending_phase(self) -> str:
        """What the request was doing when it stopped: the last phase it started."""
        started = [label for prefix, label in _PHASES if f"{prefix}.started" in self.events]
        return started[-1] if started else "before connecting"


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _describe_error(exc: httpx.HTTPError, where: str) -> ProbeFailure:
    chain = _chain(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ProbeFailure("tls", f"certificate verification failed: {cause.verify_message}")
        if isinstance(cause, ssl.SSLError):
            return ProbeFailure("tls", f"TLS handshake failed: {cause.reason or cause}")
    if isinstance(exc, httpx.ConnectError):
        for cause in chain:
            if isinstance(cause, OSError) and cause.errno is not None:
                reason = os.strerror(cause.errno).lower()
                if cause.errno == errno.ECONNREFUSED:
                    reason = "connection refused (nothing listens on that port)"
                return ProbeFailure("connect", f"cannot connect to {where}: {reason}")
        return ProbeFailure("connect", f"cannot connect to {where}: {exc or 'connection failed'}")
    if isinstance(exc, httpx.TransportError):
        return ProbeFailure("protocol", str(exc) or type(exc).__name__)
    return ProbeFailure("protocol", f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- TLS certificates


def _unverified_context() -> ssl.SSLContext:
    """For ``--insecure``: still TLS, but any certificate is accepted."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _certificate_of(stream: Any, *, verified: bool) -> Certificate | None:
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    decoded = ssl_object.getpeercert() if verified else None
    return describe_certificate(
        ssl_object.getpeercert(binary_form=True), decoded, verified=verified, tls_version=ssl_object.version()
    )


async def peek_certificate(target: CheckedTarget) -> Certificate | None:
    """The certificate a server presents, read without verifying it (to report
    the issuer and expiry of a certificate that failed verification). Connects
    only to the target's checked addresses; sends nothing after the handshake.
    Callers bound it with ``asyncio.timeout``."""
    context = _unverified_context()
    for address in target.addresses:
        try:
            _, writer = await asyncio.open_connection(
                address, target.port, ssl=context, server_hostname=target.host
            )
        except OSError:
            continue
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            version = ssl_object.version() if ssl_object is not None else None
        finally:
            writer.transport.abort()
        return describe_certificate(der, None, verified=False, tls_version=version)
    return None


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
}

_PeerCert = Mapping[str, Any]


def describe_certificate(
    der: bytes | None, decoded: _PeerCert | None, *, verified: bool, tls_version: str | None = None
) -> Certificate | None:
    """A :class:`Certificate` from ``getpeercert()`` output (verified connections),
    else from the DER bytes (``cryptography`` when installed, else the
    standard library's decoder)."""
    if not decoded and der:
        decoded = _decode_der(der)
    if not decoded:
        return None
    return Certificate(
        subject=_name(decoded.get("subject", ())),
        issuer=_name(decoded.get("issuer", ())),
        not_before=_cert_time(decoded.get("notBefore")),
        not_after=_cert_time(decoded.get("notAfter")),
        names=tuple(str(value) for _, value in decoded.get("subjectAltName", ())),
        verified=verified,
        tls_version=tls_version,
    )


def _name(rdns: Sequence[Sequence[tuple[str, str]]]) -> str | None:
    parts = [f"{_SHORT_NAMES[key]}={value}" for rdn in rdns for key, value in rdn if key in _SHORT_NAMES]
    # Most specific first, like browsers show it: CN, OU, O, C.
    order = {"CN": 0, "OU": 1, "O": 2, "C": 3}
    parts.sort(key=lambda part: order[part.split("=", 1)[0]])
    return ", ".join(parts) or None


def _cert_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(value), UTC)
    except ValueError:
        return None


def _decode_der(der: bytes) -> dict[str, Any] | None:
    try:
        from cryptography import x509
    except ImportError:
        return _decode_der_stdlib(der)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    long_names = {short: long for long, short in _SHORT_NAMES.items()}

    def rdns(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
        return tuple(
            tuple(
                (
                    long_names.get(attribute.rfc4514_attribute_name, attribute.rfc4514_attribute_name),
                    str(attribute.value),
                )
                for attribute in rdn
            )
            for rdn in name.rdns
        )

    names: list[tuple[str, str]] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [("DNS", value) for value in san.get_values_for_type(x509.DNSName)]
        names += [("IP Address", str(value)) for value in san.get_values_for_type(x509.IPAddress)]
    return {
        "subject": rdns(cert.subject),
        "issuer": rdns(cert.issuer),
        "notBefore": cert.not_valid_before_utc,
        "notAfter": cert.not_valid_after_utc,
        "subjectAltName": tuple(names),
    }


def _decode_der_stdlib(der: bytes) -> dict[str, Any] | None:
    """CPython's own certificate decoder; it only reads files, hence the temp file."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(ssl.DER_cert_to_PEM_cert(der))
    try:
        decoded = decode(handle.name)
    except ssl.SSLError:
        return None
    finally:
        os.unlink(handle.name)
    return dict(decoded) if isinstance(decoded, dict) else None
