"""School years as the ranking and the workbook count them: months, semesters, reports due, weights."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from handlers.calendar import Calendar, Period
from handlers.leaders.reader import Translate
from storage import stats

if TYPE_CHECKING:
    from handlers.config import Settings


def read_school_year(text: str) -> int | None:
    """ "2025-2026", "2025–26", "2025/2026", "2025" -> 2025 (the year it starts); None otherwise."""
    found = re.fullmatch(r"(\d{4})(?:\s*[-–/]\s*(\d{2}|\d{4}))?", text.strip())
    if not found:
        return None
    start = int(found[1])
    end = found[2]
    if end is not None and int(end) % 100 != (start + 1) % 100:
        return None
    return start if 2000 <= start <= 2100 else None


def year_months(start: int) -> list[Period]:
    """The school year's months, September to August."""
    return [Period(start, 9).shift(n) for n in range(12)]


def semesters(start: int) -> tuple[str, str]:
    """The school year's two semester keys."""
    return (f"{start}-{start + 1}-HK1", f"{start}-{start + 1}-HK2")


def year_label(start: int) -> str:
    """ "2026-2027"."""
    return f"{start}-{start + 1}"


def report_keys(ctx_settings: Settings, start: int) -> tuple[str, ...]:
    """The periodic reports due in the school year: "nam-2026" (1 Dec 2026), "6thang-2027" (20 Jun 2027)."""
    keys = []
    for item in ctx_settings.schedule.periodic:
        month = int(item.due.split("-")[0])
        keys.append(f"{item.key}-{start if month >= 9 else start + 1}")
    return tuple(keys)


def year_spec(cal: Calendar, settings: Settings, start: int) -> stats.YearSpec:
    """What counts for the school year starting in `start`, up to this month."""
    now = cal.now()
    months = [p for p in year_months(start) if p <= cal.current()]
    due = tuple(p.key for p in months if cal.is_late(p, now))
    return stats.YearSpec(tuple(p.key for p in months), semesters(start), report_keys(settings, start), due)


def weights(settings: Settings) -> stats.Weights:
    """The ranking weights from the settings."""
    r = settings.ranking
    return stats.Weights(
        r.article_on_time, r.article_approved, r.article_published, r.nomination, r.report_on_time
    )


def formula(t: Translate, w: stats.Weights) -> str:
    """ "2 × tháng nộp bài đúng hạn + 1 × bài được duyệt + ..." (parts weighing 0 left out)."""
    parts = [f"{value:g} × {t(f'ranking.term.{name}')}" for name, value in vars(w).items() if value]
    return " + ".join(parts)
