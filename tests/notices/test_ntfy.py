"""ntfy: what the server receives (topic, body, title, tags, priority, token),
commit ordering, topic validation and answer mapping."""

from __future__ import annotations

import email.header
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.errors import ConfigurationError, IntegrationError
from bot.notices.model import UNSUBSCRIBE_MARK, Outgoing
from bot.notices.ntfy import MAX_BODY_BYTES, NtfySender, encode_header_text
from bot.notices.sender import DeliveryFailed
from tests.fakes.base import FakeServer, RecordedRequest

TOKEN = "tk_firebell0123456789"


class FakeNtfy(FakeServer):
    """An ntfy server: publishes to ``/<topic>`` (under an optional path prefix),
    answers like ntfy, and requires ``Bearer <token>`` when built with one."""

    def __init__(self, *, token: str | None = None, prefix: str = "") -> None:
        super().__init__()
        self._token = token
        self._prefix = prefix

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if self._token is not None and request.header("Authorization") != f"Bearer {self._token}":
            return web.json_response(
                {"code": 40301, "http": 403, "error": "forbidden", "link": "https://ntfy.sh/docs/publish/"},
                status=403,
            )
        topic = request.path.removeprefix(self._prefix).strip("/")
        return web.json_response(
            {
                "id": "sPs71M8A2T",
                "time": 1,
                "event": "message",
                "topic": topic,
                "message": request.raw.decode(),
            }
        )


class CommitLog:
    def __init__(self, server: FakeServer) -> None:
        self._server = server
        self.requests_seen: list[int] = []

    async def __call__(self) -> None:
        self.requests_seen.append(len(self._server.requests))


def outgoing(
    topic: str = "acme-status",
    *,
    subject: str = "Checkout: degraded performance",
    text: str = "We are investigating slow checkouts.",
    headers: dict[str, str] | None = None,
) -> Outgoing:
    return Outgoing(
        delivery_id=1,
        notice_id=2,
        channel="ntfy",
        segment="everyone",
        locale="en",
        target=topic,
        subject=subject,
        text=text,
        headers=headers or {},
    )


@pytest.fixture
def ntfy() -> Iterator[FakeNtfy]:
    with FakeNtfy(token=TOKEN) as server:
        yield server


@pytest.fixture
async def sender(ntfy: FakeNtfy) -> AsyncIterator[NtfySender]:
    built = NtfySender(ntfy.url, TOKEN, httpx.AsyncClient(), click_url="https://status.acme.test/status")
    yield built
    await built.close()


def decoded(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))


async def test_publishes_body_title_tags_priority_and_token(sender: NtfySender, ntfy: FakeNtfy) -> None:
    await sender.send(outgoing(), CommitLog(ntfy))

    [request] = ntfy.requests
    assert (request.method, request.path) == ("POST", "/acme-status")
    assert request.raw == b"We are investigating slow checkouts."
    assert request.header("Title") == "Checkout: degraded performance"
    assert request.header("Tags") == "loudspeaker"
    assert request.header("Priority") == "default"
    assert request.header("Click") == "https://status.acme.test/status"
    assert request.header("Authorization") == f"Bearer {TOKEN}"


async def test_commit_is_called_once_before_the_post(sender: NtfySender, ntfy: FakeNtfy) -> None:
    commit = CommitLog(ntfy)
    await sender.send(outgoing(), commit)
    assert commit.requests_seen == [0]
    assert len(ntfy.requests) == 1


@pytest.mark.parametrize("topic", ["", "a/b", "../admin", "status?x=1", "x" * 65, "café", "a b"])
async def test_bad_topic_is_refused_before_any_request(
    sender: NtfySender, ntfy: FakeNtfy, topic: str
) -> None:
    commit = CommitLog(ntfy)
    with pytest.raises(DeliveryFailed, match="ntfy topic") as failed:
        await sender.send(outgoing(topic), commit)
    assert failed.value.permanent
    assert commit.requests_seen == []
    assert ntfy.requests == []


async def test_non_ascii_title_and_body_arrive_intact(sender: NtfySender, ntfy: FakeNtfy) -> None:
    subject = "Paiement : performances dégradées — résolu ✅ " + "é" * 60
    text = "Le paiement fonctionne à nouveau. 🎉"
    await sender.send(outgoing(subject=subject, text=text), CommitLog(ntfy))
    [request] = ntfy.requests
    title = request.header("Title") or ""
    assert title.isascii()
    assert decoded(title) == subject
    assert request.raw.decode("utf-8") == text


def test_encoded_words_respect_rfc2047_length() -> None:
    value = encode_header_text("ü" * 100 + "😀" * 20)
    assert all(len(word) <= 75 for word in value.split(" "))
    assert decoded(value) == "ü" * 100 + "😀" * 20
    assert encode_header_text("plain ascii") == "plain ascii"


async def test_priority_and_tags_from_message_headers(sender: NtfySender, ntfy: FakeNtfy) -> None:
    headers = {"priority": "high", "Tags": "rotating_light, checkout"}
    await sender.send(outgoing(headers=headers), CommitLog(ntfy))
    [request] = ntfy.requests
    assert request.header("Priority") == "high"
    assert request.header("Tags") == "rotating_light,checkout"


async def test_invalid_header_overrides_fall_back_to_defaults(sender: NtfySender, ntfy: FakeNtfy) -> None:
    headers = {"Priority": "9", "Tags": "bad tag\r\nX-Injected: 1"}
    await sender.send(outgoing(headers=headers), CommitLog(ntfy))
    [request] = ntfy.requests
    assert request.header("Priority") == "default"
    assert request.header("Tags") == "loudspeaker"
    assert request.header("X-Injected") is None


async def test_long_body_is_cut_below_ntfy_message_limit(sender: NtfySender, ntfy: FakeNtfy) -> None:
    text = "Détails de l'incident. " * 400
    await sender.send(outgoing(text=text), CommitLog(ntfy))
    body = ntfy.requests[0].raw.decode("utf-8")
    assert len(body.encode()) <= MAX_BODY_BYTES
    assert body.endswith("…") and text.startswith(body[:-1])


async def test_unsubscribe_mark_is_not_sent(sender: NtfySender, ntfy: FakeNtfy) -> None:
    await sender.send(outgoing(text=f"All good.\n{UNSUBSCRIBE_MARK}"), CommitLog(ntfy))
    assert b"\x00" not in ntfy.requests[0].raw


async def test_wrong_token_is_permanent_with_a_clear_reason(ntfy: FakeNtfy) -> None:
    sender = NtfySender(ntfy.url, "tk_wrong", httpx.AsyncClient())
    try:
        with pytest.raises(DeliveryFailed, match="access token") as failed:
            await sender.send(outgoing(), CommitLog(ntfy))
    finally:
        await sender.close()
    assert failed.value.permanent and not failed.value.gone
    assert "forbidden" in failed.value.reason


async def test_no_token_no_authorization_header() -> None:
    with FakeNtfy(prefix="/ntfy") as server:
        sender = NtfySender(f"{server.url}/ntfy/", None, httpx.AsyncClient())
        try:
            await sender.send(outgoing("ops_updates"), CommitLog(server))
        finally:
            await sender.close()
        [request] = server.requests
    assert request.path == "/ntfy/ops_updates"
    assert request.header("Authorization") is None


async def test_429_with_retry_after_is_retryable(sender: NtfySender, ntfy: FakeNtfy) -> None:
    ntfy.fail_next("/acme-status", status=429, retry_after=60, body={"code": 42901, "error": "limit reached"})
    with pytest.raises(IntegrationError, match="limit reached") as failed:
        await sender.send(outgoing(), CommitLog(ntfy))
    assert failed.value.retryable and failed.value.retry_after == 60


async def test_server_error_is_retryable(sender: NtfySender, ntfy: FakeNtfy) -> None:
    ntfy.fail_next("/acme-status", status=502)
    with pytest.raises(IntegrationError) as failed:
        await sender.send(outgoing(), CommitLog(ntfy))
    assert failed.value.retryable


@pytest.mark.parametrize("status", [400, 404, 413])
async def test_client_errors_are_permanent(sender: NtfySender, ntfy: FakeNtfy, status: int) -> None:
    ntfy.fail_next("/acme-status", status=status)
    with pytest.raises(DeliveryFailed) as failed:
        await sender.send(outgoing(), CommitLog(ntfy))
    assert failed.value.permanent


async def test_connection_failure_is_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    committed: list[bool] = []

    async def commit() -> None:
        committed.append(True)

    sender = NtfySender("https://ntfy.sh", TOKEN, httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    try:
        with pytest.raises(IntegrationError, match="unreachable") as failed:
            await sender.send(outgoing(), commit)
    finally:
        await sender.close()
    assert failed.value.retryable
    assert isinstance(failed.value.__cause__, httpx.ConnectTimeout)
    assert committed == [True]


@pytest.mark.parametrize(
    ("base_url", "token", "problem"),
    [
        ("ntfy.sh", None, "not an http"),
        ("ftp://ntfy.sh", None, "not an http"),
        ("http://ntfy.internal", TOKEN, "plain http"),
    ],
)
def test_bad_configuration(base_url: str, token: str | None, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        NtfySender(base_url, token, httpx.AsyncClient())


def test_bad_default_priority_or_tags() -> None:
    kwargs: dict[str, Any] = {"base_url": "https://ntfy.sh", "token": None, "client": httpx.AsyncClient()}
    with pytest.raises(ConfigurationError, match="priority"):
        NtfySender(**kwargs, priority="loud")
    with pytest.raises(ConfigurationError, match="tags"):
        NtfySender(**kwargs, tags=["a,b"])
