"""``[notices]`` in ``firebell.toml``: segments, channels, templates, senders.

With no segment configured there is one, ``everyone``, on every channel.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

Channel = Literal["email", "push", "ntfy", "statuspage", "slack"]
CHANNELS: tuple[Channel, ...] = ("email", "push", "ntfy", "statuspage", "slack")
Variant = Literal["technical", "plain"]
EVERYONE = "everyone"


class _Strict(BaseModel):
    model_config = {"extra": "forbid"}


class SegmentConfig(_Strict):
    channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS))
    variant: Variant = "plain"
    """Which template family: ``technical`` (components, error rates, workaround) or ``plain``."""
    locales: list[str] = Field(default_factory=lambda: ["en"])
    """The first is the default for subscribers whose locale this segment does not offer."""

    @field_validator("locales")
    @classmethod
    def _locales(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one locale")
        return value


class EmailConfig(_Strict):
    connections: int = Field(default=16, ge=1, le=64)
    """SMTP connections kept open during a fan-out. Each message waits for its
    own round trips; more connections keep the relay and firebell busy. Lower
    it when your relay limits concurrent connections per client."""
    rate_per_second: float = Field(default=0, ge=0)
    """Messages per second to the relay (0: as fast as it accepts); providers throttle."""
    reply_to: str | None = None


class NtfyConfig(_Strict):
    url: str = "https://ntfy.sh"
    topics: dict[str, str] = Field(default_factory=dict)
    """Segment → topic."""
    token_secret: str | None = None


class StatuspageConfig(_Strict):
    """Mirror notices to an Atlassian Statuspage page."""

    page_id: str
    api_key_secret: str
    api_url: str = "https://api.statuspage.io/v1"
    components: dict[str, str] = Field(default_factory=dict)
    """firebell component name → Statuspage component id."""


class NoticesConfig(_Strict):
    segments: dict[str, SegmentConfig] = Field(default_factory=dict)
    components: list[str] = Field(default_factory=list)
    """The components the status page shows and notices name."""
    templates_dir: str | None = None
    """Overrides: ``<segment or variant>/<channel>.<locale>.<part>.j2`` (see docs/notices.md)."""
    senders: list[str] = Field(default_factory=list)
    """Slack user groups that may send besides the incident's commander and comms."""
    require_approval: bool = False
    """A second person must approve a notice before it goes out."""
    max_attempts: int = Field(default=6, ge=1, le=50)
    slack_channels: list[str] = Field(default_factory=list)
    """Slack channel IDs that get a copy (announcements, Slack Connect channels)."""
    email: EmailConfig = Field(default_factory=EmailConfig)
    ntfy: NtfyConfig | None = None
    statuspage: StatuspageConfig | None = None
    vapid_private_key_secret: str | None = None
    """Secret holding the VAPID private key (PEM) for browser push."""
    vapid_subject: str | None = None
    """``mailto:`` or ``https:`` contact sent with browser push (RFC 8292)."""
    status_page_title: str = "Status"

    def effective_segments(self) -> dict[str, SegmentConfig]:
        return self.segments or {EVERYONE: SegmentConfig()}
