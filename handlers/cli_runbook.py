"""``firebell runbook list|show|validate|run``: runbooks from the command line.

``run`` prints the plan first; ``--dry-run`` stops there. A plan that changes
something asks for confirmation at the terminal (``--yes`` answers for
scripts). Every real run is recorded in the audit table like a Slack run,
with the operating-system user as the requester.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SystemClock
from bot.errors import FirebellError, UserError
from bot.runbooks.automation import automation_problems
from bot.runbooks.engine import RunReport, RunStatus
from bot.runbooks.library import FileProblem, load_library, runbook_files, validate_files
from bot.runbooks.params import parse_assignments
from bot.runbooks.plan import Plan, RunbookInvalid
from bot.runbooks.render import params_line, plan_lines, record_line
from bot.runbooks.secrets import SecretStore
from bot.runbooks.service import RunbookService
from bot.settings import Settings
from bot.store.database import create_engine
from bot.store.migrate import migrate
from bot.tls import client_ssl_context
from handlers.cli_common import settings_or_exit

runbook = typer.Typer(
    name="runbook", help="Runbooks: list, show, validate and run them.", no_args_is_help=True
)


def runbook_problems(settings: Settings, paths: list[Path] | None = None) -> list[FileProblem]:
    """Every problem in ``paths`` (default: every runbook firebell would load)."""
    files = paths if paths else runbook_files(settings.config.runbooks)
    _, problems = validate_files(files, settings.config.runbooks, services=sorted(settings.config.services))
    return problems


def automation_config_problems(settings: Settings) -> list[str]:
    """``[[runbooks.automation]]`` rules that name a missing or unsafe runbook,
    and CDN accounts missing what their provider needs."""
    config = settings.config.runbooks
    problems: list[str] = []
    if config.cdn:
        from bot.runbooks.cdn import account_problems

        for name, account in config.cdn.items():
            problems += [f"runbooks.cdn.{name}: {problem}" for problem in account_problems(account)]
    if config.automation:
        library = load_library(config, services=sorted(settings.config.services))
        problems += automation_problems(config, library)
    return problems


@runbook.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Runbook files or directories (default: all).")
    ] = None,
) -> None:
    """Check runbooks: one line per problem (file, step, field), exit 2 if any."""
    settings = settings_or_exit()
    expanded = [
        file for path in paths or [] for file in (sorted(path.rglob("*.y*ml")) if path.is_dir() else [path])
    ]
    problems = runbook_problems(settings, expanded or None)
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        raise typer.Exit(2)
    count = len(expanded) if expanded else len(runbook_files(settings.config.runbooks))
    typer.echo(f"{count} runbook file{'s' if count != 1 else ''} valid")


def _service(settings: Settings, engine: AsyncEngine | None = None) -> RunbookService:
    secrets = SecretStore(settings.environ, settings.config.runbooks.secrets_dir)
    return RunbookService(
        engine or create_engine(settings.database_url),
        settings,
        SystemClock(),
        secrets,
        client_ssl_context(settings.ssl_cert_file),
        open_network=True,
    )


@runbook.command("list")
def list_runbooks(
    service: str | None = typer.Option(None, "--service", help="Only those for this service."),
) -> None:
    """The runbooks firebell loads, with their descriptions."""
    runbooks = _service(settings_or_exit())
    for spec in runbooks.library.for_service(service):
        typer.echo(f"{spec.name:<28} {spec.description}")
    for problem in runbooks.library.problems:
        typer.echo(f"(not loaded) {problem}", err=True)


@runbook.command("show")
def show(name: str = typer.Argument(..., help="Runbook name or file.")) -> None:
    """A runbook's parameters and steps."""
    runbooks = _service(settings_or_exit())
    try:
        spec = runbooks.find(name)
    except UserError as exc:
        _fail(exc)
    typer.echo(f"{spec.name}: {spec.description}")
    for parameter in spec.parameters:
        default = f" (default {parameter.default})" if parameter.default is not None else ""
        choices = f" one of {', '.join(parameter.choices)}" if parameter.choices else ""
        typer.echo(f"  -p {parameter.name}=<{parameter.type}>{choices}{default}  {parameter.description}")
    for step in spec.steps:
        typer.echo(f"  {step.id}: {step.kind}{' (confirm)' if step.confirm else ''} {step.description}")


class TerminalInteraction:
    """``notify`` prints; ``approval`` asks at the terminal (refused without one, unless --yes)."""

    def __init__(self, assume_yes: bool) -> None:
        self._assume_yes = assume_yes

    async def notify(self, text: str) -> None:
        typer.echo(f"  » {text}")

    async def approval(self, role: str | None, prompt: str) -> str:
        if self._assume_yes:
            return f"{getpass.getuser()} (--yes)"
        if not sys.stdin.isatty():
            raise UserError("approval needed and no terminal to ask at (use --yes)")
        answer = await asyncio.to_thread(typer.confirm, f"  {prompt}", default=False)
        if not answer:
            raise UserError("not approved at the terminal")
        return getpass.getuser()


@runbook.command("run")
def run(
    name: str = typer.Argument(..., help="Runbook name, or the path of a runbook file."),
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value (repeat).")] = None,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; run nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before steps that change something."),
    output: Annotated[
        Path | None, typer.Option("--output", help="Write every step's full output to this file.")
    ] = None,
) -> None:
    """Plan a runbook, then (unless --dry-run) run it step by step; exit 1 if it fails."""
    settings = settings_or_exit()
    engine = create_engine(settings.database_url)
    runbooks = _service(settings, engine)
    try:
        plan = runbooks.plan(runbooks.find(name), parse_assignments(param or []))
    except UserError as exc:
        _fail(exc)
    typer.echo(f"Runbook {plan.runbook.name} ({params_line(plan)}):")
    for line in plan_lines(plan):
        typer.echo(f"  {line}")
    if dry_run:
        typer.echo("dry run: nothing was run")
        return
    if plan.destructive and not yes:
        if not sys.stdin.isatty():
            _fail(UserError("this plan changes something; confirm with --yes when not at a terminal"))
        if not typer.confirm("Run it?", default=False):
            raise typer.Exit(1)
    report = asyncio.run(_run(runbooks, engine, plan, yes))
    if output is not None:
        output.write_text(report.outputs(), encoding="utf-8")
        typer.echo(f"full output: {output}")
    typer.echo(f"{plan.runbook.name}: {report.status.value}")
    if report.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(1)


async def _run(runbooks: RunbookService, engine: AsyncEngine, plan: Plan, yes: bool) -> RunReport:
    await migrate(engine)
    user = f"cli:{getpass.getuser()}"
    requested = await runbooks.request(plan, origin="cli", requested_by=user)
    printed: set[int] = set()

    async def show(report: RunReport) -> None:
        for index, record in enumerate(report.records):
            if record.status.value in ("ok", "failed", "skipped", "not run") and index not in printed:
                printed.add(index)
                typer.echo(f"  {record_line(record)}")

    try:
        return await runbooks.execute(
            requested.run_id,
            plan,
            actor=user,
            runner=user,
            interaction=TerminalInteraction(yes),
            on_change=show,
            approved_by=user,
        )
    finally:
        await engine.dispose()


def _fail(exc: FirebellError) -> NoReturn:
    if isinstance(exc, RunbookInvalid):
        for problem in exc.problems:
            typer.echo(f"firebell: {problem}", err=True)
    else:
        typer.echo(f"firebell: {exc}", err=True)
    raise typer.Exit(2)
