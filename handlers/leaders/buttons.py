"""The leaders' buttons: every missing school, a school, the workbook, the ranking."""

from __future__ import annotations

from handlers.calendar import Period
from handlers.leaders.ranking import ranking_reply
from handlers.leaders.reader import where_of
from handlers.leaders.school_card import school_card
from handlers.leaders.summary import missing_reply
from handlers.leaders.workbook import export_reply
from handlers.types import Context, Incoming, Reply
from storage import stats


async def button(msg: Incoming, ctx: Context) -> list[Reply]:
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
