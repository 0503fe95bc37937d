"""Step kind ``ssh``: run one argv on an inventory host.

The argv is sent quoted element by element (see ``bot.runbooks.ssh``), so a
parameter substituted into an element stays one literal argument whatever it
contains. An arbitrary command is destructive unless the runbook says
``destructive: false``. The step is ok when the exit status is one of
``ok_exit_codes``.
"""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from pydantic import Field, field_validator

from bot.errors import UserError
from bot.runbooks.config import SshHost
from bot.runbooks.ssh import CommandResult, run_command
from bot.runbooks.step import StepArgs, StepContext, StepOutcome

CONNECT_TIMEOUT = 15.0


class SshArgs(StepArgs):
    host: str
    """A name under ``[runbooks.hosts]``."""
    argv: list[str] = Field(min_length=1)
    """Program and arguments; no shell syntax is interpreted."""
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)
    destructive: bool = True

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("argv[0] (the program) cannot be empty")
        if any("\0" in arg for arg in value):
            raise ValueError("argv elements cannot contain NUL characters")
        return value


def inventory_host(context: StepContext, name: str) -> SshHost:
    """The inventory entry ``name``; ``UserError`` listing the known hosts otherwise."""
    host = context.config.hosts.get(name)
    if host is None:
        known = ", ".join(sorted(context.config.hosts)) or "none configured"
        raise UserError(f"unknown host `{name}` (known under [runbooks.hosts]: {known})")
    return host


def connect_timeout(context: StepContext) -> float:
    return max(1.0, min(CONNECT_TIMEOUT, context.timeout))


def format_result(result: CommandResult) -> str:
    """A transcript of one command for the step's output."""
    parts = [f"$ {result.command}", f"[{result.describe_exit()}]"]
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts += ["--- stderr ---", result.stderr.rstrip("\n")]
    return "\n".join(parts)


class SshStep:
    kind: ClassVar[str] = "ssh"
    args_model: ClassVar[type[StepArgs]] = SshArgs

    def describe(self, args: Any) -> str:
        assert isinstance(args, SshArgs)
        return f"run `{shlex.join(args.argv)}` on {args.host}"

    def destructive(self, args: Any) -> bool:
        assert isinstance(args, SshArgs)
        return args.destructive

    async def run(self, args: Any, context: StepContext) -> StepOutcome:
        assert isinstance(args, SshArgs)
        host = inventory_host(context, args.host)
        result = await run_command(
            host,
            args.argv,
            name=args.host,
            connect_timeout=connect_timeout(context),
            max_output=max(1000, context.config.step_output_chars // 2),
        )
        ok = result.exit_status is not None and result.exit_status in args.ok_exit_codes
        return StepOutcome(
            ok=ok,
            summary=f"`{_short(result.command)}` on {args.host}: {result.describe_exit()}",
            output=format_result(result),
            data={"exit_status": result.exit_status, "host": args.host},
        )


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


STEP = SshStep()
