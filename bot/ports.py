"""The small protocols vendors sit behind. Vendor types never cross them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.incidents.model import IncidentView


@dataclass(frozen=True)
class ChannelRef:
    id: str
    name: str


class ChannelNameTaken(Exception):
    """Slack said ``name_taken``: the caller picks another name."""


class ChatChannel(Protocol):
    """What firebell needs from the chat system (Slack)."""

    async def create_channel(self, name: str, *, private: bool) -> ChannelRef: ...

    async def set_topic(self, channel_id: str, topic: str) -> None: ...

    async def invite(self, channel_id: str, user_ids: Sequence[str]) -> None: ...

    async def user_id_for_email(self, email: str) -> str | None: ...

    async def user_email(self, user_id: str) -> str | None: ...

    async def usergroup_members(self, usergroup_id: str) -> list[str]: ...

    async def add_bookmark(self, channel_id: str, title: str, link: str) -> None: ...

    async def post(
        self,
        channel_id: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str: ...

    async def update(
        self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None: ...

    async def check_auth(self) -> str: ...

    async def user_name(self, user_id: str) -> str | None: ...

    async def message(self, channel_id: str, ts: str) -> tuple[str, str] | None:
        """(author user id, text) of one message, or None when it is gone."""
        ...

    async def upload_file(
        self,
        channel_id: str,
        filename: str,
        title: str,
        content: str | bytes,
        comment: str | None = None,
        thread_ts: str | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class PageRequest:
    """Page a service's on-call for a firebell incident (declared in Slack,
    or escalated to another service)."""

    dedup_key: str
    title: str
    severity: int
    service: str
    description: str | None
    # Where to page: a PagerDuty service id, or an Opsgenie team name.
    target: str


class Pager(Protocol):
    """A paging service (PagerDuty, Opsgenie) as firebell uses it."""

    source: str

    async def oncall_emails(self, incident: IncidentView) -> list[str]: ...

    async def set_status(self, ref: str, status: str, actor_email: str | None) -> None:
        """Move the source incident/alert to ``acknowledged`` or ``resolved``."""
        ...

    async def set_severity(self, ref: str, severity: int, actor_email: str | None) -> None:
        """Set the source's priority to match SEV``severity`` (P1 for SEV1 …)."""
        ...

    async def escalate(self, ref: str, actor_email: str | None, escalation: str | None = None) -> str:
        """Escalate to the next level (PagerDuty) or to ``escalation``
        (Opsgenie); returns a short description of what happened."""
        ...

    async def add_responder(self, ref: str, email: str, actor_email: str | None) -> None:
        """Page one more person on the source incident/alert."""
        ...

    async def page(self, request: PageRequest, actor_email: str | None) -> str:
        """Open a source incident/alert; returns its id (the ref)."""
        ...
