"""Step kind ``smoke``: a journey of HTTP requests, each with expectations.

The post-incident check that the site works again: every request runs (one
failure does not hide the next), and the step passes only when all do.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from bot.runbooks.browser import BrowserJourney, run_journey
from bot.runbooks.http_check import Request, report_lines, send
from bot.runbooks.step import StepArgs, StepContext, StepOutcome


class SmokeArgs(StepArgs):
    base_url: str | None = None
    """Joined with each request's url when that is a path."""
    requests: list[Request] = Field(default_factory=list)
    browser: BrowserJourney | None = None
    """A journey in a real browser, after the requests."""

    @model_validator(mode="after")
    def _something(self) -> SmokeArgs:
        if not self.requests and self.browser is None:
            raise ValueError("a smoke step needs `requests`, a `browser` journey, or both")
        return self


class SmokeStep:
    kind: ClassVar[str] = "smoke"
    args_model: ClassVar[type[StepArgs]] = SmokeArgs

    def describe(self, args: SmokeArgs) -> str:
        where = f" against {args.base_url}" if args.base_url else ""
        browser = f" and a browser journey of {len(args.browser.steps)} steps" if args.browser else ""
        return f"{len(args.requests)} requests{where}{browser}"

    def destructive(self, args: SmokeArgs) -> bool:
        return False

    async def run(self, args: SmokeArgs, context: StepContext) -> StepOutcome:
        lines: list[str] = []
        failed: list[str] = []
        for request in args.requests:
            if args.base_url and request.url.startswith("/"):
                request = request.model_copy(update={"url": args.base_url.rstrip("/") + request.url})
            checked = await send(request, context, context.timeout)
            lines.append(("✓ " if checked.ok else "✗ ") + report_lines(checked))
            if not checked.ok:
                failed.append(f"{request.method} {request.url}: {'; '.join(checked.failures)}")
        total = len(args.requests)
        passed = total - len(failed)
        if args.browser is not None:
            ok, what, journey = await run_journey(args.browser, context, context.timeout)
            lines += ["browser:", *journey]
            total += 1
            passed += int(ok)
            if not ok:
                failed.append(what)
        if failed:
            summary = f"{len(failed)} of {total} failed — {failed[0]}"
        else:
            summary = f"all {total} requests passed" if args.browser is None else f"all {total} checks passed"
        return StepOutcome(not failed, summary, "\n".join(lines), {"failed": len(failed), "passed": passed})


STEP = SmokeStep()
