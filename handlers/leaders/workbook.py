"""/export [month] and `schoolbot export status`: the month by school, the school year, the nominations, and
a sheet per periodic report deadline of the school year (each school's report, its figures and its file).

Every sheet has every school of the scope; one with no account by the deadline is not registered (its
own state), as /status counts it."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.calendar import Calendar, Clock, Period, month_start
from handlers.consent import Shield, publishable, shield
from handlers.leaders.reader import Translate, Where, bad_month, day, generated, month_asked
from handlers.leaders.summary import month_refusal
from handlers.leaders.years import formula, report_keys, semesters, weights, year_label, year_spec
from handlers.months import MonthState, deadline_state, month_state, period_name
from handlers.nomination import is_model, nominee_name, role_label
from handlers.onboarding import registration_sheet
from handlers.profile import labels_of, person_label
from handlers.reminders import REPORT, find_deadline
from handlers.report import FIGURES
from handlers.school_year import school_year
from handlers.types import Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.db import Database
from storage.exports import Sheet, Value, write_workbook
from storage.media import safe_filename
from storage.models import School, Submission
from storage.scope import in_scope

if TYPE_CHECKING:
    from handlers.config import Settings

SCHOOL_COLUMNS = ("code", "school", "level", "office", "registered")  # the workbook's school, in both sheets


async def export_reply(ctx: Context, where: Where, period: Period) -> list[Reply]:
    """The month's workbook, sent as a file."""
    refusal = month_refusal(ctx, where, period)
    if refusal is not None:
        return [refusal]
    name = safe_filename(ctx.t("export.file_name", office=where.office.code, month=period.key))
    path = generated(ctx.settings, "exports", f"u{ctx.user.id if ctx.user else 0}", name)
    count, _ = await asyncio.to_thread(
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
    db: Database, clock: Clock, settings: Settings, t: Translate, where: Where, period: Period, path: Path
) -> tuple[int, int]:
    """Write the workbook (the month by school, the school year, nominations, incidents, the periodic
    reports); how many schools and how many sheets it has."""
    cal = Calendar(clock, settings.schedule)
    start = school_year(month_start(period, clock))
    w = weights(settings)
    with db.session() as s:
        month = stats.month_sheet(s, where.scope, period.key)
        sent_by = {
            code: ", ".join(dict.fromkeys(person_label(u, t) for u in users))
            for code, users in q.senders_by_school(
                s, in_scope(where.scope), stats.ARTICLE, period.key
            ).items()
        }
        spec = year_spec(cal, settings, start)
        year = stats.year_records(s, where.scope, spec, w)
        nominations = stats.nominations_of(s, where.scope, semesters(start))
        reports = [(key, stats.report_sheet(s, where.scope, key)) for key in report_keys(settings, start)]
        guard = shield(s, sorted({row.school_id for row, _ in nominations}))
        incidents = stats.incident_times(s, where.scope)  # every level: the office's shared emergency
        senders = labels_of(s, (row.user_id for row, _ in nominations), t)
        boarding = q.boarding(s, in_scope(where.scope), clock.now())
    sheets = [
        month_sheet(t, cal, where, period, month, sent_by),
        year_sheet(t, cal, where, start, year, spec, w),
        nominations_sheet(t, clock, where, start, nominations, guard, senders),
        incidents_sheet(t, clock, where, start, incidents),
    ]
    dues = {key: report_due(cal, key) for key, _ in reports}
    for key, rows in sorted(reports, key=lambda pair: dues[pair[0]] or cal.now()):
        due = dues[key]
        if due is not None:
            sheets.append(report_sheet(t, cal, where, key, due, rows))
    sheets.append(registration_sheet(t, clock, where, boarding))
    write_workbook(path, sheets)
    return len(month), len(sheets)


def school_cells(r: stats.SchoolMonth | stats.YearRecord | stats.SchoolReport, clock: Clock) -> list[Value]:
    """The cells naming a school, under SCHOOL_COLUMNS: code, name, level, office, the day it registered."""
    return [r.code, r.name, r.level, r.office, local_date(r.registered, clock)]


def columns(t: Translate, *keys: str) -> tuple[str, ...]:
    """Column headers."""
    return tuple(t(f"export.col.{k}") for k in keys)


def local_date(moment: datetime | None, clock: Clock) -> date | None:
    """The day a moment falls on in the office's zone (a real date cell, shown dd/mm/yyyy)."""
    return None if moment is None else moment.astimezone(clock.tz).date()


def month_sheet(
    t: Translate,
    cal: Calendar,
    where: Where,
    period: Period,
    rows: list[stats.SchoolMonth],
    sent_by: dict[str, str],
) -> Sheet:
    """One line per school: state for the month, first sent, articles, review, published, who sent them."""
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
        out.append([n, *school_cells(r, clock), *cells, sent_by.get(r.code, "")])
    title = t(
        "export.title_month",
        month=period.label,
        office=where.office.name,
        due=day(cal.deadline(period), clock),
        today=day(cal.now(), clock),
    )
    headers = columns(
        t, "number", *SCHOOL_COLUMNS, "state", "sent_on", "articles", "review", "published", "sent_by"
    )
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


def report_due(cal: Calendar, key: str) -> datetime | None:
    """The deadline of a periodic report's period ("nam-2026": 1 Dec 2026 at 23:59:59), from the settings."""
    deadline = find_deadline(cal, REPORT, key)
    return deadline.due if deadline is not None else None


def report_sheet(
    t: Translate, cal: Calendar, where: Where, key: str, due: datetime, rows: list[stats.SchoolReport]
) -> Sheet:
    """One line per school for a periodic report deadline: on time, late, missing, not yet due or not
    registered; the figures the school gave, its highlights and difficulties, and its signed file."""
    clock = cal.clock
    now = cal.now()
    out: list[list[Value]] = []
    for n, r in enumerate(rows, start=1):
        row = r.report
        state = deadline_state(None if row is None else not row.late, r.registered, due, due, now)
        cells: list[Value] = [t(f"export.state.{state}")]
        if row is None:
            cells += [None, *([None] * len(FIGURES)), None, None, None, None]
        else:
            answers = row.answers or {}
            cells += [
                local_date(row.submitted_at or row.created_at, clock),
                *(figure(answers.get(k)) for k in FIGURES),
                str(answers.get("highlights") or ""),
                str(answers.get("difficulties") or ""),
                signed_file(t, answers.get("document")),
                t(f"status.review.{row.status}"),
            ]
        out.append([n, *school_cells(r, clock), *cells])
    name = period_name(t, cal.schedule, key)
    title = t(
        "export.report.title", name=name, office=where.office.name, due=day(due, clock), today=day(now, clock)
    )
    headers = (
        *columns(t, "number", *SCHOOL_COLUMNS, "state", "sent_on"),
        *(t(f"report.fig.{k}_short") for k in FIGURES),
        t("report.highlights_short"),
        t("report.difficulties_short"),
        t("export.report.file"),
        t("export.col.review"),
    )
    return Sheet(name, title, headers, out)


def figure(value: Any) -> int | None:
    """A figure the school gave, as a number (None when it gave none)."""
    try:
        return int(value) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        return None


def signed_file(t: Translate, document: Any) -> str:
    """The signed report: the link the school gave, or the name of the file it sent."""
    if not isinstance(document, dict):
        return ""
    if document.get("link"):
        return str(document["link"])
    return t("export.report.sent_file", name=str(document.get("name") or ""))


def deeds_text(t: Translate, answers: dict[str, Any]) -> str:
    """What a nominee did; for a model: its unit, what it changes, its results and since when."""
    if not is_model(answers):
        return str(answers.get("deeds", ""))
    parts = [(key, answers.get(key)) for key in ("unit", "change", "results", "since")]
    return "\n".join(f"{t(f'nomination.model.{key}_short')}: {value}" for key, value in parts if value)


def nominations_sheet(
    t: Translate,
    clock: Clock,
    where: Where,
    start: int,
    rows: list[tuple[Submission, School]],
    guard: Shield,
    senders: dict[int, str],
) -> Sheet:
    """The school year's nominations, each with who sent it; pupils without the parents' consent by
    initials (consent.py)."""
    out: list[list[Value]] = []
    for n, (row, school) in enumerate(rows, start=1):
        view = guard.answers(row)
        shown = publishable(row.answers)
        kind = (
            "model" if is_model(view) else "collective" if view.get("kind") == "collective" else "individual"
        )
        out.append(
            [
                n,
                local_date(row.submitted_at or row.created_at, clock),
                "II" if (row.period or "").endswith("HK2") else "I",
                school.name,
                school.code,
                t("nomination.model.kind") if kind == "model" else t(f"export.{kind}"),
                nominee_name(view),
                role_label(t, view),
                t(f"nomination.purposes.{view.get('purpose')}") if view.get("purpose") else "",
                t(f"status.review.{row.status}"),
                t("export.yes") if shown else t("export.no"),
                deeds_text(t, view)[:500],
                senders.get(row.user_id, ""),
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
        "sent_by",
    )
    return Sheet(t("export.sheet_nominations"), title, headers, out)


def incidents_sheet(
    t: Translate, clock: Clock, where: Where, start: int, rows: list[stats.IncidentTimes]
) -> Sheet:
    """The school year's incidents, every level: each case's state, holder, times and result."""
    out: list[list[Value]] = []
    year = [r for r in rows if school_year(r.created_at.astimezone(clock.tz)) == start]
    for n, r in enumerate(year, start=1):
        ack = round((r.acked_at - r.created_at).total_seconds() / 60) if r.acked_at else None
        closed = round((r.closed_at - r.created_at).total_seconds() / 3600, 1) if r.closed_at else None
        out.append(
            [
                n,
                r.id,
                r.school,
                r.level,
                t(f"incident.level.{r.severity}"),
                t(f"incident.state.{r.state}"),
                moment_text(r.happened_at, clock),
                moment_text(r.created_at, clock),
                r.holder,
                ack,
                closed,
                r.result,
                r.result_link,
            ]
        )
    title = t("incident.sheet.title", year=year_label(start), office=where.office.name)
    headers = (
        t("export.col.number"),
        *(
            t(f"incident.sheet.{k}")
            for k in (
                "case",
                "school",
                "level",
                "severity",
                "state",
                "happened",
                "reported",
                "holder",
                "ack_minutes",
                "close_hours",
                "result",
                "link",
            )
        ),
    )
    return Sheet(t("incident.sheet.name"), title, headers, out)


def moment_text(moment: datetime | None, clock: Clock) -> str:
    """ "29/11/2026 14:30" in the office's zone ("" for none): a day and a time of day."""
    return "" if moment is None else moment.astimezone(clock.tz).strftime("%H:%M %d/%m/%Y")
