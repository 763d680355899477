"""Time: one injected clock in the office's time zone, the reporting periods and their deadlines."""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from handlers.school_year import YEAR_STARTS, school_year, semester_key

if TYPE_CHECKING:  # handlers.config reads this module's quiet spans
    from handlers.config import PauseWindow, PeriodicDeadline, ScheduleSettings


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


def month_start(period: Period, clock: Clock) -> datetime:
    """Midnight on the first day of the month, local time."""
    return datetime(period.year, period.month, 1, tzinfo=clock.tz)


def month_end(period: Period, clock: Clock) -> datetime:
    """The first moment after the month (what "registered during the month" is measured against)."""
    return month_start(period.shift(1), clock)


class Calendar:
    """Deadlines from the schedule settings, in the office's time zone."""

    def __init__(self, clock: Clock, schedule: ScheduleSettings) -> None:
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

    def next_periodic(self) -> tuple[PeriodicDeadline, datetime] | None:
        """The next periodic report deadline (a configured named deadline) and its moment."""
        now = self.now()
        best: tuple[PeriodicDeadline, datetime] | None = None
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

    def previous_periodic(self, item: PeriodicDeadline, due: datetime) -> datetime:
        """The deadline of the same kind before `due` (a report covers the time since then)."""
        month, day = (int(x) for x in item.due.split("-"))
        year = due.year - 1
        return datetime(year, month, min(day, monthrange(year, month)[1]), 23, 59, 59, tzinfo=self.clock.tz)

    # ---- quiet hours, pauses, the school year (the clock's reminders) ------------------------

    def at_time(self, day: date, hhmm: str) -> datetime:
        """`day` at "HH:MM", in the office's zone."""
        hours, minutes = (int(x) for x in hhmm.split(":"))
        return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=self.clock.tz)

    def quiet(self, at: datetime | None = None) -> bool:
        """Whether `at` (default: now) falls in the quiet hours, when no bulk message is sent."""
        moment = (at or self.now()).astimezone(self.clock.tz)
        minute = moment.hour * 60 + moment.minute
        return any(start <= minute < end for start, end in _quiet_spans(self.schedule))

    def pause_at(self, at: datetime | None = None) -> PauseWindow | None:
        """The pause window (e.g. Tết) `at` falls in, if any."""
        day = (at or self.now()).astimezone(self.clock.tz).date()
        return next((p for p in self.schedule.pauses if p.start <= day <= p.end), None)

    def can_send(self, at: datetime | None = None) -> bool:
        """Neither quiet hours nor a pause: reminders and escalations may go out."""
        return not self.quiet(at) and self.pause_at(at) is None

    def next_sendable(self, at: datetime) -> datetime:
        """The first moment at or after `at` outside quiet hours and pauses."""
        moment = at.astimezone(self.clock.tz)
        for _ in range(800):  # a pause is at most a few weeks; quiet hours leave time every day
            pause = self.pause_at(moment)
            if pause is not None:
                moment = datetime.combine(pause.end + timedelta(days=1), time(0), tzinfo=self.clock.tz)
                continue
            minute = moment.hour * 60 + moment.minute
            span = next((s for s in _quiet_spans(self.schedule) if s[0] <= minute < s[1]), None)
            if span is None:
                return moment
            midnight = datetime.combine(moment.date(), time(0), tzinfo=self.clock.tz)
            moment = midnight + timedelta(minutes=span[1])
        raise ValueError("no sendable moment within two years")  # config validation prevents this

    def school_year(self, at: datetime | None = None) -> SchoolYear:
        """The school year `at` falls in: September to the following August (teaching ends late May)."""
        moment = (at or self.now()).astimezone(self.clock.tz)
        return SchoolYear(school_year(moment))

    def semester(self, at: datetime | None = None) -> str:
        """The semester `at` falls in, "2026-2027-HK1" (semester II from schedule.semester_two_starts)."""
        moment = (at or self.now()).astimezone(self.clock.tz)
        return semester_key(moment, self.schedule.semester_two_starts)

    def periodic_deadlines(self, at: datetime | None = None) -> list[tuple[PeriodicDeadline, datetime]]:
        """Every periodic deadline from a year before `at` to a year after, in time order."""
        moment = (at or self.now()).astimezone(self.clock.tz)
        out: list[tuple[PeriodicDeadline, datetime]] = []
        for item in self.schedule.periodic:
            month, day = (int(x) for x in item.due.split("-"))
            for year in (moment.year - 1, moment.year, moment.year + 1):
                last = monthrange(year, month)[1]
                out.append((item, datetime(year, month, min(day, last), 23, 59, 59, tzinfo=self.clock.tz)))
        return sorted(out, key=lambda pair: pair[1])


def periodic_key(item: PeriodicDeadline, due: datetime) -> str:
    """The period a periodic report is stored under: "<key>-<year of its deadline>", e.g. "nam-2026"."""
    return f"{item.key}-{due.year}"


@dataclass(frozen=True, order=True)
class SchoolYear:
    """A school year, "2026-2027": from September to the following summer."""

    start_year: int

    @property
    def key(self) -> str:
        """ "2026-2027"."""
        return f"{self.start_year}-{self.start_year + 1}"

    def contains(self, day: date) -> bool:
        """Whether `day` falls in this school year."""
        return date(self.start_year, *YEAR_STARTS) <= day < date(self.start_year + 1, *YEAR_STARTS)


DAY_MINUTES = 24 * 60


def minutes_of(hhmm: str) -> int:
    """ "08:30" -> 510."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def quiet_spans(windows: tuple[str, ...]) -> list[tuple[int, int]]:
    """ "20:00-07:00" windows as merged [start, end) minute spans of one day (midnight splits them).

    Overlapping or touching windows are merged: ("20:00-07:00", "06:00-08:00") is 20:00 to 08:00.
    """
    spans: list[tuple[int, int]] = []
    for window in windows:
        start, end = (minutes_of(x) for x in window.split("-"))
        spans += [(start, end)] if start < end else [(start, DAY_MINUTES), (0, end)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _quiet_spans(schedule: ScheduleSettings) -> list[tuple[int, int]]:
    """The schedule's quiet windows as merged minute spans of one day."""
    return quiet_spans(tuple(schedule.quiet_hours))
