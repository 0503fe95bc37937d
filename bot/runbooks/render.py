"""Plans and progress as lines of text, the same for Slack and the terminal."""

from __future__ import annotations

from bot.runbooks.engine import RunReport, StepRecord, StepStatus
from bot.runbooks.plan import Plan

MARKS = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "…",
    StepStatus.OK: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.SKIPPED: "skipped",
    StepStatus.NOT_RUN: "not run",
}
DESTRUCTIVE = "⚠"


def plan_lines(plan: Plan) -> list[str]:
    """One line per step: number, id, what it does; changes marked ⚠."""
    lines = []
    for number, step in enumerate(plan.steps, 1):
        mark = f" {DESTRUCTIVE} changes something" if step.destructive else ""
        condition = f" (only if {step.spec.when})" if step.spec.when else ""
        lines.append(f"{number}. {step.id}: {step.describe()}{condition}{mark}")
    for step in plan.rollback.values():
        mark = f" {DESTRUCTIVE}" if step.destructive else ""
        lines.append(f"↩ rollback {step.id}: {step.describe()}{mark}")
    return lines


def params_line(plan: Plan) -> str:
    given = {k: v for k, v in plan.params.items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in given.items()) or "no parameters"


def record_line(record: StepRecord) -> str:
    mark = MARKS[record.status]
    took = f" ({record.seconds:.1f} s)" if record.seconds is not None else ""
    prefix = "↩ " if record.rollback else ""
    summary = f" — {record.summary}" if record.summary else ""
    return f"{mark} {prefix}{record.id}{took}{summary}"


def progress_lines(report: RunReport) -> list[str]:
    return [record_line(record) for record in report.records]
