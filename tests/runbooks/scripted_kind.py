"""A step kind for engine tests: does what its arguments say, and remembers it."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import Field

from bot.runbooks.step import StepArgs, StepContext, StepOutcome

CALLS: list[dict[str, Any]] = []


class ScriptedArgs(StepArgs):
    ok: bool = True
    sleep: float = 0
    output: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    changes: bool = False
    value: str = ""
    secret: str = ""


class ScriptedStep:
    kind: ClassVar[str] = "scripted"
    args_model: ClassVar[type[StepArgs]] = ScriptedArgs

    def describe(self, args: ScriptedArgs) -> str:
        return f"scripted value={args.value!r}"

    def destructive(self, args: ScriptedArgs) -> bool:
        return args.changes

    async def run(self, args: ScriptedArgs, context: StepContext) -> StepOutcome:
        CALLS.append(args.model_dump())
        if args.sleep:
            await asyncio.sleep(args.sleep)
        output = args.output + (f" token={args.secret}" if args.secret else "")
        return StepOutcome(args.ok, "done" if args.ok else "it broke", output, dict(args.data))


STEP = ScriptedStep()
