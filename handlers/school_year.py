"""School years and semesters: nominations are counted per semester and per school year."""

from __future__ import annotations

from datetime import date, datetime

# The school year starts on 1 September; semester II starts after mid-January (domain.md).
YEAR_STARTS = (9, 1)
SEMESTER_TWO_STARTS = (1, 16)


def school_year(day: date | datetime) -> int:
    """The calendar year a school year starts in: 2026 for 2026-2027."""
    return day.year if (day.month, day.day) >= YEAR_STARTS else day.year - 1


def semester_key(day: date | datetime) -> str:
    """ "2026-2027-HK1" or "2026-2027-HK2"."""
    start = school_year(day)
    second = (day.month, day.day) >= SEMESTER_TWO_STARTS and (day.month, day.day) < YEAR_STARTS
    return f"{start}-{start + 1}-HK{2 if second else 1}"


def year_label(start: int) -> str:
    """ "2026-2027"."""
    return f"{start}-{start + 1}"
