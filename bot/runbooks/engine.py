"""Running a plan: steps in order, each with its timeout, condition and failure rule.

After every change the engine calls ``on_change`` with the whole report, so
Slack can update one message in place and the command line can print a line.
Cancellation is checked between steps (a step that has started finishes or
times out; a half-run restart is worse than a finished one). Every output is
passed through the secret store's redaction and capped before anyone sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from bot.errors import IntegrationError, UserError
from bot.runbooks.conditions import path_lookup
from bot.runbooks.params import fill_secrets
from bot.runbooks.plan import Plan, PlannedStep
from bot.runbooks.step import StepContext, StepOutcome


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class StepRecord:
    id: str
    line: str
    destructive: bool
    rollback: bool = False
    status: StepStatus = StepStatus.PENDING
    seconds: float | None = None
    summary: str = ""
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "line": self.line,
            "destructive": self.destructive,
            "rollback": self.rollback,
            "status": self.status.value,
            "seconds": self.seconds,
            "summary": self.summary,
            "data": self.data,
        }


@dataclass
class RunReport:
    plan: Plan
    records: list[StepRecord]
    status: RunStatus = RunStatus.RUNNING

    def outputs(self) -> str:
        """Every step's full output, for the output file."""
        parts = []
        for record in self.records:
            if record.status in (StepStatus.PENDING, StepStatus.NOT_RUN):
                continue
            head = f"== {record.id} ({record.status.value}) {record.line}"
            parts.append(f"{head}\n{record.summary}\n{record.output}".rstrip())
        return "\n\n".join(parts) + "\n"


ChangeHook = Callable[[RunReport], Awaitable[None]]
CancelCheck = Callable[[], Awaitable[bool]]


async def _never() -> bool:
    return False


async def _ignore(_report: RunReport) -> None:
    return None


class RunbookEngine:
    """Executes plans with a base ``StepContext`` (config, secrets, clock, TLS)."""

    def __init__(self, context: StepContext, *, output_chars: int = 200_000) -> None:
        self._context = context
        self._output_chars = output_chars

    def new_report(self, plan: Plan) -> RunReport:
        records = [StepRecord(step.id, step.describe(), step.destructive) for step in plan.steps]
        return RunReport(plan, records)

    async def run(
        self,
        plan: Plan,
        *,
        on_change: ChangeHook = _ignore,
        cancelled: CancelCheck = _never,
        report: RunReport | None = None,
    ) -> RunReport:
        report = report or self.new_report(plan)
        results: dict[str, StepOutcome] = {}
        failed = False
        for index, step in enumerate(plan.steps):
            record = report.records[index]
            if await cancelled():
                self._stop(report, index, RunStatus.CANCELLED)
                await on_change(report)
                return report
            if step.condition is not None and not step.condition.evaluate(
                self._lookup(plan, results, report)
            ):
                record.status = StepStatus.SKIPPED
                record.summary = f"skipped: `{step.spec.when}` is false"
                await on_change(report)
                continue
            outcome = await self._run_step(step, record, results, report, on_change)
            results[step.id] = outcome
            if outcome.ok:
                continue
            failed = True
            if step.spec.on_failure == "continue":
                continue
            if step.spec.on_failure == "rollback":
                await self._rollback(plan, step, results, report, on_change)
            self._stop(report, index + 1, RunStatus.FAILED)
            await on_change(report)
            return report
        report.status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        await on_change(report)
        return report

    async def _rollback(
        self,
        plan: Plan,
        failed: PlannedStep,
        results: dict[str, StepOutcome],
        report: RunReport,
        on_change: ChangeHook,
    ) -> None:
        for name in failed.spec.rollback:
            step = plan.rollback[name]
            record = StepRecord(step.id, step.describe(), step.destructive, rollback=True)
            report.records.append(record)
            results[step.id] = await self._run_step(step, record, results, report, on_change)

    async def _run_step(
        self,
        step: PlannedStep,
        record: StepRecord,
        results: dict[str, StepOutcome],
        report: RunReport,
        on_change: ChangeHook,
    ) -> StepOutcome:
        record.status = StepStatus.RUNNING
        await on_change(report)
        started = time.monotonic()
        context = replace(self._context, timeout=step.spec.timeout, results=dict(results))
        secrets = self._context.secrets
        try:
            args = step.kind.args_model.model_validate(fill_secrets(step.raw_args, secrets))
            async with asyncio.timeout(step.spec.timeout):
                outcome = await step.kind.run(args, context)
        except TimeoutError:
            outcome = StepOutcome(False, f"timed out after {step.spec.timeout:g} s")
        except (UserError, IntegrationError) as exc:
            outcome = StepOutcome(False, str(exc))
        except ValidationError as exc:
            outcome = StepOutcome(False, f"arguments are not valid: {exc.errors()[0]['msg']}")
        record.seconds = time.monotonic() - started
        record.status = StepStatus.OK if outcome.ok else StepStatus.FAILED
        record.summary = secrets.redact(outcome.summary)
        record.output = _cap(secrets.redact(outcome.output), self._output_chars)
        record.data = outcome.data
        await on_change(report)
        return StepOutcome(outcome.ok, record.summary, record.output, outcome.data)

    def _lookup(self, plan: Plan, results: dict[str, StepOutcome], report: RunReport) -> Callable[[str], Any]:
        skipped = {r.id for r in report.records if r.status is StepStatus.SKIPPED}
        roots: dict[str, Any] = {"params": plan.params}
        for step in plan.steps:
            outcome = results.get(step.id)
            roots[step.id] = {
                "ok": None if outcome is None else outcome.ok,
                "skipped": step.id in skipped,
                "data": {} if outcome is None else outcome.data,
            }
        return path_lookup(roots)

    @staticmethod
    def _stop(report: RunReport, first_unrun: int, status: RunStatus) -> None:
        for record in report.records[first_unrun:]:
            if record.status is StepStatus.PENDING:
                record.status = StepStatus.NOT_RUN
        report.status = status


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… cut: {len(text) - limit:,} more characters"
