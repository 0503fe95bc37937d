"""Step kind ``notify``: a message to the incident channel (or the terminal)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bot.errors import UserError
from bot.runbooks.step import StepArgs, StepContext, StepOutcome


class NotifyArgs(StepArgs):
    text: str = Field(min_length=1, max_length=3000)


class NotifyStep:
    kind: ClassVar[str] = "notify"
    args_model: ClassVar[type[StepArgs]] = NotifyArgs

    def describe(self, args: NotifyArgs) -> str:
        return f"post: {args.text[:80]}"

    def destructive(self, args: NotifyArgs) -> bool:
        return False

    async def run(self, args: NotifyArgs, context: StepContext) -> StepOutcome:
        if context.interaction is None:
            raise UserError("nowhere to post: this run has no channel")
        await context.interaction.notify(args.text)
        return StepOutcome(True, "posted", args.text)


STEP = NotifyStep()
