"""Incident channel names: ``<prefix>-<number>-<slug>``, valid for Slack."""

from __future__ import annotations

import re
import unicodedata

MAX_CHANNEL_NAME = 80
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by '-', accents folded, the rest dropped."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_ALLOWED.sub("-", folded.lower()).strip("-")


def channel_name(prefix: str, number: int, title: str, suffix: int = 0) -> str:
    """The channel name for incident ``number``; ``suffix`` > 0 is the retry
    after Slack said ``name_taken``. Never longer than 80 characters."""
    head = f"{prefix}-{number}"
    tail = f"-{suffix + 1}" if suffix else ""
    room = MAX_CHANNEL_NAME - len(head) - len(tail) - 1
    slug = slugify(title)[: max(room, 0)].rstrip("-")
    return f"{head}-{slug}{tail}" if slug else f"{head}{tail}"
