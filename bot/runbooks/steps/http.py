"""Step kind ``http``: one request with expectations on status, headers and body.

A GET, HEAD or OPTIONS changes nothing; any other method is treated as a
change (it needs ``confirm: true``) unless the author sets ``destructive: false``.
"""

from __future__ import annotations

from typing import ClassVar

from bot.runbooks.http_check import Request, report_lines, send
from bot.runbooks.step import StepArgs, StepContext, StepOutcome

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpArgs(Request, StepArgs):
    destructive: bool | None = None
    """Whether the request changes something; by default any method but GET, HEAD and OPTIONS does."""

    def request(self) -> Request:
        return Request.model_validate(self.model_dump(by_alias=True, exclude={"destructive"}))


class HttpStep:
    kind: ClassVar[str] = "http"
    args_model: ClassVar[type[StepArgs]] = HttpArgs

    def describe(self, args: HttpArgs) -> str:
        return f"{args.method} {args.url} (expect {' or '.join(map(str, args.expect.status))})"

    def destructive(self, args: HttpArgs) -> bool:
        return args.destructive if args.destructive is not None else args.method not in SAFE_METHODS

    async def run(self, args: HttpArgs, context: StepContext) -> StepOutcome:
        checked = await send(args.request(), context, context.timeout)
        summary = checked.line if checked.ok else f"{checked.line}: {'; '.join(checked.failures)}"
        return StepOutcome(
            checked.ok,
            summary,
            report_lines(checked),
            {"status": checked.status, "seconds": round(checked.seconds, 3)},
        )


STEP = HttpStep()
