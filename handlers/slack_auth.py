"""Who the bot is, asked of Slack once and shared by every request.

Bolt's default single-workspace authorization calls ``auth.test`` lazily,
inside the first requests and before their acknowledgement, once per request
that arrives before the first answer. When Slack is slow, the first commands
after a restart would miss Slack's 3-second limit; here the answer is fetched
at start-up and shared.
"""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


class BotAuthorization:
    """``authorize`` is what Bolt calls; ``warm`` asks ahead of the first request."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._result: AuthorizeResult | None = None
        self._lock = asyncio.Lock()

        # A plain function: Bolt passes arguments by the parameter names it
        # finds, and would offer a bound method's ``self`` a second value.
        async def authorize() -> AuthorizeResult:
            return await self._fetch()

        self.authorize = authorize

    async def _fetch(self) -> AuthorizeResult:
        if self._result is None:
            async with self._lock:
                if self._result is None:
                    response = await self._client.auth_test()
                    self._result = AuthorizeResult.from_auth_test_response(
                        bot_token=self._client.token, auth_test_response=response
                    )
        return self._result

    async def warm(self) -> None:
        """Ask now, at start-up; if Slack is down, the first request asks again."""
        try:
            await self._fetch()
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("Slack auth.test failed at start-up (%s); will retry on the first request", exc)
