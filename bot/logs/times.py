"""Timestamps as layouts capture them → epoch seconds (UTC).

The parser calls these once per *distinct* key in a chunk (a minute, or a
second for epoch formats), never once per line, and caches the answers, so
plain Python is fast enough here.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

from bot.logs.formats import CLF, EPOCH, ISO8601, STRFTIME

MONTHS = {
    name.encode(): number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_OFFSET = re.compile(rb"^([+-])(\d\d):?(\d\d)$")


def offset_seconds(tz: bytes) -> int | None:
    """``+0130`` / ``-05:00`` / ``Z`` → seconds east of UTC; None when invalid."""
    if tz in (b"Z", b""):
        return 0
    match = _OFFSET.match(tz)
    if match is None:
        return None
    hours, minutes = int(match.group(2)), int(match.group(3))
    if hours > 23 or minutes > 59:
        return None
    seconds = hours * 3600 + minutes * 60
    return -seconds if match.group(1) == b"-" else seconds


def _civil(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> int | None:
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    return calendar.timegm((year, month, day, hour, minute, second))


def minute_start(kind: str, arg: str, key: bytes, tz: bytes) -> int | None:
    """Epoch seconds of the minute a captured time key falls in, or None when
    the key is not a valid time (the line then counts as malformed)."""
    try:
        if kind == CLF:  # 05/Mar/2024:12:00 +0100
            month = MONTHS.get(key[3:6])
            offset = offset_seconds(tz)
            if month is None or offset is None:
                return None
            local = _civil(int(key[7:11]), month, int(key[0:2]), int(key[12:14]), int(key[15:17]))
            return None if local is None else local - offset
        if kind == ISO8601:  # 2024-03-05T12:00 +01:00
            offset = offset_seconds(tz)
            local = _civil(int(key[0:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), int(key[14:16]))
            return None if local is None or offset is None else local - offset
        if kind == EPOCH:
            return int(key) // 60 * 60
        if kind == STRFTIME:
            stamp = _strptime(key, arg)
            return None if stamp is None else int(stamp) // 60 * 60
    except ValueError:
        return None
    raise ValueError(f"unknown time kind {kind!r}")


def _strptime(text: bytes, fmt: str) -> float | None:
    try:
        parsed = datetime.strptime(text.decode("ascii"), fmt)
    except (ValueError, UnicodeDecodeError):
        return None
    # Apache writes %{…}t in the server's local time; without %z we cannot
    # know its offset, so such times are taken as UTC.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_CLF_FULL = re.compile(rb"(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)(\.\d+)? ([+-]\d{4})")
_ISO_FULL = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)")


def full_stamp(kind: str, arg: str, text: bytes) -> float | None:
    """Epoch seconds of a whole captured timestamp (used for first/last seen)."""
    try:
        if kind == CLF:
            match = _CLF_FULL.search(text)
            if match is None:
                return None
            month = MONTHS.get(match.group(2))
            offset = offset_seconds(match.group(8))
            if month is None or offset is None:
                return None
            day, year, hour, minute, second = (int(match.group(i)) for i in (1, 3, 4, 5, 6))
            local = _civil(year, month, day, hour, minute, second)
            return None if local is None else local - offset
        if kind == ISO8601:
            match = _ISO_FULL.search(text)
            if match is None:
                return None
            offset = offset_seconds(match.group(8))
            year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
            local = _civil(year, month, day, hour, minute, second)
            return None if local is None or offset is None else local - offset
        if kind == EPOCH:
            return float(text) / float(arg)
        if kind == STRFTIME:
            return _strptime(text, arg)
    except ValueError:
        return None
    raise ValueError(f"unknown time kind {kind!r}")


def iso(seconds: float | None) -> str | None:
    """``2024-03-05T12:00:00Z`` (whole seconds), or None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
