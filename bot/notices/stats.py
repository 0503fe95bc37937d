"""Communication figures for an incident: time to the first customer notice,
notices sent, delivery success per channel, unsubscribes while it lasted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.incidents.model import IncidentView
from bot.notices.outbox import DELIVERIES, NOTICES, SUBSCRIBERS


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


async def communication_lines(
    connection: AsyncConnection, incident: IncidentView, now: datetime
) -> list[str]:
    """Markdown bullet lines for the postmortem (empty when no notice was sent)."""
    notices = (
        await connection.execute(
            select(NOTICES.c.id, NOTICES.c.created_at)
            .where(NOTICES.c.incident_id == incident.id, NOTICES.c.state.in_(["sending", "sent"]))
            .order_by(NOTICES.c.id)
        )
    ).all()
    if not notices:
        return ["- No customer notice was sent."]
    waited = _duration((notices[0].created_at - incident.opened_at).total_seconds())
    lines = [
        f"- First customer notice {waited} after the incident opened.",
        f"- Customer notices sent: {len(notices)}.",
    ]
    rows = await connection.execute(
        select(DELIVERIES.c.channel, DELIVERIES.c.state, func.count())
        .where(DELIVERIES.c.notice_id.in_([n.id for n in notices]))
        .group_by(DELIVERIES.c.channel, DELIVERIES.c.state)
    )
    totals: dict[str, dict[str, int]] = {}
    for channel, state, count in rows:
        totals.setdefault(channel, {})[state] = int(count)
    for channel, counts in sorted(totals.items()):
        sent = counts.get("sent", 0) + counts.get("committed", 0)
        total = sum(counts.values())
        lines.append(f"- {channel}: {sent} of {total} delivered ({100 * sent / total:.1f} %).")
    end = incident.resolved_at or now
    unsubscribed = await connection.scalar(
        select(func.count())
        .select_from(SUBSCRIBERS)
        .where(SUBSCRIBERS.c.unsubscribed_at >= incident.opened_at, SUBSCRIBERS.c.unsubscribed_at <= end)
    )
    lines.append(f"- Unsubscribed while it lasted: {int(unsubscribed or 0)}.")
    return lines
