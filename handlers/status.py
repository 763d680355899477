"""Tình hình nộp: a leader's (or officer's) month at a glance, one school's record, the year's ranking, Excel.

`/status [month]` sums up the reader's scope (their office and every office below it; an officer only
their levels) in a short text to forward as is, with a chart; `/status <school>` shows one school of the
scope; `/ranking [school year]` ranks the scope's schools by the communications score of `[ranking]`;
`/export [month]` sends the workbook that `schoolbot export status` writes. Nothing crosses the scope.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from handlers import charts, report, rollup
from handlers.calendar import Calendar, Clock, Period, month_end, month_start
from handlers.months import MonthArg, MonthState, month_or_current, month_state
from handlers.nomination import ROLES, public_view, publishable
from handlers.school_year import school_year
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.db import Database
from storage.exports import Sheet, Value, write_workbook
from storage.media import safe_filename
from storage.models import Office, School, Submission
from storage.scope import Scope, levels_of, sized

PREFIX = "ls"  # buttons: ls:m:<month> all missing, ls:s:<school> a school, ls:x:<month> Excel, ls:r:<year>
MISSING_SHOWN = 10
MISSING_LISTED = 300
CHOICES_SHOWN = 8
SMALL_OFFICE = 12  # up to this many schools, the chart is by school
MONTHS_CHARTED = rollup.EARLIER + 1
MONTHS_HISTORY = 12
RANKED_SHOWN = 20
UNACKED_SHOWN = 5
NOMINATIONS_SHOWN = 5
LEVEL_ORDER = ("MN", "TH", "THCS", "THPT", "GDTX")
GENERATED = "generated"  # under the media dir: charts and workbooks made for a reader
SCHOOL_COLUMNS = ("code", "school", "level", "office", "registered")
# The small office's chart: each school's months stacked in this order (months before it joined: none).
CHARTED = (
    MonthState.ON_TIME,
    MonthState.LATE,
    MonthState.MISSING,
    MonthState.PENDING,
)  # the workbook's school, in both sheets
Translate = Callable[..., str]


# ---- who sees what --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """The reader's office and scope (planned by `scope.sized`)."""

    office: Office
    scope: Scope


def where_of(ctx: Context) -> Where | Reply:
    """The reader's scope, or why there is none to show."""
    user = ctx.user
    assert user is not None
    if user.office_id is None:
        return Reply(ctx.t("status_leader.no_office"))
    with ctx.db.session() as s:
        office = s.get(Office, user.office_id)
        scope = sized(s, Scope(user.office_id, levels_of(user)))
    if office is None or scope.schools == 0:
        return Reply(ctx.t("status_leader.no_schools"))
    return Where(office, scope)


def month_asked(msg: Incoming, ctx: Context) -> tuple[Where, str, MonthArg] | Reply:
    """The reader's scope, the text after the command, and the month it names (this month when none)."""
    found = where_of(ctx)
    if isinstance(found, Reply):
        return found
    current = Calendar(ctx.clock, ctx.settings.schedule).current()
    text = msg.args.strip()
    return found, text, month_or_current(text, current)


def bad_month(ctx: Context, text: str, command: str) -> Reply:
    """The answer to a month that is none ("13/2026"), with an example of the command."""
    return Reply(ctx.t("status_leader.bad_month", text=text[:40], command=command))


# ---- months and school years ----------------------------------------------------------------------


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


def report_keys(ctx_settings: Any, start: int) -> tuple[str, ...]:
    """The periodic reports due in the school year: "nam-2026" (1 Dec 2026), "6thang-2027" (20 Jun 2027)."""
    keys = []
    for item in ctx_settings.schedule.periodic:
        month = int(item.due.split("-")[0])
        keys.append(f"{item.key}-{start if month >= 9 else start + 1}")
    return tuple(keys)


def year_spec(cal: Calendar, settings: Any, start: int) -> stats.YearSpec:
    """What counts for the school year starting in `start`, up to this month."""
    now = cal.now()
    months = [p for p in year_months(start) if p <= cal.current()]
    due = tuple(p.key for p in months if cal.is_late(p, now))
    return stats.YearSpec(tuple(p.key for p in months), semesters(start), report_keys(settings, start), due)


def weights(settings: Any) -> stats.Weights:
    """The ranking weights from the settings."""
    r = settings.ranking
    return stats.Weights(
        r.article_on_time, r.article_approved, r.article_published, r.nomination, r.report_on_time
    )


def formula(t: Translate, w: stats.Weights) -> str:
    """ "2 × tháng nộp bài đúng hạn + 1 × bài được duyệt + ..." (parts weighing 0 left out)."""
    parts = [f"{value:g} × {t(f'ranking.term.{name}')}" for name, value in vars(w).items() if value]
    return " + ".join(parts)


def level_label(t: Translate, has: Callable[[str], bool], level: str) -> str:
    """ "Mầm non" for MN; a combined level ("TH&THCS") as it is."""
    key = f"status_leader.level.{level.lower()}"
    return t(key) if has(key) else level


def level_sort(level: str) -> tuple[int, str]:
    """MN, TH, THCS, THPT, GDTX, then combined levels by name."""
    return (LEVEL_ORDER.index(level), "") if level in LEVEL_ORDER else (len(LEVEL_ORDER), level)


def day(moment: datetime | date | None, clock: Clock) -> str:
    """dd/mm/yyyy in the office's zone."""
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        moment = moment.astimezone(clock.tz).date()
    return moment.strftime("%d/%m/%Y")


def generated(settings: Any, *parts: str) -> Path:
    """Where a chart or workbook made for a reader goes."""
    return Path(settings.media_dir).joinpath(GENERATED, *parts)


# ---- the month's summary --------------------------------------------------------------------------


@dataclass
class Facts:
    """Everything the summary says, read in one session."""

    by_level: dict[str, stats.Figures]
    history: dict[str, list[stats.Figures]]
    missing: list[tuple[School, str]]
    nominations: stats.NominationFigures
    semester: str
    incidents: list[stats.IncidentLine]
    report: tuple[str, datetime, int] | None
    per_school: list[tuple[School, datetime | None, dict[str, bool]]] = field(default_factory=list)

    @property
    def total(self) -> stats.Figures:
        """All levels together."""
        return sum(self.by_level.values(), stats.Figures())


class Leaders:
    """The leaders' commands."""

    # ---- commands ----

    async def status(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """/status [month | school]: the scope's month, or one school's record."""
        asked = month_asked(msg, ctx)
        if isinstance(asked, Reply):
            return [asked]
        found, text, wanted = asked
        if not wanted.month_like:
            return search(ctx, found, text)
        if wanted.period is None:
            return [bad_month(ctx, text, "status")]
        return await self.summary(ctx, found, wanted.period)

    async def ranking(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """/ranking [school year]: the scope's schools by communications score."""
        found = where_of(ctx)
        if isinstance(found, Reply):
            return [found]
        text = msg.args.strip()
        start = read_school_year(text) if text else school_year(ctx.clock.now())
        if start is None:
            return [Reply(ctx.t("ranking.bad_year", text=text[:40]))]
        return [ranking_reply(ctx, found, start)]

    async def export(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """/export [month]: the month's workbook as a file."""
        asked = month_asked(msg, ctx)
        if isinstance(asked, Reply):
            return [asked]
        found, text, wanted = asked
        if wanted.period is None:
            return [bad_month(ctx, text, "export")]
        return await export_reply(ctx, found, wanted.period)

    async def button(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """ls:m:<month> every missing school, ls:s:<id> a school, ls:x:<month> Excel, ls:r:<year> ranking."""
        _, action, arg = [*msg.choice.split(":", 2), "", ""][:3]
        found = where_of(ctx)
        if isinstance(found, Reply):
            return [found]
        period = Period.parse(arg)
        if action == "m" and period is not None:
            return [missing_reply(ctx, found, period)]
        if action == "x" and period is not None:
            return await export_reply(ctx, found, period)
        if action == "s" and arg.isdigit():
            with ctx.db.session() as s:
                school = stats.school_in_scope(s, found.scope, int(arg))
            return [school_card(ctx, found, school) if school else Reply(ctx.t("status_leader.gone"))]
        if action == "r" and arg.isdigit():
            return [ranking_reply(ctx, found, int(arg))]
        return [Reply(ctx.t("error.bad_button"))]

    # ---- the summary ----

    async def summary(self, ctx: Context, where: Where, period: Period) -> list[Reply]:
        """The month for the whole scope: text, buttons and the chart."""
        refusal = month_refusal(ctx, where, period)
        if refusal is not None:
            return [refusal]
        # A national scope takes a few hundred milliseconds of SQL and drawing: off the event loop.
        return [await asyncio.to_thread(self.summary_reply, ctx, where, period)]

    def summary_reply(self, ctx: Context, where: Where, period: Period) -> Reply:
        """Gather, phrase and draw the month's summary."""
        facts = self.gather(ctx, where, period)
        text, buttons = compose(ctx, where, period, facts)
        path = generated(ctx.settings, "charts", f"status-u{ctx.user.id if ctx.user else 0}-{period.key}.png")
        return Reply(text, buttons, photo_path=str(draw(ctx, where, period, facts, path)))

    def gather(self, ctx: Context, where: Where, period: Period) -> Facts:
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
            nominations = stats.nomination_figures(s, scope, [semester])
            incidents = stats.incidents_between(s, scope, month_start(period, ctx.clock), until)
            report = None
            if upcoming is not None:
                item, due = upcoming
                report = (item.name, due, stats.reports_in(s, scope, f"{item.key}-{due.year}"))
            per_school = stats.schools_months(s, scope, [p.key for p in [*charted, period]]) if small else []
        return Facts(by_level, history, missing, nominations, semester, incidents, report, per_school)


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
    blocks.append(missing_line(ctx, total, facts.missing))
    blocks.append(nominations_line(ctx, facts))
    blocks.append(incidents_line(ctx, facts.incidents))
    blocks.append(report_line(ctx, facts.report, total.registered))
    notes = not_counted(ctx, total)
    if notes:
        blocks.append(notes)
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
        return ctx.t("status_leader.due_ahead", due=due, days=left)
    return ctx.t("status_leader.due_today" if left == 0 else "status_leader.due_past", due=due)


def level_lines(ctx: Context, by_level: dict[str, stats.Figures]) -> list[str]:
    """One line per level, in the usual order."""
    lines = []
    for level in sorted(by_level, key=level_sort):
        f = by_level[level]
        if not f.expected:
            continue
        lines.append(
            ctx.t("status_leader.level_line", level=level_label(ctx.t, ctx.t.has, level), **figure_fields(f))
        )
    return lines


def figure_fields(f: stats.Figures) -> dict[str, int]:
    """The counts a summary line shows, by the names the sentences use."""
    return {
        "sent": f.sent,
        "expected": f.expected,
        "on_time": f.on_time,
        "late": f.late,
        "missing": f.missing,
        "approved": f.approved,
        "published": f.published,
    }


def missing_line(ctx: Context, total: stats.Figures, missing: list[tuple[School, str]]) -> str:
    """The first few schools that have not sent the month, or that all have."""
    if total.missing <= 0:
        return ctx.t("status_leader.missing_none")
    names = "; ".join(school.name for school, _ in missing[:MISSING_SHOWN])
    line = ctx.t("status_leader.missing", count=total.missing, names=names)
    if total.missing > MISSING_SHOWN:
        line += "\n" + ctx.t("status_leader.missing_more", count=total.missing - MISSING_SHOWN)
    return line


def semester_label(ctx: Context, key: str) -> str:
    """ "2026-2027-HK1" -> "học kỳ I năm học 2026-2027"."""
    year, _, half = key.rpartition("-")
    return ctx.t("status_leader.semester", number="II" if half == "HK2" else "I", year=year)


def nominations_line(ctx: Context, facts: Facts) -> str:
    """This semester's nominations in the scope."""
    n = facts.nominations
    semester = semester_label(ctx, facts.semester)
    if not n.count:
        return ctx.t("status_leader.nominations_none", semester=semester)
    return ctx.t(
        "status_leader.nominations", semester=semester, count=n.count, schools=n.schools, waiting=n.waiting
    )


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


def severity(ctx: Context, incident: stats.IncidentLine) -> str:
    """How serious the school said the incident was, in words."""
    return ctx.t(f"incident.level.{incident.severity}")


def report_line(ctx: Context, report: tuple[str, datetime, int] | None, expected: int) -> str:
    """The next periodic deadline and how many reports are in."""
    if report is None:
        return ctx.t("status_leader.report_none")
    name, due, done = report
    days = (due.date() - ctx.clock.now().date()).days
    return ctx.t(
        "status_leader.report", name=name, due=day(due, ctx.clock), days=days, done=done, expected=expected
    )


def not_counted(ctx: Context, total: stats.Figures) -> str:
    """Schools left out of the figures: not registered, or registered after the month."""
    unregistered = total.schools - total.registered
    late_joiners = max(0, total.schools - total.expected - unregistered)
    lines = []
    if late_joiners:
        lines.append(ctx.t("status_leader.late_joiners", count=late_joiners))
    if unregistered:
        lines.append(ctx.t("status_leader.unregistered", count=unregistered))
    return "\n".join(lines)


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


# ---- the chart ------------------------------------------------------------------------------------


def draw(ctx: Context, where: Where, period: Period, facts: Facts, path: Path) -> Path:
    """By school for a small office, else the submission rate by level over six months."""
    months = [period.shift(-n) for n in range(MONTHS_CHARTED - 1, -1, -1)]
    if where.scope.schools <= SMALL_OFFICE:
        return draw_schools(ctx, months, facts, path)
    levels = sorted(set(facts.by_level) | set(facts.history), key=level_sort)
    series = []
    for level in levels:
        figures = [
            *facts.history.get(level, [stats.Figures()] * (len(months) - 1)),
            facts.by_level.get(level),
        ]
        values = tuple(None if f is None or not f.expected else 100 * f.sent / f.expected for f in figures)
        series.append(charts.Series(level_label(ctx.t, ctx.t.has, level), values))
    return charts.rate_chart(
        path,
        ctx.t("status_leader.chart.by_level"),
        ctx.t("status_leader.chart.by_level_axis"),
        [p.label for p in months],
        series,
    )


def draw_schools(ctx: Context, months: list[Period], facts: Facts, path: Path) -> Path:
    """Each school's six months: on time, late, not sent, not yet due (months before it joined: none)."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    now = cal.now()
    names, counts = [], []
    for school, registered, sent in facts.per_school:
        tally = dict.fromkeys(MonthState, 0)
        for p in months:
            tally[month_state(cal, p, sent.get(p.key), registered, now)] += 1
        names.append(school.name)
        counts.append((tally[CHARTED[0]], tally[CHARTED[1]], tally[CHARTED[2]], tally[CHARTED[3]]))
    states = tuple(ctx.t(f"status_leader.chart.{state}") for state in CHARTED)
    return charts.school_chart(
        path,
        ctx.t("status_leader.chart.by_school", first=months[0].label, last=months[-1].label),
        ctx.t("status_leader.chart.by_school_axis"),
        names,
        counts,
        (states[0], states[1], states[2], states[3]),
        len(months),
    )


# ---- one school -----------------------------------------------------------------------------------


def search(ctx: Context, where: Where, text: str) -> list[Reply]:
    """/status <name or code>: the school, a choice when several match, or a plain "none"."""
    with ctx.db.session() as s:
        found, total = stats.find_in_scope(s, where.scope, text, CHOICES_SHOWN)
    if not found:
        return [Reply(ctx.t("status_leader.no_match", text=text[:60]))]
    if total == 1:
        return [school_card(ctx, where, found[0])]
    lines = [ctx.t("status_leader.choose", count=total, text=text[:60])]
    if total > len(found):
        lines.append(ctx.t("status_leader.choose_more", shown=len(found)))
    buttons = tuple((Choice(school.name, f"{PREFIX}:s:{school.id}"),) for school in found)
    return [Reply("\n".join(lines), buttons)]


def school_card(ctx: Context, where: Where, school: School) -> Reply:
    """One school: the last twelve months, its nominations and its periodic reports."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    now = cal.now()
    months = [cal.current().shift(-n) for n in range(MONTHS_HISTORY - 1, -1, -1)]
    semester = cal.semester(now)
    year = semester.rsplit("-", 1)[0]
    with ctx.db.session() as s:
        marks = stats.school_months(s, school.id or 0, [p.key for p in months])
        registered = stats.school_registered(s, school.id or 0)
        nominations = stats.school_submissions(
            s, school.id or 0, "nomination", [f"{year}-HK1", f"{year}-HK2"]
        )
        reports = {r.period: r for r in reversed(stats.school_submissions(s, school.id or 0, "report"))}
        office = s.get(Office, school.office_id)
    t = ctx.t
    lines = [
        t(
            "status_leader.school_title",
            school=school.name,
            code=school.code,
            level=level_label(t, t.has, school.level),
            office=office.name if office else "",
        ),
        t("status_leader.school_registered", date=day(registered, ctx.clock))
        if registered
        else t("status_leader.school_unregistered"),
    ]
    tally = dict.fromkeys(MonthState, 0)
    shown = []
    for p in months:
        found = marks.get(p.key)
        state = month_state(cal, p, None if found is None else found.on_time, registered, now)
        tally[state] += 1
        shown.append(f"{p.label} {state.mark}")
    lines.append(
        t(
            "status_leader.school_months",
            on_time=tally[MonthState.ON_TIME],
            late=tally[MonthState.LATE],
            missing=tally[MonthState.MISSING],
        )
        + "\n"
        + " · ".join(shown)
        + "\n"
        + t("status_leader.school_legend")
    )
    lines.append(nomination_block(ctx, nominations, semester))
    lines.append(report_block(ctx, reports, registered))
    return Reply("\n\n".join(lines))


def nomination_block(ctx: Context, rows: Sequence[Submission], semester: str) -> str:
    """Counts this semester and school year, then the latest few (students without consent by initials)."""
    in_semester = sum(1 for r in rows if r.period == semester)
    lines = [ctx.t("status_leader.school_nominations", semester=in_semester, year=len(rows))]
    for row in rows[:NOMINATIONS_SHOWN]:
        view = public_view(row.answers)
        role = view.get("role")
        lines.append(
            ctx.t(
                "status_leader.nomination_line",
                number=row.id,
                name=view.get("name", ""),
                role=ctx.t(f"nomination.roles.{role}")
                if role in ROLES
                else ctx.t("nomination.kinds.collective"),
                purpose=ctx.t(f"nomination.purposes.{view.get('purpose')}"),
                status=ctx.t(f"status.review.{row.status}"),
            )
        )
    return "\n".join(lines)


def report_block(ctx: Context, reports: dict[str | None, Submission], registered: datetime | None) -> str:
    """Each configured report due in the last year since the school joined (sent or not), then the next."""
    now = ctx.clock.now()
    past: list[tuple[datetime, str]] = []
    future: list[tuple[datetime, str]] = []
    for item in ctx.settings.schedule.periodic:
        for year in (now.year - 1, now.year, now.year + 1):
            due = report.due_in(ctx, item.due, year)
            row = reports.get(f"{item.key}-{year}")
            owed = row is not None or (registered is not None and registered <= due)
            if due <= now and now - due <= timedelta(days=366) and owed:
                past.append((due, sent_line(ctx, item.name, due, row)))
            elif due > now:
                state = ctx.t("report.state.done") if row else ctx.t("report.state.open")
                days = (due.date() - now.date()).days
                line = ctx.t(
                    "status_leader.report_next",
                    name=item.name,
                    due=day(due, ctx.clock),
                    days=days,
                    state=state,
                )
                future.append((due, line))
    lines = [line for _, line in sorted(past)] + [line for _, line in sorted(future)[:1]]
    return "\n".join([ctx.t("status_leader.school_reports"), *lines])


def sent_line(ctx: Context, name: str, due: datetime, row: Submission | None) -> str:
    """A past deadline: sent (when, on time or late, review state) or not."""
    if row is None:
        return ctx.t("status_leader.report_missing", name=name, due=day(due, ctx.clock))
    return ctx.t(
        "status_leader.report_sent",
        name=name,
        due=day(due, ctx.clock),
        day=day(row.submitted_at or row.created_at, ctx.clock),
        timing=ctx.t("status_leader.late" if row.late else "status_leader.on_time"),
        status=ctx.t(f"status.review.{row.status}"),
    )


# ---- the year's ranking ---------------------------------------------------------------------------


def ranking_reply(ctx: Context, where: Where, start: int) -> Reply:
    """The school year's ranking: the formula, then the first RANKED_SHOWN schools."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    current = school_year(cal.now())
    if start > current:
        return Reply(ctx.t("ranking.future", year=year_label(start), current=year_label(current)))
    w = weights(ctx.settings)
    spec = year_spec(cal, ctx.settings, start)
    with ctx.db.session() as s:
        first = stats.first_registration(s, where.scope)
        records = stats.year_records(s, where.scope, spec, w, limit=RANKED_SHOWN)
    if first is None or first >= month_start(Period(start + 1, 9), ctx.clock):
        return Reply(ctx.t("ranking.before_registration", year=year_label(start)))
    as_of = (
        cal.now() if start == current else month_start(Period(start + 1, 9), ctx.clock) - timedelta(days=1)
    )
    lines = [
        ctx.t("ranking.title", year=year_label(start), office=where.office.name),
        ctx.t("ranking.formula", formula=formula(ctx.t, w)),
        ctx.t("ranking.as_of", date=day(as_of, ctx.clock)),
        "",
    ]
    for r in records:
        details = ctx.t(
            "ranking.details",
            on_time=r.months_on_time,
            approved=r.approved,
            published=r.published,
            nominations=r.nominations,
            reports=r.reports_on_time,
        )
        lines.append(ctx.t("ranking.line", rank=r.rank, school=r.name, score=f"{r.score:g}", details=details))
    if where.scope.schools > len(records):
        lines.append(ctx.t("ranking.more", count=where.scope.schools - len(records)))
    return Reply("\n".join(lines))


# ---- the workbook ---------------------------------------------------------------------------------


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


def office_where(db: Database, code: str) -> Where | None:
    """An office's whole scope, by its code (the command line's `--office`)."""
    with db.session() as s:
        office = q.office_by_code(s, code)
        if office is None or office.id is None:
            return None
        scope = sized(s, Scope(office.id))
    return Where(office, scope)
