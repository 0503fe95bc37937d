"""A real SMTP server (aiosmtpd) that keeps what it receives, for notice tests.

Runs in its own thread on 127.0.0.1 with a free port. It can refuse chosen
recipients (550), offer STARTTLS with a test certificate and require it, and
ask for a login.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.harness import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SinkHandler:
    refuse: set[str] = field(default_factory=set)
    keep_content: bool = True
    received: list[Received] = field(default_factory=list)
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            if self.keep_content:
                self.received.append(
                    Received(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        bytes(envelope.original_content or envelope.content),
                    )
                )
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(
        self,
        *,
        refuse: Iterable[str] = (),
        tls: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
        keep_content: bool = True,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        self._implicit = implicit_tls is not None
        self.handler = SinkHandler(refuse={a.lower() for a in refuse}, keep_content=keep_content)
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls)
        if login is not None:
            user, password = login

            def authenticate(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and data.login.decode() == user
                    and data.password.decode() == password
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(
                authenticator=authenticate, auth_require_tls=tls is not None or implicit_tls is not None
            )
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="localhost", **kwargs
        )

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"{'smtps' if self._implicit else 'smtp'}://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def count(self) -> int:
        with self.handler.lock:
            return self.handler.count
