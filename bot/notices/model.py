"""Notice values shared by rendering, the outbox, the senders and the status page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class NoticeStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Impact(StrEnum):
    """Atlassian Statuspage's impact levels, so the JSON API reads the same."""

    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


@dataclass(frozen=True)
class NoticeDraft:
    """What the commander writes once; rendered per segment, channel and locale."""

    status: NoticeStatus
    message: str
    incident_id: int | None = None
    incident_title: str | None = None
    impact: Impact = Impact.MINOR
    components: tuple[str, ...] = ()
    next_update_at: datetime | None = None
    segments: tuple[str, ...] = ()
    """Empty: every configured segment."""
    channels: tuple[str, ...] = ()
    """Empty: every channel each segment uses."""


@dataclass(frozen=True)
class Rendered:
    """One segment × channel × locale body; ``UNSUBSCRIBE_MARK`` stands where
    each recipient's own unsubscribe link goes."""

    segment: str
    channel: str
    locale: str
    subject: str
    text: str
    html: str | None = None


UNSUBSCRIBE_MARK = "\x00unsubscribe\x00"


@dataclass(frozen=True)
class PushKeys:
    """A browser push subscription's keys (base64url), from the Push API."""

    p256dh: str
    auth: str


@dataclass(frozen=True)
class Outgoing:
    """One delivery, ready for its channel's sender."""

    delivery_id: int
    notice_id: int
    channel: str
    segment: str
    locale: str
    target: str
    """Email address, push endpoint URL, ntfy topic, or Slack channel id."""
    subject: str
    text: str
    html: str | None = None
    unsubscribe_url: str | None = None
    push_keys: PushKeys | None = None
    headers: dict[str, str] = field(default_factory=dict)
