"""What the status page reads and writes: published notices, and subscribers from its form.

Only published notices (``state`` sending or sent) are ever read; drafts and notices
waiting for approval stay off the page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.notices.model import NoticeStatus, PushKeys
from bot.notices.status_view import NoticeRow
from bot.store.tables import Incident, Notice, Subscriber

log = logging.getLogger(__name__)

NOTICES = Notice.__table__  # type: ignore[attr-defined]
INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
SUBSCRIBERS = Subscriber.__table__  # type: ignore[attr-defined]

PUBLISHED = ("sending", "sent")
"""``notices.state`` of a notice that went out (its fan-out may still be running)."""
FEED_FETCH = 200


@dataclass(frozen=True)
class PushSubscription:
    """A browser's Push API subscription (``PushSubscription.toJSON()``)."""

    endpoint: str
    keys: PushKeys


@dataclass(frozen=True)
class SubscribeResult:
    subscriber_id: int
    created: bool
    """False: an existing subscription was updated (and re-activated if it had lapsed)."""


def _json_list(text: str | None, notice_id: int, column: str) -> tuple[str, ...]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        log.warning("notice %s: %s is not JSON; read as empty", notice_id, column)
        return ()
    if not isinstance(value, list):
        log.warning("notice %s: %s is not a JSON list; read as empty", notice_id, column)
        return ()
    return tuple(str(item) for item in value if isinstance(item, str) and item)


def _row(record: Any) -> NoticeRow:
    return NoticeRow(
        id=record.id,
        incident_id=record.incident_id,
        incident_title=record.title,
        incident_opened_at=record.opened_at,
        status=record.status,
        impact=record.impact,
        components=_json_list(record.components, record.id, "components"),
        message=record.message,
        segments=_json_list(record.segments, record.id, "segments"),
        channels=_json_list(record.channels, record.id, "channels"),
        published_at=record.sent_at or record.created_at,
    )


def _notices() -> Select[Any]:
    n, i = NOTICES.c, INCIDENTS.c
    return (
        select(
            n.id,
            n.incident_id,
            n.status,
            n.impact,
            n.components,
            n.message,
            n.segments,
            n.channels,
            n.created_at,
            n.sent_at,
            i.title,
            i.opened_at,
        )
        .select_from(NOTICES.outerjoin(INCIDENTS, n.incident_id == i.id))
        .where(n.state.in_(PUBLISHED))
    )


def _published_at() -> Any:
    return func.coalesce(NOTICES.c.sent_at, NOTICES.c.created_at)


async def load_status_notices(engine: AsyncEngine, since: datetime) -> list[NoticeRow]:
    """Every published notice of the incidents the page may show: those with a
    notice published since ``since``, and those still open however old their
    last notice is (an incident is open while its latest notice is not
    ``resolved``). Notices without an incident count when published since ``since``."""
    n = NOTICES.c
    recent = (
        select(n.incident_id)
        .where(n.state.in_(PUBLISHED), n.incident_id.is_not(None), _published_at() >= since)
        .distinct()
    )
    latest = (
        select(func.max(n.id).label("id"))
        .where(n.state.in_(PUBLISHED), n.incident_id.is_not(None))
        .group_by(n.incident_id)
        .subquery()
    )
    still_open = select(n.incident_id).where(
        n.id.in_(select(latest.c.id)), n.status != NoticeStatus.RESOLVED.value
    )
    query = _notices().where(
        or_(
            n.incident_id.in_(recent),
            n.incident_id.in_(still_open),
            and_(n.incident_id.is_(None), _published_at() >= since),
        )
    )
    async with engine.connect() as connection:
        records = (await connection.execute(query.order_by(n.id))).all()
    return [_row(record) for record in records]


async def load_recent_notices(engine: AsyncEngine, limit: int = FEED_FETCH) -> list[NoticeRow]:
    """The newest published notices (for the feed), and every earlier notice of
    their incidents so each incident reads whole."""
    n = NOTICES.c
    newest = select(n.id).where(n.state.in_(PUBLISHED)).order_by(n.id.desc()).limit(limit).subquery()
    incidents = select(n.incident_id).where(n.id.in_(select(newest.c.id)), n.incident_id.is_not(None))
    query = _notices().where(or_(n.id.in_(select(newest.c.id)), n.incident_id.in_(incidents)))
    async with engine.connect() as connection:
        records = (await connection.execute(query.order_by(n.id))).all()
    return [_row(record) for record in records]


async def add_subscriber(
    engine: AsyncEngine,
    address: str | PushSubscription,
    *,
    segment: str,
    locale: str,
    components: Sequence[str] = (),
    now: datetime,
    source: str = "status_page",
) -> SubscribeResult:
    """Subscribe an email address (already validated and normalised) or a browser
    push subscription to ``segment``.

    Idempotent: an address already in the segment (in any letter case), or a
    push endpoint already known, is updated and re-activated, never duplicated.
    """
    values: dict[str, Any] = {
        "segment": segment,
        "locale": locale,
        "components": json.dumps(list(dict.fromkeys(components))),
        "unsubscribed_at": None,
    }
    if isinstance(address, PushSubscription):
        values.update(
            push_endpoint=address.endpoint, push_p256dh=address.keys.p256dh, push_auth=address.keys.auth
        )
    for attempt in range(2):
        try:
            async with engine.begin() as connection:
                existing = await _existing(connection, address, segment)
                if existing is not None:
                    await connection.execute(
                        update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == existing).values(**values)
                    )
                    return SubscribeResult(existing, created=False)
                if isinstance(address, str):
                    values["email"] = address
                result = await connection.execute(
                    SUBSCRIBERS.insert().values(**values, source=source, created_at=now)
                )
                (new_id,) = result.inserted_primary_key or (None,)
                assert new_id is not None
                return SubscribeResult(int(new_id), created=True)
        except IntegrityError:
            # Someone subscribed the same address between our read and our insert.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _existing(connection: AsyncConnection, address: str | PushSubscription, segment: str) -> int | None:
    s = SUBSCRIBERS.c
    if isinstance(address, PushSubscription):
        condition = s.push_endpoint == address.endpoint
    else:
        condition = and_(s.segment == segment, func.lower(s.email) == address.lower())
    found = (await connection.execute(select(s.id).where(condition).order_by(s.id).limit(1))).first()
    return None if found is None else int(found.id)
