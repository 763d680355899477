"""One person on several channels: /link on one gives a code; /link CODE on the other joins the two."""

from __future__ import annotations

from handlers.types import Context, Incoming, Reply
from storage import queries as q


async def link(msg: Incoming, ctx: Context) -> list[Reply]:
    """/link: a code to send from the other channel; /link CODE: join this account to that one."""
    assert ctx.user is not None and ctx.user.id is not None
    code = msg.args.strip()
    now = ctx.clock.now()
    if not code:
        if ctx.user.role is None:
            return [Reply(ctx.t("link.register_first"))]
        with ctx.db.session() as s:
            made = q.create_link_code(s, ctx.user.id, now)
        return [Reply(ctx.t("link.code", code=made))]
    with ctx.db.session() as s:
        user = s.merge(ctx.user)
        source = q.link_accounts(s, code[:16], user, now)
        channel = source.channel if source else ""
    if source is None:
        return [Reply(ctx.t("link.bad_code"))]
    return [Reply(ctx.t("link.done", channel=ctx.t(f"link.channels.{channel}")), commands_for=user.role)]
