"""Time: one injected clock in the office's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """Tells the time; tests move it, nothing sleeps."""

    tz: ZoneInfo

    def now(self) -> datetime:
        """The current moment, aware, in the office's zone."""
        ...


class SystemClock:
    """The wall clock."""

    def __init__(self, tz: str) -> None:
        self.tz = ZoneInfo(tz)

    def now(self) -> datetime:
        """The current moment, aware, in the office's zone."""
        return datetime.now(self.tz)


class FrozenClock:
    """A clock that stands still until told to move."""

    def __init__(self, at: datetime, tz: str = "Asia/Ho_Chi_Minh") -> None:
        self.tz = ZoneInfo(tz)
        self._at = at if at.tzinfo else at.replace(tzinfo=self.tz)

    def now(self) -> datetime:
        """The frozen moment."""
        return self._at.astimezone(self.tz)

    def advance(self, **delta: float) -> None:
        """Move forward by a timedelta's keywords (days=1, hours=2...)."""
        self._at += timedelta(**delta)

    def set(self, at: datetime) -> None:
        """Jump to `at`."""
        self._at = at if at.tzinfo else at.replace(tzinfo=self.tz)
