"""The ``firebell`` command line."""

from __future__ import annotations

import gc
import sys

import typer

from bot.settings import Settings
from handlers.cli_common import exit_on_problems, settings_or_exit
from handlers.cli_diag import diag
from handlers.cli_notices import notice, subscribers
from handlers.cli_runbook import automation_config_problems, runbook, runbook_problems

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

cli = typer.Typer(
    name="firebell",
    help="ChatOps incident bot for Slack.",
    no_args_is_help=True,
    add_completion=False,
)


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(3000, help="Port to listen on."),
) -> None:
    """Serve webhooks and Slack (HTTP mode; Socket Mode too when SLACK_APP_TOKEN is set)."""
    import uvicorn

    from handlers.app import build_app
    from handlers.logs import configure_logging

    settings = settings_or_exit()
    exit_on_problems(configuration_problems(settings))
    json_logs = settings.log_json if settings.log_json is not None else settings.config.log.json_format
    configure_logging(json_format=json_logs, level=settings.log_level or settings.config.log.level)
    app = build_app(settings)
    # What is imported and built by now lives as long as the process. Frozen,
    # it is left out of the garbage collector's full passes, which under load
    # otherwise walk all of it with the event loop stopped (≈ 100 ms each),
    # acknowledgements waiting.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def notice_problems(settings: Settings) -> list[str]:
    """Customer notice settings that cannot work: the SMTP URL, the sender
    address, and every secret the notice channels name."""
    from bot.errors import ConfigurationError, UserError
    from bot.notices.email import parse_smtp_url
    from handlers.notice_senders import notice_secrets, vapid_public_key

    problems: list[str] = []
    config = settings.config.notices
    if settings.smtp_url:
        try:
            parse_smtp_url(settings.smtp_url)
        except ConfigurationError as exc:
            problems.append(str(exc))
        if not settings.email_from:
            problems.append("FIREBELL_EMAIL_FROM must be set with FIREBELL_SMTP_URL (the notices' sender)")
    secrets = notice_secrets(settings)
    names = [
        ("notices.ntfy.token_secret", config.ntfy.token_secret if config.ntfy else None),
        (
            "notices.statuspage.api_key_secret",
            config.statuspage.api_key_secret if config.statuspage else None,
        ),
    ]
    for setting, name in names:
        if name:
            try:
                secrets.get(name)
            except UserError as exc:
                problems.append(f"{setting}: {exc}")
    if config.vapid_private_key_secret:
        try:
            vapid_public_key(settings)
        except (UserError, ConfigurationError) as exc:
            problems.append(f"notices.vapid_private_key_secret: {exc}")
    return problems


def configuration_problems(settings: Settings) -> list[str]:
    """Everything wrong with ``settings``, one line each."""
    from bot.alerts.severity import default_severity_mapping
    from bot.errors import ConfigurationError
    from bot.store.database import async_database_url

    problems: list[str] = []
    try:
        async_database_url(settings.database_url)
    except ConfigurationError as exc:
        problems.append(str(exc))
    try:
        default_severity_mapping().merged(settings.config.severity)
    except ValueError as exc:
        problems.append(f"severity: {exc}")
    if settings.slack_bot_token and not (settings.slack_signing_secret or settings.slack_app_token):
        problems.append(
            "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode) "
            "must be set with SLACK_BOT_TOKEN"
        )
    for name, level in (("FIREBELL_LOG_LEVEL", settings.log_level), ("log.level", settings.config.log.level)):
        if level and level.upper() not in LOG_LEVELS:
            problems.append(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level token (xapp-…) for Socket Mode")
    for name, url in (
        ("PAGERDUTY_API_URL", settings.pagerduty_api_url),
        ("OPSGENIE_API_URL", settings.opsgenie_api_url),
        ("SLACK_API_URL", settings.slack_api_url),
    ):
        if not url.startswith(("https://", "http://")):
            problems.append(f"{name} must be an http(s) URL, not {url!r}")
    if not settings.pagerduty_api_url.startswith("https://"):
        problems.append("PAGERDUTY_API_URL must use https:// (the PagerDuty client refuses others)")
    if settings.pagerduty_api_token and not settings.pagerduty_from_email:
        problems.append(
            "PAGERDUTY_FROM_EMAIL must be set with PAGERDUTY_API_TOKEN (acknowledging needs a From address)"
        )
    problems += notice_problems(settings)
    if settings.ssl_cert_file:
        try:
            with open(settings.ssl_cert_file, "rb"):
                pass
        except OSError as exc:
            problems.append(f"SSL_CERT_FILE {settings.ssl_cert_file}: {exc.strerror}")
    return problems


@cli.command()
def check() -> None:
    """Validate the configuration: exit 0 when sound, 2 with one line per problem."""
    settings = settings_or_exit()
    problems = configuration_problems(settings)
    problems += [f"runbook {problem}" for problem in runbook_problems(settings)]
    problems += automation_config_problems(settings)
    exit_on_problems(problems)
    typer.echo("configuration is sound")


cli.add_typer(diag, name="diag")
cli.add_typer(runbook, name="runbook")
cli.add_typer(subscribers, name="subscribers")
cli.add_typer(notice, name="notice")


def main() -> None:
    sys.exit(cli())
