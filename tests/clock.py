"""A clock the test turns by hand, shared by the test thread and firebell's loop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Stands still until ``advance`` moves it; safe to read from any thread.

    Hand it to ``FirebellServer(env, clock=...)``: everything firebell decides
    by time (due updates, nudges, job run times) then follows this clock,
    while the scheduler keeps ticking in real time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("FakeClock needs an aware start time")
        self._now = (start or datetime.now(UTC)).astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, *, minutes: float = 0, seconds: float = 0) -> datetime:
        """Move forward (never back) and return the new time."""
        step = timedelta(minutes=minutes, seconds=seconds)
        if step < timedelta(0):
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += step
            return self._now
