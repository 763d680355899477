"""Tình hình của trường: what a school has sent, what is due, and the last six months at a glance."""

from __future__ import annotations

from datetime import datetime

from handlers import nomination, report
from handlers.article import KIND, calendar, school_of
from handlers.calendar import Period
from handlers.forms import DraftMode, has_content
from handlers.months import MonthState, month_state
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.models import Submission

MONTHS_SHOWN = 6


def article_line(ctx: Context, period: Period, first: Submission | None, drafting: bool) -> str:
    """This month's article in one line: none, a draft, sent (on time or late) and its review status."""
    cal = calendar(ctx)
    due = cal.deadline(period).strftime("%d/%m")
    if first is None:
        left = cal.days_left(period)
        when = (
            ctx.t("status.days_left", days=left, due=due)
            if left >= 0
            else ctx.t("status.overdue", days=-left, due=due)
        )
        state = ctx.t("status.drafting") if drafting else ctx.t("status.not_sent")
        return ctx.t("status.article", period=period.label, state=f"{state} · {when}")
    sent = (first.submitted_at or first.created_at).astimezone(ctx.clock.tz).strftime("%d/%m")
    timing = ctx.t("status.sent_late", day=sent) if first.late else ctx.t("status.sent_on_time", day=sent)
    review = ctx.t(f"status.review.{first.status}")
    if first.status == "returned" and first.review_note:
        review = ctx.t("status.returned_because", reason=first.review_note)
    return ctx.t("status.article", period=period.label, state=f"{timing} · {review}")


def history(ctx: Context, by_period: dict[str, Submission], registered: datetime | None) -> str:
    """The last six months: ✅ on time, ⏰ late, ❌ missed, 🕓 still open, ▫️ before the school joined."""
    cal = calendar(ctx)
    this = cal.current()
    states: list[tuple[Period, MonthState]] = []
    for back in range(MONTHS_SHOWN - 1, -1, -1):
        period = this.shift(-back)
        first = by_period.get(period.key)
        on_time = None if first is None else not first.late
        states.append((period, month_state(cal, period, on_time, registered, cal.now())))
    marks = [f"{period.label} {state.mark}" for period, state in states]
    joined = any(state is MonthState.NOT_JOINED for _, state in states)
    legend = ctx.t("status.legend_joined" if joined else "status.legend")
    return ctx.t("status.history") + "\n" + " · ".join(marks) + "\n" + legend


async def my_status(msg: Incoming, ctx: Context) -> list[Reply]:
    """/mystatus: this month's article, days left, the next periodic deadline, the last six months."""
    assert ctx.user is not None and ctx.user.id is not None
    school = school_of(ctx)
    cal = calendar(ctx)
    this = cal.current()
    keys = [this.shift(-b).key for b in range(MONTHS_SHOWN)] + [this.shift(1).key]
    with ctx.db.session() as s:
        rows = q.submissions_of(s, school.id or 0, KIND, keys)
        draft = q.get_draft(s, ctx.user.id, KIND)
        registered = stats.school_registered(s, school.id or 0)
    by_period: dict[str, Submission] = {}
    for row in rows:
        by_period.setdefault(row.period or "", row)
    drafting = draft is not None and draft.mode != DraftMode.SENT and has_content(draft.answers)
    lines = [
        ctx.t("status.title", school=school.name),
        article_line(ctx, this, by_period.get(this.key), drafting),
    ]
    upcoming = by_period.get(this.shift(1).key)
    if upcoming is not None:
        lines.append(article_line(ctx, this.shift(1), upcoming, False))
    lines.extend(report.status_lines(ctx))
    counted = nomination.counts(ctx, school.id or 0)
    lines.append(ctx.t("status.nominations", semester=counted["semester"], year=counted["year"]))
    if counted["models_year"]:
        lines.append(
            ctx.t("nomination.model.status", semester=counted["models_semester"], year=counted["models_year"])
        )
    lines.append(history(ctx, by_period, registered))
    buttons = [(Choice(ctx.t("menu.article"), "m:article"),)]
    editable = [r for r in rows if r.status in q.EDITABLE]
    if editable:
        last = editable[-1]
        period = Period.parse(last.period or "")
        buttons.append(
            (
                Choice(
                    ctx.t("status.edit", period=period.label if last.period and period else ""),
                    f"se:{last.id}",
                ),
            )
        )
    return [Reply("\n\n".join(lines), tuple(buttons))]
