"""Months: as people type them, and where a school stands with one.

`read_month` is the one reader of a month for every command that takes one (/status, /export, /bundle,
the command line): 11/2026, 2026-11, T11/2026, tháng 11, tháng mười một, tháng chạp.
`month_state` is the one rule for a school's month (on time, late, missing, not yet due, before it
joined), used by /mystatus, the school card, the chart, the workbook and the digest.
`period_name` and `days_phrase` are the one way a period and a deadline's distance are put in words
(never a stored key such as "nam-2026", never "còn -15 ngày").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from handlers.calendar import Calendar, Period, month_end
from storage.text import fold

MONTH_WORD = r"(?:thang|month|t)?\s*"
SEPARATOR = r"\s*[/.\-]\s*"
# Month numbers in words, folded: "tháng giêng", "tháng mười hai", "tháng chạp".
NUMBER_WORDS = {
    "mot": 1,
    "hai": 2,
    "ba": 3,
    "bon": 4,
    "tu": 4,
    "nam": 5,
    "sau": 6,
    "bay": 7,
    "tam": 8,
    "chin": 9,
}
MONTH_NAMES = {"gieng": 1, "chap": 12}
_NUMBER = "(?:" + "|".join(NUMBER_WORDS) + ")"
# A month inside other words ("pu nhi tháng 11", folded): what `month_in` hands to `read_month`.
MONTH_IN_TEXT = re.compile(
    r"\b(?:"
    r"(?:thang|month|t)\s*\d{1,2}(?:\s*[/.\-]\s*\d{4}|\s+(?:nam|year)\s+\d{4})?"
    r"|\d{1,2}\s*[/.\-]\s*\d{4}"
    r"|\d{4}\s*[/.\-]\s*\d{1,2}"
    rf"|(?:thang|month)\s+(?:(?:muoi|moi)(?:\s+{_NUMBER})?|gieng|chap|{_NUMBER})"
    r")\b"
)


@dataclass(frozen=True)
class MonthArg:
    """What the text after a command was: a month (maybe not a valid one), or something else."""

    month_like: bool
    period: Period | None = None


def month_or_current(text: str, current: Period) -> MonthArg:
    """The month a command's text names; the current month when there is no text."""
    text = text.strip()
    return read_month(text, current) if text else MonthArg(True, current)


def read_month(text: str, current: Period) -> MonthArg:
    """ "11/2026", "2026-11", "T11/2026", "11" or a month in words (the latest such month) -> a month.

    Text that looks like a month but is none ("13/2026", the month word with "thirteen" in words) is
    month-like with no period; a school's name or code is not month-like.
    """
    folded = fold(text)
    found = re.fullmatch(MONTH_WORD + r"(\d{1,2})(?:" + SEPARATOR + r"|\s*(?:nam|year)\s*)(\d{4})", folded)
    if found:
        return MonthArg(True, month_of(int(found[2]), int(found[1])))
    found = re.fullmatch(r"(\d{4})" + SEPARATOR + r"(\d{1,2})", folded)
    if found:
        return MonthArg(True, month_of(int(found[1]), int(found[2])))
    found = re.fullmatch(MONTH_WORD + r"(\d{1,2})", folded)
    if found:
        return MonthArg(True, latest(int(found[1]), current))
    words = re.fullmatch(r"(?:thang|month)\s+([a-z ]+)", folded)
    if words and words[1].split()[0] in (*NUMBER_WORDS, *MONTH_NAMES, "muoi", "moi"):
        return MonthArg(True, latest(month_in_words(words[1].split()), current))
    if folded in ("thang", "month"):
        return MonthArg(True)
    if re.fullmatch(r"\d{5,}", folded):
        return MonthArg(False)  # a school code
    if re.fullmatch(r"[\d\s/.\-]+", folded) and folded.strip():
        return MonthArg(True)
    return MonthArg(False)


def month_in(text: str, current: Period) -> tuple[MonthArg, str]:
    """The month named somewhere in free text ("pu nhi tháng 11"), and the other words, folded.

    No month: MonthArg(False) and all the words.
    """
    folded = fold(text)
    found = MONTH_IN_TEXT.search(folded)
    if found is None:
        return MonthArg(False), folded
    rest = " ".join(f"{folded[: found.start()]} {folded[found.end() :]}".split())
    return read_month(found[0], current), rest


def month_in_words(words: list[str]) -> int:
    """ "muoi hai" -> 12, "gieng" -> 1, "muoi ba" -> 13 (no such month); 0 when not a number."""
    if len(words) == 1 and words[0] in MONTH_NAMES:
        return MONTH_NAMES[words[0]]
    if words[0] in ("muoi", "moi"):
        rest = words[1:]
        if not rest:
            return 10
        return 10 + NUMBER_WORDS.get(rest[0], 0) if len(rest) == 1 and rest[0] in NUMBER_WORDS else 0
    return NUMBER_WORDS.get(words[0], 0) if len(words) == 1 else 0


def latest(month: int, current: Period) -> Period | None:
    """The latest month with this number, up to the current one; None for no such month."""
    if not 1 <= month <= 12:
        return None
    return Period(current.year if month <= current.month else current.year - 1, month)


def month_of(year: int, month: int) -> Period | None:
    """A valid month, or None."""
    return Period(year, month) if 2000 <= year <= 2100 and 1 <= month <= 12 else None


# ---- a month's state for one school -----------------------------------------------------------------


class MonthState(StrEnum):
    """Where a school stands with one month's article (the values are the workbook's `export.state.*`)."""

    ON_TIME = "on_time"
    LATE = "late"
    MISSING = "missing"  # nothing sent, the deadline has passed, the school had joined by the month's end
    PENDING = "pending"  # nothing sent yet, the deadline is still ahead
    NOT_JOINED = "unregistered"  # nothing sent, the month was over before the school joined

    @property
    def sent(self) -> bool:
        """Whether the school sent an article for the month (on time or late)."""
        return self in (MonthState.ON_TIME, MonthState.LATE)

    @property
    def owed(self) -> bool:
        """Whether the month counts for the school: it sent, or it had joined by the month's end."""
        return self is not MonthState.NOT_JOINED

    @property
    def mark(self) -> str:
        """The month's mark in a school's history: ✅ ⏰ ❌ 🕓 ▫️."""
        return MARKS[self]


MARKS = {
    MonthState.ON_TIME: "✅",
    MonthState.LATE: "⏰",
    MonthState.MISSING: "❌",
    MonthState.PENDING: "🕓",
    MonthState.NOT_JOINED: "▫️",
}


def month_state(
    cal: Calendar, period: Period, on_time: bool | None, registered: datetime | None, now: datetime
) -> MonthState:
    """The school's state for `period` at `now`; `on_time` is None when it sent nothing for the month.

    A school owes a month when it registered before the month's end (storage/stats.py counts the same way).
    """
    return deadline_state(on_time, registered, month_end(period, cal.clock), cal.deadline(period), now)


def deadline_state(
    on_time: bool | None, registered: datetime | None, until: datetime, due: datetime, now: datetime
) -> MonthState:
    """A school's state for any deadline (a month's article, a periodic report): sent on time or late;
    else not registered before `until` (not owed); else missing once `due` has passed, pending before."""
    if on_time is not None:
        return MonthState.ON_TIME if on_time else MonthState.LATE
    if registered is None or registered >= until:
        return MonthState.NOT_JOINED
    return MonthState.MISSING if now > due else MonthState.PENDING


# ---- periods and deadlines by their names ----------------------------------------------------------
# The one place a stored period key ("2026-11", "nam-2026", "2026-2027-HK1") becomes words a person reads,
# and a number of days before or after a deadline becomes "còn 3 ngày", "hôm nay là hạn", "quá hạn 15 ngày".


def report_name(schedule: Any, key: str) -> tuple[str, int] | None:
    """ "nam-2026" -> ("Báo cáo năm", 2026): a periodic report's configured name and its deadline's year."""
    item_key, _, year = key.rpartition("-")
    if not (year.isdigit() and len(year) == 4):
        return None
    item = next((i for i in getattr(schedule, "periodic", ()) if i.key == item_key), None)
    return (item.name, int(year)) if item is not None else None


def period_name(t: Callable[..., str], schedule: Any, key: str | None) -> str:
    """A stored period in words: "tháng 11/2026", "Báo cáo năm 2026", "học kỳ I năm học 2026-2027".

    A key it cannot read (a report since removed from the configuration) is named as a periodic report of
    its year, never shown as it is stored.
    """
    key = key or ""
    month = Period.parse(key)
    if month is not None:
        return t("period.month", month=month.label)
    semester = re.fullmatch(r"(\d{4}-\d{4})-HK([12])", key)
    if semester:
        return t("period.semester", number="II" if semester[2] == "2" else "I", year=semester[1])
    named = report_name(schedule, key)
    if named is not None:
        return report_label(t, *named)
    year = key.rpartition("-")[2]
    return t("period.report_other", year=year) if year.isdigit() else t("period.unknown")


def report_label(t: Callable[..., str], name: str, year: int) -> str:
    """A periodic report by its configured name and its deadline's year: "Báo cáo năm 2026"."""
    return t("period.report", name=name, year=year)


def days_phrase(t: Callable[..., str], days: int) -> str:
    """Days to a deadline (negative: since it passed): "còn 3 ngày", "hôm nay là hạn", "quá hạn 15 ngày"."""
    if days > 0:
        return t("period.days_ahead", days=days)
    return t("period.days_today") if days == 0 else t("period.days_past", days=-days)


def days_to(due: datetime, now: datetime) -> int:
    """Whole days from `now`'s day to the deadline's day, in the deadline's zone (negative after it)."""
    return (due.date() - now.astimezone(due.tzinfo).date()).days
