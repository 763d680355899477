"""/status [month]: the scope's month in a text to forward as is, its buttons, and the chart."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from handlers.calendar import Calendar, Period, month_end, month_start, periodic_key
from handlers.leaders import charts, rollup
from handlers.leaders.reader import (
    PREFIX,
    Where,
    bad_month,
    day,
    generated,
    level_label,
    level_sort,
    month_asked,
)
from handlers.leaders.school_card import search
from handlers.months import MonthState, days_phrase, days_to, month_state, period_name
from handlers.school_year import school_year
from handlers.types import Choice, Context, Incoming, Reply
from storage import stats
from storage.models import School
from storage.scope import Scope

MISSING_SHOWN = 10
MISSING_LISTED = 300
SMALL_OFFICE = 12  # up to this many schools, the chart is by school
MONTHS_CHARTED = rollup.EARLIER + 1
UNACKED_SHOWN = 5
# The small office's chart: each school's months stacked in this order (charts.STATE_COLOURS' order);
# a month the school had not registered by is "chưa đăng ký", its own colour in the legend.
CHARTED = (
    MonthState.ON_TIME,
    MonthState.LATE,
    MonthState.MISSING,
    MonthState.PENDING,
    MonthState.NOT_JOINED,
)


@dataclass
class Facts:
    """Everything the summary says, read in one session."""

    by_level: dict[str, stats.Figures]
    history: dict[str, list[stats.Figures]]
    missing: list[tuple[School, str]]
    unregistered: list[tuple[School, str]]
    nominations: stats.NominationFigures
    semester: str
    incidents: list[stats.IncidentLine]
    report: tuple[str, datetime, stats.Figures] | None
    per_school: list[tuple[School, datetime | None, dict[str, bool]]] = field(default_factory=list)
    stale: list[stats.IncidentLine] = field(default_factory=list)  # open past incident.open_days

    @property
    def total(self) -> stats.Figures:
        """All levels together."""
        return sum(self.by_level.values(), stats.Figures())


async def status(msg: Incoming, ctx: Context) -> list[Reply]:
    """/status [month | school]: the scope's month, or one school's record."""
    asked = month_asked(msg, ctx)
    if isinstance(asked, Reply):
        return [asked]
    found, text, wanted = asked
    if not wanted.month_like:
        return search(ctx, found, text)
    if wanted.period is None:
        return [bad_month(ctx, text, "status")]
    return await summary(ctx, found, wanted.period)


async def summary(ctx: Context, where: Where, period: Period) -> list[Reply]:
    """The month for the whole scope: text, buttons and the chart."""
    refusal = month_refusal(ctx, where, period)
    if refusal is not None:
        return [refusal]
    # A national scope takes a few hundred milliseconds of SQL and drawing: off the event loop.
    return [await asyncio.to_thread(summary_reply, ctx, where, period)]


def summary_reply(ctx: Context, where: Where, period: Period) -> Reply:
    """Gather, phrase and draw the month's summary."""
    facts = gather(ctx, where, period)
    text, buttons = compose(ctx, where, period, facts)
    path = generated(ctx.settings, "charts", f"status-u{ctx.user.id if ctx.user else 0}-{period.key}.png")
    return Reply(text, buttons, photo_path=str(draw(ctx, where, period, facts, path)))


def gather(ctx: Context, where: Where, period: Period) -> Facts:
    """Read the month's figures, the chart's months and the rest in one session."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    now = cal.now()
    scope = where.scope
    until = month_end(period, ctx.clock)
    moment = now if period == cal.current() else until - timedelta(seconds=1)
    semester = cal.semester(moment)
    upcoming = cal.next_periodic()
    charted = rollup.earlier_months(period)
    small = scope.schools <= SMALL_OFFICE  # charted by school, not by level
    with ctx.db.session() as s:
        by_level = stats.month_by_level(s, scope, period.key, until)
        history = {} if small else rollup.closed_by_level(s, ctx.clock, scope, charted)
        missing = stats.missing_schools(s, scope, period.key, until, MISSING_SHOWN)
        unregistered = stats.missing_schools(s, scope, period.key, until, MISSING_SHOWN, unregistered=True)
        nominations = stats.nomination_figures(s, scope, [semester])
        incidents = stats.incidents_between(s, scope, month_start(period, ctx.clock), until)
        report = None
        if upcoming is not None:
            key, due = periodic_key(*upcoming), upcoming[1]
            report = (key, due, report_figures(s, scope, key, due))
        per_school = stats.schools_months(s, scope, [p.key for p in [*charted, period]]) if small else []
        stale = stats.incidents_open_since(s, scope, now - timedelta(days=ctx.settings.incident.open_days))
    return Facts(
        by_level, history, missing, unregistered, nominations, semester, incidents, report, per_school, stale
    )


def report_figures(s: Session, scope: Scope, key: str, due: datetime) -> stats.Figures:
    """A periodic report's figures over every school of the scope (registered by its deadline or not)."""
    return sum(stats.month_by_level(s, scope, key, due, kind=stats.REPORT).values(), stats.Figures())


def month_refusal(ctx: Context, where: Where, period: Period) -> Reply | None:
    """A month yet to come, no school registered, or none by the month's end: a plain answer, not zeros."""
    current = Calendar(ctx.clock, ctx.settings.schedule).current()
    if period > current:
        return Reply(ctx.t("status_leader.future", month=period.label, current=current.label))
    with ctx.db.session() as s:
        first = stats.first_registration(s, where.scope)
    if first is None:
        return Reply(ctx.t("status_leader.none_registered", count=where.scope.schools))
    if first >= month_end(period, ctx.clock):
        first_month = Period.of(first.astimezone(ctx.clock.tz))
        return Reply(
            ctx.t(
                "status_leader.before_registration",
                month=period.label,
                first=day(first, ctx.clock),
                first_month=first_month.label,
            )
        )
    return None


def compose(
    ctx: Context, where: Where, period: Period, facts: Facts
) -> tuple[str, tuple[tuple[Choice, ...], ...]]:
    """The summary a leader can forward as is, and its buttons."""
    t = ctx.t
    total = facts.total
    blocks = [
        t("status_leader.title", month=period.label, office=where.office.name) + "\n" + due_line(ctx, period),
        t("status_leader.articles", rate=total.rate, **figure_fields(total)),
    ]
    if len(facts.by_level) > 1:
        blocks.append("\n".join([t("status_leader.by_level"), *level_lines(ctx, facts.by_level)]))
    blocks.append(missing_line(ctx, total, facts.missing, facts.unregistered))
    blocks.append(nominations_line(ctx, facts))
    blocks.append(incidents_line(ctx, facts.incidents))
    if facts.stale:
        blocks.append(stale_line(ctx, facts.stale))
    blocks.append(report_line(ctx, facts.report))
    buttons: list[tuple[Choice, ...]] = []
    if total.missing > MISSING_SHOWN:
        buttons.append((Choice(t("status_leader.see_all", count=total.missing), f"{PREFIX}:m:{period.key}"),))
    year = school_year(month_start(period, ctx.clock))
    buttons.append(
        (
            Choice(t("status_leader.export"), f"{PREFIX}:x:{period.key}"),
            Choice(t("status_leader.ranking"), f"{PREFIX}:r:{year}"),
        )
    )
    return "\n\n".join(blocks), tuple(buttons)


def due_line(ctx: Context, period: Period) -> str:
    """The month's deadline and how far it is."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    due = day(cal.deadline(period), ctx.clock)
    left = cal.days_left(period)
    if left > 0:
        return ctx.t("status_leader.due_ahead", due=due, left=days_phrase(ctx.t, left))
    return ctx.t("status_leader.due_today" if left == 0 else "status_leader.due_past", due=due)


def level_lines(ctx: Context, by_level: dict[str, stats.Figures]) -> list[str]:
    """One line per level, in the usual order."""
    lines = []
    for level in sorted(by_level, key=level_sort):
        f = by_level[level]
        if not f.schools:
            continue
        lines.append(
            ctx.t("status_leader.level_line", level=level_label(ctx.t, ctx.t.has, level), **figure_fields(f))
        )
    return lines


def figure_fields(f: stats.Figures) -> dict[str, int]:
    """The counts a summary line shows, by the names the sentences use (out of every school in scope)."""
    return {
        "sent": f.sent,
        "schools": f.schools,
        "on_time": f.on_time,
        "late": f.late,
        "missing": f.missing,
        "unregistered": f.unregistered,
        "approved": f.approved,
        "published": f.published,
    }


def missing_line(
    ctx: Context,
    total: stats.Figures,
    missing: list[tuple[School, str]],
    unregistered: list[tuple[School, str]],
) -> str:
    """The first few schools that have not sent the month, then those not registered; or that all have."""
    if total.not_sent <= 0:
        return ctx.t("status_leader.missing_none")
    lines = []
    for key, count, rows in (
        ("status_leader.missing", total.missing, missing),
        ("status_leader.unregistered", total.unregistered, unregistered),
    ):
        if count <= 0:
            continue
        lines.append(
            ctx.t(key, count=count, names="; ".join(school.name for school, _ in rows[:MISSING_SHOWN]))
        )
        if count > MISSING_SHOWN:
            lines.append(ctx.t("status_leader.missing_more", count=count - MISSING_SHOWN))
    return "\n".join(lines)


def nominations_line(ctx: Context, facts: Facts) -> str:
    """This semester's nominations in the scope."""
    n = facts.nominations
    semester = period_name(ctx.t, ctx.settings.schedule, facts.semester)
    if not n.count:
        return ctx.t("status_leader.nominations_none", semester=semester)
    line = ctx.t(
        "status_leader.nominations", semester=semester, count=n.count, schools=n.schools, waiting=n.waiting
    )
    return line + (" " + ctx.t("nomination.model.of_them", count=n.models) if n.models else "")


def incidents_line(ctx: Context, incidents: list[stats.IncidentLine]) -> str:
    """The month's incidents, how many were acknowledged, and which were not."""
    if not incidents:
        return ctx.t("status_leader.incidents_none")
    acked = sum(1 for i in incidents if i.acks)
    line = ctx.t("status_leader.incidents", count=len(incidents), acked=acked)
    waiting = [i for i in incidents if not i.acks]
    if waiting:
        items = "; ".join(
            ctx.t("status_leader.unacked_item", number=i.id, school=i.school, severity=severity(ctx, i))
            for i in waiting[:UNACKED_SHOWN]
        )
        line += "\n" + ctx.t("status_leader.unacked", items=items)
    return line


def stale_line(ctx: Context, incidents: list[stats.IncidentLine]) -> str:
    """The cases still open after incident.open_days, by number, school and state."""
    items = "; ".join(
        ctx.t(
            "incident.case.stale_item",
            number=i.id,
            school=i.school,
            state=ctx.t(f"incident.state.{i.state}"),
        )
        for i in incidents[:UNACKED_SHOWN]
    )
    return ctx.t(
        "incident.case.stale", days=ctx.settings.incident.open_days, count=len(incidents), items=items
    )


def severity(ctx: Context, incident: stats.IncidentLine) -> str:
    """How serious the school said the incident was, in words."""
    return ctx.t(f"incident.level.{incident.severity}")


def report_line(ctx: Context, report: tuple[str, datetime, stats.Figures] | None) -> str:
    """The next periodic deadline and how many of the scope's schools sent it."""
    if report is None:
        return ctx.t("status_leader.report_none")
    key, due, f = report
    return ctx.t(
        "status_leader.report",
        name=period_name(ctx.t, ctx.settings.schedule, key),
        due=day(due, ctx.clock),
        left=days_phrase(ctx.t, days_to(due, ctx.clock.now())),
        sent=f.sent,
        schools=f.schools,
        missing=f.missing,
        unregistered=f.unregistered,
    )


def missing_reply(ctx: Context, where: Where, period: Period) -> Reply:
    """ "Xem tất cả": every school that has not sent the month (up to MISSING_LISTED; the rest in Excel)."""
    until = month_end(period, ctx.clock)
    with ctx.db.session() as s:
        rows = stats.missing_schools(s, where.scope, period.key, until, MISSING_LISTED + 1)
        total = sum(stats.month_by_level(s, where.scope, period.key, until).values(), stats.Figures())
    offices = len({office for _, office in rows}) > 1
    lines = [ctx.t("status_leader.missing_all", month=period.label, count=total.missing)]
    for school, office in rows[:MISSING_LISTED]:
        key = "status_leader.missing_item_office" if offices else "status_leader.missing_item"
        lines.append(ctx.t(key, school=school.name, office=office))
    if total.missing > MISSING_LISTED:
        lines.append(
            ctx.t("status_leader.missing_all_cut", count=total.missing - MISSING_LISTED, month=period.label)
        )
    return Reply("\n".join(lines))


# ---- the chart -----------------------------------------------------------------------------------


def draw(ctx: Context, where: Where, period: Period, facts: Facts, path: Path) -> Path:
    """By school for a small office, else the submission rate by level over six months."""
    months = [period.shift(-n) for n in range(MONTHS_CHARTED - 1, -1, -1)]
    if where.scope.schools <= SMALL_OFFICE:
        return draw_schools(ctx, months, facts, path)
    series = [
        charts.Series(level_label(ctx.t, ctx.t.has, level), values)
        for level, values in level_rates(facts, len(months)).items()
    ]
    return charts.rate_chart(
        path,
        ctx.t("status_leader.chart.by_level"),
        ctx.t("status_leader.chart.by_level_axis"),
        [p.label for p in months],
        series,
    )


def level_rates(facts: Facts, months: int) -> dict[str, tuple[float | None, ...]]:
    """The by-level chart's data: per level, the per cent of its schools (every one in scope, registered
    or not: today's count, as the rollup keeps no school count) that sent each month, oldest first."""
    out = {}
    for level in sorted(set(facts.by_level) | set(facts.history), key=level_sort):
        schools = facts.by_level.get(level, stats.Figures()).schools
        sent = [f.sent for f in facts.history.get(level, [stats.Figures()] * (months - 1))]
        now = facts.by_level.get(level)
        sent.append(now.sent if now is not None else 0)
        out[level] = tuple(100 * n / schools if schools else None for n in sent)
    return out


def school_states(ctx: Context, months: list[Period], facts: Facts) -> list[tuple[str, list[MonthState]]]:
    """The small office's chart data: each school with its state for each of `months` (month_state)."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    now = cal.now()
    return [
        (school.name, [month_state(cal, p, sent.get(p.key), registered, now) for p in months])
        for school, registered, sent in facts.per_school
    ]


def draw_schools(ctx: Context, months: list[Period], facts: Facts, path: Path) -> Path:
    """Each school's six months: on time, late, not sent, not yet due, not registered (own colours)."""
    rows = school_states(ctx, months, facts)
    counts = [tuple(states.count(state) for state in CHARTED) for _, states in rows]
    return charts.school_chart(
        path,
        ctx.t("status_leader.chart.by_school", first=months[0].label, last=months[-1].label),
        ctx.t("status_leader.chart.by_school_axis"),
        [name for name, _ in rows],
        counts,
        tuple(ctx.t(f"status_leader.chart.{state}") for state in CHARTED),
        len(months),
    )
