"""Months as people type them: "11/2026", "2026-11", "T11/2026", "tháng 11", "tháng mười một", "tháng chạp".

The one reader of a month for every command that takes one (/status, /export, /bundle, the command line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.calendar import Period
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
