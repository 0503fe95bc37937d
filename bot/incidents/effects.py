"""Carries out the side effects the incident service queued: open the
channel, keep the card and topic current, post changes, tell the pager.

Each job is safe to run again: steps already done are remembered on the
incident row (``setup_done``, ``channel_id``, ``card_ts``) and skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import IntegrationError
from bot.incidents import card
from bot.incidents.model import IncidentView
from bot.incidents.naming import channel_name
from bot.incidents.service import (
    INCIDENTS,
    OPEN_CHANNEL,
    PAGER_UPDATE,
    POST,
    SYNC_CARD,
    load_incident,
)
from bot.ports import ChannelNameTaken, ChannelRef, ChatChannel, Pager
from bot.settings import FirebellConfig
from bot.store.jobs import ClaimedJob

log = logging.getLogger(__name__)

MAX_NAME_SUFFIX = 20


@dataclass
class Responders:
    user_ids: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class IncidentEffects:
    """Runs one claimed job of the incident lanes."""

    def __init__(
        self,
        engine: AsyncEngine,
        chat: ChatChannel,
        pagers: Mapping[str, Pager],
        config: FirebellConfig,
    ) -> None:
        self._engine = engine
        self._chat = chat
        self._pagers = pagers
        self._config = config
        self._handlers: dict[str, Callable[[int, dict[str, Any]], Awaitable[None]]] = {
            OPEN_CHANNEL: self._open_channel,
            POST: self._post,
            SYNC_CARD: self._sync_card,
            PAGER_UPDATE: self._pager_update,
        }

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def run(self, job: ClaimedJob) -> None:
        incident_id = int(job.lane.split(":", 1)[1])
        await self._handlers[job.kind](incident_id, job.payload)

    async def _incident(self, incident_id: int) -> IncidentView:
        async with self._engine.connect() as connection:
            incident = await load_incident(connection, incident_id)
        if incident is None:
            raise IntegrationError(f"incident #{incident_id} is gone", retryable=False)
        return incident

    async def _save(self, incident_id: int, **values: Any) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(**values))

    # -- open_channel --------------------------------------------------------

    async def _open_channel(self, incident_id: int, _payload: dict[str, Any]) -> None:
        incident = await self._incident(incident_id)
        # Who is on call does not depend on the channel: look it up meanwhile.
        responders = asyncio.create_task(self._find_responders(incident))
        try:
            if incident.channel_id is None:
                channel = await self._create_channel(incident)
                await self._save(incident_id, channel_id=channel.id, channel_name=channel.name)
                incident = await self._incident(incident_id)
            await self._finish_setup(incident, responders)
        finally:
            if not responders.done():
                responders.cancel()

    async def _create_channel(self, incident: IncidentView) -> ChannelRef:
        prefix = self._config.slack.channel_prefix
        for suffix in range(MAX_NAME_SUFFIX):
            name = channel_name(prefix, incident.id, incident.title, suffix)
            try:
                return await self._chat.create_channel(name, private=incident.private)
            except ChannelNameTaken:
                log.info("channel name %s is taken; trying the next suffix", name)
        raise IntegrationError(
            f"no free channel name for incident #{incident.id} after {MAX_NAME_SUFFIX} tries",
            retryable=False,
        )

    async def _finish_setup(self, incident: IncidentView, responders: asyncio.Task[Responders]) -> None:
        assert incident.channel_id is not None
        channel_id = incident.channel_id
        done = set(incident.setup_done)
        lock = asyncio.Lock()
        invited: list[Responders] = []

        async def mark(step: str, **values: Any) -> None:
            async with lock:
                done.add(step)
                await self._save(incident.id, setup_done=",".join(sorted(done)), **values)

        async def set_topic() -> None:
            text = card.topic(incident)
            await self._chat.set_topic(channel_id, text)
            await mark("topic", topic=text)

        async def post_card() -> None:
            ts = await self._chat.post(channel_id, card.card_text(incident), card.render_card(incident))
            await mark("card", card_ts=ts)

        async def bookmark() -> None:
            assert incident.source_url is not None
            label = f"{card.source_label(incident.source)} incident"
            await self._chat.add_bookmark(channel_id, label, incident.source_url)
            await mark("bookmark")

        async def announce() -> None:
            target = self._config.slack.incidents_channel
            assert target is not None
            await self._chat.post(target, card.announcement(incident))
            await mark("announce")

        async def invite() -> None:
            found = await responders
            invited.append(found)
            if found.user_ids:
                await self._chat.invite(channel_id, found.user_ids)
            if found.missing:
                names = ", ".join(card.escape(e) for e in found.missing)
                await self._chat.post(
                    channel_id,
                    f":warning: On call but not found in Slack, please reach them another way: {names}",
                )
            await mark(
                "invite",
                responders=json.dumps(found.user_ids),
                missing_responders=json.dumps(found.missing),
            )

        problems: list[str] = []

        def optional(
            step: str, what: str, run: Callable[[], Awaitable[None]]
        ) -> Callable[[], Awaitable[None]]:
            # A wrong announcement channel or user group must not hold the
            # incident hostage: report it in the channel and carry on.
            async def guarded() -> None:
                try:
                    await run()
                except IntegrationError as exc:
                    if exc.retryable:
                        raise
                    log.warning("incident #%s: %s failed for good: %s", incident.id, what, exc)
                    problems.append(f"{what} failed: {exc}")
                    await mark(step)

            return guarded

        steps: list[Callable[[], Awaitable[None]]] = []
        if "topic" not in done:
            steps.append(set_topic)
        if incident.card_ts is None:
            steps.append(post_card)
        if "bookmark" not in done and incident.source_url and incident.source_url.startswith("https://"):
            steps.append(optional("bookmark", "Adding the source bookmark", bookmark))
        if "announce" not in done and self._config.slack.incidents_channel:
            steps.append(optional("announce", "Announcing in the incidents channel", announce))
        if "invite" not in done:
            steps.append(optional("invite", "Inviting the people on call", invite))
        results = await asyncio.gather(*(step() for step in steps), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if "card" in done and any(r.user_ids or r.missing for r in invited):
            # The card went out before the responders were known; show them now.
            await self._sync_card(incident.id, {})
        for problem in problems:
            await self._chat.post(channel_id, f":warning: {card.escape(problem)}")
        if errors:
            # Retry what may still succeed before reporting what never will.
            errors.sort(key=lambda e: not (isinstance(e, IntegrationError) and e.retryable))
            raise errors[0]

    async def _find_responders(self, incident: IncidentView) -> Responders:
        found = Responders()
        emails: list[str] = []
        pager = self._pagers.get(incident.source)
        if pager is not None:
            emails = await pager.oncall_emails(incident)
        service = self._config.service(incident.service)
        user_ids: list[str] = list(service.slack_users)
        groups = await asyncio.gather(*(self._chat.usergroup_members(g) for g in service.slack_usergroups))
        for members in groups:
            user_ids.extend(members)
        looked_up = await asyncio.gather(*(self._chat.user_id_for_email(e) for e in emails))
        for email, user_id in zip(emails, looked_up, strict=True):
            if user_id is None:
                found.missing.append(email)
            else:
                user_ids.append(user_id)
        found.user_ids = list(dict.fromkeys(user_ids))
        return found

    # -- later jobs ----------------------------------------------------------

    async def _post(self, incident_id: int, payload: dict[str, Any]) -> None:
        incident = await self._incident(incident_id)
        if incident.channel_id is None:
            raise IntegrationError(f"incident #{incident_id} has no channel to post into", retryable=False)
        await self._chat.post(incident.channel_id, str(payload["text"]))

    async def _sync_card(self, incident_id: int, _payload: dict[str, Any]) -> None:
        incident = await self._incident(incident_id)
        if incident.channel_id is None:
            return  # the channel's opening renders the current state
        text = card.topic(incident)
        if incident.topic != text:
            await self._chat.set_topic(incident.channel_id, text)
            await self._save(incident_id, topic=text)
        if incident.card_ts is not None:
            await self._chat.update(
                incident.channel_id, incident.card_ts, card.card_text(incident), card.render_card(incident)
            )

    async def _pager_update(self, incident_id: int, payload: dict[str, Any]) -> None:
        source = str(payload["source"])
        pager = self._pagers.get(source)
        if pager is None:
            raise IntegrationError(
                f"cannot update {card.source_label(source)}: it is not configured", retryable=False
            )
        slack_user = payload.get("slack_user_id")
        email = await self._chat.user_email(str(slack_user)) if slack_user else None
        await pager.set_status(str(payload["ref"]), str(payload["status"]), email)
