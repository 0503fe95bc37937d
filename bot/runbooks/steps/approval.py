"""Step kind ``approval``: wait, mid-run, until someone with a role approves.

For a pause between diagnosis and repair ("the drain is next — go?"). The
step's timeout bounds the wait; a refusal or a timeout fails the step.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bot.errors import UserError
from bot.runbooks.step import StepArgs, StepContext, StepOutcome


class ApprovalArgs(StepArgs):
    role: str | None = None
    """Approver role from [runbooks.approvers]; without one, anyone in the channel."""
    prompt: str = Field(default="Continue?", max_length=500)


class ApprovalStep:
    kind: ClassVar[str] = "approval"
    args_model: ClassVar[type[StepArgs]] = ApprovalArgs

    def describe(self, args: ApprovalArgs) -> str:
        who = f"someone in `{args.role}`" if args.role else "anyone"
        return f"wait for {who} to approve: {args.prompt}"

    def destructive(self, args: ApprovalArgs) -> bool:
        return False

    async def run(self, args: ApprovalArgs, context: StepContext) -> StepOutcome:
        if context.interaction is None:
            raise UserError("no one to ask: this run has no channel or terminal")
        approver = await context.interaction.approval(args.role, args.prompt)
        return StepOutcome(True, f"approved by {approver}", data={"approver": approver})


STEP = ApprovalStep()
