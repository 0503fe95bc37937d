"""Timeout mismatches between nginx, HAProxy and the application (``diag timeouts``).

Pure analysis over parsed configurations (:mod:`bot.diagnostics.nginx_config`,
:mod:`bot.diagnostics.haproxy_config`): each rule below is a way real
deployments end up answering 502 or 504, and every finding names the
``file:line`` to change (or, for a built-in default, the line whose behaviour
it governs).

When both configurations are given, the chain is worked out from addresses:
an HAProxy ``server`` pointing at a port nginx listens on means HAProxy sits
in front of nginx; an nginx ``*_pass`` (or upstream server) pointing at a
port HAProxy binds means the reverse. With no match, HAProxy in front of
nginx is assumed and the finding says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.diagnostics.finding_model import (
    ConfigSetting,
    Finding,
    Severity,
    SourceRef,
    format_seconds,
    sort_findings,
)
from bot.diagnostics.haproxy_config import HaproxyConfig, HaproxyProxy
from bot.diagnostics.nginx_config import NginxConfig, NginxLocation
from bot.errors import UserError

NGINX_CONNECT_TIMEOUT_CAP = 75.0
"""nginx documents that a connect timeout "usually cannot exceed 75 seconds"."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """A duration from the command line or config: ``90``, ``90s``, ``1m30s``, ``1500ms``.

    Bare numbers are seconds. ``UserError`` when it is not a duration.
    """
    compact = text.strip().replace(" ", "")
    position, total = 0, 0.0
    while compact and position < len(compact):
        match = _DURATION.match(compact, position)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2) or "s"]
        position = match.end()
    if not compact or position != len(compact):
        raise UserError(f"not a duration: {text!r} (use e.g. 90s, 1m30s or 1500ms)")
    return total


@dataclass(frozen=True, slots=True)
class TimeoutReport:
    """What ``diag timeouts`` found: effective settings and findings."""

    nginx: NginxConfig | None
    haproxy: HaproxyConfig | None
    app_timeout: float | None
    app_keepalive: float | None
    chain: str | None
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "app_timeout_seconds": self.app_timeout,
            "app_keepalive_seconds": self.app_keepalive,
            "chain": self.chain,
            "findings": [finding.to_dict() for finding in self.findings],
        }
        if self.nginx is not None:
            data["nginx"] = {
                "file": self.nginx.main_file,
                "files": list(self.nginx.files),
                "locations": [location.to_dict() for location in self.nginx.proxied_locations],
                "upstreams": {
                    name: {
                        "where": str(upstream.where),
                        "keepalive": upstream.keepalive_connections,
                        "keepalive_timeout": upstream.keepalive_timeout.to_dict(),
                        "servers": [
                            {
                                "address": server.address,
                                "where": str(server.where),
                                "max_fails": server.max_fails,
                                "fail_timeout": server.fail_timeout.to_dict(),
                            }
                            for server in upstream.servers
                        ],
                    }
                    for name, upstream in self.nginx.upstreams.items()
                },
            }
        if self.haproxy is not None:
            data["haproxy"] = {
                "file": self.haproxy.file,
                "proxies": [proxy.to_dict() for proxy in self.haproxy.proxies if proxy.kind != "defaults"],
            }
        return data

    def summary(self) -> str:
        """Plain-text summary, one finding per line, worst first."""
        counts = {severity: 0 for severity in Severity}
        for finding in self.findings:
            counts[finding.severity] += 1
        head = (
            f"{len(self.findings)} finding(s): {counts[Severity.CRITICAL]} critical, "
            f"{counts[Severity.WARNING]} warning, {counts[Severity.INFO]} info"
        )
        if self.chain:
            head += f"; chain {self.chain}"
        lines = [head]
        for finding in self.findings:
            where = f"{finding.where}: " if finding.where else ""
            lines.append(f"[{finding.severity.value}] {where}{finding.subject}: {finding.message}")
        return "\n".join(lines)


# --------------------------------------------------------------------- helpers


def _fmt(seconds: float | None) -> str:
    return format_seconds(seconds)


def _place(setting: ConfigSetting, fallback: SourceRef | None) -> SourceRef | None:
    return setting.where or fallback


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (kind, place, message); subjects that share it are listed together."""
    merged: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in findings:
        merged.setdefault((finding.kind, str(finding.where), finding.message), []).append(finding)
    out: list[Finding] = []
    for group in merged.values():
        subjects = list(dict.fromkeys(finding.subject for finding in group))
        subject = ", ".join(subjects[:3])
        if len(subjects) > 3:
            subject += f" and {len(subjects) - 3} more"
        first = group[0]
        out.append(
            Finding(first.kind, first.severity, subject, first.message, first.explanation, first.where)
        )
    return out


def _problems(problems: Iterable[tuple[SourceRef, str]], tool: str) -> Iterable[Finding]:
    for where, message in problems:
        yield Finding(
            "config-problem",
            Severity.WARNING,
            tool,
            message,
            f"{tool} may reject this file or read it differently; "
            "the analysis skipped what it could not read.",
            where,
        )


# --------------------------------------------------------------------- nginx rules


def _nginx_findings(config: NginxConfig, app_timeout: float | None) -> Iterable[Finding]:
    yield from _problems(config.problems, "nginx")
    for location in config.proxied_locations:
        read = location.timeout("read")
        connect = location.timeout("connect")
        if app_timeout is not None and read.seconds is not None and read.seconds < app_timeout:
            yield Finding(
                "proxy-timeout-below-app",
                Severity.CRITICAL,
                location.label,
                f"{read.spelled} is shorter than the application's {_fmt(app_timeout)} timeout",
                f"nginx stops waiting after {read.raw} and answers 504 Gateway Timeout to requests the "
                f"application would still complete (those taking {read.raw} to {_fmt(app_timeout)}); "
                f"raise {read.name} above {_fmt(app_timeout)}.",
                _place(read, location.pass_where),
            )
        if connect.seconds is not None and connect.seconds > NGINX_CONNECT_TIMEOUT_CAP:
            yield Finding(
                "connect-timeout-capped",
                Severity.INFO,
                location.label,
                f"{connect.spelled} is above 75s",
                "nginx documents that the connect timeout usually cannot exceed 75 seconds (the kernel "
                "gives up first), so a longer value does not make nginx wait longer.",
                _place(connect, location.pass_where),
            )
    yield from _upstream_findings(config)


def _upstream_findings(config: NginxConfig) -> Iterable[Finding]:
    for upstream in config.upstreams.values():
        users = [location for location in config.proxied_locations if location.upstream == upstream.name]
        longest = max(
            (location.timeout("read") for location in users),
            key=lambda setting: setting.seconds or 0.0,
            default=None,
        )
        for server in upstream.servers:
            subject = f"upstream {upstream.name} server {server.address}"
            if server.max_fails == 0:
                yield Finding(
                    "max-fails-zero",
                    Severity.WARNING,
                    subject,
                    "max_fails=0 turns off passive health checks",
                    f"nginx never marks {server.address} unavailable: when it dies or hangs, its share of "
                    "requests keeps going to it and fails with 502/504 unless proxy_next_upstream retries "
                    "hide it; use max_fails=1 or more.",
                    server.max_fails_where or server.where,
                )
                continue
            if longest is None or longest.seconds is None or server.fail_timeout.seconds is None:
                continue
            if server.fail_timeout.seconds >= longest.seconds:
                continue
            window = server.fail_timeout.raw
            if server.max_fails > 1:
                severity = Severity.WARNING
                why = (
                    f"max_fails={server.max_fails} failures must happen within fail_timeout={window}, "
                    f"but a hung server takes {longest.raw} ({longest.name}) to fail each request, so "
                    "they never fit in the window and nginx never takes it out of rotation."
                )
            elif server.fail_timeout.where is not None:
                severity = Severity.INFO
                why = (
                    f"one timed-out request takes the server out for only {window}; it then gets "
                    f"traffic again and every request sent to it waits {longest.raw} for a 504."
                )
            else:
                # nginx's own defaults (max_fails=1, fail_timeout=10s): too common to flag.
                continue
            yield Finding(
                "fail-timeout-below-read-timeout",
                severity,
                subject,
                f"fail_timeout={window} is shorter than {longest.describe()}",
                why + f" Make fail_timeout at least {longest.raw}.",
                server.fail_timeout.where or server.where,
            )


def _keepalive_race(
    config: NginxConfig,
    upstream_name: str,
    peer_timeout: ConfigSetting | None,
    peer: str,
    peer_seconds: float | None,
) -> Iterable[Finding]:
    upstream = config.upstreams.get(upstream_name)
    if upstream is None or upstream.keepalive_connections is None:
        return
    ours = upstream.keepalive_timeout
    if ours.seconds is None or peer_seconds is None or peer_seconds >= ours.seconds:
        return
    peer_text = peer_timeout.describe() if peer_timeout is not None else _fmt(peer_seconds)
    yield Finding(
        "keepalive-race",
        Severity.WARNING,
        f"upstream {upstream.name}",
        f"nginx keeps idle upstream connections for {ours.spelled} but {peer} closes them after {peer_text}",
        "A request nginx sends on an idle connection just as the other side closes it fails with 502 "
        "(upstream prematurely closed connection / connection reset by peer). Keep nginx's upstream "
        f"keepalive_timeout below {peer}'s idle timeout, or raise the latter.",
        ours.where or upstream.keepalive_where or upstream.where,
    )


# --------------------------------------------------------------------- HAProxy rules


def _haproxy_findings(config: HaproxyConfig, app_timeout: float | None) -> Iterable[Finding]:
    yield from _problems(config.problems, "haproxy")
    for proxy in config.proxies:
        if proxy.kind == "defaults":
            continue
        # As HAProxy itself checks: connect/server only matter with servers.
        serving = proxy.faces_servers and bool(proxy.servers)
        needed = (["client"] if proxy.faces_clients else []) + (["connect", "server"] if serving else [])
        missing = [name for name in needed if proxy.timeout(name) is None]
        if missing:
            names = ", ".join(f"timeout {name}" for name in missing)
            yield Finding(
                "missing-timeout",
                Severity.WARNING,
                proxy.label,
                f"no {names} (here or in its defaults section)",
                "HAProxy warns about this at startup and applies no limit: stuck or idle connections are "
                "never closed, pile up until maxconn is reached, and new clients then queue or are refused.",
                proxy.where,
            )
        if serving:
            yield from _backend_findings(proxy, app_timeout)
        if proxy.faces_clients:
            yield from _client_server_findings(config, proxy)


def _backend_findings(proxy: HaproxyProxy, app_timeout: float | None) -> Iterable[Finding]:
    server = proxy.timeout("server")
    if app_timeout is not None and server is not None and (server.seconds or 0.0) < app_timeout:
        yield Finding(
            "proxy-timeout-below-app",
            Severity.CRITICAL,
            proxy.label,
            f"{server.spelled} is shorter than the application's {_fmt(app_timeout)} timeout",
            f"HAProxy stops waiting after {server.raw} and answers 504 Gateway Timeout (log flags sH) to "
            f"requests the application would still complete; raise timeout server above "
            f"{_fmt(app_timeout)}.",
            server.where,
        )
    if proxy.redispatch and proxy.retries == 0:
        yield Finding(
            "redispatch-without-retries",
            Severity.WARNING,
            proxy.label,
            "option redispatch is set but retries is 0",
            "Redispatch only moves a request to another server when a connection attempt is retried; "
            "with no retries a request that lands on a dead server (before health checks notice) fails "
            "with 503 instead of going to a healthy one. Set retries to 1 or more.",
            proxy.retries_where or proxy.redispatch_where or proxy.where,
        )


def _client_server_findings(config: HaproxyConfig, frontend: HaproxyProxy) -> Iterable[Finding]:
    client = frontend.timeout("client")
    if client is None or client.seconds is None:
        return
    for backend in config.backends_of(frontend):
        server = backend.timeout("server")
        if not backend.servers:
            continue
        if server is None or server.seconds is None or client.seconds >= server.seconds:
            continue
        tcp = frontend.mode == "tcp" or backend.mode == "tcp"
        yield Finding(
            "client-timeout-below-server",
            Severity.WARNING if tcp else Severity.INFO,
            f"{frontend.label} → {backend.label}",
            f"{client.spelled} is shorter than {server.describe()}",
            "HAProxy's documentation recommends keeping timeout client equal to timeout server (above all "
            "in TCP mode): while the server is still working the client side is quiet too, and HAProxy "
            f"may close the session after {client.raw} (termination flags cD) before the server's "
            f"{server.raw} is used up, so the client sees a dropped connection instead of an answer.",
            client.where,
        )


# --------------------------------------------------------------------- chains


def _location_ports(config: NginxConfig, location: NginxLocation) -> set[int]:
    if location.upstream is not None:
        upstream = config.upstreams[location.upstream]
        return {server.port for server in upstream.servers if server.port is not None}
    if location.target is not None and location.target[1] is not None:
        return {location.target[1]}
    return set()


def _chain_findings(nginx: NginxConfig, haproxy: HaproxyConfig) -> tuple[str | None, list[Finding]]:
    findings: list[Finding] = []
    listen_ports = nginx.listen_ports
    backends = [proxy for proxy in haproxy.proxies if proxy.faces_servers]

    # HAProxy → nginx: backends whose servers are nginx's listen ports.
    front_pairs: list[tuple[HaproxyProxy, list[NginxLocation]]] = []
    for backend in backends:
        ports = {server.port for server in backend.servers if server.port is not None}
        hit = ports & listen_ports
        if hit:
            locations = [
                location for location in nginx.proxied_locations if set(location.server.listen_ports) & hit
            ]
            front_pairs.append((backend, locations))

    # nginx → HAProxy: locations whose targets are HAProxy's bind ports.
    behind_pairs: list[tuple[NginxLocation, list[HaproxyProxy]]] = []
    for location in nginx.proxied_locations:
        ports = _location_ports(nginx, location)
        frontends = [
            proxy
            for proxy in haproxy.proxies
            if proxy.faces_clients and {bind.port for bind in proxy.binds} & ports
        ]
        if frontends:
            reached = [backend for frontend in frontends for backend in haproxy.backends_of(frontend)]
            behind_pairs.append((location, reached))

    assumed = not front_pairs and not behind_pairs
    if assumed:
        front_pairs = [(backend, list(nginx.proxied_locations)) for backend in backends]

    for backend, locations in front_pairs:
        server = backend.timeout("server")
        if server is None or server.seconds is None:
            continue
        longer = [
            location for location in locations if (location.timeout("read").seconds or 0.0) > server.seconds
        ]
        for location in longer:
            read = location.timeout("read")
            note = " (assuming HAProxy sits in front of nginx: no address matched)" if assumed else ""
            findings.append(
                Finding(
                    "chain-timeout-order",
                    Severity.WARNING,
                    f"{backend.label} → nginx {location.label}",
                    f"{server.spelled} is shorter than nginx's {read.describe()}{note}",
                    f"HAProxy gives up after {server.raw} and answers 504 while nginx is still waiting up to "
                    f"{read.raw} for the application; nginx's longer timeout never takes effect and its log "
                    "shows 499 (client closed). The outer proxy should wait longer than the inner one.",
                    server.where,
                )
            )

    for location, reached in behind_pairs:
        read = location.timeout("read")
        for backend in reached:
            server = backend.timeout("server")
            if server is None or server.seconds is None or read.seconds is None:
                continue
            if read.seconds < server.seconds:
                findings.append(
                    Finding(
                        "chain-timeout-order",
                        Severity.WARNING,
                        f"nginx {location.label} → {backend.label}",
                        f"nginx's {read.spelled} is shorter than HAProxy's {server.describe()}",
                        f"nginx gives up after {read.raw} and answers 504 while HAProxy is still waiting up "
                        f"to {server.raw}; HAProxy's longer timeout never takes effect. The outer proxy "
                        "should wait longer than the inner one.",
                        _place(read, location.pass_where),
                    )
                )

    if front_pairs and not assumed:
        chain: str | None = "haproxy → nginx"
    elif behind_pairs:
        chain = "nginx → haproxy"
    else:
        chain = "haproxy → nginx (assumed)" if backends and nginx.proxied_locations else None
    return chain, findings


def _keepalive_findings(
    nginx: NginxConfig, haproxy: HaproxyConfig | None, app_keepalive: float | None
) -> Iterable[Finding]:
    """Upstream keep-alive against whoever is behind it: HAProxy when its bind
    ports match, otherwise the application (when its idle timeout is known)."""
    for upstream in nginx.upstreams.values():
        ports = {server.port for server in upstream.servers if server.port is not None}
        frontends = [
            proxy
            for proxy in (haproxy.proxies if haproxy is not None else ())
            if proxy.faces_clients and {bind.port for bind in proxy.binds} & ports
        ]
        if frontends:
            for frontend in frontends:
                # HAProxy closes idle client connections after http-keep-alive,
                # falling back to http-request, then client.
                idle = (
                    frontend.timeout("http-keep-alive")
                    or frontend.timeout("http-request")
                    or frontend.timeout("client")
                )
                if idle is not None:
                    yield from _keepalive_race(
                        nginx, upstream.name, idle, f"HAProxy {frontend.label}", idle.seconds
                    )
        elif app_keepalive is not None:
            yield from _keepalive_race(nginx, upstream.name, None, "the application", app_keepalive)


# --------------------------------------------------------------------- entry point


def analyse_timeouts(
    nginx: NginxConfig | None = None,
    haproxy: HaproxyConfig | None = None,
    *,
    app_timeout: float | None = None,
    app_keepalive: float | None = None,
) -> TimeoutReport:
    """Every finding for the given configurations (at least one of them)."""
    if nginx is None and haproxy is None:
        raise UserError("give an nginx configuration, an HAProxy configuration, or both")
    findings: list[Finding] = []
    chain: str | None = None
    if nginx is not None:
        findings.extend(_nginx_findings(nginx, app_timeout))
        findings.extend(_keepalive_findings(nginx, haproxy, app_keepalive))
    if haproxy is not None:
        findings.extend(_haproxy_findings(haproxy, app_timeout))
    if nginx is not None and haproxy is not None:
        chain, chained = _chain_findings(nginx, haproxy)
        findings.extend(chained)
    return TimeoutReport(
        nginx=nginx,
        haproxy=haproxy,
        app_timeout=app_timeout,
        app_keepalive=app_keepalive,
        chain=chain,
        findings=tuple(sort_findings(_merge(findings))),
    )
