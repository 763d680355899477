"""/calendar and `schoolbot calendar`: the school year's deadlines as an .ics file for a phone's calendar.

One event per monthly article deadline (September to August), one per periodic report due in the school
year, and one all-day event per configured pause (Tết, summer). Each deadline carries alarms (VALARM) at
the reminder hour on the days the bot itself reminds (`schedule.article_reminders`,
`schedule.report_reminders`); an alarm that falls in a pause is left out, as the bot's reminder is.
UIDs are stable, so importing a newer file updates the events instead of doubling them. icalendar is
imported by the first file built, not with this module (the router imports it at every start): it is
80 modules and 3 MB that most processes never use.
"""

from __future__ import annotations

import asyncio
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from handlers.calendar import Calendar, Clock
from handlers.leaders.reader import Translate, generated
from handlers.leaders.years import read_school_year, year_label, year_months
from handlers.school_year import YEAR_STARTS, school_year
from handlers.types import Context, Incoming, Reply
from storage.media import safe_filename
from storage.models import Office, School

if TYPE_CHECKING:
    from handlers.config import Settings

PRODID = "-//schoolbot//lich-han-nop//VI"


@dataclass(frozen=True)
class Deadline:
    """One deadline in the file: what, when it starts and ends, the days before it the alarms ring."""

    uid: str
    summary: str
    start: datetime
    end: datetime
    alarm_days: tuple[int, ...]


def year_deadlines(cal: Calendar, t: Translate, start: int, owner: str) -> list[Deadline]:
    """The school year's deadlines: each month's article, then each periodic report, in time order."""
    schedule = cal.schedule
    out = []
    for period in year_months(start):
        due = cal.deadline(period)
        out.append(
            Deadline(
                f"article-{period.key}-{owner}@schoolbot",
                t("ics.article", month=period.label),
                cal.at_time(due.date(), schedule.reminder_at),
                due,
                tuple(schedule.article_reminders),
            )
        )
    for item in schedule.periodic:
        month, day = (int(x) for x in item.due.split("-"))
        year = start if (month, day) >= YEAR_STARTS else start + 1
        due_day = date(year, month, min(day, monthrange(year, month)[1]))
        out.append(
            Deadline(
                f"report-{item.key}-{year}-{owner}@schoolbot",
                t("ics.report", name=item.name),
                cal.at_time(due_day, schedule.reminder_at),
                cal.at_time(due_day, "23:59"),
                tuple(schedule.report_reminders),
            )
        )
    return sorted(out, key=lambda d: d.start)


def build_ics(cal: Calendar, t: Translate, start: int, owner: str, title: str) -> bytes:
    """The .ics text of the school year starting in `start` for `owner` (a school's or office's code)."""
    from icalendar import Alarm, Event  # loaded when a file is first built (see the module's docstring)
    from icalendar import Calendar as ICalendar

    now = cal.now()
    ical = ICalendar()
    ical.add("prodid", PRODID)
    ical.add("version", "2.0")
    ical.add("calscale", "GREGORIAN")
    ical.add("x-wr-calname", t("ics.title", name=title, year=year_label(start)))
    ical.add("x-wr-timezone", str(cal.clock.tz))
    for deadline in year_deadlines(cal, t, start, owner):
        event = Event()
        event.add("uid", deadline.uid)
        event.add("dtstamp", now)
        event.add("dtstart", deadline.start)
        event.add("dtend", deadline.end)
        event.add("summary", deadline.summary)
        event.add("description", t("ics.description", due=deadline.end.strftime("%H:%M %d/%m/%Y")))
        for days in sorted(set(deadline.alarm_days), reverse=True):
            if cal.pause_at(deadline.start - timedelta(days=days)) is not None:
                continue  # the bot sends no reminder in a pause either
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", deadline.summary)
            alarm.add("trigger", timedelta(days=-days))
            event.add_component(alarm)
        ical.add_component(event)
    first, last = date(start, *YEAR_STARTS), date(start + 1, *YEAR_STARTS)
    for pause in cal.schedule.pauses:
        if pause.end < first or pause.start >= last:
            continue
        event = Event()
        event.add("uid", f"pause-{pause.start.isoformat()}-{owner}@schoolbot")
        event.add("dtstamp", now)
        event.add("dtstart", pause.start)
        event.add("dtend", pause.end + timedelta(days=1))  # an all-day DTEND is the day after
        event.add("summary", t("ics.pause", name=pause.name))
        event.add("transp", "TRANSPARENT")
        ical.add_component(event)
    ical.add_missing_timezones()
    return bytes(ical.to_ical())


def write_ics(
    path: Path, clock: Clock, settings: Settings, t: Translate, start: int, owner: str, title: str
) -> int:
    """Write the file; how many deadlines it holds."""
    cal = Calendar(clock, settings.schedule)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_ics(cal, t, start, owner, title))
    return len(year_deadlines(cal, t, start, owner))


async def calendar_command(msg: Incoming, ctx: Context) -> list[Reply]:
    """/calendar [2026-2027]: the school year's deadlines as an .ics file (this school year when left out)."""
    user = ctx.user
    assert user is not None
    text = msg.args.strip()
    start = read_school_year(text) if text else school_year(ctx.clock.now())
    if start is None:
        return [Reply(ctx.t("ics.bad_year", text=text[:40]))]
    with ctx.db.session() as s:
        school = s.get(School, user.school_id) if user.school_id is not None else None
        office = s.get(Office, user.office_id) if user.office_id is not None else None
        owner, title = (
            (school.code, school.name) if school else (office.code, office.name) if office else ("", "")
        )
    if not owner:
        return [Reply(ctx.t("status_leader.no_office"))]
    year = year_label(start)
    name = safe_filename(ctx.t("ics.file_name", code=owner, year=year))
    path = generated(ctx.settings, "calendars", f"u{user.id or 0}", name)
    count = await asyncio.to_thread(write_ics, path, ctx.clock, ctx.settings, ctx.t, start, owner, title)
    return [Reply(ctx.t("ics.sent", year=year, count=count), file_path=str(path))]
