"""/drafts: the writer's unfinished drafts, and those cancelled within a day, each with its button."""

from __future__ import annotations

from datetime import datetime

from handlers.forms import Action, DraftMode, Engine, button, has_content
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q

PREFIX = "dr"  # dr:<cancelled draft id>: restore it


async def list_drafts(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """Open drafts (continue) and drafts cancelled within a day (restore), most recent first."""
    assert ctx.user is not None and ctx.user.id is not None
    now = ctx.clock.now()
    with ctx.db.session() as s:
        q.forget_cancelled(s, now)
        drafts = [
            d
            for d in q.drafts_of(s, ctx.user.id)
            if d.mode != DraftMode.SENT and d.form in engine.forms and has_content(d.answers)
        ]
        cancelled = [c for c in q.cancelled_of(s, ctx.user.id, now) if c.form in engine.forms]
    if not drafts and not cancelled:
        return [Reply(ctx.t("drafts.none"))]
    lines = [ctx.t("drafts.list")]
    rows: list[tuple[Choice, ...]] = []
    for d in drafts:
        title = ctx.t(engine.forms[d.form].title)
        lines.append(ctx.t("drafts.open_line", title=title, saved=local(ctx, d.updated_at)))
        rows.append((Choice(ctx.t("drafts.continue", title=title), button(d, Action.RESUME)),))
    for c in cancelled:
        title = ctx.t(engine.forms[c.form].title)
        until = local(ctx, c.cancelled_at + q.KEEP_CANCELLED)
        lines.append(ctx.t("drafts.cancelled_line", title=title, at=local(ctx, c.cancelled_at), until=until))
        rows.append((Choice(ctx.t("drafts.restore", title=title), f"{PREFIX}:{c.id}"),))
    return [Reply("\n".join(lines), tuple(rows))]


async def restore(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """The restore button of a cancelled draft."""
    number = msg.choice.partition(":")[2]
    if not number.isdigit():
        return [Reply(ctx.t("error.bad_button"))]
    return engine.restore(ctx, int(number))


def local(ctx: Context, moment: datetime) -> str:
    """A stored moment as the reader's "HH:MM dd/mm"."""
    return moment.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m")
