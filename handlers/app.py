"""The composition root: settings → clients → services → the ASGI app.

Nothing else in firebell builds clients, engines or apps; tests and the CLI
call ``build_app`` with the settings they want.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from fastapi import FastAPI
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.severity import SeverityMapping, default_severity_mapping
from bot.alerts.sources import AlertSource, alert_sources
from bot.clock import Clock, SystemClock
from bot.incidents.commands import IncidentCommands
from bot.incidents.effects import IncidentEffects
from bot.incidents.model import IncidentView
from bot.incidents.reminders import ReminderEffects, ReminderService
from bot.incidents.response import ResponseService
from bot.incidents.service import IncidentService
from bot.metrics import Metrics
from bot.notices.chat_flow import NoticeChat
from bot.notices.dispatch import NoticeDispatcher
from bot.notices.service import NoticeService
from bot.pagers.opsgenie import OpsgeniePager
from bot.pagers.pagerduty import PagerDutyPager
from bot.ports import ChatChannel, Pager
from bot.runbooks.automation import RunbookAutomation
from bot.runbooks.chat_flow import RunbookChat
from bot.runbooks.secrets import SecretStore
from bot.runbooks.service import RunbookService
from bot.settings import Settings
from bot.slack.chat import SlackChat, make_web_client
from bot.store.database import create_engine
from bot.store.jobs import JobQueue
from bot.store.migrate import migrate
from bot.tls import client_ssl_context
from bot.work.dispatch import JobDispatcher
from bot.work.ingest import IngestLoop
from bot.work.intake import DeliveryWriter
from bot.work.priority import IntakePriority
from bot.work.worker import JobWorker
from handlers.identity import identity_gone, worker_identity
from handlers.notice_senders import build_notices, build_senders
from handlers.scheduler import TickScheduler
from handlers.slack_auth import BotAuthorization
from handlers.slack_listeners import build_bolt_app
from handlers.web import create_web_app
from handlers.webhook_intake import WebhookFastPath

log = logging.getLogger(__name__)

SLACK_MISSING = (
    "Slack is not configured: alerts are accepted and stored, and their channels "
    "will be opened once SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set "
    "(see README, 'Slack app')."
)


@dataclass
class Firebell:
    """Everything one running firebell holds."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    metrics: Metrics
    sources: dict[str, AlertSource]
    writer: DeliveryWriter
    ingest: IngestLoop
    jobs: JobQueue
    commands: IncidentCommands
    chat: ChatChannel | None
    pagers: dict[str, Pager]
    worker: JobWorker | None
    bolt: AsyncApp | None
    slack_auth: BotAuthorization | None
    slack_client: AsyncWebClient | None
    reminders: ReminderService
    runbooks: RunbookChat | None = None
    notices: NoticeService | None = None
    notice_dispatcher: NoticeDispatcher | None = None
    notice_chat: NoticeChat | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def wake_workers(self) -> None:
        if self.worker is not None:
            self.worker.wake()


def build_firebell(settings: Settings, clock: Clock | None = None) -> Firebell:
    clock = clock or SystemClock()
    config = settings.config
    ssl_context = client_ssl_context(settings.ssl_cert_file)
    engine = create_engine(settings.database_url)
    metrics = Metrics()
    severity: SeverityMapping = default_severity_mapping().merged(config.severity)
    service = IncidentService(config, severity, clock)
    identity = worker_identity()

    pagers: dict[str, Pager] = {}
    if settings.pagerduty_api_token:
        pagers["pagerduty"] = PagerDutyPager(
            settings.pagerduty_api_token,
            settings.pagerduty_from_email,
            settings.pagerduty_api_url,
            ssl_context,
        )
    if settings.opsgenie_api_key:

        def schedule_for(incident: IncidentView) -> str | None:
            configured = config.service(incident.service).opsgenie_schedule
            if configured:
                return configured
            return f"{incident.teams[0]}_schedule" if incident.teams else None

        pagers["opsgenie"] = OpsgeniePager(
            settings.opsgenie_api_key, settings.opsgenie_api_url, ssl_context, schedule_for
        )

    priority = IntakePriority()
    jobs = JobQueue(engine, identity, lease=timedelta(seconds=config.work.lease_seconds))
    chat: ChatChannel | None = None
    worker: JobWorker | None = None
    dispatcher: JobDispatcher | None = None
    bolt: AsyncApp | None = None
    slack_auth: BotAuthorization | None = None
    web_client: AsyncWebClient | None = None
    if settings.slack_bot_token:
        web_client = make_web_client(settings.slack_bot_token, settings.slack_api_url, ssl_context)
        chat = SlackChat(web_client, metrics)
        effects = IncidentEffects(engine, chat, pagers, config)
        reminder_effects = ReminderEffects(engine, chat, config, clock)
        dispatcher = JobDispatcher(effects.handlers(), reminder_effects.handlers())
        worker = JobWorker(
            jobs,
            dispatcher.run,
            clock,
            metrics,
            concurrency=config.work.concurrency,
            poll_seconds=config.work.poll_seconds,
            max_backoff=config.work.max_backoff_seconds,
            priority=priority,
        )

    def on_jobs() -> None:
        if worker is not None:
            worker.wake()

    ingest = IngestLoop(
        engine,
        service,
        clock,
        metrics,
        identity,
        on_jobs,
        poll_seconds=config.work.poll_seconds,
        lease=timedelta(seconds=config.work.lease_seconds),
        priority=priority,
    )
    writer = DeliveryWriter(engine, clock, ingest.wake, priority)
    reminders = ReminderService(engine, clock, config, on_jobs)
    response = ResponseService(config, clock, service)
    commands = IncidentCommands(
        engine,
        service,
        response,
        config,
        clock,
        chat,
        on_jobs,
        ssl_cert_file=settings.ssl_cert_file,
        settings=settings,
    )
    progress_listeners: list[Callable[[set[int]], None]] = []

    def notice_progress(notice_ids: set[int]) -> None:
        for listener in progress_listeners:
            listener(notice_ids)

    notices, notice_dispatcher = build_notices(
        engine,
        settings,
        clock,
        identity,
        build_senders(settings, ssl_context, engine, chat),
        on_progress=notice_progress,
        on_result=lambda channel, outcome: metrics.notice_deliveries.labels(channel, outcome).inc(),
        on_notice=metrics.notices.inc,
    )
    notice_chat = None
    if chat is not None:
        notice_chat = NoticeChat(
            notices,
            chat,
            clock,
            in_groups=commands.permissions.in_groups,
            role_holders=commands.role_holders,
            load_incident=commands.incident,
            record_timeline=lambda incident_id, text, actor: commands.add_to_timeline(
                incident_id, text, actor, kind="notice"
            ),
            on_first_notice=metrics.first_notice_seconds.set,
        )
        progress_listeners.append(notice_chat.progress)
    runbooks = None
    if chat is not None:
        runbooks = RunbookChat(
            RunbookService(
                engine,
                settings,
                clock,
                SecretStore(settings.environ, config.runbooks.secrets_dir),
                ssl_context,
            ),
            chat,
            clock,
            commands.permissions.in_groups,
            lambda incident_id, text, actor: commands.add_to_timeline(
                incident_id, text, actor, kind="runbook"
            ),
            runner=identity,
        )
        assert dispatcher is not None
        dispatcher.add(RunbookAutomation(runbooks, commands.incident).handlers())
    if web_client is not None and (settings.slack_signing_secret or settings.slack_app_token):
        assert chat is not None
        slack_auth = BotAuthorization(web_client)
        bolt = build_bolt_app(
            settings.slack_signing_secret,
            web_client,
            commands,
            chat,
            config,
            snooze=reminders.snooze,
            authorization=slack_auth,
            runbooks=runbooks,
            notices=notice_chat,
        )
    return Firebell(
        settings=settings,
        clock=clock,
        engine=engine,
        metrics=metrics,
        sources=alert_sources(settings),
        writer=writer,
        ingest=ingest,
        jobs=jobs,
        commands=commands,
        chat=chat,
        pagers=pagers,
        worker=worker,
        bolt=bolt,
        slack_auth=slack_auth,
        slack_client=web_client,
        reminders=reminders,
        runbooks=runbooks,
        notices=notices,
        notice_dispatcher=notice_dispatcher,
        notice_chat=notice_chat,
    )


@contextlib.asynccontextmanager
async def running(firebell: Firebell) -> AsyncIterator[Firebell]:
    """Migrate, start the background loops, and stop them cleanly."""
    await migrate(firebell.engine)
    if firebell.notice_dispatcher is not None:
        try:
            await firebell.notice_dispatcher.release_abandoned(identity_gone)
        except Exception:
            log.exception("could not take over notice deliveries of stopped processes")
    if firebell.runbooks is not None:
        try:
            await firebell.runbooks.sweep_interrupted(identity_gone)
        except Exception:
            log.exception("could not mark interrupted runbook runs")
    loops = [firebell.writer.run(), firebell.ingest.run()]
    if firebell.notice_dispatcher is not None:
        loops.append(firebell.notice_dispatcher.run())
    if firebell.worker is not None:
        loops.append(firebell.worker.run())
    else:
        log.warning(SLACK_MISSING)
    if firebell.chat is not None and firebell.bolt is None:
        log.warning(
            "Neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is set: "
            "buttons and commands from Slack are refused; channels and cards still go out."
        )
    if firebell.slack_client is not None:
        # One session for all Web API calls: connections (and TLS handshakes)
        # are reused instead of opened for every call.
        firebell.slack_client.session = aiohttp.ClientSession()
    if firebell.slack_auth is not None:
        loops.append(firebell.slack_auth.warm())
    firebell.tasks = [asyncio.create_task(loop) for loop in loops]
    socket_mode = None
    if firebell.bolt is not None and firebell.settings.slack_app_token:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        socket_mode = AsyncSocketModeHandler(firebell.bolt, firebell.settings.slack_app_token)
        await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
    # Due updates live in the database; the scheduler only says "look now".
    ticker = TickScheduler(firebell.reminders.tick, firebell.settings.config.updates.tick_seconds)
    ticker.start()
    try:
        yield firebell
    finally:
        if socket_mode is not None:
            await socket_mode.close_async()  # type: ignore[no-untyped-call]
        await ticker.stop()
        if firebell.runbooks is not None:
            await firebell.runbooks.close()
        if firebell.notice_chat is not None:
            await firebell.notice_chat.close()
        if firebell.notice_dispatcher is not None:
            await firebell.notice_dispatcher.close()
        for task in firebell.tasks:
            task.cancel()
        await asyncio.gather(*firebell.tasks, return_exceptions=True)
        for pager in firebell.pagers.values():
            close = getattr(pager, "aclose", None)
            if close is not None:
                await close()
        if firebell.slack_client is not None and firebell.slack_client.session is not None:
            await firebell.slack_client.session.close()
        await firebell.engine.dispose()


def build_app(settings: Settings, clock: Clock | None = None) -> WebhookFastPath:
    """The ASGI app for ``settings``; its lifespan runs the background loops."""
    firebell = build_firebell(settings, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with running(firebell):
            yield

    return WebhookFastPath(firebell, create_web_app(firebell, lifespan))
