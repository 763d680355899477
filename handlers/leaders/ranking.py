"""/ranking [school year]: the scope's schools by the communications score of `[ranking]`."""

from __future__ import annotations

from datetime import timedelta

from handlers.calendar import Calendar, Period, month_start
from handlers.leaders.reader import Where, day, where_of
from handlers.leaders.years import formula, read_school_year, weights, year_label, year_spec
from handlers.school_year import school_year
from handlers.types import Context, Incoming, Reply
from storage import stats

RANKED_SHOWN = 20


async def ranking(msg: Incoming, ctx: Context) -> list[Reply]:
    """/ranking [school year]: the scope's schools by communications score."""
    found = where_of(ctx)
    if isinstance(found, Reply):
        return [found]
    text = msg.args.strip()
    start = read_school_year(text) if text else school_year(ctx.clock.now())
    if start is None:
        return [Reply(ctx.t("ranking.bad_year", text=text[:40]))]
    return [ranking_reply(ctx, found, start)]


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
        # Every school of the scope is ranked; one with no account yet ("chưa đăng ký") scores nothing.
        unregistered = stats.unregistered_count(s, where.scope, ctx.clock.now())
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
        school = r.name if r.registered is not None else ctx.t("ranking.unregistered_school", school=r.name)
        lines.append(ctx.t("ranking.line", rank=r.rank, school=school, score=f"{r.score:g}", details=details))
    if where.scope.schools > len(records):
        lines.append(ctx.t("ranking.more", count=where.scope.schools - len(records)))
    if unregistered:
        lines.append(ctx.t("ranking.unregistered", count=unregistered, schools=where.scope.schools))
    return Reply("\n".join(lines))
