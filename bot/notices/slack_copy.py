"""Notices copied to Slack channels (an announcements channel, Slack Connect
channels shared with enterprise customers)."""

from __future__ import annotations

from typing import ClassVar

from bot.incidents.card import escape
from bot.notices.model import Outgoing
from bot.notices.sender import Commit
from bot.ports import ChatChannel


class SlackNoticeSender:
    channel: ClassVar[str] = "slack"

    def __init__(self, chat: ChatChannel) -> None:
        self._chat = chat

    async def send(self, message: Outgoing, commit: Commit) -> None:
        await commit()
        await self._chat.post(message.target, f"*{escape(message.subject)}*\n{escape(message.text)}")

    async def close(self) -> None:
        return None
