"""Months as people type them, read the same way by every command that takes one."""

from __future__ import annotations

import pytest

from handlers.calendar import Period
from handlers.months import MonthArg, month_or_current, read_month

NOW = Period(2026, 11)


@pytest.mark.parametrize(
    ("typed", "month"),
    [
        ("11/2026", Period(2026, 11)),
        ("2026-11", Period(2026, 11)),
        ("T11/2026", Period(2026, 11)),
        ("tháng 10 năm 2026", Period(2026, 10)),
        ("tháng 11", Period(2026, 11)),
        ("12", Period(2025, 12)),
        ("tháng mười hai", Period(2025, 12)),
        ("Thang gieng", Period(2026, 1)),
        ("tháng chạp", Period(2025, 12)),
    ],
)
def test_a_month_in_the_usual_ways(typed: str, month: Period) -> None:
    assert read_month(typed, NOW) == MonthArg(True, month)


@pytest.mark.parametrize("typed", ["13/2026", "0/2026", "tháng mười ba", "tháng", "2026"])
def test_month_like_but_no_month(typed: str) -> None:
    assert read_month(typed, NOW) == MonthArg(True, None)


@pytest.mark.parametrize("typed", ["Trường Xyz", "30123456", "thắng lợi"])
def test_a_school_is_not_month_like(typed: str) -> None:
    assert read_month(typed, NOW) == MonthArg(False)


def test_no_text_is_the_current_month() -> None:
    assert month_or_current("  ", NOW) == MonthArg(True, NOW)
