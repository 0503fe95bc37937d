"""Runbooks in an incident channel: the plan with Run / Cancel, approvals,
one progress message in a thread updated step by step, the full output as a
file, and the incident timeline.

Run, Cancel and Approve are buttons whose value is the run id; the state
lives in ``runbook_runs``, so a click may land on any replica. The run itself
executes in the process that accepted the Run click.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.errors import UserError
from bot.incidents.card import clip, escape
from bot.incidents.model import Actor, IncidentView
from bot.incidents.views import MAX_SECTION, Reply, section
from bot.ports import ChatChannel
from bot.runbooks.engine import RunReport, RunStatus
from bot.runbooks.model import RunbookSpec
from bot.runbooks.params import parse_assignments
from bot.runbooks.plan import Plan
from bot.runbooks.render import DESTRUCTIVE, params_line, plan_lines, progress_lines
from bot.runbooks.runs import FINISHED, RunRow, RunState, approval_refusal
from bot.runbooks.service import RunbookService

log = logging.getLogger(__name__)

ACTION_RUN = "firebell_runbook_run"
ACTION_CANCEL = "firebell_runbook_cancel"
ACTION_APPROVE_STEP = "firebell_runbook_approve_step"
APPROVAL_POLL_SECONDS = 1.0
AUTOMATION = "firebell (self-healing)"

InGroups = Callable[[str | None, Sequence[str]], Awaitable[bool]]
RecordTimeline = Callable[[int, str, Actor], Awaitable[None]]

STATUS_EMOJI = {
    RunStatus.SUCCEEDED: ":white_check_mark:",
    RunStatus.FAILED: ":x:",
    RunStatus.CANCELLED: ":no_entry_sign:",
}


@dataclass(frozen=True)
class ClickResult:
    """What the person who clicked is told (ephemeral), if anything."""

    text: str | None = None


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def plan_blocks(
    plan: Plan, run_id: int, requester: str, status: str, *, buttons: bool
) -> list[dict[str, Any]]:
    """The plan message: what will run, what changes something, who may approve."""
    runbook = plan.runbook
    lines = "\n".join(escape(line) for line in plan_lines(plan))
    blocks = [
        section(
            f":clipboard: *Runbook `{runbook.name}`* (run #{run_id}) asked for by {_mention(requester)}\n"
            f"{escape(runbook.description)}"
        ),
        section(f"*Parameters:* {escape(params_line(plan))}\n*Steps:*\n{lines}"),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(status, 2000)}]},
    ]
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button("Run", ACTION_RUN, str(run_id), "primary"),
                    _button("Cancel", ACTION_CANCEL, str(run_id), "danger"),
                ],
            }
        )
    return blocks


def _mention(requester: str) -> str:
    return requester if requester == AUTOMATION else f"<@{requester}>"


def approval_text(spec: RunbookSpec, plan: Plan) -> str:
    if not plan.destructive:
        return "Changes nothing: the requester or anyone in the channel may press Run."
    who = (
        f"a member of the `{spec.approval.role}` approvers"
        if spec.approval.role
        else "someone in the channel"
    )
    second = " other than the requester" if spec.approval.two_person else ""
    return f"{DESTRUCTIVE} Changes something: Run needs {who}{second}."


class SlackInteraction:
    """``notify`` and ``approval`` steps for a run reporting in a thread."""

    def __init__(self, flow: RunbookChat, run: RunRow, thread_ts: str | None) -> None:
        self._flow = flow
        self._run = run
        self._thread_ts = thread_ts
        self._asked = 0

    async def notify(self, text: str) -> None:
        assert self._run.channel_id is not None
        await self._flow.chat.post(self._run.channel_id, escape(text))

    async def approval(self, role: str | None, prompt: str) -> str:
        assert self._run.channel_id is not None
        self._asked += 1
        token = f"{self._run.id}:{self._asked}"
        who = f"a member of `{role}`" if role else "anyone here"
        text = f":raised_hand: Runbook run #{self._run.id} waits for {who}: {escape(prompt)}"
        blocks = [
            section(text),
            {"type": "actions", "elements": [_button("Approve", ACTION_APPROVE_STEP, token, "primary")]},
        ]
        store = self._flow.service.store
        await store.note(
            self._run.id, self._flow.clock.now(), None, "approval_requested", {"token": token, "role": role}
        )
        await self._flow.chat.post(self._run.channel_id, text, blocks, thread_ts=self._thread_ts)
        while True:
            for entry in await store.audit_trail(self._run.id):
                if entry["action"] == "step_approved" and entry["detail"].get("token") == token:
                    return str(entry["actor"])
            if await store.cancel_requested(self._run.id):
                raise UserError("cancelled while waiting for approval")
            await asyncio.sleep(APPROVAL_POLL_SECONDS)


class RunbookChat:
    def __init__(
        self,
        service: RunbookService,
        chat: ChatChannel,
        clock: Clock,
        in_groups: InGroups,
        record_timeline: RecordTimeline,
        runner: str,
    ) -> None:
        self.service = service
        self.chat = chat
        self.clock = clock
        self._in_groups = in_groups
        self._record_timeline = record_timeline
        self._runner = runner
        self._tasks: set[asyncio.Task[None]] = set()

    # -- /incident runbook list | run -------------------------------------------

    def list_reply(self, incident: IncidentView) -> Reply:
        runbooks = self.service.library.for_service(incident.service)
        if not runbooks:
            return Reply("No runbooks apply to this incident's service. See `firebell runbook list`.")
        lines = []
        for spec in runbooks:
            params = " ".join(
                f"{p.name}=…"
                if p.default is None and p.required
                else f"[{p.name}={p.default if p.default is not None else ''}]"
                for p in spec.parameters
            )
            lines.append(f"• *{spec.name}* {escape(params)}\n    {escape(spec.description)}")
        text = "Runbooks for this incident (`/incident runbook run NAME key=value…`):\n" + "\n".join(lines)
        return Reply(clip(text, MAX_SECTION * 3))

    async def propose(self, incident: IncidentView, name: str, args_text: str, actor: Actor) -> Reply:
        """Plan the runbook and post the plan with Run / Cancel in the incident channel."""
        if incident.channel_id is None:
            raise UserError("This incident has no channel yet; try again in a moment.")
        if actor.slack_user_id is None:
            raise UserError("Runbooks are run by a Slack user.")
        spec = self._runbook(name)
        try:
            words = shlex.split(args_text)  # splits quoted values; nothing is executed
        except ValueError as exc:
            raise UserError(f"Cannot read the parameters: {exc}") from None
        plan = self.service.plan(spec, parse_assignments(words))
        requested = await self.service.request(
            plan,
            origin="slack",
            requested_by=actor.slack_user_id,
            incident_id=incident.id,
            channel_id=incident.channel_id,
        )
        status = approval_text(spec, plan)
        blocks = plan_blocks(plan, requested.run_id, actor.slack_user_id, status, buttons=True)
        ts = await self.chat.post(incident.channel_id, f"Runbook {spec.name}: plan for review", blocks)
        await self.service.store.set_messages(requested.run_id, message_ts=ts)
        await self._record_timeline(
            incident.id,
            f"Runbook {spec.name} requested (run #{requested.run_id}): {params_line(plan)}",
            actor,
        )
        return Reply(f"The plan for `{spec.name}` is in the channel: review it, then press Run.")

    def _runbook(self, name: str) -> RunbookSpec:
        spec = self.service.library.get(name)
        if spec is None:
            known = ", ".join(sorted(self.service.library.runbooks)) or "none"
            raise UserError(
                f"No runbook named `{escape(name)}` (known: {known}). See `/incident runbook list`."
            )
        return spec

    # -- buttons ---------------------------------------------------------------

    async def click_run(self, run_id: int, actor: Actor) -> ClickResult:
        run = await self._run(run_id)
        if run.status in FINISHED or run.status is RunState.RUNNING:
            return ClickResult(f"Run #{run_id} is already {run.status.value}.")
        spec = self._runbook(run.runbook)
        plan = self._replan(spec, run)
        clicker = actor.slack_user_id or ""
        role = spec.approval.role
        groups = self.service.config.approvers.get(role, []) if role else []
        in_role = role is None or await self._in_groups(actor.slack_user_id, groups)
        refusal = approval_refusal(
            spec, plan, requested_by=run.requested_by, approver=clicker, approver_in_role=in_role
        )
        if refusal is not None:
            if clicker == run.requested_by and run.status is RunState.PLANNED:
                await self.service.store.transition(
                    run_id, {RunState.PLANNED}, RunState.AWAITING_APPROVAL, self.clock.now(), clicker
                )
                await self._update_plan(
                    run, plan, f":hourglass: Waiting for approval: {refusal}.", buttons=True
                )
            return ClickResult(f"You cannot start run #{run_id}: {refusal}.")
        approved_by = clicker if clicker != run.requested_by else None
        task = asyncio.create_task(self._execute(run, plan, actor, approved_by))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ClickResult()

    async def click_cancel(self, run_id: int, actor: Actor) -> ClickResult:
        run = await self._run(run_id)
        who = actor.slack_user_id or actor.name
        if run.status in (RunState.PLANNED, RunState.AWAITING_APPROVAL):
            moved = await self.service.store.transition(
                run_id,
                {RunState.PLANNED, RunState.AWAITING_APPROVAL},
                RunState.CANCELLED,
                self.clock.now(),
                who,
            )
            if moved:
                spec = self._runbook(run.runbook)
                await self._update_plan(
                    run, self._replan(spec, run), f":no_entry_sign: Cancelled by <@{who}>.", buttons=False
                )
                return ClickResult()
        if run.status is RunState.RUNNING:
            await self.service.store.request_cancel(run_id, self.clock.now(), who)
            return ClickResult(f"Run #{run_id} will stop after the step that is running now.")
        return ClickResult(f"Run #{run_id} is already {run.status.value}.")

    async def click_approve_step(self, token: str, actor: Actor) -> ClickResult:
        run_part, _, _ = token.partition(":")
        run = await self._run(int(run_part) if run_part.isdigit() else -1)
        trail = await self.service.store.audit_trail(run.id)
        asked = next(
            (e for e in trail if e["action"] == "approval_requested" and e["detail"].get("token") == token),
            None,
        )
        if asked is None or run.status is not RunState.RUNNING:
            return ClickResult("Nothing is waiting for this approval any more.")
        role = asked["detail"].get("role")
        groups = self.service.config.approvers.get(str(role), []) if role else []
        if role and not await self._in_groups(actor.slack_user_id, groups):
            return ClickResult(f"Only members of the `{role}` approvers may approve this step.")
        who = actor.slack_user_id or actor.name
        await self.service.store.note(run.id, self.clock.now(), who, "step_approved", {"token": token})
        return ClickResult(f"Approved; run #{run.id} goes on.")

    async def _run(self, run_id: int) -> RunRow:
        run = await self.service.store.get(run_id)
        if run is None:
            raise UserError(f"Runbook run #{run_id} does not exist.")
        return run

    def _replan(self, spec: RunbookSpec, run: RunRow) -> Plan:
        given = {k: _text(v) for k, v in run.params.items() if v is not None}
        plan = self.service.plan(spec, given)
        if plan.to_dict() != run.plan:
            raise UserError(
                f"Runbook `{spec.name}` changed since this plan was posted: "
                "ask for it again with `/incident runbook run`."
            )
        return plan

    async def _update_plan(self, run: RunRow, plan: Plan, status: str, *, buttons: bool) -> None:
        if run.channel_id and run.message_ts:
            blocks = plan_blocks(plan, run.id, run.requested_by, status, buttons=buttons)
            await self.chat.update(run.channel_id, run.message_ts, f"Runbook {plan.runbook.name}", blocks)

    # -- running -----------------------------------------------------------------

    async def _execute(self, run: RunRow, plan: Plan, actor: Actor, approved_by: str | None) -> None:
        assert run.channel_id is not None
        channel = run.channel_id
        name = plan.runbook.name
        approval = f", approved by <@{approved_by}>" if approved_by else ""
        try:
            await self._update_plan(
                run,
                plan,
                f":arrow_forward: Started by <@{actor.slack_user_id}>{approval}; progress in the thread.",
                buttons=False,
            )
            thread = run.message_ts
            progress_ts = await self.chat.post(channel, f"Runbook {name}: starting…", thread_ts=thread)
            await self.service.store.set_messages(run.id, progress_ts=progress_ts)
            last: list[str] = []

            async def show(report: RunReport) -> None:
                lines = progress_lines(report)
                if lines != last:
                    last[:] = lines
                    text = f"*Runbook `{name}`* (run #{run.id})\n" + "\n".join(escape(line) for line in lines)
                    await self.chat.update(channel, progress_ts, clip(text, 3000), [section(text)])

            report = await self.service.execute(
                run.id,
                plan,
                actor=actor.slack_user_id or actor.name,
                runner=self._runner,
                interaction=SlackInteraction(self, run, thread),
                on_change=show,
                approved_by=approved_by,
            )
            await self.chat.upload_file(
                channel,
                f"runbook-{run.id}-{name}.txt",
                f"Runbook {name} (run #{run.id}) output",
                report.outputs(),
                thread_ts=thread,
            )
            emoji = STATUS_EMOJI.get(report.status, ":grey_question:")
            await self._update_plan(
                run,
                plan,
                f"{emoji} {report.status.value} (started by <@{actor.slack_user_id}>{approval}).",
                buttons=False,
            )
            if run.incident_id is not None:
                summary = "; ".join(progress_lines(report))
                await self._record_timeline(
                    run.incident_id, f"Runbook {name} {report.status.value} (run #{run.id}): {summary}", actor
                )
        except Exception as exc:
            # The person who pressed Run is not waiting on this task: tell the channel.
            log.exception("runbook run %s failed to run", run.id)
            await self.chat.post(
                channel,
                f":x: Runbook run #{run.id} could not run: {escape(str(exc))}",
                thread_ts=run.message_ts,
            )

    # -- self-healing ---------------------------------------------------------------

    async def run_automatically(self, incident: IncidentView, name: str, params: dict[str, str]) -> None:
        """Run an automation-safe runbook for a newly opened incident, reporting in its channel."""
        if incident.channel_id is None:
            raise UserError("the incident has no channel")
        spec = self._runbook(name)
        if not spec.automation_safe:
            raise UserError("it has steps not marked automation_safe")
        plan = self.service.plan(spec, dict(params))
        requested = await self.service.request(
            plan,
            origin="automation",
            requested_by=AUTOMATION,
            incident_id=incident.id,
            channel_id=incident.channel_id,
        )
        status = ":robot_face: Self-healing: started by a rule under [runbooks.automation]."
        blocks = plan_blocks(plan, requested.run_id, AUTOMATION, status, buttons=False)
        ts = await self.chat.post(incident.channel_id, f"Runbook {spec.name}: self-healing", blocks)
        await self.service.store.set_messages(requested.run_id, message_ts=ts)
        run = await self._run(requested.run_id)
        await self._execute(run, plan, Actor(name=AUTOMATION), approved_by=None)

    async def sweep_interrupted(self, runner_gone: Callable[[str], bool]) -> list[int]:
        """Mark runs whose runner process is gone as interrupted, and say so in
        their thread. They are never resumed: half of a restart is not
        something to repeat blindly."""
        swept = []
        for run_id, runner in await self.service.store.running():
            if runner is None or not runner_gone(runner):
                continue
            moved = await self.service.store.transition(
                run_id, {RunState.RUNNING}, RunState.INTERRUPTED, self.clock.now(), None
            )
            run = await self.service.store.get(run_id)
            if moved and run is not None and run.channel_id:
                await self.chat.post(
                    run.channel_id,
                    f":warning: Runbook run #{run_id} (`{run.runbook}`) was interrupted: the firebell "
                    "running it stopped. Nothing was resumed; check the target, then ask again if needed.",
                    thread_ts=run.message_ts,
                )
            swept.append(run_id)
        return swept

    async def tell_channel(self, incident: IncidentView, text: str) -> None:
        if incident.channel_id is not None:
            await self.chat.post(incident.channel_id, text)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
