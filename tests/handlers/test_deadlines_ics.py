"""/calendar and `schoolbot calendar`: the .ics file parsed back with icalendar, over a year crossing Tết."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar as ICalendar
from icalendar import Component

from bot.app import App
from bot.config import Settings, load_settings
from tests.conftest import Chat

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PAUSES = [
    {"name": "Tết Nguyên đán 2027", "start": "2027-02-05", "end": "2027-02-14"},
    {"name": "Nghỉ hè 2027", "start": "2027-06-01", "end": "2027-08-15"},
    {"name": "Tết 2026 (năm học trước)", "start": "2026-02-14", "end": "2026-02-22"},
]


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        None, database_url=database_url, media_dir=str(tmp_path / "media"), schedule={"pauses": PAUSES}
    )


def parsed(path: Path) -> tuple[ICalendar, dict[str, Component]]:
    cal = ICalendar.from_ical(path.read_bytes())
    events = {str(e["summary"]): e for e in cal.walk("VEVENT")}
    return cal, events


def alarm_moments(event: Component) -> list[datetime]:
    start = event.decoded("dtstart")
    return sorted(start + a.decoded("trigger") for a in event.walk("VALARM"))


async def test_a_principal_gets_the_school_year_with_tet_and_alarms(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    replies = await chat_as("principal").send("/calendar")
    assert "2026-2027" in replies[0].text and "14 mốc" in replies[0].text
    path = Path(replies[0].file_path)
    assert path.suffix == ".ics" and "THCS-PUNHI" in path.name
    cal, events = parsed(path)
    assert "Pú Nhi" in str(cal["x-wr-calname"])
    articles = sorted(e.decoded("dtend") for s, e in events.items() if s.startswith("Hạn gửi bài viết"))
    assert [(d.year, d.month, d.day) for d in articles] == [
        (2026, 9, 15), (2026, 10, 15), (2026, 11, 15), (2026, 12, 15), (2027, 1, 15), (2027, 2, 15),
        (2027, 3, 15), (2027, 4, 15), (2027, 5, 15), (2027, 6, 15), (2027, 7, 15), (2027, 8, 15),
    ]  # fmt: skip
    assert all((d.hour, d.minute, d.utcoffset()) == (23, 59, timedelta(hours=7)) for d in articles)

    january = events["Hạn gửi bài viết tháng 01/2027"]
    assert january.decoded("dtstart") == datetime(2027, 1, 15, 8, 0, tzinfo=TZ)
    assert [m.date() for m in alarm_moments(january)] == [
        date(2027, 1, 10), date(2027, 1, 13), date(2027, 1, 14), date(2027, 1, 15)
    ]  # fmt: skip
    # Tết runs 5-14 February: the alarms 5, 2 and 1 days before the 15th fall in it and are left out.
    february = events["Hạn gửi bài viết tháng 02/2027"]
    assert alarm_moments(february) == [datetime(2027, 2, 15, 8, 0, tzinfo=TZ)]
    tet = events["Tạm nghỉ nhắc việc: Tết Nguyên đán 2027"]
    assert (tet.decoded("dtstart"), tet.decoded("dtend")) == (date(2027, 2, 5), date(2027, 2, 15))
    summer = events["Tạm nghỉ nhắc việc: Nghỉ hè 2027"]
    assert summer.decoded("dtend") == date(2027, 8, 16)
    assert alarm_moments(events["Hạn gửi bài viết tháng 07/2027"]) == []
    assert not any("năm học trước" in s for s in events)  # another school year's pause stays out

    yearly = events["Hạn nộp Báo cáo năm"]
    assert yearly.decoded("dtstart").date() == date(2026, 12, 1)
    assert [m.date() for m in alarm_moments(yearly)] == [
        date(2026, 11, 17), date(2026, 11, 24), date(2026, 11, 28), date(2026, 11, 30)
    ]  # fmt: skip
    assert events["Hạn nộp Báo cáo 6 tháng"].decoded("dtstart").date() == date(2027, 6, 20)
    assert cal.walk("VTIMEZONE") and str(cal.walk("VTIMEZONE")[0]["tzid"]) == "Asia/Ho_Chi_Minh"
    assert len({str(e["uid"]) for e in cal.walk("VEVENT")}) == len(cal.walk("VEVENT")) == 16


async def test_another_school_year_and_a_bad_one(demo: App, chat_as: Callable[[str], Chat]) -> None:
    officer = chat_as("officer")
    replies = await officer.send("/calendar 2027-2028")
    _, events = parsed(Path(replies[0].file_path))
    assert "PGD-DEMO" in Path(replies[0].file_path).name
    assert events["Hạn gửi bài viết tháng 09/2027"].decoded("dtend").date() == date(2027, 9, 15)
    assert not any("Tết" in s for s in events)  # no pause is configured for 2027-2028
    for text in ("2026-2028", "năm sau", "1999"):
        bad = await officer.send(f"/calendar {text}")
        assert len(bad) == 1 and not bad[0].file_path
        assert "Chưa rõ năm học" in bad[0].text and "/calendar 2026-2027" in bad[0].text


async def test_an_unregistered_user_gets_no_calendar(demo: App, chat_as: Callable[[str], Chat]) -> None:
    replies = await chat_as("stranger").send("/calendar")
    assert not any(r.file_path for r in replies)


async def test_the_office_calendar_from_the_command_line(
    demo: App, settings: Settings, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app as cli

    env = {
        "SCHOOLBOT_DATABASE_URL": settings.database_url,
        "SCHOOLBOT_SCHEDULE__PAUSES": '[{"name": "Tết", "start": "2027-02-05", "end": "2027-02-14"}]',
    }
    out = tmp_path / "lich.ics"
    (tmp_path / "empty.toml").touch()  # every setting from the environment
    config = ["--config", str(tmp_path / "empty.toml")]
    result = CliRunner().invoke(
        cli, ["calendar", "--office", "pgd-demo", "--out", str(out), "--year", "2026-2027", *config], env=env
    )
    assert result.exit_code == 0, result.output
    assert "14 deadline(s)" in result.output
    cal, events = parsed(out)
    assert "Phòng" in str(cal["x-wr-calname"]) or "PGD" in str(cal["x-wr-calname"])
    assert alarm_moments(events["Hạn gửi bài viết tháng 02/2027"]) == [datetime(2027, 2, 15, 8, tzinfo=TZ)]
    assert "Tạm nghỉ nhắc việc: Tết" in events

    unknown = CliRunner().invoke(cli, ["calendar", "--office", "NOPE", "--out", str(out), *config], env=env)
    assert unknown.exit_code == 1 and "no office" in unknown.output
    wrong = CliRunner().invoke(
        cli, ["calendar", "--office", "PGD-DEMO", "--out", str(tmp_path / "x.txt"), *config], env=env
    )
    assert wrong.exit_code == 2 and ".ics" in wrong.output and not (tmp_path / "x.txt").exists()
    year = CliRunner().invoke(
        cli, ["calendar", "--office", "PGD-DEMO", "--out", str(out), "--year", "2026-2030", *config], env=env
    )
    assert year.exit_code == 2 and "school year" in year.output
