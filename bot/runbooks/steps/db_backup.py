"""Step kind ``db_backup``: is the newest backup of a source fresh, non-empty and restorable?

The source comes from ``[runbooks.backups.<name>]``; the checks live in
``bot.runbooks.backup``. Not destructive: the only database it writes is a
scratch database it creates and drops itself. There is deliberately no option
to restore anywhere else.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bot.errors import UserError
from bot.runbooks.backup import verify_backup
from bot.runbooks.step import StepArgs, StepContext, StepOutcome


class DbBackupArgs(StepArgs):
    source: str
    """A name under ``[runbooks.backups]``."""
    restore: bool = True
    """Also restore into a scratch database and run the source's checks (needs ``scratch_url``)."""


class DbBackupStep:
    kind: ClassVar[str] = "db_backup"
    args_model: ClassVar[type[StepArgs]] = DbBackupArgs

    def describe(self, args: Any) -> str:
        assert isinstance(args, DbBackupArgs)
        how = "restore into a scratch database and run its checks" if args.restore else "list its contents"
        return f"check the newest backup of {args.source}: age, size, {how}"

    def destructive(self, args: Any) -> bool:
        return False

    async def run(self, args: Any, context: StepContext) -> StepOutcome:
        assert isinstance(args, DbBackupArgs)
        source = context.config.backups.get(args.source)
        if source is None:
            known = ", ".join(sorted(context.config.backups)) or "none configured"
            raise UserError(
                f"unknown backup source `{args.source}` (known under [runbooks.backups]: {known})"
            )
        report = await verify_backup(args.source, source, now=context.clock.now(), restore=args.restore)
        output = report.render()
        limit = context.config.step_output_chars
        if len(output) > limit:
            output = output[:limit] + f"\n[… output cut: {len(output) - limit} more characters]"
        return StepOutcome(ok=report.ok, summary=report.summary(), output=output, data=report.data)


STEP = DbBackupStep()
