"""School years and semesters: nominations are counted per semester and per school year.

The school year runs from 1 September (monthly articles are counted by calendar month, so the year is
September to August). Semester II starts on a day each province sets in its own school calendar, in
mid-January as a rule: `schedule.semester_two_starts` ("MM-DD", default "01-16").
"""

from __future__ import annotations

from datetime import date, datetime

YEAR_STARTS = (9, 1)
SEMESTER_TWO_STARTS = "01-16"


def school_year(day: date | datetime) -> int:
    """The calendar year a school year starts in: 2026 for 2026-2027."""
    return day.year if (day.month, day.day) >= YEAR_STARTS else day.year - 1


def semester_two_start(start: int, starts: str = SEMESTER_TWO_STARTS) -> date:
    """The first day of semester II of the school year starting in `start` ("12-20" falls in `start`)."""
    month, day = (int(x) for x in starts.split("-"))
    return date(start if (month, day) >= YEAR_STARTS else start + 1, month, day)


def semester_key(day: date | datetime, starts: str = SEMESTER_TWO_STARTS) -> str:
    """ "2026-2027-HK1" or "2026-2027-HK2"."""
    start = school_year(day)
    plain = day.date() if isinstance(day, datetime) else day
    second = plain >= semester_two_start(start, starts)
    return f"{start}-{start + 1}-HK{2 if second else 1}"


def year_label(start: int) -> str:
    """ "2026-2027"."""
    return f"{start}-{start + 1}"
