"""Time: one injected clock in the office's time zone, the reporting periods and their deadlines."""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
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


# ---- periods and deadlines -----------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Period:
    """A reporting month, "Tháng M/YYYY"; its key is "YYYY-MM"."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: date | datetime) -> Period:
        """The month a day falls in."""
        return cls(moment.year, moment.month)

    @classmethod
    def parse(cls, key: str) -> Period | None:
        """ "2026-11" -> Period(2026, 11); None for anything else."""
        parts = key.split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        year, month = int(parts[0]), int(parts[1])
        return cls(year, month) if 2000 <= year <= 2100 and 1 <= month <= 12 else None

    @property
    def key(self) -> str:
        """ "YYYY-MM", as stored."""
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        """ "11/2026", as shown."""
        return f"{self.month:02d}/{self.year}"

    def shift(self, months: int) -> Period:
        """The period `months` later (or earlier, when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)


class Calendar:
    """Deadlines from the schedule settings, in the office's time zone."""

    def __init__(self, clock: Clock, schedule: Any) -> None:
        self.clock = clock
        self.schedule = schedule

    def now(self) -> datetime:
        """The current moment in the office's zone."""
        return self.clock.now()

    def deadline(self, period: Period) -> datetime:
        """The last moment that is on time for `period`: its deadline day at 23:59:59.

        A deadline day past the month's end (31 in February) is the month's last day.
        """
        last = monthrange(period.year, period.month)[1]
        day = min(self.schedule.monthly_deadline_day, last)
        return datetime(period.year, period.month, day, 23, 59, 59, tzinfo=self.clock.tz)

    def current(self) -> Period:
        """The month it is now."""
        return Period.of(self.now())

    def is_late(self, period: Period, at: datetime) -> bool:
        """Whether something for `period` sent at `at` is late."""
        return at > self.deadline(period)

    def days_left(self, period: Period) -> int:
        """Whole days from today to the deadline day (0 on the day, negative after)."""
        return (self.deadline(period).date() - self.now().date()).days

    def article_periods(self, fulfilled: set[str]) -> tuple[Period, Period]:
        """(default, alternative) for a new article (domain.md, "Periods and deadlines").

        The default is this month while it is not fulfilled (on time to the deadline, late after),
        otherwise next month; the alternative is the other of the two.
        """
        this = self.current()
        following = this.shift(1)
        return (this, following) if this.key not in fulfilled else (following, this)

    def next_periodic(self) -> tuple[Any, datetime] | None:
        """The next periodic report deadline (a configured named deadline) and its moment."""
        now = self.now()
        best: tuple[Any, datetime] | None = None
        for item in self.schedule.periodic:
            month, day = (int(x) for x in item.due.split("-"))
            for year in (now.year, now.year + 1):
                moment = datetime(
                    year, month, min(day, monthrange(year, month)[1]), 23, 59, 59, tzinfo=self.clock.tz
                )
                if moment >= now:
                    if best is None or moment < best[1]:
                        best = (item, moment)
                    break
        return best

    def previous_periodic(self, item: Any, due: datetime) -> datetime:
        """The deadline of the same kind before `due` (a report covers the time since then)."""
        month, day = (int(x) for x in item.due.split("-"))
        year = due.year - 1
        return datetime(year, month, min(day, monthrange(year, month)[1]), 23, 59, 59, tzinfo=self.clock.tz)
