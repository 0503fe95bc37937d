"""``firebell diag …``: the diagnostics engines on the command line.

The same engines ``/incident diag`` uses; the command line trusts its operator
but takes the same guard flags.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

import typer

from bot.errors import UserError
from bot.settings import Settings
from handlers.cli_common import settings_or_exit

diag = typer.Typer(
    name="diag",
    help="Diagnostics: the same engines /incident diag uses.",
    no_args_is_help=True,
)


@diag.command("http")
def diag_http(
    urls: Annotated[
        list[str], typer.Argument(metavar="URL...", help="http(s) URLs; a bare host means https://.")
    ],
    count: int = typer.Option(
        1,
        "--count",
        "-n",
        min=1,
        max=1000,
        help="Requests per URL; above 1 adds success ratio and percentiles.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per URL, one per line."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.001, help="Seconds allowed per request."),
    insecure: bool = typer.Option(
        False, "--insecure", "-k", help="Do not verify TLS certificates (they are still read and reported)."
    ),
    cache_bust: bool = typer.Option(
        True, "--cache-bust/--no-cache-bust", help="Also send a cache-busting request to reach the origin."
    ),
    allow_private: bool = typer.Option(
        True,
        "--allow-private/--deny-private",
        help="Allow loopback, private, link-local and cloud metadata addresses (default here; "
        "Slack denies them). --deny-private applies the Slack guard.",
    ),
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="PATTERN",
            help="Only probe hosts matching PATTERN (example.com, *.example.com).",
        ),
    ] = None,
    allow_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-cidr",
            metavar="CIDR",
            help="Allow addresses in CIDR even with --deny-private (10.0.0.0/8).",
        ),
    ] = None,
) -> None:
    """Probe URLs: status, redirects, phase timings, outage headers, CDN cache, TLS, verdict.

    Exit 0 when every probe ran (even if a site is down), 2 for bad arguments or
    a URL the guard refuses. --allow-host and --allow-cidr may be repeated; they
    are the rules of the allow_hosts and allow_cidrs diagnostics settings.
    """
    import asyncio
    import json

    from bot.diagnostics.http_probe import ProbeOptions, probe_many
    from bot.diagnostics.ssrf import AddressPolicy
    from bot.diagnostics.verdict import report_json, report_rows, verdict

    settings = settings_or_exit()
    try:
        policy = AddressPolicy.build(
            allow_hosts=allow_host or (), allow_cidrs=allow_cidr or (), allow_private=allow_private
        )
        options = ProbeOptions(
            count=count,
            timeout=timeout,
            verify_tls=not insecure,
            ca_file=settings.ssl_cert_file,
            cache_bust=cache_bust,
        )
        results = asyncio.run(probe_many(urls, policy=policy, options=options))
    except UserError as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(2) from exc
    for diagnosis in results:
        judged = verdict(diagnosis)
        if json_output:
            typer.echo(json.dumps(report_json(diagnosis, judged), ensure_ascii=False))
        else:
            _print_rows(report_rows(diagnosis, judged), judged.level)
    if any(diagnosis.refused for diagnosis in results):
        raise typer.Exit(2)


_LEVEL_STYLES = {"ok": "green", "degraded": "yellow", "down": "bold red", "refused": "magenta"}


def _print_rows(rows: list[tuple[str, str]], level: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        # Text(), not markup: header values come from the probed server.
        style = _LEVEL_STYLES.get(level, "") if label == "verdict" else ""
        table.add_row(label, Text(value, style=style))
    console.print(table)
    console.print()


class _Report(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


_R = TypeVar("_R", bound=_Report)


def _emit_report(report: _R, tables: Callable[[_R], list[Any]], json_output: bool) -> None:
    """A report as one JSON object, or as rich tables (``tables`` renders it)."""
    import json

    from rich.console import Console

    if json_output:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    console = Console()
    for table in tables(report):
        console.print(table)


def _diagnose(run: Callable[[Settings], _R]) -> _R:
    """Run a diagnostic: one clear line and exit 2 on bad input, exit 1 when a service fails."""
    from bot.errors import IntegrationError

    settings = settings_or_exit()
    try:
        return run(settings)
    except UserError as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(2) from exc
    except IntegrationError as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(1) from exc


@diag.command("timeouts")
def diag_timeouts(
    nginx: str | None = typer.Option(
        None, "--nginx", metavar="FILE", help="Main nginx config; includes followed."
    ),
    haproxy: str | None = typer.Option(None, "--haproxy", metavar="FILE", help="HAProxy configuration file."),
    app_timeout: str | None = typer.Option(
        None, "--app-timeout", metavar="DURATION", help="The application's own request timeout, e.g. 90s."
    ),
    app_keepalive: str | None = typer.Option(
        None,
        "--app-keepalive",
        metavar="DURATION",
        help="The application's idle keep-alive timeout, e.g. 5s.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Flag nginx/HAProxy timeout mismatches that produce 502/504s, each with file:line."""
    from bot.diagnostics.infra_commands import run_timeouts
    from bot.diagnostics.infra_tables import timeout_tables

    report = _diagnose(
        lambda settings: run_timeouts(
            settings, nginx=nginx, haproxy=haproxy, app_timeout=app_timeout, app_keepalive=app_keepalive
        )
    )
    _emit_report(report, timeout_tables, json_output)


@diag.command("resources")
def diag_resources(
    target: str = typer.Argument(..., metavar="TARGET", help="The instance label: host:port, or host."),
    prometheus: str | None = typer.Option(None, "--prometheus", metavar="URL", help="Prometheus server."),
    node_exporter: str | None = typer.Option(
        None, "--node-exporter", metavar="URL", help="node_exporter endpoint, read directly."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """CPU, load, memory, swap, disk, inodes and file descriptors against thresholds."""
    import asyncio

    from bot.diagnostics.infra_commands import run_resources
    from bot.diagnostics.infra_tables import resource_tables

    report = _diagnose(
        lambda settings: asyncio.run(
            run_resources(settings, target, prometheus=prometheus, node_exporter=node_exporter)
        )
    )
    _emit_report(report, resource_tables, json_output)


@diag.command("monitors")
def diag_monitors(
    uptimerobot_key: str | None = typer.Option(
        None, "--uptimerobot-key", help="Default: UPTIMEROBOT_API_KEY."
    ),
    pingdom_token: str | None = typer.Option(None, "--pingdom-token", help="Default: PINGDOM_API_TOKEN."),
    statuscake_token: str | None = typer.Option(
        None, "--statuscake-token", help="Default: STATUSCAKE_API_TOKEN."
    ),
    match: str | None = typer.Option(
        None, "--check", metavar="TEXT", help="Only checks whose name/URL has TEXT."
    ),
    results: int = typer.Option(20, "--results", min=1, max=100, help="Recent results per check."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Uptime checks per region: global outage, regional outage or healthy."""
    import asyncio

    from bot.diagnostics.infra_commands import run_monitors
    from bot.diagnostics.infra_tables import monitor_tables

    report = _diagnose(
        lambda settings: asyncio.run(
            run_monitors(
                settings,
                uptimerobot_key=uptimerobot_key,
                pingdom_token=pingdom_token,
                statuscake_token=statuscake_token,
                match=match,
                results=results,
            )
        )
    )
    _emit_report(report, monitor_tables, json_output)


@diag.command("logs")
def diag_logs(
    files: Annotated[
        list[str], typer.Argument(metavar="FILE...", help="Access logs (plain or gzip); - reads stdin.")
    ],
    log_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="auto, combined, combined_rt, common, vhost_combined, or a log_format / LogFormat string.",
        ),
    ] = "auto",
    error_logs: Annotated[
        list[str] | None, typer.Option("--error-log", metavar="FILE", help="nginx/Apache error log.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Parser processes (default: one per core).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Access logs: status per minute, 5xx spikes and what failed in them, latency, error-log groups."""
    import json

    from rich.console import Console

    from bot.logs import analyse_logs
    from bot.logs.tables import log_tables

    try:
        report = analyse_logs(files, log_format=log_format, error_logs=error_logs or [], workers=workers)
    except UserError as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(2) from exc
    if json_output:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    console = Console()
    for table in log_tables(report):
        console.print(table)
