"""The ``ntfy`` channel's sender: a notice published to an ntfy topic over HTTP.

This module owns the mapping of a rendered notice onto ntfy's publish API
(``POST {base_url}/{topic}``, the text as body, metadata in headers) and of
ntfy's answers onto the outbox's ``DeliveryFailed`` / ``IntegrationError``.
Which topic a segment uses is configuration (``[notices.ntfy.topics]``); the
outbox hands it over as ``Outgoing.target``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import ClassVar, Final
from urllib.parse import urlsplit

import httpx

from bot.clock import Clock, SystemClock
from bot.diagnostics.headers import header_value, parse_retry_after
from bot.diagnostics.ssrf import is_loopback_host
from bot.errors import ConfigurationError, IntegrationError
from bot.notices.model import UNSUBSCRIBE_MARK, Outgoing
from bot.notices.sender import Commit, DeliveryFailed

__all__ = ["DEFAULT_PRIORITY", "DEFAULT_TAGS", "MAX_BODY_BYTES", "NtfySender", "encode_header_text"]

TOPIC_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_BODY_BYTES: Final = 4000
"""ntfy turns bodies over its 4,096-byte message limit into attachments (or refuses them)."""
DEFAULT_PRIORITY: Final = "default"
DEFAULT_TAGS: Final[tuple[str, ...]] = ("loudspeaker",)
"""ntfy shows tags that name an emoji as the emoji (📢), the others as text."""
_PRIORITIES: Final = frozenset({"1", "2", "3", "4", "5", "min", "low", "default", "high", "max", "urgent"})
_TAG_RE: Final = re.compile(r"[A-Za-z0-9_+-]{1,64}")
_TITLE_LIMIT: Final = 250
_REASON_LIMIT: Final = 200
# RFC 2047 caps an encoded word at 75 characters: 45 UTF-8 bytes → 60 base64 + 12 framing.
_WORD_BYTES: Final = 45


def encode_header_text(text: str) -> str:
    """A header value ntfy decodes back to ``text``: ASCII as is, anything else as
    RFC 2047 encoded words (HTTP headers are Latin-1 on the wire; ntfy decodes
    ``=?UTF-8?B?…?=`` in ``Title``)."""
    if text.isascii():
        return text
    words: list[bytes] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        # Never split a character across words: decoders decode each word on its own.
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(word).decode('ascii')}?=" for word in words)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    ellipsis = "…".encode()
    # errors="ignore" drops a character cut in half at the boundary.
    return data[: limit - len(ellipsis)].decode("utf-8", errors="ignore").rstrip() + "…"


class NtfySender:
    """Publishes notices to ntfy (ntfy.sh or a self-hosted server).

    Per message: ``Title`` is the subject, ``Priority`` and ``Tags`` are the
    sender's defaults (``default`` and 📢) unless ``Outgoing.headers`` carries
    valid ``Priority`` / ``Tags`` values, ``Click`` is ``click_url`` when set.
    ``token`` (an ntfy access token) is sent as ``Authorization: Bearer``; it is
    refused over plain http except to a loopback address. The sender owns
    ``client``: ``close`` closes it.
    """

    channel: ClassVar[str] = "ntfy"

    def __init__(
        self,
        base_url: str,
        token: str | None,
        client: httpx.AsyncClient,
        *,
        click_url: str | None = None,
        priority: str = DEFAULT_PRIORITY,
        tags: Sequence[str] = DEFAULT_TAGS,
        clock: Clock | None = None,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigurationError(f"notices.ntfy.url: {base_url!r} is not an http(s) base URL")
        if token and parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ConfigurationError("notices.ntfy.url: an access token must not travel over plain http")
        if priority not in _PRIORITIES:
            raise ConfigurationError(f"ntfy priority must be one of {sorted(_PRIORITIES)}")
        if not all(_TAG_RE.fullmatch(tag) for tag in tags):
            raise ConfigurationError("ntfy tags must be letters, digits, '_', '+' or '-'")
        if click_url is not None and not click_url.isascii():
            raise ConfigurationError("ntfy click URL must be ASCII (percent-encode it)")
        self._base_url = base_url.strip().rstrip("/")
        self._token = token or None
        self._client = client
        self._click_url = click_url
        self._priority = priority
        self._tags = ",".join(tags)
        self._clock: Clock = clock or SystemClock()

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, message: Outgoing, commit: Commit) -> None:
        topic = message.target
        if not TOPIC_RE.fullmatch(topic):
            raise DeliveryFailed(
                f"ntfy topic {topic[:80]!r} is not 1–64 letters, digits, '_' or '-'", permanent=True
            )
        text = message.text.replace(UNSUBSCRIBE_MARK, message.unsubscribe_url or "")
        title = " ".join(message.subject.split())
        if len(title) > _TITLE_LIMIT:
            title = title[: _TITLE_LIMIT - 1].rstrip() + "…"
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": encode_header_text(title),
            "Priority": self._priority_for(message),
            "Tags": self._tags_for(message),
        }
        if self._click_url:
            headers["Click"] = self._click_url
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = f"{self._base_url}/{topic}"

        await commit()
        try:
            response = await self._client.post(
                url, content=_truncate_utf8(text, MAX_BODY_BYTES).encode("utf-8"), headers=headers
            )
        except httpx.HTTPError as exc:
            raise IntegrationError(f"ntfy unreachable ({type(exc).__name__})", retryable=True) from exc
        self._check_answer(response, topic)

    def _priority_for(self, message: Outgoing) -> str:
        wanted = header_value(message.headers, "Priority")
        return wanted if wanted in _PRIORITIES else self._priority

    def _tags_for(self, message: Outgoing) -> str:
        wanted = header_value(message.headers, "Tags")
        if wanted is not None:
            tags = [tag.strip() for tag in wanted.split(",")]
            if tags and all(_TAG_RE.fullmatch(tag) for tag in tags):
                return ",".join(tags)
        return self._tags

    def _check_answer(self, response: httpx.Response, topic: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        where = f"ntfy answered {status} for topic {topic}"
        says = _ntfy_says(response)
        if status in (401, 403):
            raise DeliveryFailed(
                f"{where}: not allowed to publish — the access token is missing, wrong or has no "
                f"write access to this topic (notices.ntfy.token_secret){says}",
                permanent=True,
            )
        if status == 429 or status >= 500 or status == 408:
            raise IntegrationError(
                f"{where}{says}",
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("Retry-After"), self._clock.now()),
                code=str(status),
            )
        raise DeliveryFailed(f"{where}{says}", permanent=True)


def _ntfy_says(response: httpx.Response) -> str:
    """ntfy's own explanation (``{"error": …}`` in its JSON errors), shortened."""
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = data["error"]
    text = " ".join(text.split())
    return f": {text[:_REASON_LIMIT]}" if text else ""
