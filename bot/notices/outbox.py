"""Writing a notice into the outbox, and the outbox's bookkeeping.

A notice, its rendered bodies and one delivery row per recipient × channel
are written in one transaction. Recipients are copied by ``INSERT … SELECT``
inside the database, segment by segment: they are never loaded into memory,
whether there are ten or a million.

Delivery states: ``pending`` → ``sending`` (claimed, leased) → ``committed``
(the point of no return, see ``bot.notices.sender``) → ``sent``; or
``retry`` (due again at ``run_at``), ``failed`` (refused for good, with the
reason), ``dead`` (gave up after ``max_attempts``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, case, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.notices.config import NoticesConfig
from bot.notices.model import NoticeDraft, NoticeStatus, Rendered
from bot.store.tables import Notice, NoticeBody, NoticeDelivery, Subscriber

NOTICES = Notice.__table__  # type: ignore[attr-defined]
BODIES = NoticeBody.__table__  # type: ignore[attr-defined]
DELIVERIES = NoticeDelivery.__table__  # type: ignore[attr-defined]
SUBSCRIBERS = Subscriber.__table__  # type: ignore[attr-defined]

# Per segment: the channels whose recipients are subscribers (one row each).
SUBSCRIBER_COLUMNS = {"email": SUBSCRIBERS.c.email, "push": SUBSCRIBERS.c.push_endpoint}


@dataclass
class Figures:
    """Delivery counts by segment and channel, for the report in Slack."""

    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(segment, channel, target, reason) of failed and dead deliveries."""
    unsubscribed: dict[str, int] = field(default_factory=dict)


async def create_notice(
    engine: AsyncEngine,
    draft: NoticeDraft,
    bodies: Sequence[Rendered],
    config: NoticesConfig,
    *,
    created_by: str,
    state: str,
    now: datetime,
    ntfy_topics: dict[str, str] | None = None,
) -> int:
    """Store the notice and (when ``state`` is ``sending``) its deliveries, in one transaction."""
    async with engine.begin() as connection:
        notice_id = await connection.scalar(
            insert(NOTICES)
            .values(
                incident_id=draft.incident_id,
                status=draft.status.value,
                impact=draft.impact.value,
                components=json.dumps(list(draft.components)),
                message=draft.message,
                next_update_at=draft.next_update_at,
                segments=json.dumps(sorted({b.segment for b in bodies})),
                channels=json.dumps(sorted({b.channel for b in bodies})),
                state=state,
                created_by=created_by,
                created_at=now,
            )
            .returning(NOTICES.c.id)
        )
        assert notice_id is not None
        await connection.execute(
            insert(BODIES),
            [
                {
                    "notice_id": notice_id,
                    "segment": b.segment,
                    "channel": b.channel,
                    "locale": b.locale,
                    "subject": b.subject,
                    "text": b.text,
                    "html": b.html,
                }
                for b in bodies
            ],
        )
        if state == "sending":
            await _fan_out(connection, int(notice_id), draft, bodies, config, now, ntfy_topics or {})
    return int(notice_id)


async def release_notice(
    engine: AsyncEngine, notice_id: int, approved_by: str, config: NoticesConfig, now: datetime
) -> None:
    """An approved notice: write its deliveries now."""
    async with engine.begin() as connection:
        row = (await connection.execute(select(NOTICES).where(NOTICES.c.id == notice_id))).one()
        bodies = [
            Rendered(b.segment, b.channel, b.locale, b.subject, b.text, b.html)
            for b in await connection.execute(select(BODIES).where(BODIES.c.notice_id == notice_id))
        ]
        draft = NoticeDraft(
            status=NoticeStatus(row.status),
            message=row.message,
            incident_id=row.incident_id,
            components=tuple(json.loads(row.components)),
        )
        await connection.execute(
            update(NOTICES).where(NOTICES.c.id == notice_id).values(state="sending", approved_by=approved_by)
        )
        topics = config.ntfy.topics if config.ntfy else {}
        await _fan_out(connection, notice_id, draft, bodies, config, now, topics)


async def _fan_out(
    connection: AsyncConnection,
    notice_id: int,
    draft: NoticeDraft,
    bodies: Sequence[Rendered],
    config: NoticesConfig,
    now: datetime,
    ntfy_topics: dict[str, str],
) -> None:
    segments = config.effective_segments()
    pairs = sorted({(b.segment, b.channel) for b in bodies})
    once: set[str] = set()
    for segment_name, channel in pairs:
        segment = segments[segment_name]
        base = {
            "notice_id": notice_id,
            "channel": channel,
            "segment": segment_name,
            "state": "pending",
            "attempts": 0,
            "run_at": now,
        }
        column = SUBSCRIBER_COLUMNS.get(channel)
        if column is not None:
            await connection.execute(
                _copy_subscribers(notice_id, segment_name, channel, column, segment.locales, draft, now)
            )
        elif channel == "ntfy" and segment_name in ntfy_topics:
            await connection.execute(
                insert(DELIVERIES).values(**base, locale=segment.locales[0], target=ntfy_topics[segment_name])
            )
        elif channel == "statuspage" and config.statuspage is not None and channel not in once:
            once.add(channel)  # one status page incident per notice, not per segment
            await connection.execute(
                insert(DELIVERIES).values(**base, locale=segment.locales[0], target=config.statuspage.page_id)
            )
        elif channel == "slack" and channel not in once:
            once.add(channel)
            for slack_channel in config.slack_channels:
                await connection.execute(
                    insert(DELIVERIES).values(**base, locale=segment.locales[0], target=slack_channel)
                )


def _copy_subscribers(
    notice_id: int,
    segment: str,
    channel: str,
    column: Any,
    locales: list[str],
    draft: NoticeDraft,
    now: datetime,
) -> Any:
    # A subscriber's locale, when the segment offers it; else the segment's first.
    locale = case((SUBSCRIBERS.c.locale.in_(locales), SUBSCRIBERS.c.locale), else_=literal(locales[0]))
    wanted = [
        SUBSCRIBERS.c.segment == segment,
        SUBSCRIBERS.c.unsubscribed_at.is_(None),
        column.is_not(None),
    ]
    if draft.components:
        # Subscribers who named components get notices about those only.
        wanted.append(
            or_(
                SUBSCRIBERS.c.components == "[]",
                *[SUBSCRIBERS.c.components.contains(json.dumps(c)) for c in draft.components],
            )
        )
    rows = select(
        literal(notice_id, Integer),
        SUBSCRIBERS.c.id,
        literal(channel, String),
        literal(segment, String),
        locale,
        column,
        literal("pending", String),
        literal(0, Integer),
        literal(now, DELIVERIES.c.run_at.type),
    ).where(and_(*wanted))
    return insert(DELIVERIES).from_select(
        [
            "notice_id",
            "subscriber_id",
            "channel",
            "segment",
            "locale",
            "target",
            "state",
            "attempts",
            "run_at",
        ],
        rows,
    )


async def figures(engine: AsyncEngine, notice_id: int) -> Figures:
    result = Figures()
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(DELIVERIES.c.segment, DELIVERIES.c.channel, DELIVERIES.c.state, func.count())
            .where(DELIVERIES.c.notice_id == notice_id)
            .group_by(DELIVERIES.c.segment, DELIVERIES.c.channel, DELIVERIES.c.state)
        )
        for segment, channel, state, count in rows:
            result.counts.setdefault((segment, channel), {})[state] = int(count)
        failed = await connection.execute(
            select(DELIVERIES.c.segment, DELIVERIES.c.channel, DELIVERIES.c.target, DELIVERIES.c.last_error)
            .where(DELIVERIES.c.notice_id == notice_id, DELIVERIES.c.state.in_(["failed", "dead"]))
            .order_by(DELIVERIES.c.id)
            .limit(20)
        )
        result.failures = [(s, c, t, e or "") for s, c, t, e in failed]
        unsubscribed = await connection.execute(
            select(SUBSCRIBERS.c.segment, func.count())
            .where(SUBSCRIBERS.c.unsubscribed_at.is_not(None))
            .group_by(SUBSCRIBERS.c.segment)
        )
        result.unsubscribed = {segment: int(count) for segment, count in unsubscribed}
    return result
