"""Self-healing: runbooks that run by themselves when a matching incident opens.

``[[runbooks.automation]]`` rules bind alerts (source, service, severity,
labels) to a runbook. Only runbooks whose every step the author marked
``automation_safe`` may be bound; anything else is reported in the channel
and not run. The run is reported like any other (plan, thread, file,
timeline, audit), with firebell as the requester.

Opening an incident queues one ``runbook_automation`` job in the incident's
lane, after the job that opens its channel; the job matches the rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from bot.errors import UserError
from bot.incidents.model import IncidentView
from bot.incidents.records import RUNBOOK_AUTOMATION
from bot.runbooks.chat_flow import RunbookChat
from bot.runbooks.config import AutomationRule, RunbooksConfig
from bot.runbooks.library import RunbookLibrary
from bot.store.jobs import ClaimedJob
from bot.work.dispatch import JobHandler


def matching_rules(
    rules: Sequence[AutomationRule], source: str, service: str, severity: int, labels: Mapping[str, str]
) -> list[AutomationRule]:
    """The rules an alert matches: every condition a rule sets must hold."""
    return [
        rule
        for rule in rules
        if (rule.source is None or rule.source == source)
        and (rule.service is None or rule.service == service)
        and (not rule.severity or severity in rule.severity)
        and all(labels.get(key) == value for key, value in rule.labels.items())
    ]


def automation_problems(config: RunbooksConfig, library: RunbookLibrary) -> list[str]:
    """Rules that name a missing runbook, or one with a step not marked automation-safe."""
    problems = []
    for number, rule in enumerate(config.automation, 1):
        spec = library.get(rule.runbook)
        where = f"runbooks.automation[{number}]"
        if spec is None:
            problems.append(f"{where}: no runbook named `{rule.runbook}`")
        elif not spec.automation_safe:
            unsafe = [step.id for step in spec.steps + spec.rollback if not step.automation_safe]
            problems.append(
                f"{where}: `{rule.runbook}` has steps not marked automation_safe ({', '.join(unsafe)})"
            )
    return problems


class RunbookAutomation:
    """The job that matches an opened incident against the rules and runs what matches."""

    def __init__(self, flow: RunbookChat, load_incident: Callable[[int], Awaitable[IncidentView]]) -> None:
        self._flow = flow
        self._load_incident = load_incident

    def handlers(self) -> dict[str, JobHandler]:
        return {RUNBOOK_AUTOMATION: self._run}

    async def _run(self, job: ClaimedJob) -> None:
        payload = job.payload
        config = self._flow.service.config
        rules = matching_rules(
            config.automation,
            str(payload["source"]),
            str(payload["service"]),
            int(payload["severity"]),
            payload.get("labels") or {},
        )
        if not rules:
            return
        incident: IncidentView = await self._load_incident(int(job.lane.split(":", 1)[1]))
        for rule in rules:
            try:
                await self._flow.run_automatically(incident, rule.runbook, rule.params)
            except UserError as exc:
                await self._flow.tell_channel(
                    incident, f":warning: Self-healing runbook `{rule.runbook}` was not run: {exc}"
                )
