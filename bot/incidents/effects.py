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
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import IntegrationError
from bot.incidents import card
from bot.incidents.model import IncidentView
from bot.incidents.naming import channel_name
from bot.incidents.records import (
    INCIDENTS,
    INVITE,
    OPEN_CHANNEL,
    PAGE,
    PAGER_ESCALATE,
    PAGER_SEVERITY,
    PAGER_UPDATE,
    POST,
    REFS,
    SYNC_CARD,
    incident_of,
)
from bot.incidents.service import load_incident, page_dedup_key
from bot.ports import ChannelNameTaken, ChannelRef, ChatChannel, Pager, PageRequest
from bot.settings import FirebellConfig
from bot.store.database import dialect_insert
from bot.store.jobs import ClaimedJob
from bot.work.dispatch import JobHandler

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
            PAGER_SEVERITY: self._pager_severity,
            PAGER_ESCALATE: self._pager_escalate,
            PAGE: self._page,
            INVITE: self._invite,
        }

    def handlers(self) -> dict[str, JobHandler]:
        """The job kinds this class carries out, for the ``JobDispatcher``."""
        return {kind: self._for(kind) for kind in self._handlers}

    def _for(self, kind: str) -> JobHandler:
        async def handle(job: ClaimedJob) -> None:
            await self._handlers[kind](incident_of(job), job.payload)

        return handle

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

    def _pager(self, source: str) -> Pager:
        pager = self._pagers.get(source)
        if pager is None:
            raise IntegrationError(
                f"cannot reach {card.source_label(source)}: it is not configured", retryable=False
            )
        return pager

    async def _actor_email(self, payload: dict[str, Any]) -> str | None:
        slack_user = payload.get("slack_user_id")
        return await self._chat.user_email(str(slack_user)) if slack_user else None

    async def _pager_update(self, incident_id: int, payload: dict[str, Any]) -> None:
        pager = self._pager(str(payload["source"]))
        await pager.set_status(str(payload["ref"]), str(payload["status"]), await self._actor_email(payload))

    async def _pager_severity(self, incident_id: int, payload: dict[str, Any]) -> None:
        pager = self._pager(str(payload["source"]))
        await pager.set_severity(
            str(payload["ref"]), int(payload["severity"]), await self._actor_email(payload)
        )

    async def _pager_escalate(self, incident_id: int, payload: dict[str, Any]) -> None:
        pager = self._pager(str(payload["source"]))
        actor_email = await self._actor_email(payload)
        responder = payload.get("responder")
        if responder:
            email = await self._chat.user_email(str(responder))
            if email is None:
                raise IntegrationError(
                    f"<@{responder}> has no email in Slack to page them by", retryable=False
                )
            await pager.add_responder(str(payload["ref"]), email, actor_email)
            what = f"<@{responder}> was added as a responder in {card.source_label(pager.source)}"
        else:
            incident = await self._incident(incident_id)
            escalation = self._config.service(incident.service).opsgenie_escalation
            what = await pager.escalate(str(payload["ref"]), actor_email, escalation)
        incident = await self._incident(incident_id)
        if incident.channel_id:
            await self._chat.post(incident.channel_id, f":arrow_double_up: {card.escape(what)}")

    async def _page(self, incident_id: int, payload: dict[str, Any]) -> None:
        """Page a configured service for this incident and invite its on-call."""
        incident = await self._incident(incident_id)
        name = str(payload["service"])
        service = self._config.service(name)
        if service.pagerduty_service_id and "pagerduty" in self._pagers:
            source, target = "pagerduty", service.pagerduty_service_id
        elif service.opsgenie_team and "opsgenie" in self._pagers:
            source, target = "opsgenie", service.opsgenie_team
        else:
            raise IntegrationError(f"service {name} has no pager configured to page it", retryable=False)
        request = PageRequest(
            dedup_key=page_dedup_key(incident.id),
            title=f"#{incident.id} {incident.title}",
            severity=int(incident.severity),
            service=name,
            description=incident.description,
            target=target,
        )
        ref = await self._pagers[source].page(request, await self._actor_email(payload))
        await self._link(incident.id, source, ref)
        paged = replace(
            incident,
            service=name,
            source=source,
            escalation_policy_id=service.pagerduty_escalation_policy,
            teams=(service.opsgenie_team,) if service.opsgenie_team else (),
        )
        found = await self._find_responders(paged)
        if incident.channel_id:
            if found.user_ids:
                await self._chat.invite(incident.channel_id, found.user_ids)
            label = card.source_label(source)
            await self._chat.post(
                incident.channel_id, f":pager: Paged *{card.escape(name)}* through {label}."
            )
        if found.user_ids:
            await self._add_responders(incident.id, found.user_ids)

    async def _link(self, incident_id: int, source: str, ref: str) -> None:
        insert = dialect_insert(self._engine)
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(REFS)
                .values(source=source, ref=ref, incident_id=incident_id, resolved=False)
                .on_conflict_do_nothing(index_elements=["source", "ref"])
            )

    async def _invite(self, incident_id: int, payload: dict[str, Any]) -> None:
        incident = await self._incident(incident_id)
        users = [str(u) for u in payload.get("user_ids") or []]
        if incident.channel_id is None or not users:
            return
        await self._chat.invite(incident.channel_id, users)
        await self._add_responders(incident_id, users)

    async def _add_responders(self, incident_id: int, users: list[str]) -> None:
        incident = await self._incident(incident_id)
        merged = list(dict.fromkeys([*incident.responders, *users]))
        if merged != list(incident.responders):
            await self._save(incident_id, responders=json.dumps(merged))
            await self._sync_card(incident_id, {})
