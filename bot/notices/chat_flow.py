"""Customer notices from an incident channel: the form, the preview, who may
send, the optional second approval, and the delivery message that follows
the fan-out.

Only the incident's commander or comms lead, or members of the Slack user
groups in ``[notices] senders``, may send. The delivery message is one
message in the incident channel, updated in place as the outbox reports
progress, with failures and their reasons at the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.clock import Clock
from bot.errors import UserError
from bot.incidents.model import Actor, IncidentView, Role
from bot.notices.model import Impact, NoticeDraft, NoticeStatus
from bot.notices.service import NoticeService
from bot.notices.views import (
    DEFAULT_IMPACT,
    approval_blocks,
    draft_from_json,
    next_update_at,
    notice_form,
    preview_view,
    report_text,
)
from bot.ports import ChatChannel

log = logging.getLogger(__name__)

REPORT_INTERVAL_SECONDS = 2.0
PHASE_STATUS = {
    "investigating": NoticeStatus.INVESTIGATING,
    "identified": NoticeStatus.IDENTIFIED,
    "monitoring": NoticeStatus.MONITORING,
    "resolved": NoticeStatus.RESOLVED,
}

InGroups = Callable[[str | None, Sequence[str]], Awaitable[bool]]
RoleHolders = Callable[[int], Awaitable[dict[Role, str]]]
LoadIncident = Callable[[int], Awaitable[IncidentView]]
RecordTimeline = Callable[[int, str, Actor], Awaitable[None]]


class NoticeChat:
    def __init__(
        self,
        service: NoticeService,
        chat: ChatChannel,
        clock: Clock,
        *,
        in_groups: InGroups,
        role_holders: RoleHolders,
        load_incident: LoadIncident,
        record_timeline: RecordTimeline,
        on_first_notice: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        self._service = service
        self._chat = chat
        self._clock = clock
        self._in_groups = in_groups
        self._role_holders = role_holders
        self._load_incident = load_incident
        self._record_timeline = record_timeline
        self._on_first_notice = on_first_notice
        self._last_report: dict[int, float] = {}
        self._waiting: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- who may send ----------------------------------------------------------

    async def require_sender(self, incident_id: int, actor: Actor) -> None:
        holders = await self._role_holders(incident_id)
        if actor.slack_user_id is not None and actor.slack_user_id in (
            holders.get(Role.COMMANDER),
            holders.get(Role.COMMS),
        ):
            return
        groups = self._service.config.senders
        if groups and await self._in_groups(actor.slack_user_id, groups):
            return
        who = "the incident's commander or comms lead"
        if groups:
            who += " or members of " + ", ".join(f"<!subteam^{g}>" for g in groups)
        raise UserError(
            f"Only {who} may send customer notices. "
            "Take the role with `/incident role comms @you` if it is yours."
        )

    # -- the form and the preview ---------------------------------------------------

    async def form(self, incident: IncidentView, actor: Actor, message: str = "") -> dict[str, Any]:
        await self.require_sender(incident.id, actor)
        return notice_form(
            incident.id,
            self._service.config,
            status=PHASE_STATUS.get(incident.phase.value, NoticeStatus.INVESTIGATING),
            impact=DEFAULT_IMPACT.get(int(incident.severity), Impact.MINOR),
            message=message,
        )

    async def draft_from_form(self, incident_id: int, values: dict[str, Any]) -> NoticeDraft:
        incident = await self._load_incident(incident_id)
        message = str(values.get("message") or "").strip()
        if not message:
            raise UserError("Write the message customers should read.")
        return NoticeDraft(
            status=NoticeStatus(values.get("status") or NoticeStatus.INVESTIGATING.value),
            impact=Impact(values.get("impact") or Impact.MINOR.value),
            message=message,
            incident_id=incident.id,
            incident_title=incident.title,
            components=tuple(values.get("components") or ()),
            next_update_at=next_update_at(values.get("next_update"), self._clock.now()),
            segments=tuple(values.get("segments") or ()),
        )

    def preview(self, draft: NoticeDraft) -> dict[str, Any]:
        bodies = self._service.preview(draft)
        return preview_view(draft, bodies, needs_approval=self._service.config.require_approval)

    # -- sending ----------------------------------------------------------------------

    async def send(self, private_metadata: str, actor: Actor) -> int:
        draft = draft_from_json(private_metadata)
        if draft.incident_id is None:
            raise UserError("This notice belongs to no incident.")
        await self.require_sender(draft.incident_id, actor)
        incident = await self._load_incident(draft.incident_id)
        author = actor.slack_user_id or actor.name
        first = await self._service.notices_for_incident(incident.id) == 0
        notice_id = await self._service.send(draft, created_by=author)
        if incident.channel_id is not None:
            if self._service.config.require_approval:
                await self._chat.post(
                    incident.channel_id,
                    f"Customer notice #{notice_id} waits for approval",
                    approval_blocks(notice_id, author, draft),
                )
            else:
                await self._start_report(notice_id, incident.channel_id)
        what = (
            "written, waiting for a second person's approval"
            if self._service.config.require_approval
            else "sent"
        )
        await self._record_timeline(
            incident.id, f"Customer notice #{notice_id} {what} ({draft.status.value}): {draft.message}", actor
        )
        if first:
            self._on_first_notice((self._clock.now() - incident.opened_at).total_seconds())
        return notice_id

    async def approve(self, notice_id: int, actor: Actor, incident: IncidentView) -> None:
        await self.require_sender(incident.id, actor)
        await self._service.approve(notice_id, actor.slack_user_id or actor.name)
        if incident.channel_id is not None:
            await self._start_report(notice_id, incident.channel_id)
        await self._record_timeline(incident.id, f"Customer notice #{notice_id} approved and sent", actor)

    async def _start_report(self, notice_id: int, channel_id: str) -> None:
        figures = await self._service.figures(notice_id)
        first_after = await self._service.first_notice_delay(notice_id)
        ts = await self._chat.post(
            channel_id, report_text(notice_id, figures, done=False, first_after=first_after)
        )
        await self._service.set_report(notice_id, channel_id, ts)
        # A notice with nothing to deliver (status page only) is done at once.
        self.progress({notice_id})

    # -- progress from the outbox ----------------------------------------------------------

    def progress(self, notice_ids: set[int]) -> None:
        """The outbox recorded deliveries of these notices: refresh their
        messages, at most once per ``REPORT_INTERVAL_SECONDS`` each. A fan-out
        records marks hundreds of times a second; one waiting refresh per
        notice covers them all, and always runs after the last."""
        for notice_id in notice_ids - self._waiting:
            self._waiting.add(notice_id)
            task = asyncio.create_task(self._refresh_soon(notice_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh_soon(self, notice_id: int) -> None:
        since = time.monotonic() - self._last_report.get(notice_id, float("-inf"))
        if since < REPORT_INTERVAL_SECONDS:
            await asyncio.sleep(REPORT_INTERVAL_SECONDS - since)
        self._waiting.discard(notice_id)
        self._last_report[notice_id] = time.monotonic()
        await self._refresh(notice_id)

    async def _refresh(self, notice_id: int) -> None:
        try:
            finished = await self._service.mark_sent_when_finished(notice_id, self._clock.now())
            where = await self._service.report_location(notice_id)
            if where is None:
                return
            figures = await self._service.figures(notice_id)
            first_after = await self._service.first_notice_delay(notice_id)
            text = report_text(notice_id, figures, done=finished, first_after=first_after)
            await self._chat.update(where[0], where[1], text)
        except Exception:
            # A delivery message that lags is not worth failing the fan-out for.
            log.exception("could not update the delivery message of notice %s", notice_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
