"""Periods and deadlines, with the clock moved across month ends and the deadline day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.config import load_settings
from handlers.calendar import Calendar, FrozenClock, Period
from storage.errors import ConfigError


def calendar_at(at: datetime, **schedule: Any) -> Calendar:
    settings = load_settings(None, schedule=schedule) if schedule else load_settings(None)
    return Calendar(FrozenClock(at), settings.schedule)


def test_period_keys_labels_and_shifts() -> None:
    p = Period(2026, 12)
    assert p.key == "2026-12" and p.label == "12/2026"
    assert p.shift(1) == Period(2027, 1) and p.shift(-12) == Period(2025, 12)
    assert Period.parse("2026-11") == Period(2026, 11)
    assert (
        Period.parse("2026-13") is None and Period.parse("abc") is None and Period.parse("2026-1-1") is None
    )


def test_the_deadline_is_the_15th_at_23_59_local() -> None:
    cal = calendar_at(datetime(2026, 11, 3, 9))
    due = cal.deadline(Period(2026, 11))
    assert (due.day, due.hour, due.minute) == (15, 23, 59)
    assert due.utcoffset() == timedelta(hours=7)
    assert not cal.is_late(Period(2026, 11), due)
    assert cal.is_late(Period(2026, 11), due + timedelta(seconds=1))


def test_a_deadline_day_past_the_month_end_is_clamped() -> None:
    cal = calendar_at(datetime(2026, 2, 3), monthly_deadline_day=31)
    assert cal.deadline(Period(2026, 2)).day == 28
    assert cal.deadline(Period(2028, 2)).day == 29
    assert cal.deadline(Period(2026, 4)).day == 30


@pytest.mark.parametrize("day", [0, 32, -1])
def test_an_impossible_deadline_day_is_refused_at_start(day: int) -> None:
    with pytest.raises(ConfigError, match="monthly_deadline_day"):
        load_settings(None, schedule={"monthly_deadline_day": day})


def test_a_new_article_counts_for_this_month_until_it_is_fulfilled() -> None:
    before = calendar_at(datetime(2026, 11, 10, 9))
    assert before.article_periods(set()) == (Period(2026, 11), Period(2026, 12))
    after_deadline = calendar_at(datetime(2026, 11, 20, 9))
    assert after_deadline.article_periods(set()) == (Period(2026, 11), Period(2026, 12))  # late, still owed
    assert after_deadline.article_periods({"2026-11"}) == (Period(2026, 12), Period(2026, 11))
    year_end = calendar_at(datetime(2026, 12, 31, 23, 30))
    assert year_end.article_periods({"2026-12"})[0] == Period(2027, 1)


def test_days_left() -> None:
    cal = calendar_at(datetime(2026, 11, 10, 23, 0))
    assert cal.days_left(Period(2026, 11)) == 5
    assert calendar_at(datetime(2026, 11, 15, 8)).days_left(Period(2026, 11)) == 0
    assert calendar_at(datetime(2026, 11, 16, 8)).days_left(Period(2026, 11)) == -1


def test_the_next_periodic_deadline() -> None:
    got = calendar_at(datetime(2026, 11, 10)).next_periodic()
    assert got is not None
    item, due = got
    assert item.key == "nam" and due.date().isoformat() == "2026-12-01"
    got = calendar_at(datetime(2026, 12, 2)).next_periodic()
    assert got is not None
    item, due = got
    assert item.key == "6thang" and due.date().isoformat() == "2027-06-20"
    cal = calendar_at(datetime(2026, 6, 20, 23, 0))
    got = cal.next_periodic()
    assert got is not None
    item, due = got
    assert item.key == "6thang" and due.date().isoformat() == "2026-06-20"
    assert cal.previous_periodic(item, due).date().isoformat() == "2025-06-20"


def test_periodic_deadlines_are_validated() -> None:
    with pytest.raises(ConfigError, match="due"):
        load_settings(None, schedule={"periodic": [{"key": "x", "name": "X", "due": "13-01"}]})
    with pytest.raises(ConfigError, match="own key"):
        load_settings(None, schedule={"periodic": [{"key": "x", "name": "X", "due": "01-01"}] * 2})
