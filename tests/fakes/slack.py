"""A fake Slack Web API for tests and benchmarks.

Point ``slack_sdk`` at it with ``AsyncWebClient(token="xoxb-test",
base_url=fake.url + "/api/")``.  Requests are answered the way Slack documents
them (docs.slack.dev/reference/methods): POST or GET, arguments as
form-urlencoded, JSON or query parameters, token in ``Authorization: Bearer``
(or a ``token`` argument), every answer HTTP 200 with ``{"ok": ...}`` unless a
failure was scripted with :meth:`FakeSlack.fail_next`.

State kept: the bot identity, users, user groups, channels (members, topic,
bookmarks), messages with thread replies, edits and reactions, ephemeral
messages, views (modals, App Home), uploaded files, and posts to slash-command
``response_url`` endpoints (``{url}/response/<id>``).

Methods: ``auth.test``, ``conversations.create|setTopic|invite|join|info|
members|history|replies|open``, ``users.lookupByEmail|info|list``,
``usergroups.list``, ``usergroups.users.list``, ``bookmarks.add|list``,
``chat.postMessage|update|postEphemeral|getPermalink``, ``reactions.add``,
``views.open|push|publish|update``, ``files.getUploadURLExternal`` (+ the
returned ``{url}/upload/<file id>`` URL), ``files.completeUploadExternal``,
``files.info``, ``apps.connections.open``.  Anything else answers
``unknown_method``.

Socket Mode: ``apps.connections.open`` (app-level token only, see
:attr:`FakeSlack.app_token`) hands out a one-use
``ws://127.0.0.1:<port>/socket-mode/<ticket>`` URL.  A client connecting there
gets ``{"type": "hello", ...}`` first; the test then pushes envelopes with
:meth:`FakeSlack.send_envelope` and reads what the client sent back (its
acknowledgements, ``{"envelope_id": ..., "payload": ...}``) with
:meth:`FakeSlack.socket_acks` / :meth:`FakeSlack.wait_for_ack`.  Pings are
answered, client disconnects are noticed, and :meth:`FakeSlack.stop` closes
every open socket (code 1001) before the server goes away.

Channel names are validated as Slack documents for ``conversations.create``:
empty -> ``invalid_name_required``, longer than 80 -> ``invalid_name_maxlength``,
anything but ``a-z 0-9 - _`` -> ``invalid_name_specials``, only punctuation ->
``invalid_name_punctuation``, existing -> ``name_taken``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .base import FakeServer, RecordedRequest, json_response
from .tls import TlsMaterial

__all__ = [
    "FakeSlack",
    "ResponseUrlPost",
    "SlackChannel",
    "SlackEphemeral",
    "SlackFile",
    "SlackMessage",
    "SlackUser",
    "SlackUsergroup",
    "SlackView",
]

_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]+$")
_TS_BASE_MICROS = 1_700_000_000 * 1_000_000


@dataclass
class SlackUser:
    """A workspace member."""

    id: str
    email: str | None
    real_name: str
    name: str
    is_bot: bool = False
    deleted: bool = False
    tz: str = "Etc/UTC"

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The user object as the Web API returns it."""
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
        }
        if self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_admin": False,
            "is_restricted": False,
            "tz": self.tz,
            "profile": profile,
        }


@dataclass
class SlackUsergroup:
    """A user group (``@handle``)."""

    id: str
    handle: str
    name: str
    users: list[str]

    def to_api(self, team_id: str, *, include_users: bool) -> dict[str, Any]:
        """The usergroup object as the Web API returns it."""
        data: dict[str, Any] = {
            "id": self.id,
            "team_id": team_id,
            "is_usergroup": True,
            "name": self.name,
            "handle": self.handle,
            "user_count": len(self.users),
        }
        if include_users:
            data["users"] = list(self.users)
        return data


@dataclass
class SlackChannel:
    """A channel (public, private, or a direct-message conversation)."""

    id: str
    name: str
    is_private: bool
    created: int
    creator: str
    members: set[str] = field(default_factory=set)
    topic: str = ""
    topic_creator: str = ""
    topic_last_set: int = 0
    purpose: str = ""
    bookmarks: list[dict[str, Any]] = field(default_factory=list)
    is_archived: bool = False
    is_im: bool = False

    def to_api(self, viewer: str, team_id: str) -> dict[str, Any]:
        """The conversation object as the Web API returns it."""
        if self.is_im:
            others = sorted(self.members - {viewer})
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": others[0] if others else viewer,
                "is_archived": self.is_archived,
            }
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "creator": self.creator,
            "is_archived": self.is_archived,
            "is_general": False,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": viewer in self.members,
            "context_team_id": team_id,
            "topic": {"value": self.topic, "creator": self.topic_creator, "last_set": self.topic_last_set},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
            "previous_names": [],
            "num_members": len(self.members),
        }


@dataclass
class SlackMessage:
    """A message posted to a channel (``thread_ts`` set for thread replies)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    user: str
    bot_id: str | None
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    reactions: list[str] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    """Earlier versions, oldest first (``{"text": ..., "blocks": ...}``)."""
    reply_broadcast: bool = False

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The message object as the Web API returns it."""
        data: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
            "team": team_id,
        }
        if self.bot_id is not None:
            data["bot_id"] = self.bot_id
        if self.blocks is not None:
            data["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments is not None:
            data["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts is not None:
            data["thread_ts"] = self.thread_ts
        if self.metadata is not None:
            data["metadata"] = copy.deepcopy(self.metadata)
        if self.edits:
            data["edited"] = {"user": self.user, "ts": self.ts}
        if self.reactions:
            data["reactions"] = [{"name": name, "users": [self.user], "count": 1} for name in self.reactions]
        return data


@dataclass
class SlackEphemeral:
    """An ephemeral message shown to one user."""

    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    message_ts: str


@dataclass
class SlackView:
    """A modal (``views.open``/``views.push``) or an App Home tab (``views.publish``)."""

    id: str
    view: dict[str, Any]
    kind: str
    """``"open"``, ``"push"`` or ``"publish"``."""
    trigger_id: str | None = None
    user_id: str | None = None
    external_id: str | None = None
    hash: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Earlier versions replaced by ``views.update``/``views.publish``."""


@dataclass
class SlackFile:
    """A file uploaded with the files.getUploadURLExternal flow."""

    id: str
    filename: str
    length: int
    title: str | None = None
    content: bytes | None = None
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    completed: bool = False

    @property
    def channel(self) -> str | None:
        """The first channel the file was shared to, if any."""
        return self.channels[0] if self.channels else None


@dataclass
class ResponseUrlPost:
    """A JSON body POSTed to a slash command's ``response_url``."""

    response_id: str
    url: str
    body: dict[str, Any]
    at: float


@dataclass
class _SocketConnection:
    """One Socket Mode websocket, from the handshake until it closes."""

    ticket: str
    ws: web.WebSocketResponse
    connected_at: float
    hello_sent: bool = False

    @property
    def is_open(self) -> bool:
        return self.hello_sent and not self.ws.closed


class _SocketUpgrade(web.StreamResponse):
    """Returned by ``_handle`` for an accepted handshake; never sent itself.

    ``_handle`` runs synchronously under the lock and cannot hold a websocket,
    so :meth:`FakeSlack._dispatch` sees this marker and serves the socket.
    """

    def __init__(self, ticket: str) -> None:
        super().__init__(status=101)
        self.ticket = ticket


class _SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[-1] if value else None
        if value is None:
            return None
    return str(value)


def _req_str(body: dict[str, Any], name: str, error: str = "invalid_arguments") -> str:
    value = _opt_str(body, name)
    if value is None or value == "":
        raise _SlackError(error)
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in {"1", "true", "yes"}


def _json_arg(body: dict[str, Any], name: str, error: str) -> Any:
    """A structured argument sent either as JSON text (form data) or as JSON."""
    value = body.get(name)
    if isinstance(value, str):
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _SlackError(error) from exc
    return value


def _id_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = [str(item) for item in value] if isinstance(value, list) else str(value).split(",")
    return [item.strip() for item in items if item.strip()]


class FakeSlack(FakeServer):
    """The Slack Web API at ``{url}/api/``, with workspace state and assertion helpers."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        *,
        tls: TlsMaterial | None = None,
        latency: float = 0.0,
        team_id: str = "T00000001",
        team_name: str = "firebell-test",
        bot_name: str = "firebell",
        app_token: str = "xapp-test",
    ) -> None:
        super().__init__(tls=tls, latency=latency)
        self.bot_token = bot_token
        """Token every Web API call must carry; may be changed at any time."""
        self.app_token = app_token
        """App-level token ``apps.connections.open`` (and only it) accepts."""
        self.app_id = "A00000001"
        self.team_id = team_id
        self.team_name = team_name
        self._counters: dict[str, itertools.count[int]] = {}
        self._ts_counter = 0
        self._users: dict[str, SlackUser] = {}
        self._usergroups: dict[str, SlackUsergroup] = {}
        self._channels: dict[str, SlackChannel] = {}
        self._messages: dict[str, list[SlackMessage]] = {}
        self._ephemerals: list[SlackEphemeral] = []
        self._views: dict[str, SlackView] = {}
        self._home_views: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._files: dict[str, SlackFile] = {}
        self._response_posts: list[ResponseUrlPost] = []
        self._socket_tickets: set[str] = set()
        self._sockets: dict[str, _SocketConnection] = {}
        self._socket_envelopes: dict[str, dict[str, Any]] = {}
        self._socket_acks: list[dict[str, Any]] = []
        self._socket_closing = False
        self.bot_id = self._new_id("B")
        self.bot_user_id = self._new_id("U")
        self._users[self.bot_user_id] = SlackUser(
            id=self.bot_user_id, email=None, real_name=bot_name, name=bot_name, is_bot=True
        )
        self._methods: dict[str, _Handler] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "conversations.create": self._conversations_create,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.invite": self._conversations_invite,
            "conversations.join": self._conversations_join,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.open": self._conversations_open,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "bookmarks.add": self._bookmarks_add,
            "bookmarks.list": self._bookmarks_list,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "files.info": self._files_info,
            "apps.connections.open": self._apps_connections_open,
        }

    # ------------------------------------------------------------------ seeding

    def add_user(self, email: str, name: str, *, is_bot: bool = False) -> str:
        """Add a workspace member; returns its ``U…`` id."""
        with self._lock:
            user_id = self._new_id("U")
            handle = email.split("@", 1)[0]
            self._users[user_id] = SlackUser(
                id=user_id, email=email, real_name=name, name=handle, is_bot=is_bot
            )
            return user_id

    def add_usergroup(self, handle: str, user_ids: Iterable[str], name: str | None = None) -> str:
        """Add a user group; returns its ``S…`` id."""
        with self._lock:
            group_id = self._new_id("S")
            self._usergroups[group_id] = SlackUsergroup(
                id=group_id, handle=handle, name=name or handle, users=list(user_ids)
            )
            return group_id

    def add_channel(
        self,
        name: str,
        *,
        is_private: bool = False,
        members: Iterable[str] = (),
        bot_is_member: bool = True,
        topic: str = "",
    ) -> str:
        """Add an existing channel (no name validation); returns its ``C…`` id."""
        with self._lock:
            channel = self._create_channel(name, is_private=is_private)
            channel.members.update(members)
            if not bot_is_member:
                channel.members.discard(self.bot_user_id)
            channel.topic = topic
            return channel.id

    def archive_channel(self, channel_id: str) -> None:
        """Mark a channel archived (its name stays taken)."""
        with self._lock:
            self._channels[channel_id].is_archived = True

    def new_response_url(self) -> str:
        """A fresh slash-command ``response_url`` served by this fake."""
        with self._lock:
            return f"{self.url}/response/{self._new_id('R')}"

    # ------------------------------------------------------------------ assertion helpers

    @property
    def channels(self) -> list[SlackChannel]:
        """Snapshot of every channel (direct messages included), oldest first."""
        with self._lock:
            return [copy.deepcopy(channel) for channel in self._channels.values()]

    @property
    def users(self) -> list[SlackUser]:
        """Snapshot of every user, the bot user first."""
        with self._lock:
            return [copy.deepcopy(user) for user in self._users.values()]

    def channel(self, channel_id: str) -> SlackChannel | None:
        """Snapshot of one channel by id."""
        with self._lock:
            found = self._channels.get(channel_id)
            return copy.deepcopy(found) if found is not None else None

    def channel_by_name(self, name: str) -> SlackChannel | None:
        """Snapshot of one channel by name (a leading ``#`` is ignored)."""
        with self._lock:
            found = self._find_channel_by_name(name.lstrip("#"))
            return copy.deepcopy(found) if found is not None else None

    def messages(self, channel_id: str) -> list[SlackMessage]:
        """Snapshot of the messages in a channel (thread replies included), oldest first."""
        with self._lock:
            return [copy.deepcopy(message) for message in self._messages.get(channel_id, [])]

    def last_message(self, channel_id: str) -> SlackMessage:
        """The newest message in a channel; AssertionError when there is none."""
        found = self.messages(channel_id)
        if not found:
            raise AssertionError(f"FakeSlack: no message in {channel_id}; {self._describe()}")
        return found[-1]

    def thread(self, channel_id: str, thread_ts: str) -> list[SlackMessage]:
        """The replies in one thread, oldest first (the parent excluded)."""
        return [
            message
            for message in self.messages(channel_id)
            if message.thread_ts == thread_ts and message.ts != thread_ts
        ]

    def ephemerals(self, channel_id: str | None = None) -> list[SlackEphemeral]:
        """Ephemeral messages, optionally for one channel."""
        with self._lock:
            return [
                copy.deepcopy(e) for e in self._ephemerals if channel_id is None or e.channel == channel_id
            ]

    @property
    def views(self) -> list[SlackView]:
        """Snapshot of every modal and App Home view."""
        with self._lock:
            return [copy.deepcopy(view) for view in self._views.values()]

    def home_view(self, user_id: str) -> SlackView | None:
        """The App Home view last published for a user."""
        with self._lock:
            view_id = self._home_views.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id is not None else None

    @property
    def files(self) -> list[SlackFile]:
        """Snapshot of every file (uploads not yet completed included)."""
        with self._lock:
            return [copy.deepcopy(item) for item in self._files.values()]

    def response_posts(self, response_url: str | None = None) -> list[ResponseUrlPost]:
        """Bodies POSTed to response URLs (all, or for one URL or id)."""
        with self._lock:
            posts = list(self._response_posts)
        if response_url is None:
            return posts
        wanted = response_url.rstrip("/").rsplit("/", 1)[-1]
        return [post for post in posts if post.response_id == wanted]

    # ------------------------------------------------------------------ Socket Mode

    def socket_connected(self, timeout: float = 10) -> None:
        """Wait until a Socket Mode client is connected (and has been sent hello)."""
        self.wait_for(
            lambda: self.socket_connection_count() > 0,
            timeout,
            message="a Socket Mode client is connected",
        )

    def socket_connection_count(self) -> int:
        """How many Socket Mode websockets are open right now."""
        with self._lock:
            return sum(1 for connection in self._sockets.values() if connection.is_open)

    def send_envelope(
        self, type: str, payload: dict[str, Any], accepts_response_payload: bool = False
    ) -> str:
        """Push one envelope (``interactive``, ``slash_commands``, ``events_api``, ...)
        to the newest open Socket Mode connection; returns its ``envelope_id``."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": copy.deepcopy(payload),
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope.update({"retry_attempt": 0, "retry_reason": ""})
        with self._lock:
            loop = self._loop
            connection = next(
                (item for item in reversed(self._sockets.values()) if item.is_open),
                None,
            )
            if loop is None or connection is None:
                raise AssertionError(
                    f"FakeSlack: no Socket Mode client is connected to send {type!r} to; {self._describe()}"
                )
            self._socket_envelopes[envelope_id] = copy.deepcopy(envelope)
        sending = connection.ws.send_str(json.dumps(envelope))
        try:
            future = asyncio.run_coroutine_threadsafe(sending, loop)
        except RuntimeError:  # loop stopped meanwhile
            sending.close()
            raise
        try:
            future.result(timeout=10)
        except Exception as exc:
            future.cancel()
            raise AssertionError(
                f"FakeSlack: could not send envelope {envelope_id} ({type}): {exc!r}"
            ) from exc
        return envelope_id

    def socket_acks(self) -> list[dict[str, Any]]:
        """Every JSON object the Socket Mode clients sent, oldest first."""
        with self._lock:
            return copy.deepcopy(self._socket_acks)

    def wait_for_ack(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        """Wait for the client's acknowledgement of one envelope and return it."""
        with self._lock:
            if envelope_id not in self._socket_envelopes:
                raise AssertionError(f"FakeSlack: no envelope {envelope_id!r} was sent")

        def find() -> dict[str, Any] | None:
            return next((ack for ack in self.socket_acks() if ack.get("envelope_id") == envelope_id), None)

        self.wait_for(lambda: find() is not None, timeout, message=f"ack of envelope {envelope_id}")
        found = find()
        assert found is not None
        return found

    def clear(self) -> None:
        """Also forget the envelopes sent and the acknowledgements received."""
        with self._lock:
            super().clear()
            self._socket_envelopes.clear()
            self._socket_acks.clear()

    def stop(self) -> None:
        """Close every Socket Mode websocket (1001 going away), then stop serving."""
        loop = self._loop
        if self._thread is not None and loop is not None:
            closing = self._close_sockets()
            try:
                future = asyncio.run_coroutine_threadsafe(closing, loop)
            except RuntimeError:  # loop already stopped
                closing.close()
            else:
                try:
                    future.result(timeout=5)
                except TimeoutError:
                    future.cancel()
        super().stop()
        with self._lock:
            self._socket_closing = False

    async def _close_sockets(self) -> None:
        with self._lock:
            self._socket_closing = True
            sockets = [connection.ws for connection in self._sockets.values()]
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
            return_exceptions=True,
        )

    def _apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        ticket = self._new_id("ws")
        self._socket_tickets.add(ticket)
        scheme = "wss" if self.tls is not None else "ws"
        return {"url": f"{scheme}://127.0.0.1:{self.port}/socket-mode/{ticket}"}

    def _accept_socket(self, request: RecordedRequest, ticket: str) -> web.StreamResponse:
        if request.method != "GET" or (request.headers.get("Upgrade") or "").lower() != "websocket":
            return web.Response(status=426, text="websocket upgrade required", content_type="text/plain")
        if self._socket_closing:
            return web.Response(status=503, text="server shutting down", content_type="text/plain")
        if ticket not in self._socket_tickets:
            return web.Response(status=401, text="invalid or used ticket", content_type="text/plain")
        self._socket_tickets.discard(ticket)
        return _SocketUpgrade(ticket)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        response = await super()._dispatch(request)
        if isinstance(response, _SocketUpgrade):
            return await self._serve_socket(request, response.ticket)
        return response

    async def _serve_socket(self, request: web.Request, ticket: str) -> web.StreamResponse:
        # autoping answers the client's pings (slack_sdk checks the pong payload).
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        connection = _SocketConnection(ticket=ticket, ws=ws, connected_at=time.monotonic())
        with self._lock:
            self._sockets[ticket] = connection
            hello = {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        try:
            await ws.send_str(json.dumps(hello))
            with self._lock:
                connection.hello_sent = True
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive_socket_text(message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        except ConnectionError:
            pass  # the client went away mid-send; forget it below
        finally:
            with self._lock:
                self._sockets.pop(ticket, None)
        if not ws.closed:
            await ws.close()
        return ws

    def _receive_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        with self._lock:
            if isinstance(message, dict):
                self._socket_acks.append(message)
            else:
                self._errors.append(ValueError(f"Socket Mode client sent a non-object message: {data!r}"))

    def _describe(self) -> str:
        text = super()._describe()
        with self._lock:
            open_count = sum(1 for connection in self._sockets.values() if connection.is_open)
            sent, acked = len(self._socket_envelopes), len(self._socket_acks)
        if open_count or sent or acked:
            text += f"; socket mode: {open_count} open, {sent} envelope(s) sent, {acked} message(s) back"
        return text

    # ------------------------------------------------------------------ FakeServer hooks

    def _key_for(self, method: str, path: str) -> str:
        if path.startswith("/api/"):
            return path[len("/api/") :]
        return path

    def _default_fault_body(self, status: int) -> dict[str, Any]:
        if status == 429:
            return {"ok": False, "error": "ratelimited"}
        return {"ok": False, "error": "internal_error" if status >= 500 else "request_error"}

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/api/"):
            return self._web_api(request)
        if path.startswith("/upload/") and request.method in {"POST", "PUT"}:
            return self._receive_upload(request, path[len("/upload/") :].strip("/"))
        if path.startswith("/response/") and request.method == "POST":
            return self._receive_response_post(request, path[len("/response/") :].strip("/"))
        if path.startswith("/socket-mode/"):
            return self._accept_socket(request, path[len("/socket-mode/") :].strip("/"))
        return web.Response(status=404, text="not found", content_type="text/plain")

    # ------------------------------------------------------------------ plumbing

    def _new_id(self, prefix: str) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}{next(counter):08X}"

    def _next_ts(self) -> str:
        self._ts_counter += 100
        micros = _TS_BASE_MICROS + self._ts_counter
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _now(self) -> int:
        return int(time.time())

    def _web_api(self, request: RecordedRequest) -> web.StreamResponse:
        method = request.key
        handler = self._methods.get(method)
        if handler is None:
            return json_response({"ok": False, "error": "unknown_method", "req_method": method})
        token: str | None = None
        auth = request.headers.get("Authorization")
        if isinstance(auth, str) and auth.lower().startswith("bearer "):
            token = auth[len("bearer ") :].strip()
        if not token:
            token = _opt_str(request.body, "token")
        if not token:
            return json_response({"ok": False, "error": "not_authed"})
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return json_response({"ok": False, "error": "invalid_auth"})
        try:
            payload = handler(request.body)
        except _SlackError as exc:
            return json_response({"ok": False, "error": exc.error, **exc.extra})
        return json_response({"ok": True, **payload})

    def _channel_api(self, channel: SlackChannel) -> dict[str, Any]:
        return channel.to_api(self.bot_user_id, self.team_id)

    def _find_channel_by_name(self, name: str) -> SlackChannel | None:
        for channel in self._channels.values():
            if not channel.is_im and channel.name == name:
                return channel
        return None

    def _create_channel(self, name: str, *, is_private: bool) -> SlackChannel:
        channel = SlackChannel(
            id=self._new_id("C"),
            name=name,
            is_private=is_private,
            created=self._now(),
            creator=self.bot_user_id,
            members={self.bot_user_id},
        )
        self._channels[channel.id] = channel
        self._messages[channel.id] = []
        return channel

    def _visible_channel(self, channel_id: str | None) -> SlackChannel:
        """A channel the bot may see (private ones only as a member)."""
        if not channel_id:
            raise _SlackError("channel_not_found")
        channel = self._channels.get(channel_id)
        if channel is None or (channel.is_private and self.bot_user_id not in channel.members):
            raise _SlackError("channel_not_found")
        return channel

    def _resolve_post_target(self, target: str | None) -> SlackChannel:
        """chat.postMessage's ``channel``: an id, a ``#name``, or a user id (DM)."""
        if not target:
            raise _SlackError("channel_not_found")
        if target in self._channels:
            return self._visible_channel(target)
        if target in self._users:
            return self._open_im([target])
        by_name = self._find_channel_by_name(target.lstrip("#"))
        if by_name is None:
            raise _SlackError("channel_not_found")
        return self._visible_channel(by_name.id)

    def _open_im(self, user_ids: list[str]) -> SlackChannel:
        wanted = set(user_ids) | {self.bot_user_id}
        for channel in self._channels.values():
            if channel.is_im and channel.members == wanted:
                return channel
        channel = SlackChannel(
            id=self._new_id("D"),
            name="",
            is_private=True,
            created=self._now(),
            creator=self.bot_user_id,
            members=wanted,
            is_im=True,
        )
        self._channels[channel.id] = channel
        self._messages[channel.id] = []
        return channel

    def _find_message(self, channel_id: str, ts: str | None) -> SlackMessage:
        for message in self._messages.get(channel_id, []):
            if message.ts == ts:
                return message
        raise _SlackError("message_not_found")

    def _blocks_arg(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        blocks = _json_arg(body, "blocks", "invalid_blocks")
        if blocks is None:
            return None
        if not isinstance(blocks, list) or not all(
            isinstance(block, dict) and "type" in block for block in blocks
        ):
            raise _SlackError("invalid_blocks")
        if len(blocks) > 50:
            raise _SlackError(
                "invalid_blocks", errors=["no more than 50 items allowed [json-pointer:/blocks]"]
            )
        return blocks

    def _attachments_arg(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        attachments = _json_arg(body, "attachments", "invalid_attachments")
        if attachments is None:
            return None
        if not isinstance(attachments, list):
            raise _SlackError("invalid_attachments")
        return attachments

    def _view_arg(self, body: dict[str, Any]) -> dict[str, Any]:
        view = _json_arg(body, "view", "invalid_arguments")
        if not isinstance(view, dict) or "type" not in view:
            raise _SlackError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: view"]}
            )
        return view

    def _user(self, user_id: str | None) -> SlackUser:
        user = self._users.get(user_id or "")
        if user is None:
            raise _SlackError("user_not_found")
        return user

    # ------------------------------------------------------------------ api / auth

    def _api_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"args": {key: value for key, value in body.items() if key != "token"}}

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.url}/",
            "team": self.team_name,
            "user": self._users[self.bot_user_id].name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    # ------------------------------------------------------------------ conversations

    def _conversations_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _opt_str(body, "name") or ""
        if not name:
            raise _SlackError("invalid_name_required")
        if len(name) > 80:
            raise _SlackError("invalid_name_maxlength")
        if not _CHANNEL_NAME.match(name):
            raise _SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise _SlackError("invalid_name_punctuation")
        if self._find_channel_by_name(name) is not None:
            raise _SlackError("name_taken")
        channel = self._create_channel(name, is_private=_bool(body, "is_private"))
        return {"channel": self._channel_api(channel)}

    def _conversations_set_topic(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        topic = _opt_str(body, "topic") or ""
        if channel.is_archived:
            raise _SlackError("is_archived")
        if self.bot_user_id not in channel.members:
            raise _SlackError("not_in_channel")
        if len(topic) > 250:
            raise _SlackError("too_long")
        channel.topic = topic
        channel.topic_creator = self.bot_user_id
        channel.topic_last_set = self._now()
        return {"channel": self._channel_api(channel)}

    def _conversations_invite(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        if channel.is_archived:
            raise _SlackError("is_archived")
        if channel.is_im:
            raise _SlackError("method_not_supported_for_channel_type")
        if self.bot_user_id not in channel.members:
            raise _SlackError("not_in_channel")
        user_ids = _id_list(body.get("users"))
        if not user_ids:
            raise _SlackError("no_user")
        errors: list[dict[str, Any]] = []
        for user_id in user_ids:
            if user_id == self.bot_user_id:
                errors.append({"user": user_id, "ok": False, "error": "cant_invite_self"})
            elif user_id not in self._users or self._users[user_id].deleted:
                errors.append({"user": user_id, "ok": False, "error": "user_not_found"})
        if errors and not _bool(body, "force"):
            raise _SlackError(str(errors[0]["error"]), errors=errors)
        valid = [user_id for user_id in user_ids if user_id in self._users and user_id != self.bot_user_id]
        new = [user_id for user_id in valid if user_id not in channel.members]
        if valid and not new:
            raise _SlackError(
                "already_in_channel",
                errors=[{"user": user_id, "ok": False, "error": "already_in_channel"} for user_id in valid],
            )
        channel.members.update(new)
        payload: dict[str, Any] = {"channel": self._channel_api(channel)}
        if errors:
            payload["errors"] = errors
        return payload

    def _conversations_join(self, body: dict[str, Any]) -> dict[str, Any]:
        channel_id = _opt_str(body, "channel")
        channel = self._channels.get(channel_id or "")
        if channel is None:
            raise _SlackError("channel_not_found")
        if channel.is_private or channel.is_im:
            if self.bot_user_id not in channel.members:
                raise _SlackError("channel_not_found")
            raise _SlackError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise _SlackError("is_archived")
        if self.bot_user_id in channel.members:
            return {
                "channel": self._channel_api(channel),
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        channel.members.add(self.bot_user_id)
        return {"channel": self._channel_api(channel)}

    def _conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        return {"channel": self._channel_api(channel)}

    def _conversations_members(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        members = sorted(channel.members)
        limit = int(_opt_str(body, "limit") or 100) or 100
        cursor = _opt_str(body, "cursor") or ""
        offset = int(cursor.removeprefix("offset:")) if cursor.startswith("offset:") else 0
        page = members[offset : offset + limit]
        next_cursor = f"offset:{offset + limit}" if offset + limit < len(members) else ""
        return {"members": page, "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        top_level = [
            message
            for message in self._messages[channel.id]
            if message.thread_ts is None or message.thread_ts == message.ts or message.reply_broadcast
        ]
        newest_first = list(reversed(top_level))
        limit = int(_opt_str(body, "limit") or 100) or 100
        return {
            "messages": [self._message_api(message) for message in newest_first[:limit]],
            "has_more": len(newest_first) > limit,
            "response_metadata": {"next_cursor": ""},
        }

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        ts = _opt_str(body, "ts")
        parent = self._find_message(channel.id, ts)
        thread = [parent] + [
            message
            for message in self._messages[channel.id]
            if message.thread_ts == parent.ts and message.ts != parent.ts
        ]
        return {
            "messages": [self._message_api(message) for message in thread],
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def _conversations_open(self, body: dict[str, Any]) -> dict[str, Any]:
        channel_id = _opt_str(body, "channel")
        if channel_id:
            return {"channel": {"id": self._visible_channel(channel_id).id}}
        user_ids = _id_list(body.get("users"))
        if not user_ids:
            raise _SlackError("users_list_not_supplied")
        for user_id in user_ids:
            self._user(user_id)
        channel = self._open_im(user_ids)
        return {"channel": {"id": channel.id}, "no_op": False, "already_open": False}

    def _message_api(self, message: SlackMessage) -> dict[str, Any]:
        data = message.to_api(self.team_id)
        replies = [
            other
            for other in self._messages[message.channel]
            if other.thread_ts == message.ts and other.ts != message.ts
        ]
        if replies:
            data["thread_ts"] = message.ts
            data["reply_count"] = len(replies)
            data["latest_reply"] = replies[-1].ts
        return data

    # ------------------------------------------------------------------ users & groups

    def _users_lookup_by_email(self, body: dict[str, Any]) -> dict[str, Any]:
        email = (_opt_str(body, "email") or "").strip().lower()
        for user in self._users.values():
            if user.email is not None and user.email.lower() == email and not user.deleted:
                return {"user": user.to_api(self.team_id)}
        raise _SlackError("users_not_found")

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"user": self._user(_opt_str(body, "user")).to_api(self.team_id)}

    def _users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "members": [user.to_api(self.team_id) for user in self._users.values()],
            "response_metadata": {"next_cursor": ""},
        }

    def _usergroups_list(self, body: dict[str, Any]) -> dict[str, Any]:
        include_users = _bool(body, "include_users")
        return {
            "usergroups": [
                group.to_api(self.team_id, include_users=include_users) for group in self._usergroups.values()
            ]
        }

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._usergroups.get(_opt_str(body, "usergroup") or "")
        if group is None:
            raise _SlackError("no_such_subteam")
        return {"users": list(group.users)}

    # ------------------------------------------------------------------ bookmarks

    def _bookmarks_add(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel_id"))
        title = _req_str(body, "title")
        kind = _req_str(body, "type")
        if kind != "link":
            raise _SlackError("invalid_bookmark_type")
        link = _opt_str(body, "link")
        if not link:
            raise _SlackError("invalid_link")
        if len(channel.bookmarks) >= 100:
            raise _SlackError("too_many_bookmarks")
        bookmark: dict[str, Any] = {
            "id": self._new_id("Bk"),
            "channel_id": channel.id,
            "title": title,
            "link": link,
            "emoji": _opt_str(body, "emoji"),
            "icon_url": None,
            "type": kind,
            "entity_id": _opt_str(body, "entity_id"),
            "date_created": self._now(),
            "date_updated": 0,
            "rank": chr(ord("a") + len(channel.bookmarks) % 26),
            "last_updated_by_user_id": self.bot_user_id,
            "last_updated_by_team_id": self.team_id,
            "shortcut_id": None,
            "app_id": None,
        }
        channel.bookmarks.append(bookmark)
        return {"bookmark": copy.deepcopy(bookmark)}

    def _bookmarks_list(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel_id"))
        return {"bookmarks": copy.deepcopy(channel.bookmarks)}

    # ------------------------------------------------------------------ chat

    def _chat_post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_post_target(_opt_str(body, "channel"))
        if channel.is_archived:
            raise _SlackError("is_archived")
        text = _opt_str(body, "text") or ""
        blocks = self._blocks_arg(body)
        attachments = self._attachments_arg(body)
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if len(text) > 40_000:
            raise _SlackError("msg_too_long")
        metadata = _json_arg(body, "metadata", "invalid_metadata_format")
        message = SlackMessage(
            channel=channel.id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=_opt_str(body, "thread_ts") or None,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            attachments=attachments,
            metadata=metadata if isinstance(metadata, dict) else None,
            reply_broadcast=_bool(body, "reply_broadcast"),
        )
        self._messages[channel.id].append(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api(self.team_id)}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        message = self._find_message(channel.id, _opt_str(body, "ts"))
        if message.user != self.bot_user_id:
            raise _SlackError("cant_update_message")
        text = _opt_str(body, "text")
        blocks = self._blocks_arg(body)
        attachments = self._attachments_arg(body)
        if text is None and blocks is None and attachments is None:
            raise _SlackError("no_text")
        message.edits.append({"text": message.text, "blocks": copy.deepcopy(message.blocks)})
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks
        if attachments is not None:
            message.attachments = attachments
        metadata = _json_arg(body, "metadata", "invalid_metadata_format")
        if isinstance(metadata, dict):
            message.metadata = metadata
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_api(self.team_id),
        }

    def _chat_post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_post_target(_opt_str(body, "channel"))
        user = self._user(_opt_str(body, "user"))
        if user.id not in channel.members:
            raise _SlackError("user_not_in_channel")
        text = _opt_str(body, "text") or ""
        blocks = self._blocks_arg(body)
        if not text and not blocks and not self._attachments_arg(body):
            raise _SlackError("no_text")
        ephemeral = SlackEphemeral(
            channel=channel.id,
            user=user.id,
            text=text,
            blocks=blocks,
            thread_ts=_opt_str(body, "thread_ts") or None,
            message_ts=self._next_ts(),
        )
        self._ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.message_ts}

    def _chat_get_permalink(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        message = self._find_message(channel.id, _opt_str(body, "message_ts"))
        return {
            "channel": channel.id,
            "permalink": f"{self.url}/archives/{channel.id}/p{message.ts.replace('.', '')}",
        }

    def _reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(_opt_str(body, "channel"))
        name = (_opt_str(body, "name") or "").strip(":")
        if not name:
            raise _SlackError("invalid_name")
        message = self._find_message(channel.id, _opt_str(body, "timestamp"))
        if name in message.reactions:
            raise _SlackError("already_reacted")
        message.reactions.append(name)
        return {}

    # ------------------------------------------------------------------ views

    def _view_api(self, record: SlackView) -> dict[str, Any]:
        data = copy.deepcopy(record.view)
        data.update(
            {
                "id": record.id,
                "team_id": self.team_id,
                "state": {"values": {}},
                "hash": record.hash,
                "app_id": "A00000001",
                "bot_id": self.bot_id,
                "root_view_id": record.id,
                "previous_view_id": None,
                "external_id": record.external_id or "",
            }
        )
        return data

    def _consume_trigger(self, body: dict[str, Any]) -> str:
        trigger_id = _opt_str(body, "trigger_id")
        if not trigger_id:
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: trigger_id"]},
            )
        if trigger_id in self._used_triggers:
            raise _SlackError("exchanged_trigger_id")
        self._used_triggers.add(trigger_id)
        return trigger_id

    def _new_view(
        self, body: dict[str, Any], kind: str, *, trigger_id: str | None, user_id: str | None
    ) -> SlackView:
        view = self._view_arg(body)
        external_id = view.get("external_id")
        record = SlackView(
            id=self._new_id("V"),
            view=view,
            kind=kind,
            trigger_id=trigger_id,
            user_id=user_id,
            external_id=str(external_id) if external_id else None,
            hash=f"{self._now()}.{self._new_id('h')}",
        )
        self._views[record.id] = record
        return record

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(body)
        if view.get("type") != "modal":
            raise _SlackError("invalid_arguments")
        trigger_id = self._consume_trigger(body)
        record = self._new_view(body, "open", trigger_id=trigger_id, user_id=None)
        return {"view": self._view_api(record)}

    def _views_push(self, body: dict[str, Any]) -> dict[str, Any]:
        self._view_arg(body)
        trigger_id = self._consume_trigger(body)
        record = self._new_view(body, "push", trigger_id=trigger_id, user_id=None)
        return {"view": self._view_api(record)}

    def _views_publish(self, body: dict[str, Any]) -> dict[str, Any]:
        user = self._user(_opt_str(body, "user_id"))
        view = self._view_arg(body)
        if view.get("type") != "home":
            raise _SlackError("invalid_arguments")
        existing_id = self._home_views.get(user.id)
        if existing_id is not None:
            record = self._views[existing_id]
            wanted_hash = _opt_str(body, "hash")
            if wanted_hash and wanted_hash != record.hash:
                raise _SlackError("hash_conflict")
            record.history.append(record.view)
            record.view = view
            record.hash = f"{self._now()}.{self._new_id('h')}"
        else:
            record = self._new_view(body, "publish", trigger_id=None, user_id=user.id)
            self._home_views[user.id] = record.id
        return {"view": self._view_api(record)}

    def _views_update(self, body: dict[str, Any]) -> dict[str, Any]:
        view_id = _opt_str(body, "view_id")
        external_id = _opt_str(body, "external_id")
        record: SlackView | None = None
        if view_id:
            record = self._views.get(view_id)
        elif external_id:
            record = next((item for item in self._views.values() if item.external_id == external_id), None)
        else:
            raise _SlackError("invalid_arguments")
        if record is None:
            raise _SlackError("not_found")
        view = self._view_arg(body)
        wanted_hash = _opt_str(body, "hash")
        if wanted_hash and wanted_hash != record.hash:
            raise _SlackError("hash_conflict")
        record.history.append(record.view)
        record.view = view
        record.hash = f"{self._now()}.{self._new_id('h')}"
        return {"view": self._view_api(record)}

    # ------------------------------------------------------------------ files

    def _file_api(self, item: SlackFile) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
        return {
            "id": item.id,
            "created": self._now(),
            "timestamp": self._now(),
            "name": item.filename,
            "title": item.title or item.filename,
            "mimetype": mimetype,
            "filetype": item.filename.rsplit(".", 1)[-1] if "." in item.filename else "binary",
            "user": self.bot_user_id,
            "size": len(item.content) if item.content is not None else item.length,
            "url_private": f"{self.url}/files/{item.id}/{item.filename}",
            "permalink": f"{self.url}/files/{item.id}",
            "channels": [channel for channel in item.channels if not self._channels[channel].is_private],
            "groups": [channel for channel in item.channels if self._channels[channel].is_private],
            "ims": [],
            "alt_txt": item.alt_txt,
        }

    def _files_get_upload_url_external(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = _req_str(body, "filename")
        length_text = _req_str(body, "length")
        try:
            length = int(length_text)
        except ValueError as exc:
            raise _SlackError("invalid_arguments") from exc
        item = SlackFile(
            id=self._new_id("F"),
            filename=filename,
            length=length,
            alt_txt=_opt_str(body, "alt_txt"),
            snippet_type=_opt_str(body, "snippet_type"),
        )
        self._files[item.id] = item
        return {"upload_url": f"{self.url}/upload/{item.id}", "file_id": item.id}

    def _receive_upload(self, request: RecordedRequest, file_id: str) -> web.StreamResponse:
        item = self._files.get(file_id)
        if item is None or item.completed:
            return web.Response(status=404, text="upload_url_invalid", content_type="text/plain")
        content: bytes = request.raw
        for name in ("file", "filename"):
            value = request.body.get(name)
            if isinstance(value, bytes):
                content = value
                break
        item.content = content
        return web.Response(status=200, text=f"OK - {len(content)}", content_type="text/plain")

    def _files_complete_upload_external(self, body: dict[str, Any]) -> dict[str, Any]:
        entries = _json_arg(body, "files", "invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise _SlackError("invalid_arguments")
        channel_ids = _id_list(body.get("channels"))
        channel_id = _opt_str(body, "channel_id")
        if channel_id:
            channel_ids.insert(0, channel_id)
        for target in channel_ids:
            self._visible_channel(target)
        items: list[SlackFile] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise _SlackError("invalid_arguments")
            item = self._files.get(str(entry.get("id", "")))
            if item is None or item.content is None or item.completed:
                raise _SlackError("file_not_found")
            items.append(item)
        for entry, item in zip(entries, items, strict=True):
            title = entry.get("title")
            item.title = str(title) if title else item.filename
            item.channels = list(dict.fromkeys(channel_ids))
            item.initial_comment = _opt_str(body, "initial_comment")
            item.thread_ts = _opt_str(body, "thread_ts")
            item.completed = True
        return {"files": [self._file_api(item) for item in items]}

    def _files_info(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self._files.get(_opt_str(body, "file") or "")
        if item is None or not item.completed:
            raise _SlackError("file_not_found")
        return {"file": self._file_api(item), "comments": [], "response_metadata": {"next_cursor": ""}}

    # ------------------------------------------------------------------ response_url

    def _receive_response_post(self, request: RecordedRequest, response_id: str) -> web.StreamResponse:
        if not response_id:
            return web.Response(status=404, text="invalid_url", content_type="text/plain")
        self._response_posts.append(
            ResponseUrlPost(
                response_id=response_id,
                url=f"{self.url}/response/{response_id}",
                body=copy.deepcopy(request.body),
                at=request.at,
            )
        )
        return json_response({"ok": True})
