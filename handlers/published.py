"""/published: the approved articles not yet marked published, each with its "Đã đăng" button.

Reached by the command, by the button under every approval ("pb:0") and from the digest; the list
pages with "pb:<offset>". Marking asks for the link through review.PUBLISH_FORM ("rv:p:<id>:<version>").
"""

from __future__ import annotations

from handlers.consent import shield
from handlers.dossier import when
from handlers.review import PUBLISHED_PREFIX, headline, publish_button
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope

PAGE = 10


async def waiting(msg: Incoming, ctx: Context) -> list[Reply]:
    """/published: the first page."""
    return [page(ctx, 0)]


async def more(msg: Incoming, ctx: Context) -> list[Reply]:
    """The list's button: "pb:<offset>"."""
    arg = msg.choice.partition(":")[2]
    return [page(ctx, int(arg) if arg.isdigit() else 0)]


def page(ctx: Context, offset: int) -> Reply:
    """Approved articles in the officer's scope, approved longest ago first: open or mark each one."""
    assert ctx.user is not None
    with ctx.db.session() as s:
        rows, total = q.awaiting_publication(s, scope.ids_seen_by(ctx.user), PAGE, offset)
        guard = shield(s, sorted({row.school_id for row, _ in rows}), ctx.user)
    if not rows and offset:
        return page(ctx, 0)  # the list shrank since the button was shown
    if not rows:
        return Reply(ctx.t("vetting.published.none"), ((Choice(ctx.t("vetting.to_review"), "m:review"),),))
    end = offset + len(rows)
    lines = [ctx.t("vetting.published.title", count=total, first=offset + 1, last=end)]
    buttons: list[tuple[Choice, ...]] = []
    for row, school in rows:
        approved = when(ctx, row.reviewed_at) if row.reviewed_at else "?"
        lines.append(
            ctx.t(
                "vetting.published.line",
                number=row.id,
                school=school.name,
                what=headline(ctx, row, guard),
                when=approved,
            )
        )
        buttons.append((publish_button(ctx, row), Choice(ctx.t("review.open", number=row.id), f"o:{row.id}")))
    if end < total:
        buttons.append((Choice(ctx.t("vetting.more", rest=total - end), f"{PUBLISHED_PREFIX}:{end}"),))
    return Reply("\n".join(lines), tuple(buttons))
