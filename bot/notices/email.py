"""Email notices over SMTP (aiosmtplib): a pool of connections, a rate limit,
one MIME message built per segment and locale, and commit-before-the-final-dot.

Building a message with ``email.message.EmailMessage`` costs about a
millisecond; a fan-out to 100,000 subscribers cannot afford that per
recipient. The message is built once per notice body (multipart plain text
and HTML, 8-bit UTF-8, so no encoding step can split a placeholder), and per
recipient only the ``To`` address, the ``Message-ID`` and the signed
unsubscribe link (RFC 8058 ``List-Unsubscribe`` plus one-click
``List-Unsubscribe-Post``) are substituted as bytes. A body with a line too
long for 8-bit transport is built per recipient instead (quoted-printable).

DATA is sent in two parts so the outbox can mark the delivery *committed*
between them: the message, then ``commit()``, then the final ``.``. A process
killed before the dot leaves a message the server discards; after the mark,
the delivery counts as sent. Nobody is mailed twice after a crash.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import aiosmtplib

from bot.errors import ConfigurationError, IntegrationError
from bot.notices.model import UNSUBSCRIBE_MARK, Outgoing
from bot.notices.sender import Commit, DeliveryFailed, DeliveryUncertain

MAX_8BIT_LINE = 990


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://user:pw@host:587`` (STARTTLS when offered) or ``smtps://…:465`` (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError(
            "FIREBELL_SMTP_URL must look like smtp://user:password@host:587 or smtps://user:password@host:465"
        )
    implicit = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit else 587)
    except ValueError as exc:
        raise ConfigurationError(f"FIREBELL_SMTP_URL: bad port ({exc})") from exc
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
    )


def _dot_stuff(data: bytes) -> bytes:
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


class MessageTemplate:
    """One notice body as SMTP-ready bytes, with per-recipient placeholders."""

    def __init__(
        self, from_addr: str, subject: str, text: str, html: str | None, reply_to: str | None
    ) -> None:
        token = secrets.token_hex(6).upper()
        self._to = f"FIREBELLTO{token}".encode()
        self._unsub = f"FIREBELLUNSUB{token}".encode()
        self._msgid = f"FIREBELLMSGID{token}".encode()
        self._from_addr = from_addr
        self._subject = subject
        self._text = text
        self._html = html
        self._reply_to = reply_to
        self.per_recipient = any(
            len(line) > MAX_8BIT_LINE for line in (text + "\n" + (html or "")).splitlines()
        )
        if not self.per_recipient:
            built = self._build(self._to.decode(), self._unsub.decode(), self._msgid.decode(), cte="8bit")
            self._bytes = _dot_stuff(built)

    def _build(self, to: str, unsubscribe: str, message_id: str, *, cte: str) -> bytes:
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = self._from_addr
        message["To"] = to
        message["Subject"] = self._subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = f"<{message_id}>"
        if self._reply_to:
            message["Reply-To"] = self._reply_to
        if unsubscribe:
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self._text.replace(UNSUBSCRIBE_MARK, unsubscribe), charset="utf-8", cte=cte)
        if self._html is not None:
            message.add_alternative(
                self._html.replace(UNSUBSCRIBE_MARK, unsubscribe), subtype="html", charset="utf-8", cte=cte
            )
        return message.as_bytes()

    def for_recipient(self, to: str, unsubscribe_url: str, message_id: str) -> bytes:
        if self.per_recipient:
            return _dot_stuff(self._build(to, unsubscribe_url, message_id, cte="quoted-printable"))
        return (
            self._bytes.replace(self._to, to.encode())
            .replace(self._unsub, unsubscribe_url.encode())
            .replace(self._msgid, message_id.encode())
        )


class _RateLimit:
    def __init__(self, per_second: float) -> None:
        self._interval = 1 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval


class EmailSender:
    channel: ClassVar[str] = "email"

    def __init__(
        self,
        target: SmtpTarget,
        from_addr: str,
        ssl_context: ssl.SSLContext,
        *,
        connections: int = 4,
        rate_per_second: float = 0,
        reply_to: str | None = None,
        timeout: float = 30,
    ) -> None:
        self._target = target
        self._from = from_addr
        self._envelope_from = parseaddr(from_addr)[1] or from_addr
        self._ssl = ssl_context
        self._timeout = timeout
        self._reply_to = reply_to
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(connections)
        self._rate = _RateLimit(rate_per_second)
        self._templates: dict[tuple[int, str, str], MessageTemplate] = {}
        self._domain = self._envelope_from.rpartition("@")[2] or "firebell.invalid"

    def template(self, message: Outgoing) -> MessageTemplate:
        key = (message.notice_id, message.segment, message.locale)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) > 64:
                self._templates.clear()
            template = MessageTemplate(
                self._from, message.subject, message.text, message.html, self._reply_to
            )
            self._templates[key] = template
        return template

    async def send(self, message: Outgoing, commit: Commit) -> None:
        if any(c in message.target for c in "\r\n<>,") or "@" not in message.target:
            raise DeliveryFailed(f"{message.target!r} is not an email address", permanent=True)
        data = self.template(message).for_recipient(
            message.target,
            message.unsubscribe_url or "",
            f"notice-{message.notice_id}.{message.delivery_id}@{self._domain}",
        )
        await self._rate.wait()
        async with self._slots:
            client = await self._client()
            committed = False
            # Back to the pool only after a complete exchange; anything cut
            # short (a crash, a cancel, a failed commit) leaves it mid-DATA.
            reusable = False
            try:
                try:
                    await self._envelope(client, message.target)
                except (DeliveryFailed, IntegrationError):
                    reusable = True  # refused and reset: the connection is fine
                    raise
                protocol = client.protocol
                assert protocol is not None
                start = await protocol.execute_command(b"DATA", timeout=self._timeout)
                if start.code != 354:
                    await self._reset(client)
                    reusable = True
                    raise _refusal(start.code, start.message, "DATA")
                protocol.write(data)
                await commit()
                committed = True
                done = await protocol.execute_command(b".", timeout=self._timeout)
                reusable = True
                if done.code != 250:
                    raise _refusal(done.code, done.message, "the message")
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                reusable = False
                if committed:
                    raise DeliveryUncertain(
                        f"{self._target.label}: connection lost after the message: {exc}"
                    ) from exc
                raise IntegrationError(f"{self._target.label}: {exc}", retryable=True) from exc
            except aiosmtplib.SMTPException as exc:
                reusable = False
                raise IntegrationError(f"{self._target.label}: {exc}", retryable=True) from exc
            finally:
                if reusable:
                    self._idle.put_nowait(client)
                else:
                    client.close()

    async def _envelope(self, client: aiosmtplib.SMTP, recipient: str) -> None:
        try:
            await client.mail(self._envelope_from, timeout=self._timeout)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise _refusal(exc.code, exc.message, "the sender") from exc
        try:
            await client.rcpt(recipient, timeout=self._timeout)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise _refusal(exc.code, exc.message, f"<{recipient}>") from exc

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """RSET after a refusal; the connection goes back to the pool by the caller's path."""
        await client.rset(timeout=self._timeout)

    async def _client(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                return client
        client = aiosmtplib.SMTP(
            hostname=self._target.host,
            port=self._target.port,
            use_tls=self._target.implicit_tls,
            start_tls=None if not self._target.implicit_tls else False,
            tls_context=self._ssl,
            username=self._target.username,
            password=self._target.password,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise IntegrationError(
                f"{self._target.label}: the SMTP server refused the login (check FIREBELL_SMTP_URL)",
                retryable=False,
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise IntegrationError(f"{self._target.label}: cannot connect: {exc}", retryable=True) from exc
        return client

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _refusal(code: int, text: str, what: str) -> Exception:
    reason = f"{code} {text}".strip()
    if 500 <= code < 600:
        return DeliveryFailed(f"the server refused {what}: {reason}", permanent=True)
    return IntegrationError(f"the server deferred {what}: {reason}", retryable=True)
