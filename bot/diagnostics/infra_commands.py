"""Entry points for ``diag timeouts``, ``diag resources`` and ``diag monitors``.

They combine what the caller passed with the settings (flags win, then
``[diagnostics]`` in ``firebell.toml``, then the environment variables the
settings module read), build the HTTP client, run the diagnostic and return
its report. Bad input raises ``UserError`` (exit 2 on the command line); a
service that cannot be reached raises ``IntegrationError``.
"""

from __future__ import annotations

import httpx

from bot.diagnostics.haproxy_config import load_haproxy_config
from bot.diagnostics.monitors import (
    MonitorProvider,
    MonitorsReport,
    PingdomClient,
    StatusCakeClient,
    UptimeRobotClient,
    check_monitors,
)
from bot.diagnostics.nginx_config import load_nginx_config
from bot.diagnostics.resources import (
    NodeExporterSource,
    PrometheusSource,
    ResourceReport,
    ResourceSource,
    ResourceThresholds,
    check_resources,
)
from bot.diagnostics.timeouts import TimeoutReport, analyse_timeouts, parse_duration
from bot.errors import UserError
from bot.settings import Settings
from bot.tls import client_ssl_context

HTTP_TIMEOUT_SECONDS = 15.0


def _http_url(name: str, url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{name} must be an http(s) URL, not {url!r}")
    return url


def _client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=client_ssl_context(settings.ssl_cert_file),
        timeout=HTTP_TIMEOUT_SECONDS,
        headers={"User-Agent": "firebell-diagnostics"},
    )


def run_timeouts(
    settings: Settings,
    *,
    nginx: str | None = None,
    haproxy: str | None = None,
    app_timeout: str | None = None,
    app_keepalive: str | None = None,
) -> TimeoutReport:
    """Parse the given (or configured) files and analyse them."""
    config = settings.config.diagnostics
    nginx = nginx or config.nginx_config
    haproxy = haproxy or config.haproxy_config
    if not nginx and not haproxy:
        raise UserError("give --nginx FILE, --haproxy FILE or both")
    app = app_timeout or config.app_timeout
    keepalive = app_keepalive or config.app_keepalive_timeout
    return analyse_timeouts(
        load_nginx_config(nginx) if nginx else None,
        load_haproxy_config(haproxy) if haproxy else None,
        app_timeout=parse_duration(app) if app else None,
        app_keepalive=parse_duration(keepalive) if keepalive else None,
    )


async def run_resources(
    settings: Settings,
    target: str,
    *,
    prometheus: str | None = None,
    node_exporter: str | None = None,
    interval: float = 1.0,
) -> ResourceReport:
    """Resources of ``target`` from Prometheus or straight from node_exporter."""
    if prometheus and node_exporter:
        raise UserError("give either --prometheus or --node-exporter, not both")
    if not target.strip():
        raise UserError("TARGET must not be empty")
    prometheus = prometheus or (None if node_exporter else settings.config.diagnostics.prometheus_url)
    if not prometheus and not node_exporter:
        raise UserError("give --prometheus URL or --node-exporter URL")
    limits = ResourceThresholds(**settings.config.diagnostics.resources.model_dump())
    async with _client(settings) as client:
        source: ResourceSource
        if prometheus:
            source = PrometheusSource(client, _http_url("--prometheus", prometheus))
        else:
            source = NodeExporterSource(
                client, _http_url("--node-exporter", node_exporter or ""), interval=interval
            )
        return await check_resources(source, target.strip(), limits)


async def run_monitors(
    settings: Settings,
    *,
    uptimerobot_key: str | None = None,
    pingdom_token: str | None = None,
    statuscake_token: str | None = None,
    match: str | None = None,
    results: int = 20,
) -> MonitorsReport:
    """Checks from every provider with a key (flags, else the environment)."""
    any_flag = bool(uptimerobot_key or pingdom_token or statuscake_token)
    # A key on the command line selects that provider only; otherwise every configured one.
    keys = (
        (uptimerobot_key, pingdom_token, statuscake_token)
        if any_flag
        else (settings.uptimerobot_api_key, settings.pingdom_api_token, settings.statuscake_api_token)
    )
    urls = {
        "UPTIMEROBOT_API_URL": settings.uptimerobot_api_url,
        "PINGDOM_API_URL": settings.pingdom_api_url,
        "STATUSCAKE_API_URL": settings.statuscake_api_url,
    }
    for name, url in urls.items():
        _http_url(name, url)
    if not any(keys):
        raise UserError(
            "no monitor provider configured: pass --uptimerobot-key, --pingdom-token or --statuscake-token "
            "(or set UPTIMEROBOT_API_KEY, PINGDOM_API_TOKEN, STATUSCAKE_API_TOKEN)"
        )
    async with _client(settings) as client:
        providers: list[MonitorProvider] = []
        if keys[0]:
            providers.append(UptimeRobotClient(client, keys[0], settings.uptimerobot_api_url))
        if keys[1]:
            providers.append(PingdomClient(client, keys[1], settings.pingdom_api_url))
        if keys[2]:
            providers.append(StatusCakeClient(client, keys[2], settings.statuscake_api_url))
        return await check_monitors(providers, match=match, results=results)
