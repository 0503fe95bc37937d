"""What every ``firebell`` command shares: loading settings, reporting problems."""

from __future__ import annotations

import typer

from bot.errors import ConfigurationError
from bot.settings import Settings, load_settings


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the one line that says what is wrong."""
    try:
        return load_settings()
    except ConfigurationError as exc:
        typer.echo(f"firebell: {exc}", err=True)
        raise typer.Exit(2) from exc


def exit_on_problems(problems: list[str]) -> None:
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(2)
