"""Step kind ``systemd``: start, stop, restart, reload or look at a unit on an inventory host.

After ``restart``, ``start`` and ``reload`` the step polls ``systemctl
is-active`` until the unit is ``active`` (ok), ``failed`` or the wait runs out
(not ok). Whenever the step is not ok its output ends with the unit's last
journal lines. The unit name is checked against systemd's own character set
and may not start with ``-``, and ``--`` ends systemctl's options before it,
so a parameter can never become an option. With ``sudo`` every command runs
as ``sudo -n`` (never prompts: a missing sudoers rule fails at once).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from bot.runbooks.ssh import CommandResult, SshSession, ssh_session
from bot.runbooks.step import StepArgs, StepContext, StepOutcome
from bot.runbooks.steps.ssh import connect_timeout, format_result, inventory_host

Action = Literal["restart", "reload", "start", "stop", "status"]
_UNIT = re.compile(r"[A-Za-z0-9:_.@-]+")
_WAITED = ("restart", "start", "reload")
# is-active states that may still turn into "active" without anyone acting
_TRANSIENT = ("activating", "reloading", "deactivating", "inactive", "refreshing")
JOURNAL_LINES = 50
POLL_SECONDS = 1.0


def validate_unit(value: str) -> str:
    """``value`` when it is a plausible systemd unit name; ``ValueError`` otherwise."""
    if not _UNIT.fullmatch(value) or len(value) > 256:
        raise ValueError(f"{value!r} is not a systemd unit name (letters, digits and :_.@- only)")
    if value.startswith("-"):
        raise ValueError(f"{value!r} is not a systemd unit name (must not start with -)")
    return value


class SystemdArgs(StepArgs):
    host: str
    """A name under ``[runbooks.hosts]``."""
    unit: str
    action: Action
    sudo: bool = False
    wait_seconds: float = Field(default=30, ge=0, le=3600)
    """After restart/start/reload: how long to wait for the unit to be active (0: don't wait)."""

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        return validate_unit(value)


def systemctl_argv(action: str, unit: str, *, sudo: bool) -> list[str]:
    """The argv for ``systemctl ACTION`` on ``unit``; ``--`` keeps the unit from being an option."""
    validate_unit(unit)
    options = ["--no-pager", "--full", "--lines=20"] if action == "status" else []
    return [*_sudo(sudo), "systemctl", action, *options, "--", unit]


def is_active_argv(unit: str, *, sudo: bool) -> list[str]:
    return [*_sudo(sudo), "systemctl", "is-active", "--", validate_unit(unit)]


def journal_argv(unit: str, *, sudo: bool) -> list[str]:
    # -u takes the next element as its value even when it starts with "-"
    return [
        *_sudo(sudo),
        "journalctl", "-u", validate_unit(unit), "-n", str(JOURNAL_LINES), "--no-pager", "-o", "short-iso",
    ]  # fmt: skip


def _sudo(sudo: bool) -> list[str]:
    return ["sudo", "-n"] if sudo else []


class SystemdStep:
    kind: ClassVar[str] = "systemd"
    args_model: ClassVar[type[StepArgs]] = SystemdArgs

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self._poll_seconds = poll_seconds

    def describe(self, args: Any) -> str:
        assert isinstance(args, SystemdArgs)
        how = " (sudo)" if args.sudo else ""
        wait = f", wait up to {args.wait_seconds:g} s for active" if args.action in _WAITED else ""
        return f"systemctl {args.action} {args.unit} on {args.host}{how}{wait}"

    def destructive(self, args: Any) -> bool:
        assert isinstance(args, SystemdArgs)
        return args.action != "status"

    async def run(self, args: Any, context: StepContext) -> StepOutcome:
        assert isinstance(args, SystemdArgs)
        host = inventory_host(context, args.host)
        max_output = max(1000, context.config.step_output_chars // 4)
        async with ssh_session(host, name=args.host, connect_timeout=connect_timeout(context)) as session:
            transcript: list[str] = []

            async def run(argv: list[str]) -> CommandResult:
                result = await session.run(argv, max_output=max_output)
                transcript.append(format_result(result))
                return result

            main = await run(systemctl_argv(args.action, args.unit, sudo=args.sudo))
            state = ""
            if args.action == "status":
                state = (await run(is_active_argv(args.unit, sudo=args.sudo))).stdout.strip()
                ok = state == "active"
                summary = f"{args.unit} on {args.host} is {state or 'unknown'}"
            elif main.exit_status != 0:
                ok = False
                summary = f"{args.action} {args.unit} on {args.host} failed ({main.describe_exit()})"
            elif args.action in _WAITED and args.wait_seconds > 0:
                budget = min(args.wait_seconds, max(context.timeout * 0.8, 0.0))
                state, waited = await self._wait_active(session, args, budget, max_output, transcript)
                ok = state == "active"
                if ok:
                    summary = f"{args.action} {args.unit} on {args.host}: active"
                elif state == "failed":
                    summary = f"{args.action} {args.unit} on {args.host}: unit failed"
                else:
                    summary = (
                        f"{args.action} {args.unit} on {args.host}: still {state or 'unknown'} "
                        f"after {waited:g} s"
                    )
            else:
                ok = True
                summary = f"{args.action} {args.unit} on {args.host}: done"
            if not ok:
                transcript.append(f"--- last {JOURNAL_LINES} journal lines ---")
                await run(journal_argv(args.unit, sudo=args.sudo))
        data: dict[str, Any] = {"unit": args.unit, "host": args.host, "exit_status": main.exit_status}
        if state:
            data["state"] = state
        return StepOutcome(ok=ok, summary=summary, output="\n".join(transcript), data=data)

    async def _wait_active(
        self,
        session: SshSession,
        args: SystemdArgs,
        budget: float,
        max_output: int,
        transcript: list[str],
    ) -> tuple[str, float]:
        """Poll ``is-active`` until active, failed or ``budget`` seconds; the last state and the wait.

        Only state changes go into the transcript, so a long wait stays short to read.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + budget
        argv = is_active_argv(args.unit, sudo=args.sudo)
        last = ""
        while True:
            result = await session.run(argv, max_output=max_output)
            # no output means is-active itself failed (sudo refused, no systemd): stop waiting
            state = result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"
            if state != last:
                transcript.append(f"{args.unit}: {state} (after {loop.time() - started:.1f} s)")
                last = state
            if state not in _TRANSIENT or loop.time() >= deadline:
                break
            await asyncio.sleep(min(self._poll_seconds, max(deadline - loop.time(), 0.0)))
        return last, round(loop.time() - started, 1)


STEP = SystemdStep()
