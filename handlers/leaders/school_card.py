"""/status <school>: one school of the scope, its last twelve months, nominations and periodic reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from handlers import report
from handlers.calendar import Calendar
from handlers.consent import Shield, shield
from handlers.leaders.reader import PREFIX, Where, choose_school, day, level_label
from handlers.months import MonthState, days_phrase, days_to, month_state, report_label
from handlers.nomination import is_model, nominee_name, role_label
from handlers.profile import person_label
from handlers.types import Context, Reply
from storage import queries as q
from storage import stats
from storage.models import Office, School, Submission

MONTHS_HISTORY = 12
NOMINATIONS_SHOWN = 5


def search(ctx: Context, where: Where, text: str) -> list[Reply]:
    """/status <name or code>: the school, a choice when several match, or a plain "none"."""
    return choose_school(ctx, where.scope, text, lambda school: school_card(ctx, where, school), PREFIX)


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
        nominations = q.submissions_of(
            s, school.id or 0, "nomination", [f"{year}-HK1", f"{year}-HK2"], newest_first=True
        )
        reports = {r.period: r for r in q.submissions_of(s, school.id or 0, "report")}
        office = s.get(Office, school.office_id)
        guard = shield(s, [school.id or 0], ctx.user)
        people = ", ".join(person_label(p, ctx.t) for p in q.school_users(s, school.id or 0))
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
    if people:
        lines[-1] += "\n" + t("people.on_card", names=people)
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
    lines.append(nomination_block(ctx, nominations, semester, guard))
    lines.append(report_block(ctx, reports, registered))
    return Reply("\n\n".join(lines))


def nomination_block(ctx: Context, rows: Sequence[Submission], semester: str, guard: Shield) -> str:
    """Counts this semester and school year, then the latest few (students without consent by initials)."""
    in_semester = sum(1 for r in rows if r.period == semester)
    lines = [ctx.t("status_leader.school_nominations", semester=in_semester, year=len(rows))]
    models = sum(1 for r in rows if is_model(r.answers))
    if models:
        lines[0] += " " + ctx.t("nomination.model.of_them", count=models)
    for row in rows[:NOMINATIONS_SHOWN]:
        view = guard.answers(row)
        purpose = view.get("purpose")
        lines.append(
            ctx.t(
                "status_leader.nomination_line",
                number=row.id,
                name=nominee_name(view),
                role=role_label(ctx.t, view),
                purpose=ctx.t(f"nomination.purposes.{purpose}")
                if purpose
                else ctx.t("nomination.model.spread"),
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
                past.append((due, sent_line(ctx, report_label(ctx.t, item.name, due.year), due, row)))
            elif due > now:
                state = ctx.t("report.state.done") if row else ctx.t("report.state.open")
                line = ctx.t(
                    "status_leader.report_next",
                    name=report_label(ctx.t, item.name, due.year),
                    due=day(due, ctx.clock),
                    left=days_phrase(ctx.t, days_to(due, now)),
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
