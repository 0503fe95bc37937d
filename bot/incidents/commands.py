"""What responders do from Slack, one transaction per action.

Handlers call these with plain values (ids, text, an ``Actor``); queued
effects start as soon as the transaction commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.severity import Severity
from bot.clock import Clock
from bot.commands.grammar import IncidentRef
from bot.errors import UserError
from bot.incidents.model import Actor, IncidentView, Phase, Role, Status, incident_view
from bot.incidents.postmortem import render_postmortem
from bot.incidents.records import INCIDENTS
from bot.incidents.response import Declaration, ResponseService
from bot.incidents.service import IncidentService
from bot.incidents.views import (
    FileReply,
    Reply,
    home_view,
    roles_reply,
    summary_reply,
    timeline_reply,
    update_modal,
)
from bot.notices.stats import communication_lines
from bot.ports import ChatChannel
from bot.settings import FirebellConfig, Settings

GROUP_CACHE_SECONDS = 60.0


class Permissions:
    """Who may declare, resolve and change severity: members of the
    configured Slack user groups, or everyone when none are configured."""

    def __init__(self, config: FirebellConfig, chat: ChatChannel | None) -> None:
        self._config = config.permissions
        self._chat = chat
        self._members: dict[str, tuple[float, set[str]]] = {}

    async def require(self, action: str, actor: Actor) -> None:
        groups: list[str] = getattr(self._config, action)
        if not groups or await self.in_groups(actor.slack_user_id, groups):
            return
        names = ", ".join(f"<!subteam^{g}>" for g in groups)
        verbs = {
            "declare": "declare incidents",
            "resolve": "resolve incidents",
            "severity": "change severity",
        }
        raise UserError(f"Only members of {names} may {verbs.get(action, action)}.")

    async def in_groups(self, slack_user_id: str | None, groups: Sequence[str]) -> bool:
        """Whether the user belongs to one of the Slack user groups."""
        if slack_user_id is None or self._chat is None:
            return False
        for group in groups:
            if slack_user_id in await self._group(group):
                return True
        return False

    async def _group(self, group: str) -> set[str]:
        cached = self._members.get(group)
        if cached is not None and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        assert self._chat is not None
        members = set(await self._chat.usergroup_members(group))
        self._members[group] = (time.monotonic(), members)
        return members


class IncidentCommands:
    """The responder-facing operations, each in its own transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        service: IncidentService,
        response: ResponseService,
        config: FirebellConfig,
        clock: Clock,
        chat: ChatChannel | None,
        on_jobs: Callable[[], None],
        ssl_cert_file: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._engine = engine
        self._ssl_cert_file = ssl_cert_file
        self._settings = settings
        self._service = service
        self._response = response
        self._config = config
        self._clock = clock
        self._chat = chat
        self._on_jobs = on_jobs
        self.permissions = Permissions(config, chat)

    async def role_holders(self, incident_id: int) -> dict[Role, str]:
        async with self._engine.connect() as connection:
            return await self._response.roles(connection, incident_id)

    async def incident(self, incident_id: int) -> IncidentView:
        async with self._engine.connect() as connection:
            return await self._response.load(connection, incident_id)

    async def find(self, channel_id: str | None, ref: IncidentRef | None) -> IncidentView:
        async with self._engine.connect() as connection:
            return await self._response.find(connection, channel_id=channel_id, ref=ref)

    # -- state changes -------------------------------------------------------

    async def acknowledge(self, incident_id: int, actor: Actor) -> IncidentView:
        async with self._engine.begin() as connection:
            incident = await self._service.act(connection, incident_id, Status.ACKNOWLEDGED, actor)
            await self._response.take_commander_if_free(connection, incident_id, actor)
        self._on_jobs()
        return incident

    async def resolve(self, incident_id: int, actor: Actor, note: str = "") -> IncidentView:
        await self.permissions.require("resolve", actor)
        async with self._engine.begin() as connection:
            incident = await self._service.act(connection, incident_id, Status.RESOLVED, actor, note=note)
        self._on_jobs()
        return incident

    async def reopen(self, incident_id: int, actor: Actor) -> IncidentView:
        async with self._engine.begin() as connection:
            incident = await self._service.act(connection, incident_id, Status.TRIGGERED, actor)
        self._on_jobs()
        return incident

    async def set_phase(self, incident_id: int, phase: Phase, note: str, actor: Actor) -> None:
        if phase is Phase.RESOLVED:
            await self.resolve(incident_id, actor, note)
            return
        async with self._engine.begin() as connection:
            incident = await self._response.load(connection, incident_id)
            if incident.status is Status.RESOLVED:
                raise UserError(f"Incident #{incident_id} is resolved; `/incident reopen` it first.")
            await self._response.set_phase(connection, incident, phase, note, actor)
        self._on_jobs()

    async def set_severity(self, incident_id: int, severity: Severity, actor: Actor) -> None:
        await self.permissions.require("severity", actor)
        async with self._engine.begin() as connection:
            incident = await self._response.load(connection, incident_id)
            await self._response.set_severity(connection, incident, severity, actor)
        self._on_jobs()

    async def assign_role(self, incident_id: int, role: Role, user_id: str, actor: Actor) -> None:
        async with self._engine.begin() as connection:
            incident = await self._response.load(connection, incident_id)
            await self._response.assign_role(connection, incident, role, user_id, actor)
        self._on_jobs()

    async def escalate(
        self, incident_id: int, actor: Actor, *, user_id: str | None = None, service: str | None = None
    ) -> str:
        async with self._engine.begin() as connection:
            incident = await self._response.load(connection, incident_id)
            what = await self._response.escalate(
                connection, incident, actor, user_id=user_id, service=service
            )
        self._on_jobs()
        return what

    async def post_update(self, incident_id: int, text: str, actor: Actor) -> None:
        if not text.strip():
            raise UserError("The update needs some text.")
        async with self._engine.begin() as connection:
            incident = await self._response.load(connection, incident_id)
            await self._response.post_update(connection, incident, text.strip(), actor)
        self._on_jobs()

    async def add_to_timeline(
        self, incident_id: int, text: str, actor: Actor, *, at: datetime | None = None, kind: str = "note"
    ) -> None:
        async with self._engine.begin() as connection:
            await self._response.add_note(connection, incident_id, text, actor, at=at, kind=kind)

    # -- diagnostics ---------------------------------------------------------
    # The engines (HTTP probe, TLS, config parsers) are imported on first use:
    # most processes never run one, and start-up stays lean.

    async def diagnose_http(self, incident_id: int, urls: Sequence[str], count: int, actor: Actor) -> Reply:
        """Probe URLs (guarded for chat) and record the verdicts on the timeline."""
        from bot.diagnostics import chat as diag_chat

        reply = await diag_chat.run_http(self._config, self._ssl_cert_file, urls, count)
        await self._record_diagnosis(incident_id, f"diag http {' '.join(urls)}", reply, actor)
        return reply

    async def diagnose_logs(self, incident_id: int, name: str, actor: Actor) -> Reply:
        """Analyse a configured access log and record the summary on the timeline."""
        from bot.diagnostics import chat as diag_chat

        reply = await diag_chat.run_logs(self._config, name)
        await self._record_diagnosis(incident_id, f"diag logs {name}", reply, actor)
        return reply

    async def diagnose_timeouts(self, incident_id: int, actor: Actor) -> Reply:
        """Compare the configured proxy timeouts and record the findings on the timeline."""
        from bot.diagnostics import chat as diag_chat

        reply = await diag_chat.run_timeouts(self._require_settings())
        await self._record_diagnosis(incident_id, "diag timeouts", reply, actor)
        return reply

    async def diagnose_resources(self, incident_id: int, target: str, actor: Actor) -> Reply:
        """Resources of ``target`` from the configured Prometheus, recorded on the timeline."""
        from bot.diagnostics import chat as diag_chat

        reply = await diag_chat.run_resources(self._require_settings(), target)
        await self._record_diagnosis(incident_id, f"diag resources {target}", reply, actor)
        return reply

    async def diagnose_monitors(self, incident_id: int, check: str | None, actor: Actor) -> Reply:
        """Uptime checks from the configured providers, recorded on the timeline."""
        from bot.diagnostics import chat as diag_chat

        reply = await diag_chat.run_monitors(self._require_settings(), check)
        await self._record_diagnosis(incident_id, f"diag monitors {check or ''}".rstrip(), reply, actor)
        return reply

    def _require_settings(self) -> Settings:
        if self._settings is None:
            raise UserError(
                "This diagnosis is not available here: firebell was started without its settings."
            )
        return self._settings

    async def _record_diagnosis(self, incident_id: int, what: str, reply: Reply, actor: Actor) -> None:
        from bot.diagnostics import chat as diag_chat

        text = f"{what}\n{diag_chat.plain(reply.text)}"
        await self.add_to_timeline(incident_id, text[:3000], actor, kind="diag")

    async def declare(self, declaration: Declaration, actor: Actor) -> int:
        await self.permissions.require("declare", actor)
        if not declaration.title.strip():
            raise UserError("The incident needs a title.")
        async with self._engine.begin() as connection:
            incident_id = await self._response.declare(connection, declaration, actor)
        self._on_jobs()
        return incident_id

    # -- reading -------------------------------------------------------------

    async def roles(self, incident_id: int) -> Reply:
        async with self._engine.connect() as connection:
            incident = await self._response.load(connection, incident_id)
            roles = await self._response.roles(connection, incident_id)
        return roles_reply(incident, roles)

    async def timeline(self, incident_id: int) -> Reply:
        async with self._engine.connect() as connection:
            incident = await self._response.load(connection, incident_id)
            items = await self._response.timeline(connection, incident_id)
        return timeline_reply(incident, items)

    async def summary(self, incident_id: int) -> Reply:
        async with self._engine.connect() as connection:
            incident = await self._response.load(connection, incident_id)
            roles = await self._response.roles(connection, incident_id)
            last = await self._response.last_update(connection, incident_id)
            items = await self._response.timeline(connection, incident_id)
        return summary_reply(incident, roles, last, items, self._clock.now())

    async def postmortem(self, incident_id: int) -> Reply:
        async with self._engine.connect() as connection:
            incident = await self._response.load(connection, incident_id)
            roles = await self._response.roles(connection, incident_id)
            items = await self._response.timeline(connection, incident_id)
            communication = await communication_lines(connection, incident, self._clock.now())
        names = await self._names([*roles.values(), *incident.responders])
        document = render_postmortem(incident, roles, items, names, self._clock.now(), communication)
        title = f"Postmortem draft: #{incident.id} {incident.title}"
        return Reply(
            text=f"Postmortem draft for #{incident.id} — edit it and share it.",
            file=FileReply(f"postmortem-incident-{incident.id}.md", title, document),
            in_channel=True,
        )

    async def update_form(self, incident_id: int) -> dict[str, object]:
        """The Post update modal, prefilled with the last update and the timeline since."""
        async with self._engine.connect() as connection:
            incident = await self._response.load(connection, incident_id)
            last = await self._response.last_update(connection, incident_id)
            since = await self._response.timeline(
                connection, incident_id, since=last.at if last else incident.opened_at
            )
        return update_modal(incident, last, [i for i in since if i.kind not in ("reminder",)])

    async def home(self, user_id: str) -> dict[str, object]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(INCIDENTS).where(INCIDENTS.c.status != Status.RESOLVED.value).order_by(INCIDENTS.c.id)
            )
            incidents = [incident_view(r._mapping) for r in rows]
            roles = {i.id: await self._response.roles(connection, i.id) for i in incidents}
        return home_view(incidents, user_id, roles, self._clock.now())

    async def incident_for_channel(self, connection: AsyncConnection, channel_id: str) -> IncidentView | None:
        row = (
            await connection.execute(select(INCIDENTS).where(INCIDENTS.c.channel_id == channel_id).limit(1))
        ).first()
        return None if row is None else incident_view(row._mapping)

    async def pin_message(self, channel_id: str, ts: str, user_id: str) -> bool:
        """A 📌 on a message in an incident channel copies it to the timeline."""
        if self._chat is None:
            return False
        async with self._engine.connect() as connection:
            incident = await self.incident_for_channel(connection, channel_id)
        if incident is None:
            return False
        message = await self._chat.message(channel_id, ts)
        if message is None:
            return False
        author, text = message
        at = datetime.fromtimestamp(float(ts), tz=self._clock.now().tzinfo)
        await self.add_to_timeline(
            incident.id,
            f"{text} (message by <@{author}>, pinned by <@{user_id}>)",
            Actor(name=user_id, slack_user_id=user_id),
            at=at,
            kind="pin",
        )
        return True

    async def _names(self, user_ids: Sequence[str]) -> dict[str, str]:
        if self._chat is None:
            return {}
        names: dict[str, str] = {}
        for user in dict.fromkeys(user_ids):
            name = await self._chat.user_name(user)
            if name:
                names[user] = name
        return names
