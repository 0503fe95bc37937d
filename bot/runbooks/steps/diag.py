"""Step kind ``diag``: the diagnostics of ``/incident diag``, with their verdict as data.

``check: http`` probes URLs and sets ``data.level`` to the worst verdict
(ok, degraded, down, refused) and ``data.status`` to the first URL's final
status; ``check: logs`` analyses a configured log source and sets
``data.spikes`` and ``data.errors_5xx``. ``timeouts``, ``resources`` and
``monitors`` report their findings, with ``data.critical`` counted. A diag
step fails only when it cannot run; conditions decide what its verdict means.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bot.diagnostics.http_probe import ProbeOptions, probe_many
from bot.diagnostics.verdict import summary, verdict
from bot.errors import UserError
from bot.runbooks.http_check import policy_for
from bot.runbooks.step import StepArgs, StepContext, StepOutcome
from bot.settings import Settings

_LEVELS = ["ok", "degraded", "down", "refused"]


class DiagArgs(StepArgs):
    check: Literal["http", "logs", "timeouts", "resources", "monitors"]
    urls: list[str] = Field(default_factory=list)
    count: int = Field(default=1, ge=1, le=50)
    source: str | None = None
    """check: logs — a name under [diagnostics.log_sources]."""
    target: str | None = None
    """check: resources — the instance to look at."""


class DiagStep:
    kind: ClassVar[str] = "diag"
    args_model: ClassVar[type[StepArgs]] = DiagArgs

    def describe(self, args: DiagArgs) -> str:
        what = {
            "http": " ".join(args.urls),
            "logs": args.source or "",
            "resources": args.target or "",
        }.get(args.check, "")
        return f"diag {args.check} {what}".rstrip()

    def destructive(self, args: DiagArgs) -> bool:
        return False

    async def run(self, args: DiagArgs, context: StepContext) -> StepOutcome:
        settings = context.settings
        if settings is None:
            raise UserError("diag steps need firebell's configuration")
        if args.check == "http":
            return await _http(args, context, settings)
        if args.check == "logs":
            return await _logs(args, settings)
        return await _findings(args, settings)


async def _http(args: DiagArgs, context: StepContext, settings: Settings) -> StepOutcome:
    if not args.urls:
        raise UserError("diag http needs `urls`")
    options = ProbeOptions(
        count=args.count, timeout=min(context.timeout, 30.0), ca_file=settings.ssl_cert_file
    )
    results = await probe_many(args.urls, policy=policy_for(context), options=options)
    judged = [verdict(d) for d in results]
    worst = max((j.level for j in judged), key=_LEVELS.index)
    lines = [f"{d.url}: {j.level} — {j.text}" for d, j in zip(results, judged, strict=True)]
    output = "\n\n".join(summary(d, j) for d, j in zip(results, judged, strict=True))
    status = results[0].main.status
    return StepOutcome(True, "; ".join(lines)[:300], output, {"level": worst, "status": status})


async def _logs(args: DiagArgs, settings: Settings) -> StepOutcome:
    from bot.diagnostics.chat import analyse_log_source
    from bot.logs import summarize

    if not args.source:
        raise UserError("diag logs needs `source` (a name under [diagnostics.log_sources])")
    report, _files = await analyse_log_source(settings.config, args.source)
    text = summarize(report)
    errors_5xx = sum(count for status, count in report.status.items() if 500 <= status <= 599)
    data = {
        "source": args.source,
        "spikes": len(report.spikes),
        "errors_5xx": errors_5xx,
        "requests": report.parsed,
    }
    return StepOutcome(True, text.splitlines()[0][:300], text, data)


async def _findings(args: DiagArgs, settings: Settings) -> StepOutcome:
    from bot.diagnostics.chat import plain, run_monitors, run_resources, run_timeouts

    if args.check == "timeouts":
        reply = await run_timeouts(settings)
    elif args.check == "resources":
        if not args.target:
            raise UserError("diag resources needs `target`")
        reply = await run_resources(settings, args.target)
    else:
        reply = await run_monitors(settings)
    text = plain(reply.text)
    critical = text.count(":red_circle:")
    return StepOutcome(True, text.splitlines()[0][:300], text, {"critical": critical})


STEP = DiagStep()
