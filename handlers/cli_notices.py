"""``firebell subscribers import`` and ``firebell notice send``.

``notice send`` writes the notice into the outbox and then works off its
deliveries itself, printing the figures; a running ``firebell serve`` on the
same database would share the work (the outbox's leases keep each delivery
to one sender).
"""

from __future__ import annotations

import asyncio
import getpass
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from bot.clock import SystemClock
from bot.errors import ConfigurationError, FirebellError, UserError
from bot.notices.model import Impact, NoticeDraft, NoticeStatus
from bot.notices.outbox import Figures
from bot.notices.subscribers import import_csv
from bot.settings import Settings
from bot.store.database import create_engine
from bot.store.migrate import migrate
from bot.store.tables import Incident
from bot.tls import client_ssl_context
from handlers.cli_common import settings_or_exit
from handlers.identity import worker_identity
from handlers.notice_senders import build_notices, build_senders

subscribers = typer.Typer(name="subscribers", help="Customer notice subscribers.", no_args_is_help=True)
notice = typer.Typer(name="notice", help="Customer notices.", no_args_is_help=True)

INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_DURATION = re.compile(r"^(\d+)\s*(m|min|h)$")


def _segment_names(settings: Settings) -> list[str]:
    return list(settings.config.notices.effective_segments())


@subscribers.command("import")
def import_subscribers(
    file: Annotated[Path, typer.Argument(help="CSV: a header row with email, optional locale, components.")],
    segment: Annotated[str, typer.Option("--segment", help="The segment they join.")],
) -> None:
    """Add (or update) subscribers from a CSV file; bad rows are listed and skipped."""
    settings = settings_or_exit()
    segments = settings.config.notices.effective_segments()
    if segment not in segments:
        typer.echo(f"firebell: no segment `{segment}` (configured: {', '.join(segments)})", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            report = await import_csv(
                engine, file, segment, segments[segment].locales[0], SystemClock().now()
            )
        finally:
            await engine.dispose()
        for line, reason in report.skipped[:50]:
            typer.echo(f"{file}:{line}: skipped: {reason}", err=True)
        if len(report.skipped) > 50:
            typer.echo(f"… and {len(report.skipped) - 50} more skipped rows", err=True)
        typer.echo(
            f"{report.imported} subscribers imported into `{segment}`, {len(report.skipped)} rows skipped"
        )

    try:
        asyncio.run(run())
    except UserError as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(2) from exc


@notice.command("send")
def send(
    status: Annotated[
        NoticeStatus, typer.Option("--status", help="investigating|identified|monitoring|resolved")
    ],
    message: Annotated[str, typer.Option("--message", help="What customers should know.")],
    incident: Annotated[int | None, typer.Option("--incident", help="The incident it is about.")] = None,
    segment: Annotated[list[str] | None, typer.Option("--segment", help="Only these segments.")] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Only these channels.")] = None,
    impact: Annotated[Impact, typer.Option("--impact", help="none|minor|major|critical")] = Impact.MINOR,
    component: Annotated[list[str] | None, typer.Option("--component", help="Affected component.")] = None,
    next_update: Annotated[str | None, typer.Option("--next-update", help="e.g. 30m or 2h.")] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Only write the outbox (firebell serve sends).")
    ] = False,
) -> None:
    """Send a customer notice: render per segment, write the outbox, deliver, print the figures."""
    settings = settings_or_exit()
    try:
        # uvloop, as `firebell serve` runs: a fan-out is thousands of round trips.
        report = uvloop.run(
            _send(
                settings,
                incident,
                status,
                message,
                segment or [],
                channel or [],
                impact,
                component or [],
                next_update,
                no_wait,
            )
        )
    except (FirebellError, ConfigurationError) as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(2) from exc
    for (seg, chan), counts in sorted(report.counts.items()):
        typer.echo(
            f"{seg:<16} {chan:<11} " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
        )
    for seg, chan, target, reason in report.failures:
        typer.echo(f"failed: {seg}/{chan} {target}: {reason}", err=True)


async def _send(
    settings: Settings,
    incident_id: int | None,
    status: NoticeStatus,
    message: str,
    segments: list[str],
    channels: list[str],
    impact: Impact,
    components: list[str],
    next_update: str | None,
    no_wait: bool,
) -> Figures:
    from sqlalchemy import select

    clock = SystemClock()
    engine = create_engine(settings.database_url)
    ssl_context = client_ssl_context(settings.ssl_cert_file)
    try:
        await migrate(engine)
        title = None
        if incident_id is not None:
            async with engine.connect() as connection:
                title = await connection.scalar(
                    select(INCIDENTS.c.title).where(INCIDENTS.c.id == incident_id)
                )
            if title is None:
                raise UserError(f"incident #{incident_id} does not exist")
        senders = build_senders(settings, ssl_context, engine, None)
        # A host:pid identity: a `firebell serve` started after this command
        # was killed can tell it is gone and take its deliveries over at once.
        service, dispatcher = build_notices(engine, settings, clock, worker_identity(), senders)
        draft = NoticeDraft(
            status=status,
            message=message,
            incident_id=incident_id,
            incident_title=title,
            impact=impact,
            components=tuple(components),
            next_update_at=clock.now() + _duration(next_update) if next_update else None,
            segments=tuple(segments),
            channels=tuple(channels),
        )
        notice_id = await service.send(draft, created_by=f"cli:{getpass.getuser()}")
        while not no_wait:
            if await dispatcher.drain_once():
                continue
            if not await service.outstanding(notice_id):
                break
            await asyncio.sleep(1)  # retries are due later
        await service.mark_sent_when_finished(notice_id, clock.now())
        report = await service.figures(notice_id)
        await dispatcher.close()
        return report
    finally:
        await engine.dispose()


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise UserError(f"--next-update: `{text}` is not like 30m or 2h")
    amount = int(match[1])
    return timedelta(hours=amount) if match[2] == "h" else timedelta(minutes=amount)
