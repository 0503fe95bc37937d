"""Runs firebell for scenario tests: the real ASGI app on uvicorn over real HTTP.

``FirebellServer`` serves ``build_app`` in a background thread (port 0);
``FirebellProcess`` runs ``firebell serve`` as a child process, for tests that
kill it. Both talk to the fakes in ``tests.fakes`` through the same
environment variables a deployment would set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from sqlalchemy import text

from bot.clock import Clock
from bot.settings import load_settings
from handlers.app import Firebell, build_app
from handlers.webhook_intake import WebhookFastPath

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slack_signature_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a signed request (v0 HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def block_action_body(
    action_id: str,
    value: str,
    *,
    user_id: str,
    user_name: str,
    channel_id: str,
    response_url: str,
) -> bytes:
    """A ``block_actions`` interaction as Slack posts it (form-encoded ``payload``)."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "acme"},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "container": {"type": "message", "channel_id": channel_id, "message_ts": "1.000"},
        "trigger_id": "1.2.abc",
        "channel": {"id": channel_id, "name": "inc"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


class FirebellServer:
    """firebell's app on uvicorn in a thread with its own event loop."""

    def __init__(self, env: Mapping[str, str], clock: Clock | None = None) -> None:
        self._env = dict(env)
        # None: the wall clock; tests of due updates pass a FakeClock.
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self.firebell: Firebell | None = None
        self.app: WebhookFastPath | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FirebellServer:
        app = build_app(load_settings(self._env), self._clock)
        self.firebell = app.firebell
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                assert self._server is not None
                loop.run_until_complete(self._server.serve())
            except BaseException as exc:
                failure.append(exc)
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="firebell-under-test", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if failure or not self._thread.is_alive():
                raise RuntimeError("firebell did not start") from (failure[0] if failure else None)
            if time.monotonic() > deadline:
                raise RuntimeError("firebell did not start within 30 s")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None
            self._thread = None

    def __enter__(self) -> FirebellServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop (to read its database)."""
        assert self._loop is not None

        async def wrapped() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), self._loop)
        return future.result(timeout)

    def sql(self, query: str, **params: Any) -> list[Any]:
        """Rows of a read-only query against firebell's own database."""
        firebell = self.firebell
        assert firebell is not None

        async def fetch() -> list[Any]:
            async with firebell.engine.connect() as connection:
                return list((await connection.execute(text(query), params)).all())

        return self.run(fetch)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"still not true after {timeout} s: {what or predicate}")
            time.sleep(0.02)


class FirebellProcess:
    """``firebell serve`` as a child process, for crash-and-restart tests."""

    def __init__(self, env: Mapping[str, str], cwd: Path, log_file: Path) -> None:
        self._env = {**os.environ, **env}
        self._cwd = cwd
        self._log_file = log_file
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FirebellProcess:
        command = [str(Path(sys.executable).with_name("firebell")), "serve", "--port", str(self.port)]
        log = self._log_file.open("ab")
        self._process = subprocess.Popen(
            command, cwd=self._cwd, env=self._env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None:
                raise RuntimeError(f"firebell exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"firebell did not answer within 30 s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self._log_file.read_text(errors="replace") if self._log_file.exists() else ""

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flushing, nothing graceful."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None


def slash_command_body(
    text: str, *, user_id: str, user_name: str, channel_id: str, response_url: str
) -> bytes:
    """``/incident <text>`` as Slack posts it: form fields, URL-encoded."""
    fields = {
        "token": "legacy",
        "team_id": "T0001",
        "team_domain": "acme",
        "channel_id": channel_id,
        "channel_name": "whatever",
        "user_id": user_id,
        "user_name": user_name,
        "command": "/incident",
        "text": text,
        "api_app_id": "A0001",
        "response_url": response_url,
        "trigger_id": f"trigger-{time.monotonic_ns()}",
    }
    return urllib.parse.urlencode(fields).encode()


class SlackClient:
    """Sends what Slack sends to firebell's ``/slack/events``, signed: slash
    commands, button clicks, form submissions and events."""

    def __init__(self, firebell_url: str, signing_secret: str, new_response_url: Callable[[], str]) -> None:
        self._url = f"{firebell_url}/slack/events"
        self._secret = signing_secret
        self._new_response_url = new_response_url

    def _post(self, body: bytes, content_type: str) -> httpx.Response:
        headers = {"Content-Type": content_type, **slack_signature_headers(body, self._secret)}
        return httpx.post(self._url, content=body, headers=headers, timeout=10)

    def command(
        self, text: str, *, user_id: str, channel_id: str, user_name: str = "responder"
    ) -> tuple[httpx.Response, str]:
        """``/incident <text>``; returns the HTTP answer and the command's response_url."""
        response_url = self._new_response_url()
        body = slash_command_body(
            text, user_id=user_id, user_name=user_name, channel_id=channel_id, response_url=response_url
        )
        return self._post(body, "application/x-www-form-urlencoded"), response_url

    def click(
        self, action_id: str, value: str, *, user_id: str, channel_id: str, user_name: str = "responder"
    ) -> httpx.Response:
        body = block_action_body(
            action_id,
            value,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            response_url=self._new_response_url(),
        )
        return self._post(body, "application/x-www-form-urlencoded")

    def submit(self, view: dict[str, Any], values: dict[str, Any], *, user_id: str) -> httpx.Response:
        """A ``view_submission`` of ``view`` with ``values`` as ``state.values``."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T0001"},
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower()},
            "api_app_id": "A0001",
            "trigger_id": f"trigger-{time.monotonic_ns()}",
            "view": {**view, "id": "V1", "state": {"values": values}},
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self._post(body, "application/x-www-form-urlencoded")

    def event(self, event: dict[str, Any]) -> httpx.Response:
        payload = {
            "token": "legacy",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": event,
        }
        return self._post(json.dumps(payload).encode(), "application/json")
