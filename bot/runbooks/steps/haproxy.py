"""Step kind ``haproxy``: look at and change servers through HAProxy's runtime API.

Actions: ``show_stat`` (read), ``drain`` / ``maint`` / ``ready`` (change a
server's admin state; ``drain`` can wait for its sessions to end) and
``wait_drained`` (read, waiting). The socket comes from
``[runbooks.haproxy.<target>]``; the protocol lives in ``bot.runbooks.haproxy``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from bot.errors import UserError
from bot.runbooks.haproxy import (
    DrainResult,
    HAProxyClient,
    ServerState,
    StatRow,
    format_rows,
    validate_identifier,
)
from bot.runbooks.step import StepArgs, StepContext, StepOutcome, wait_budget

Action = Literal["show_stat", "drain", "maint", "ready", "wait_drained"]
_CHANGES: dict[str, ServerState] = {"drain": "drain", "maint": "maint", "ready": "ready"}
_WAITS = ("drain", "wait_drained")


class HAProxyArgs(StepArgs):
    target: str
    """A name under ``[runbooks.haproxy]``."""
    action: Action
    backend: str | None = None
    """Required except for ``show_stat`` (where it narrows the table)."""
    server: str | None = None
    """Required for every action but ``show_stat``."""
    wait_seconds: float | None = Field(default=None, ge=0, le=3600)
    """``drain``: then wait up to this long for the server's sessions to end.
    ``wait_drained``: how long to wait (default: what the step's timeout allows)."""
    include_queue: bool = True
    """Waiting also requires the server's queue to be empty."""

    @field_validator("backend", "server")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                validate_identifier(value)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _shape(self) -> HAProxyArgs:
        if self.action != "show_stat":
            if self.backend is None or self.server is None:
                raise ValueError(f"action {self.action} needs both backend and server")
        elif self.server is not None and self.backend is None:
            raise ValueError("show_stat with a server needs its backend too")
        if self.wait_seconds is not None and self.action not in _WAITS:
            raise ValueError("wait_seconds goes only with drain and wait_drained")
        return self


def _row_data(row: StatRow) -> dict[str, Any]:
    return {"status": row.status, "scur": row.scur, "qcur": row.qcur}


class HAProxyStep:
    kind: ClassVar[str] = "haproxy"
    args_model: ClassVar[type[StepArgs]] = HAProxyArgs

    def describe(self, args: HAProxyArgs) -> str:
        where = f"on HAProxy {args.target}"
        name = f"{args.backend}/{args.server}"
        if args.action == "show_stat":
            scope = name if args.server else (f"backend {args.backend}" if args.backend else "all proxies")
            return f"show HAProxy stats for {scope} {where}"
        if args.action == "wait_drained":
            limit = f"up to {args.wait_seconds:g}s" if args.wait_seconds is not None else "until the timeout"
            return f"wait {limit} for {name} to have no sessions {where}"
        text = {"drain": "drain", "maint": "put into maintenance", "ready": "put back into rotation"}
        line = f"{text[args.action]} {name} {where}"
        if args.action == "drain" and args.wait_seconds:
            line += f", then wait up to {args.wait_seconds:g}s for its sessions to end"
        return line

    def destructive(self, args: HAProxyArgs) -> bool:
        return args.action in _CHANGES

    async def run(self, args: HAProxyArgs, context: StepContext) -> StepOutcome:
        target = context.config.haproxy.get(args.target)
        if target is None:
            known = ", ".join(sorted(context.config.haproxy)) or "none configured"
            raise UserError(f"no HAProxy target {args.target!r} under [runbooks.haproxy] ({known})")
        client = HAProxyClient(target.socket, timeout=max(1.0, min(10.0, context.timeout / 3)))
        if args.action == "show_stat":
            return await self._show(client, args)
        backend, server = args.backend, args.server
        if backend is None or server is None:  # the model rejects this; kept for direct callers
            raise UserError(f"haproxy {args.action} needs both backend and server")
        if args.action == "wait_drained":
            budget = wait_budget(args.wait_seconds, context.timeout, margin=5.0)
            result = await client.wait_drained(backend, server, budget, include_queue=args.include_queue)
            return self._drain_outcome(result, args, budget, changed=False)

        await client.set_server_state(backend, server, _CHANGES[args.action])
        if args.action == "drain" and args.wait_seconds:
            budget = wait_budget(args.wait_seconds, context.timeout, margin=5.0)
            result = await client.wait_drained(backend, server, budget, include_queue=args.include_queue)
            return self._drain_outcome(result, args, budget, changed=True)
        row = await client.server(backend, server)
        return StepOutcome(
            ok=True,
            summary=f"{backend}/{server} set to {args.action}: now {row.status}, {row.scur} sessions",
            output=format_rows([row]),
            data=_row_data(row),
        )

    async def _show(self, client: HAProxyClient, args: HAProxyArgs) -> StepOutcome:
        rows = await client.show_stat(args.backend, args.server)
        servers = [row for row in rows if row.is_server]
        if args.server is not None:
            row = servers[0]
            return StepOutcome(True, row.summary(), format_rows(rows), _row_data(row))
        states: dict[str, int] = {}
        for row in servers:
            states[row.status] = states.get(row.status, 0) + 1
        counts = ", ".join(f"{n} {status}" for status, n in sorted(states.items())) or "no servers"
        scope = f"backend {args.backend}" if args.backend else f"HAProxy {args.target}"
        return StepOutcome(
            ok=True,
            summary=f"{scope}: {len(servers)} servers ({counts})",
            output=format_rows(rows),
            data={"servers": {f"{row.backend}/{row.server}": _row_data(row) for row in servers}},
        )

    def _drain_outcome(
        self, result: DrainResult, args: HAProxyArgs, budget: float, *, changed: bool
    ) -> StepOutcome:
        row = result.row
        name = f"{row.backend}/{row.server}"
        prefix = f"{name} set to drain; " if changed else ""
        output = format_rows([row])
        if args.wait_seconds is not None and budget < args.wait_seconds:
            output += (
                f"\n\nwaited at most {budget:g}s instead of {args.wait_seconds:g}s: "
                "the step's timeout leaves no more (raise the step's timeout)"
            )
        data = {**_row_data(row), "drained": result.drained}
        if result.drained:
            summary = f"{prefix}{name} has no sessions left ({row.status}, after {result.waited:.0f}s)"
            return StepOutcome(True, summary, output, data)
        summary = (
            f"{prefix}{name} still has {row.scur} sessions and {row.qcur} queued after {result.waited:.0f}s"
        )
        return StepOutcome(False, summary, output, data)


STEP = HAProxyStep()
