"""Step kind ``docker``: look at, read the logs of, and restart a container.

Actions: ``status`` (inspect plus a log tail; fails when the container is not
running, or not healthy when it has a health check), ``logs`` (the tail only)
and ``restart`` (destructive: restart, then wait until it runs and is healthy,
with the log tail in the output when it does not come back). The endpoint
comes from ``[runbooks.docker.<name>]``; the API lives in
``bot.runbooks.docker``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import DockerEndpoint, RunbooksConfig
from bot.runbooks.docker import MAX_TAIL, ContainerState, DockerClient, render_logs, validate_container
from bot.runbooks.step import StepArgs, StepContext, StepOutcome, named_target, wait_budget

Action = Literal["restart", "status", "logs"]


class DockerArgs(StepArgs):
    endpoint: str | None = None
    """A name under ``[runbooks.docker]``; without it ``default``, or the only one configured."""
    action: Action
    container: str
    """Container name or id."""
    tail: int = Field(default=100, ge=1, le=MAX_TAIL)
    """Log lines to show."""
    wait_seconds: float = Field(default=60, ge=0, le=3600)
    """``restart``: how long to wait for the container to run (and be healthy) again."""
    stop_seconds: int = Field(default=10, ge=0, le=600)
    """``restart``: seconds Docker waits for the container to stop before killing it."""

    @field_validator("container")
    @classmethod
    def _container(cls, value: str) -> str:
        try:
            return validate_container(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None


def resolve_endpoint(config: RunbooksConfig, name: str | None) -> tuple[str, DockerEndpoint]:
    return named_target(config.docker, name, kind="docker", table="docker", what="endpoint")


class DockerStep:
    kind: ClassVar[str] = "docker"
    args_model: ClassVar[type[StepArgs]] = DockerArgs

    def __init__(self, *, poll_interval: float = 0.5) -> None:
        self._poll = poll_interval

    def describe(self, args: DockerArgs) -> str:
        where = f"on docker endpoint {args.endpoint or '(default)'}"
        if args.action == "restart":
            return (
                f"restart container {args.container} {where} "
                f"(stop timeout {args.stop_seconds} s), then wait up to {args.wait_seconds:g} s "
                "for it to run and be healthy"
            )
        if args.action == "logs":
            return f"show the last {args.tail} log lines of container {args.container} {where}"
        return f"show the state and last {args.tail} log lines of container {args.container} {where}"

    def destructive(self, args: DockerArgs) -> bool:
        return args.action == "restart"

    async def run(self, args: DockerArgs, context: StepContext) -> StepOutcome:
        name, endpoint = resolve_endpoint(context.config, args.endpoint)
        request_timeout = max(1.0, min(30.0, context.timeout / 3))
        async with DockerClient(
            name,
            endpoint,
            ssl_context=context.ssl_context,
            timeout=request_timeout,
            poll_interval=self._poll,
        ) as client:
            if args.action == "restart":
                return await self._restart(client, args, context)
            state = await client.inspect(args.container)
            if args.action == "logs":
                logs = render_logs(await client.logs(args.container, tail=args.tail, tty=state.tty))
                count = len(logs.splitlines())
                return StepOutcome(
                    ok=True,
                    summary=f"{state.name}: last {count} log lines ({state.condition})",
                    output=logs,
                    data=state.facts(),
                )
            logs = await _logs_or_note(client, args, state)
            return StepOutcome(
                ok=state.ready,
                summary=f"{state.name} {state.condition}, {state.restart_count} restarts",
                output=_output(state, logs, args.tail),
                data=state.facts(),
            )

    async def _restart(self, client: DockerClient, args: DockerArgs, context: StepContext) -> StepOutcome:
        # Inspect first: a missing container fails before anything changes.
        before = await client.inspect(args.container)
        await client.restart(args.container, stop_seconds=args.stop_seconds)
        budget = wait_budget(args.wait_seconds, context.timeout - args.stop_seconds)
        waited = await client.wait_until_ready(args.container, wait_seconds=budget)
        state = waited.state
        data = {**state.facts(), "restarted": True, "seconds": round(waited.elapsed, 1)}
        logs = await _logs_or_note(client, args, state)
        if waited.ready:
            return StepOutcome(
                ok=True,
                summary=f"{state.name} restarted, {state.condition} after {waited.elapsed:.1f} s",
                output=_output(state, logs, args.tail, before),
                data=data,
            )
        if waited.reason == "stopped":
            summary = f"{state.name} restarted but {state.condition}"
        else:
            summary = f"{state.name} restarted but not ready after {waited.elapsed:.1f} s: {state.condition}"
        return StepOutcome(
            ok=False, summary=summary, output=_output(state, logs, args.tail, before), data=data
        )


async def _logs_or_note(client: DockerClient, args: DockerArgs, state: ContainerState) -> str:
    """The log tail, or a note saying why there is none: the container's state is the
    news, and a logging driver that cannot be read (``none``, ``syslog``) must not hide it."""
    try:
        return render_logs(await client.logs(args.container, tail=args.tail, tty=state.tty))
    except (UserError, IntegrationError) as exc:
        return f"(could not read the logs: {exc})"


def _output(state: ContainerState, logs: str, tail: int, before: ContainerState | None = None) -> str:
    lines = state.describe()
    if before is not None:
        lines.insert(0, f"before restart: {before.condition}, started at {_started(before)}")
    lines += ["", f"--- last {tail} log lines ---", logs or "(no log output)"]
    return "\n".join(lines)


def _started(state: ContainerState) -> str:
    return state.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") if state.started_at else "-"


STEP = DockerStep()
