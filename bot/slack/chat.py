"""``ChatChannel`` for Slack.

slack_sdk errors are translated once, here, into ``IntegrationError`` (or
``ChannelNameTaken``); rate limits, server errors and dropped connections are
retried inside the client first, honouring ``Retry-After``.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.errors import IntegrationError
from bot.metrics import Metrics
from bot.ports import ChannelNameTaken, ChannelRef

log = logging.getLogger(__name__)

# Slack errors that may go away by themselves: Slack's own trouble, rate
# limits, and a token someone is about to fix. Anything else (a wrong channel
# or user-group id, bad arguments, a missing scope) will fail the same way
# again and is reported instead of retried.
_TRANSIENT = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
}


def make_web_client(
    token: str | None, base_url: str, ssl_context: ssl.SSLContext, *, retries: int = 2
) -> AsyncWebClient:
    """An ``AsyncWebClient`` with retry handlers for 429, 5xx and connection errors."""
    client = AsyncWebClient(token=token, base_url=_with_slash(base_url), ssl=ssl_context, timeout=30)
    client.retry_handlers.extend(
        [
            AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
            AsyncServerErrorRetryHandler(max_retry_count=retries),
            AsyncConnectionErrorRetryHandler(max_retry_count=retries),
        ]
    )
    return client


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class SlackChat:
    """Slack Web API calls firebell makes, with an email → user cache."""

    def __init__(self, client: AsyncWebClient, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics
        self._user_by_email: dict[str, str | None] = {}
        self._email_by_user: dict[str, str | None] = {}

    async def _call(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> AsyncSlackResponse:
        try:
            return await call()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or f"http_{exc.response.status_code}")
            self._metrics.slack_errors.labels(method, error).inc()
            retry_after = exc.response.headers.get("Retry-After") if exc.response.headers else None
            status = exc.response.status_code
            raise IntegrationError(
                f"Slack {method} failed: {error}",
                retryable=error in _TRANSIENT or status == 429 or status >= 500,
                retry_after=float(retry_after) if retry_after else None,
                code=error,
            ) from exc
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as exc:
            self._metrics.slack_errors.labels(method, type(exc).__name__).inc()
            raise IntegrationError(
                f"Slack {method} failed: {type(exc).__name__}: {exc}", retryable=True
            ) from exc

    async def check_auth(self) -> str:
        response = await self._call("auth.test", self._client.auth_test)
        return str(response.get("user_id", ""))

    async def create_channel(self, name: str, *, private: bool) -> ChannelRef:
        try:
            response = await self._call(
                "conversations.create",
                lambda: self._client.conversations_create(name=name, is_private=private),
            )
        except IntegrationError as exc:
            if exc.code == "name_taken":
                raise ChannelNameTaken(name) from exc
            raise
        channel = response["channel"]
        return ChannelRef(id=str(channel["id"]), name=str(channel["name"]))

    async def set_topic(self, channel_id: str, topic: str) -> None:
        await self._call(
            "conversations.setTopic",
            lambda: self._client.conversations_setTopic(channel=channel_id, topic=topic),
        )

    async def invite(self, channel_id: str, user_ids: Sequence[str]) -> None:
        # Slack takes at most 1000 users per call.
        for start in range(0, len(user_ids), 1000):
            batch = ",".join(user_ids[start : start + 1000])
            try:
                await self._call(
                    "conversations.invite",
                    functools.partial(
                        self._client.conversations_invite, channel=channel_id, users=batch, force=True
                    ),
                )
            except IntegrationError as exc:
                if exc.code not in ("already_in_channel", "cant_invite_self"):
                    raise

    async def user_id_for_email(self, email: str) -> str | None:
        key = email.strip().lower()
        if key in self._user_by_email:
            return self._user_by_email[key]
        try:
            response = await self._call(
                "users.lookupByEmail", lambda: self._client.users_lookupByEmail(email=key)
            )
        except IntegrationError as exc:
            if exc.code != "users_not_found":
                raise
            user_id = None
        else:
            user_id = str(response["user"]["id"])
        self._user_by_email[key] = user_id
        return user_id

    async def user_email(self, user_id: str) -> str | None:
        if user_id in self._email_by_user:
            return self._email_by_user[user_id]
        response = await self._call("users.info", lambda: self._client.users_info(user=user_id))
        profile = response["user"].get("profile") or {}
        email = profile.get("email")
        self._email_by_user[user_id] = str(email) if email else None
        return self._email_by_user[user_id]

    async def usergroup_members(self, usergroup_id: str) -> list[str]:
        response = await self._call(
            "usergroups.users.list",
            lambda: self._client.usergroups_users_list(usergroup=usergroup_id),
        )
        users: list[object] = response.get("users") or []
        return [str(user) for user in users]

    async def add_bookmark(self, channel_id: str, title: str, link: str) -> None:
        await self._call(
            "bookmarks.add",
            lambda: self._client.bookmarks_add(channel_id=channel_id, title=title, type="link", link=link),
        )

    async def post(
        self,
        channel_id: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        response = await self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel_id, text=text, blocks=blocks, unfurl_links=False, thread_ts=thread_ts
            ),
        )
        return str(response["ts"])

    async def update(
        self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        await self._call(
            "chat.update",
            lambda: self._client.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks),
        )

    async def user_name(self, user_id: str) -> str | None:
        response = await self._call("users.info", lambda: self._client.users_info(user=user_id))
        user = response["user"]
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
        )
        return str(name) if name else None

    async def message(self, channel_id: str, ts: str) -> tuple[str, str] | None:
        response = await self._call(
            "conversations.history",
            lambda: self._client.conversations_history(
                channel=channel_id, latest=ts, inclusive=True, limit=1
            ),
        )
        for found in response.get("messages") or []:
            if found.get("ts") == ts:
                return str(found.get("user") or found.get("bot_id") or "unknown"), str(found.get("text", ""))
        # A thread reply is not in the channel history.
        try:
            replies = await self._call(
                "conversations.replies",
                lambda: self._client.conversations_replies(channel=channel_id, ts=ts, limit=1),
            )
        except IntegrationError as exc:
            if exc.code in ("thread_not_found", "message_not_found"):
                return None
            raise
        for found in replies.get("messages") or []:
            if found.get("ts") == ts:
                return str(found.get("user") or found.get("bot_id") or "unknown"), str(found.get("text", ""))
        return None

    async def upload_file(
        self,
        channel_id: str,
        filename: str,
        title: str,
        content: str | bytes,
        comment: str | None = None,
        thread_ts: str | None = None,
    ) -> None:
        await self._call(
            "files.upload",
            lambda: self._client.files_upload_v2(
                channel=channel_id,
                filename=filename,
                title=title,
                content=content,
                initial_comment=comment,
                thread_ts=thread_ts,
            ),
        )
