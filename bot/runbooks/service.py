"""Runbooks as one service for every way in (Slack, command line, automation):
find a runbook, plan it, record the request, and execute it with an audit row
per step.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.errors import UserError
from bot.runbooks.config import RunbooksConfig
from bot.runbooks.engine import RunbookEngine, RunReport, StepStatus
from bot.runbooks.library import RunbookLibrary, load_library, read_runbook
from bot.runbooks.model import RunbookSpec
from bot.runbooks.plan import Plan, RunbookInvalid, build_plan, check_runbook
from bot.runbooks.runs import RunState, RunStore
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import Interaction, StepContext
from bot.settings import Settings

ProgressHook = Callable[[RunReport], Awaitable[None]]


@dataclass(frozen=True)
class Requested:
    run_id: int
    plan: Plan


class RunbookService:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        secrets: SecretStore,
        ssl_context: ssl.SSLContext,
        *,
        open_network: bool = False,
        library: RunbookLibrary | None = None,
    ) -> None:
        self._settings = settings
        self._config = settings.config.runbooks
        self._clock = clock
        self._secrets = secrets
        self._ssl_context = ssl_context
        self._open_network = open_network
        self.store = RunStore(engine)
        self._library = library

    @property
    def library(self) -> RunbookLibrary:
        """The runbooks, read on first use: a firebell that never runs one
        never imports the step kinds' clients."""
        if self._library is None:
            self._library = load_library(self._config, services=self.services)
        return self._library

    @property
    def config(self) -> RunbooksConfig:
        return self._config

    @property
    def services(self) -> list[str]:
        return sorted(self._settings.config.services)

    @property
    def hosts(self) -> list[str]:
        return sorted(self._config.hosts)

    def find(self, name_or_path: str) -> RunbookSpec:
        """A runbook by name, or the runbook file at a path (checked like ``validate`` does)."""
        spec = self.library.get(name_or_path)
        if spec is not None:
            return spec
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
            loaded, problems = read_runbook(path)
            if loaded is not None:
                problems = check_runbook(loaded, hosts=self.hosts, services=self.services)
            if problems or loaded is None:
                raise RunbookInvalid(problems)
            return loaded
        known = ", ".join(sorted(self.library.runbooks)) or "none"
        raise UserError(f"no runbook named `{name_or_path}` (known: {known})")

    def plan(self, spec: RunbookSpec, given: dict[str, str]) -> Plan:
        return build_plan(spec, given, hosts=self.hosts, services=self.services)

    async def request(
        self,
        plan: Plan,
        *,
        origin: str,
        requested_by: str,
        incident_id: int | None = None,
        channel_id: str | None = None,
    ) -> Requested:
        run_id = await self.store.create(
            plan,
            origin=origin,
            requested_by=requested_by,
            incident_id=incident_id,
            channel_id=channel_id,
            now=self._clock.now(),
        )
        return Requested(run_id, plan)

    def engine_for(
        self, interaction: Interaction | None, incident_service: str | None = None
    ) -> RunbookEngine:
        context = StepContext(
            config=self._config,
            secrets=self._secrets,
            clock=self._clock,
            ssl_context=self._ssl_context,
            timeout=120,
            incident_service=incident_service,
            settings=self._settings,
            open_network=self._open_network,
            interaction=interaction,
        )
        return RunbookEngine(context, output_chars=self._config.step_output_chars)

    async def execute(
        self,
        run_id: int,
        plan: Plan,
        *,
        actor: str,
        runner: str,
        interaction: Interaction | None = None,
        on_change: ProgressHook | None = None,
        incident_service: str | None = None,
        approved_by: str | None = None,
    ) -> RunReport:
        """Run a requested plan (once: a second start of the same run is refused)."""
        started = await self.store.transition(
            run_id,
            {RunState.PLANNED, RunState.AWAITING_APPROVAL},
            RunState.RUNNING,
            self._clock.now(),
            actor,
            runner=runner,
            approved_by=approved_by,
        )
        if not started:
            raise UserError(f"run #{run_id} has already started or ended")
        engine = self.engine_for(interaction, incident_service)
        audited: set[int] = set()

        async def changed(report: RunReport) -> None:
            for index, record in enumerate(report.records):
                done = record.status not in (StepStatus.PENDING, StepStatus.RUNNING)
                if done and index not in audited:
                    audited.add(index)
                    await self.store.note(run_id, self._clock.now(), None, "step", record.to_dict())
            if on_change is not None:
                await on_change(report)

        async def cancelled() -> bool:
            return await self.store.cancel_requested(run_id)

        report = await engine.run(plan, on_change=changed, cancelled=cancelled)
        await self.store.finish(run_id, report, self._clock.now())
        return report
