"""The calendar's clock work: quiet hours, pause windows, the school year, and their configuration."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_settings
from handlers.calendar import Calendar, FrozenClock, quiet_spans
from storage.errors import ConfigError


def calendar(at: datetime = datetime(2026, 11, 10, 9), **schedule: Any) -> Calendar:
    settings = load_settings(None, schedule=schedule) if schedule else load_settings(None)
    return Calendar(FrozenClock(at), settings.schedule)


def moment(cal: Calendar, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=cal.clock.tz)


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [
        (19, 59, False),
        (20, 0, True),
        (23, 59, True),
        (0, 0, True),
        (6, 59, True),
        (7, 0, False),
        (12, 0, False),
    ],
)
def test_default_quiet_hours_are_20_to_7(hour: int, minute: int, quiet: bool) -> None:
    cal = calendar()
    assert cal.quiet(moment(cal, 2026, 11, 10, hour, minute)) is quiet


def test_quiet_hours_are_read_in_the_office_zone() -> None:
    cal = calendar()
    utc_noon = datetime.fromisoformat("2026-11-10T13:30:00+00:00")  # 20:30 in Hà Nội
    assert cal.quiet(utc_noon)


def test_overlapping_quiet_windows_are_merged() -> None:
    assert quiet_spans(("20:00-07:00", "06:00-07:30")) == [(0, 450), (1200, 1440)]
    assert quiet_spans(("12:00-13:00", "12:30-14:00", "22:00-23:00")) == [(720, 840), (1320, 1380)]
    cal = calendar(quiet_hours=["20:00-07:00", "06:00-07:30", "11:30-13:30"])
    assert cal.quiet(moment(cal, 2026, 11, 10, 7, 15))
    assert not cal.quiet(moment(cal, 2026, 11, 10, 7, 30))
    assert cal.quiet(moment(cal, 2026, 11, 10, 12, 0))
    assert cal.next_sendable(moment(cal, 2026, 11, 10, 21, 0)) == moment(cal, 2026, 11, 11, 7, 30)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"quiet_hours": ["20:00-20:00"]}, "same time"),
        ({"quiet_hours": ["00:00-12:00", "11:00-00:00"]}, "whole day"),
        ({"quiet_hours": ["8pm-7am"]}, "not a window"),
        ({"quiet_hours": ["25:00-07:00"]}, "not a window"),
        ({"quiet_hours": ["06:00-09:00"]}, "reminder_at"),
        ({"escalate_at": "21:00"}, "escalate_at"),
        ({"reminder_at": "8:00"}, "reminder_at"),
        ({"article_reminders": [5, 5]}, "once"),
        ({"article_reminders": [40]}, "between 0 and 28"),
        ({"report_reminders": [-1]}, "between 0 and 120"),
        ({"escalate_after_days": [0]}, "between 1 and 28"),
        ({"pauses": [{"name": "Tết", "start": "2027-02-14", "end": "2027-02-05"}]}, "before it starts"),
        ({"pauses": [{"name": "Tết", "start": "2027-02-30", "end": "2027-03-05"}]}, "pauses"),
        ({"sweep_minutes": 0}, "sweep_minutes"),
        ({"semester_two_starts": "07-01"}, "between December and March"),
        ({"semester_two_starts": "02-30"}, "not a day of the year"),
        ({"semester_two_starts": "16/01"}, "semester_two_starts"),
    ],
)
def test_bad_schedules_are_refused_at_start_naming_the_key(schedule: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(None, schedule=schedule)


def test_bad_outbox_settings_are_refused_at_start() -> None:
    for bad in ({"rate": 0}, {"concurrency": 0}, {"per_chat_seconds": -1}, {"lease_seconds": 1}):
        with pytest.raises(ConfigError, match="outbox"):
            load_settings(None, outbox=bad)


def test_the_sender_lease_is_short_and_never_outlives_the_claims() -> None:
    assert load_settings(None).outbox.sender_lease_seconds == 10
    for bad in ({"sender_lease_seconds": 2}, {"lease_seconds": 30, "sender_lease_seconds": 31}):
        with pytest.raises(ConfigError, match="sender_lease_seconds"):
            load_settings(None, outbox=bad)


def test_ladders_are_kept_latest_first_whatever_order_they_are_written_in() -> None:
    settings = load_settings(None, schedule={"article_reminders": [0, 5, 1], "escalate_after_days": [7, 1]})
    assert settings.schedule.article_reminders == (5, 1, 0)
    assert settings.schedule.escalate_after_days == (1, 7)


def test_a_tet_pause_with_its_edges() -> None:
    cal = calendar(pauses=[{"name": "Tết Đinh Mùi", "start": "2027-02-05", "end": "2027-02-14"}])
    assert cal.pause_at(moment(cal, 2027, 2, 4, 23, 59)) is None
    pause = cal.pause_at(moment(cal, 2027, 2, 5, 0, 0))
    assert pause is not None and pause.name == "Tết Đinh Mùi"
    assert cal.pause_at(moment(cal, 2027, 2, 14, 23, 59)) is not None
    assert cal.pause_at(moment(cal, 2027, 2, 15, 0, 0)) is None
    assert not cal.can_send(moment(cal, 2027, 2, 10, 10, 0))
    assert cal.can_send(moment(cal, 2027, 2, 15, 10, 0))
    # From inside the pause the next moment to send is after the pause *and* after the quiet hours.
    assert cal.next_sendable(moment(cal, 2027, 2, 9, 10, 0)) == moment(cal, 2027, 2, 15, 7, 0)
    assert cal.next_sendable(moment(cal, 2027, 2, 15, 9, 0)) == moment(cal, 2027, 2, 15, 9, 0)


def test_overlapping_pauses_add_up() -> None:
    cal = calendar(
        pauses=[
            {"name": "Tết", "start": "2027-02-05", "end": "2027-02-10"},
            {"name": "Nghỉ bù", "start": "2027-02-09", "end": "2027-02-12"},
        ]
    )
    assert cal.next_sendable(moment(cal, 2027, 2, 6, 12, 0)) == moment(cal, 2027, 2, 13, 7, 0)


def test_the_clock_moved_across_a_month_end_and_a_year_end() -> None:
    clock = FrozenClock(datetime(2026, 12, 31, 19, 59))
    cal = Calendar(clock, load_settings(None).schedule)
    assert cal.can_send()
    clock.advance(minutes=1)
    assert cal.quiet() and cal.current().key == "2026-12"
    clock.advance(hours=4)
    assert cal.quiet() and cal.current().key == "2027-01"
    assert cal.next_sendable(cal.now()) == moment(cal, 2027, 1, 1, 7, 0)


def test_the_school_year() -> None:
    cal = calendar(datetime(2027, 2, 10))
    year = cal.school_year()
    assert year.key == "2026-2027" and year.contains(date(2026, 9, 1)) and year.contains(date(2027, 5, 28))
    assert not year.contains(date(2027, 9, 1))
    assert cal.school_year(moment(cal, 2027, 9, 1, 0, 0)).key == "2027-2028"


def test_semester_two_starts_on_the_configured_day_in_the_office_zone() -> None:
    cal = calendar()
    assert cal.semester(moment(cal, 2026, 9, 1, 0, 0)) == "2026-2027-HK1"
    assert cal.semester(moment(cal, 2027, 1, 15, 23, 59)) == "2026-2027-HK1"
    assert cal.semester(moment(cal, 2027, 1, 16, 0, 0)) == "2026-2027-HK2"
    # 15 January 17:30 UTC is already the 16th in Hà Nội.
    assert cal.semester(datetime(2027, 1, 15, 17, 30, tzinfo=ZoneInfo("UTC"))) == "2026-2027-HK2"
    assert cal.semester(moment(cal, 2027, 8, 31, 23, 59)) == "2026-2027-HK2"
    assert cal.semester(moment(cal, 2027, 9, 1, 0, 0)) == "2027-2028-HK1"
    december = calendar(semester_two_starts="12-28")  # a province that starts semester II before Tết
    assert december.semester(moment(december, 2026, 12, 27, 12, 0)) == "2026-2027-HK1"
    assert december.semester(moment(december, 2026, 12, 28, 0, 0)) == "2026-2027-HK2"
    february = calendar(semester_two_starts="02-01")
    assert february.semester(moment(february, 2027, 1, 31, 12, 0)) == "2026-2027-HK1"


def test_periodic_deadlines_around_now_are_in_time_order_and_clamped() -> None:
    cal = calendar(
        periodic=[
            {"key": "hk1", "name": "Học kỳ I", "due": "02-30"},
            {"key": "nam", "name": "Năm", "due": "12-01"},
        ]
    )
    found = [(item.key, due.date().isoformat()) for item, due in cal.periodic_deadlines()]
    assert found == [
        ("hk1", "2025-02-28"),
        ("nam", "2025-12-01"),
        ("hk1", "2026-02-28"),
        ("nam", "2026-12-01"),
        ("hk1", "2027-02-28"),
        ("nam", "2027-12-01"),
    ]
