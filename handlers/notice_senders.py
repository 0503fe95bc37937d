"""Building the notice senders and dispatcher from settings (used by ``serve``
and by ``firebell notice send``)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.notices.dispatch import NoticeDispatcher
from bot.notices.email import EmailSender, parse_smtp_url
from bot.notices.ntfy import NtfySender
from bot.notices.render import NoticeRenderer
from bot.notices.sender import Sender
from bot.notices.service import NoticeService
from bot.notices.slack_copy import SlackNoticeSender
from bot.notices.statuspage import StatuspageClient, StatuspageSender
from bot.notices.statuspage_store import StatuspageMirrorStore
from bot.notices.webpush import WebPushSender, application_server_key, vapid_keys_from_pem
from bot.ports import ChatChannel
from bot.runbooks.secrets import SecretStore
from bot.settings import Settings

DEFAULT_PUBLIC_URL = "http://127.0.0.1:3000"


def public_url(settings: Settings) -> str:
    return (settings.public_url or DEFAULT_PUBLIC_URL).rstrip("/")


def notice_secrets(settings: Settings) -> SecretStore:
    return SecretStore(settings.environ, settings.config.runbooks.secrets_dir)


def vapid_public_key(settings: Settings) -> str | None:
    """The application server key the status page's subscribe button needs."""
    name = settings.config.notices.vapid_private_key_secret
    if not name:
        return None
    return application_server_key(vapid_keys_from_pem(notice_secrets(settings).get(name)))


def build_senders(
    settings: Settings, ssl_context: ssl.SSLContext, engine: AsyncEngine, chat: ChatChannel | None
) -> dict[str, Sender]:
    """A sender for every channel that is configured; each owns its HTTP client."""
    config = settings.config.notices
    secrets = notice_secrets(settings)
    senders: dict[str, Sender] = {}

    def http() -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=ssl_context, timeout=30, trust_env=False)

    if settings.smtp_url and settings.email_from:
        senders["email"] = EmailSender(
            parse_smtp_url(settings.smtp_url),
            settings.email_from,
            ssl_context,
            connections=config.email.connections,
            rate_per_second=config.email.rate_per_second,
            reply_to=config.email.reply_to,
        )
    if config.vapid_private_key_secret:
        senders["push"] = WebPushSender(
            secrets.get(config.vapid_private_key_secret),
            config.vapid_subject or f"mailto:{settings.email_from or 'status@firebell.invalid'}",
            http(),
            url=f"{public_url(settings)}/status",
        )
    if config.ntfy is not None:
        token = secrets.get(config.ntfy.token_secret) if config.ntfy.token_secret else None
        senders["ntfy"] = NtfySender(
            config.ntfy.url, token, http(), click_url=f"{public_url(settings)}/status"
        )
    if config.statuspage is not None:
        store = StatuspageMirrorStore(engine)
        client = StatuspageClient(config.statuspage, secrets.get(config.statuspage.api_key_secret), http())
        senders["statuspage"] = StatuspageSender(
            client, facts=store.facts, lookup=store.lookup, remember=store.remember
        )
    if chat is not None:
        senders["slack"] = SlackNoticeSender(chat)
    return senders


def build_notices(
    engine: AsyncEngine,
    settings: Settings,
    clock: Clock,
    identity: str,
    senders: dict[str, Sender],
    *,
    on_progress: Callable[[set[int]], None] | None = None,
    on_result: Callable[[str, str], None] | None = None,
    on_notice: Callable[[], None] = lambda: None,
) -> tuple[NoticeService, NoticeDispatcher]:
    config = settings.config.notices
    dispatcher = NoticeDispatcher(
        engine,
        senders,
        clock,
        identity,
        public_url=public_url(settings),
        max_attempts=config.max_attempts,
        on_progress=on_progress,
        on_result=on_result,
    )
    renderer = NoticeRenderer(config, status_url=f"{public_url(settings)}/status")
    service = NoticeService(engine, config, clock, renderer, on_outbox=dispatcher.wake, on_notice=on_notice)
    return service, dispatcher
