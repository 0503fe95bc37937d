"""Step kind ``maintenance``: switch a site's maintenance page on or off, or report it.

The site (``[runbooks.maintenance.<site>]``) names the flag file that the
shipped nginx/Apache snippets check; the file handling lives in
``bot.runbooks.maintenance``. A site with a ``host`` has its flag switched
on that inventory host over SSH.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from bot.errors import UserError
from bot.runbooks.maintenance import MaintenanceFlag, MaintenanceState, RemoteMaintenanceFlag
from bot.runbooks.step import StepArgs, StepContext, StepOutcome


class MaintenanceArgs(StepArgs):
    site: str
    """A name under ``[runbooks.maintenance]``."""
    action: Literal["on", "off", "status"]
    message: str | None = Field(default=None, max_length=1000)
    """``on``: why, kept in the flag file (the page itself is static)."""
    retry_after_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """``on``: the expected duration, kept in the flag file."""

    @field_validator("action", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: object) -> object:
        # YAML 1.1 (PyYAML) reads a bare `on`/`off` as a boolean.
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceArgs:
        if self.action != "on" and (self.message is not None or self.retry_after_seconds is not None):
            raise ValueError("message and retry_after_seconds go only with action on")
        return self


def _data(state: MaintenanceState) -> dict[str, Any]:
    return {
        "maintenance": state.on,
        "changed": state.changed,
        "since": state.since.isoformat() if state.since else None,
    }


def _details(state: MaintenanceState) -> str:
    lines = [f"flag file: {state.flag_file}", f"maintenance: {'on' if state.on else 'off'}"]
    if state.since:
        lines.append(f"since: {state.since.isoformat()}")
    if state.message:
        lines.append(f"message: {state.message}")
    if state.retry_after_seconds:
        lines.append(f"retry after: {state.retry_after_seconds}s")
    return "\n".join(lines)


class MaintenanceStep:
    kind: ClassVar[str] = "maintenance"
    args_model: ClassVar[type[StepArgs]] = MaintenanceArgs

    def describe(self, args: MaintenanceArgs) -> str:
        if args.action == "status":
            return f"check whether the maintenance page of {args.site} is on"
        return f"switch the maintenance page of {args.site} {args.action}"

    def destructive(self, args: MaintenanceArgs) -> bool:
        return args.action != "status"

    async def run(self, args: MaintenanceArgs, context: StepContext) -> StepOutcome:
        site = context.config.maintenance.get(args.site)
        if site is None:
            known = ", ".join(sorted(context.config.maintenance)) or "none configured"
            raise UserError(f"no maintenance site {args.site!r} under [runbooks.maintenance] ({known})")
        flag: MaintenanceFlag | RemoteMaintenanceFlag
        if site.host is not None:
            host = context.config.hosts.get(site.host)
            if host is None:
                raise UserError(
                    f"maintenance site {args.site}: host {site.host!r} is not under [runbooks.hosts]"
                )
            flag = RemoteMaintenanceFlag(host, site.host, site.flag_file)
        else:
            flag = MaintenanceFlag(site.flag_file)
        if args.action == "on":
            state = await flag.switch_on(
                now=context.clock.now(), message=args.message, retry_after_seconds=args.retry_after_seconds
            )
            summary = f"maintenance page of {args.site} is on" + (
                "" if state.changed else " (it already was)"
            )
        elif args.action == "off":
            state = await flag.switch_off()
            summary = f"maintenance page of {args.site} is off" + (
                "" if state.changed else " (it already was)"
            )
        else:
            state = await flag.status()
            summary = f"maintenance page of {args.site} is {'on' if state.on else 'off'}"
            if state.on and state.since:
                summary += f" since {state.since.isoformat(timespec='minutes')}"
        return StepOutcome(ok=True, summary=summary, output=_details(state), data=_data(state))


STEP = MaintenanceStep()
