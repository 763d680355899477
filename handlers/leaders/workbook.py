"""/export [month] and `schoolbot export status`: the month by school, the school year, the nominations."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Any

from handlers.calendar import Calendar, Clock, Period, month_start
from handlers.leaders.reader import Translate, Where, bad_month, day, generated, month_asked
from handlers.leaders.summary import month_refusal
from handlers.leaders.years import formula, semesters, weights, year_label, year_spec
from handlers.months import MonthState, month_state
from handlers.nomination import ROLES, public_view, publishable
from handlers.school_year import school_year
from handlers.types import Context, Incoming, Reply
from storage import stats
from storage.db import Database
from storage.exports import Sheet, Value, write_workbook
from storage.media import safe_filename
from storage.models import School, Submission

SCHOOL_COLUMNS = ("code", "school", "level", "office", "registered")  # the workbook's school, in both sheets


async def export_reply(ctx: Context, where: Where, period: Period) -> list[Reply]:
    """The month's workbook, sent as a file."""
    refusal = month_refusal(ctx, where, period)
    if refusal is not None:
        return [refusal]
    name = safe_filename(ctx.t("export.file_name", office=where.office.code, month=period.key))
    path = generated(ctx.settings, "exports", f"u{ctx.user.id if ctx.user else 0}", name)
    count = await asyncio.to_thread(
        build_workbook, ctx.db, ctx.clock, ctx.settings, ctx.t, where, period, path
    )
    year = year_label(school_year(month_start(period, ctx.clock)))
    return [Reply(ctx.t("export.sent", month=period.label, count=count, year=year), file_path=str(path))]


async def export(msg: Incoming, ctx: Context) -> list[Reply]:
    """/export [month]: the month's workbook as a file."""
    asked = month_asked(msg, ctx)
    if isinstance(asked, Reply):
        return [asked]
    found, text, wanted = asked
    if wanted.period is None:
        return [bad_month(ctx, text, "export")]
    return await export_reply(ctx, found, wanted.period)


def build_workbook(
    db: Database, clock: Clock, settings: Any, t: Translate, where: Where, period: Period, path: Path
) -> int:
    """Write the workbook (the month by school, the school year, nominations); how many schools it has."""
    cal = Calendar(clock, settings.schedule)
    start = school_year(month_start(period, clock))
    w = weights(settings)
    with db.session() as s:
        month = stats.month_sheet(s, where.scope, period.key)
        spec = year_spec(cal, settings, start)
        year = stats.year_records(s, where.scope, spec, w)
        nominations = stats.nominations_of(s, where.scope, semesters(start))
    sheets = [
        month_sheet(t, cal, where, period, month),
        year_sheet(t, cal, where, start, year, spec, w),
        nominations_sheet(t, clock, where, start, nominations),
    ]
    write_workbook(path, sheets)
    return len(month)


def school_cells(r: stats.SchoolMonth | stats.YearRecord, clock: Clock) -> list[Value]:
    """The cells naming a school, under SCHOOL_COLUMNS: code, name, level, office, the day it registered."""
    return [r.code, r.name, r.level, r.office, local_date(r.registered, clock)]


def columns(t: Translate, *keys: str) -> tuple[str, ...]:
    """Column headers."""
    return tuple(t(f"export.col.{k}") for k in keys)


def local_date(moment: datetime | None, clock: Clock) -> date | None:
    """The day a moment falls on in the office's zone (a real date cell, shown dd/mm/yyyy)."""
    return None if moment is None else moment.astimezone(clock.tz).date()


def month_sheet(
    t: Translate, cal: Calendar, where: Where, period: Period, rows: list[stats.SchoolMonth]
) -> Sheet:
    """One line per school: state for the month, first sent, articles, review, published."""
    clock = cal.clock
    now = cal.now()
    out: list[list[Value]] = []
    for n, r in enumerate(rows, start=1):
        mark = r.mark
        state = month_state(cal, period, None if mark is None else mark.on_time, r.registered, now)
        if mark is not None:
            review = (
                "published"
                if mark.published
                else "approved"
                if mark.approved
                else "submitted"
                if mark.waiting
                else "returned"
            )
            cells: list[Value] = [
                t(f"export.state.{state}"),
                local_date(mark.first_at, clock),
                mark.articles,
                t(f"status.review.{review}"),
                t("export.yes") if mark.published else t("export.no"),
            ]
        else:
            cells = [t(f"export.state.{state}"), None, 0, None, None]
        out.append([n, *school_cells(r, clock), *cells])
    title = t(
        "export.title_month",
        month=period.label,
        office=where.office.name,
        due=day(cal.deadline(period), clock),
        today=day(cal.now(), clock),
    )
    headers = columns(t, "number", *SCHOOL_COLUMNS, "state", "sent_on", "articles", "review", "published")
    return Sheet(t("export.sheet_month", month=f"{period.month:02d}-{period.year}"), title, headers, out)


def months_due(cal: Calendar, spec: stats.YearSpec, registered: datetime | None) -> int:
    """The year's months whose deadline has passed that the school owed (it had joined by their end)."""
    now = cal.now()
    months = (p for p in map(Period.parse, spec.months) if p is not None)
    # Had it sent nothing, the month would be missing: its deadline has passed and the school owed it.
    return sum(1 for p in months if month_state(cal, p, None, registered, now) is MonthState.MISSING)


def year_sheet(
    t: Translate,
    cal: Calendar,
    where: Where,
    start: int,
    records: list[stats.YearRecord],
    spec: stats.YearSpec,
    w: stats.Weights,
) -> Sheet:
    """One line per school, ranked: its months, articles approved and published, nominations, reports."""
    clock = cal.clock
    out: list[list[Value]] = []
    for r in records:
        due = months_due(cal, spec, r.registered)
        missing = max(0, due - r.months_sent_due)
        out.append(
            [
                r.rank,
                *school_cells(r, clock),
                r.months_on_time,
                r.months_late,
                missing,
                r.approved,
                r.published,
                r.nominations,
                r.reports_on_time,
                r.score,
            ]
        )
    title = t(
        "export.title_year",
        year=year_label(start),
        office=where.office.name,
        formula=formula(t, w),
        today=day(cal.now(), clock),
    )
    headers = columns(
        t,
        "rank",
        *SCHOOL_COLUMNS,
        "months_on_time",
        "months_late",
        "months_missing",
        "approved",
        "published_count",
        "nominations",
        "reports_on_time",
        "score",
    )
    return Sheet(t("export.sheet_year", year=year_label(start)), title, headers, out)


def nominations_sheet(
    t: Translate, clock: Clock, where: Where, start: int, rows: list[tuple[Submission, School]]
) -> Sheet:
    """The school year's nominations; a student without the parents' consent by initials, no achievements."""
    out: list[list[Value]] = []
    for n, (row, school) in enumerate(rows, start=1):
        view = public_view(row.answers)
        shown = publishable(row.answers)
        role = view.get("role")
        individual = view.get("kind") != "collective"
        out.append(
            [
                n,
                local_date(row.submitted_at or row.created_at, clock),
                "II" if (row.period or "").endswith("HK2") else "I",
                school.name,
                school.code,
                t("export.individual") if individual else t("export.collective"),
                str(view.get("name", "")),
                t(f"nomination.roles.{role}") if role in ROLES else t("nomination.kinds.collective"),
                t(f"nomination.purposes.{view.get('purpose')}") if view.get("purpose") else "",
                t(f"status.review.{row.status}"),
                t("export.yes") if shown else t("export.no"),
                str(view.get("deeds", ""))[:500] if shown else "",
            ]
        )
    title = t("export.title_nominations", year=year_label(start), office=where.office.name)
    headers = columns(
        t,
        "number",
        "sent_at",
        "semester",
        "school",
        "code",
        "kind",
        "name",
        "role",
        "purpose",
        "review",
        "consent",
        "deeds",
    )
    return Sheet(t("export.sheet_nominations"), title, headers, out)
