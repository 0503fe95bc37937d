"""Runbook runs in the database: the run row, its audit trail, and the approval rule.

Every run — from Slack, the command line or an automation rule — is a row in
``runbook_runs`` with its plan and parameters, and every request, approval,
step result and ending is a row in ``runbook_audit``, so "who restarted the
database at 03:12, with what, and what came back" has one answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.runbooks.engine import RunReport
from bot.runbooks.model import RunbookSpec
from bot.runbooks.plan import Plan
from bot.store.tables import RunbookAudit, RunbookRun

RUNS = RunbookRun.__table__  # type: ignore[attr-defined]
AUDIT = RunbookAudit.__table__  # type: ignore[attr-defined]


class RunState(StrEnum):
    PLANNED = "planned"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


FINISHED = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.INTERRUPTED})


@dataclass(frozen=True)
class RunRow:
    id: int
    runbook: str
    incident_id: int | None
    origin: str
    params: dict[str, Any]
    plan: dict[str, Any]
    status: RunState
    requested_by: str
    approved_by: str | None
    channel_id: str | None
    message_ts: str | None
    progress_ts: str | None
    cancel_requested: bool


def approval_refusal(
    spec: RunbookSpec, plan: Plan, *, requested_by: str, approver: str, approver_in_role: bool
) -> str | None:
    """Why ``approver`` may not start this run, or None when they may.

    A plan that changes nothing runs for anyone who may see it. A plan that
    changes something needs someone in the runbook's approver role (when it
    names one) and, for a two-person runbook, someone other than the requester.
    """
    if not plan.destructive:
        return None
    role = spec.approval.role
    if role is not None and not approver_in_role:
        return f"only members of the `{role}` approvers may run its changes"
    if spec.approval.two_person and approver == requested_by:
        return "this runbook needs a second person: someone else must approve it"
    return None


class RunStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        plan: Plan,
        *,
        origin: str,
        requested_by: str,
        incident_id: int | None,
        channel_id: str | None,
        now: datetime,
    ) -> int:
        async with self._engine.begin() as connection:
            run_id = await connection.scalar(
                insert(RUNS)
                .values(
                    runbook=plan.runbook.name,
                    incident_id=incident_id,
                    origin=origin,
                    params=_dumps(plan.params),
                    plan=_dumps(plan.to_dict()),
                    status=RunState.PLANNED.value,
                    requested_by=requested_by,
                    channel_id=channel_id,
                    cancel_requested=False,
                    created_at=now,
                )
                .returning(RUNS.c.id)
            )
            assert run_id is not None
            await self._audit(connection, int(run_id), now, requested_by, "requested", plan.to_dict())
        return int(run_id)

    async def get(self, run_id: int) -> RunRow | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(RUNS).where(RUNS.c.id == run_id))).first()
        if row is None:
            return None
        return RunRow(
            id=row.id,
            runbook=row.runbook,
            incident_id=row.incident_id,
            origin=row.origin,
            params=json.loads(row.params),
            plan=json.loads(row.plan),
            status=RunState(row.status),
            requested_by=row.requested_by,
            approved_by=row.approved_by,
            channel_id=row.channel_id,
            message_ts=row.message_ts,
            progress_ts=row.progress_ts,
            cancel_requested=row.cancel_requested,
        )

    async def set_messages(
        self, run_id: int, *, message_ts: str | None = None, progress_ts: str | None = None
    ) -> None:
        values = {k: v for k, v in {"message_ts": message_ts, "progress_ts": progress_ts}.items() if v}
        if values:
            async with self._engine.begin() as connection:
                await connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))

    async def note(self, run_id: int, now: datetime, actor: str | None, action: str, detail: Any) -> None:
        async with self._engine.begin() as connection:
            await self._audit(connection, run_id, now, actor, action, detail)

    async def transition(
        self,
        run_id: int,
        expected: set[RunState],
        new: RunState,
        now: datetime,
        actor: str | None,
        *,
        runner: str | None = None,
        approved_by: str | None = None,
    ) -> bool:
        """Move the run from one of ``expected`` to ``new``; False when someone else moved it first."""
        values: dict[str, Any] = {"status": new.value}
        if new is RunState.RUNNING:
            values["started_at"] = now
            values["runner"] = runner
        if approved_by is not None:
            values["approved_by"] = approved_by
        if new in FINISHED:
            values["finished_at"] = now
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status.in_([s.value for s in expected]))
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            await self._audit(
                connection, run_id, now, actor, new.value, {"approved_by": approved_by} if approved_by else {}
            )
        return True

    async def request_cancel(self, run_id: int, now: datetime, actor: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(cancel_requested=True))
            await self._audit(connection, run_id, now, actor, "cancel_requested", {})

    async def cancel_requested(self, run_id: int) -> bool:
        async with self._engine.connect() as connection:
            return bool(await connection.scalar(select(RUNS.c.cancel_requested).where(RUNS.c.id == run_id)))

    async def finish(self, run_id: int, report: RunReport, now: datetime) -> None:
        results = [record.to_dict() for record in report.records]
        async with self._engine.begin() as connection:
            await connection.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status=report.status.value, results=_dumps(results), finished_at=now)
            )
            await self._audit(connection, run_id, now, None, report.status.value, {"steps": results})

    async def running(self) -> list[tuple[int, str | None]]:
        """(run id, runner) of every run marked running."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(RUNS.c.id, RUNS.c.runner).where(RUNS.c.status == RunState.RUNNING.value)
            )
            return [(int(r.id), r.runner) for r in rows]

    async def audit_trail(self, run_id: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(AUDIT).where(AUDIT.c.run_id == run_id).order_by(AUDIT.c.id)
            )
            return [
                {"at": r.at, "actor": r.actor, "action": r.action, "detail": json.loads(r.detail)}
                for r in rows
            ]

    @staticmethod
    async def _audit(
        connection: AsyncConnection, run_id: int, now: datetime, actor: str | None, action: str, detail: Any
    ) -> None:
        await connection.execute(
            insert(AUDIT).values(run_id=run_id, at=now, actor=actor, action=action, detail=_dumps(detail))
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
