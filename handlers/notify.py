"""Messages to other users caused by a change, written in the change's own transaction.

A handler whose change others must hear of at once (an incident raised or acknowledged, a submission
reviewed) writes each message as an outbox row in the same session as the change: both land or
neither does, so a crash right after the commit loses no alert. The row's key names the change
(`alert`, `incident:12`), so a change made once is told once, however often its update is redelivered.
The runtime then wakes the outbox's sender for the rows in `ctx.queued`, or sends them at once when no
sender runs in this process.

    with ctx.db.session() as s:
        incident = q.create_incident(s, ...)
        for officer in officers:
            tell(s, ctx, officer, alert_for(...), kind=ALERT, period=f"incident:{incident.id}")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from handlers.reminders import PRIORITY_ALERT, Planned
from handlers.types import Context, Reply
from storage import queries as q
from storage.models import User

if TYPE_CHECKING:
    from sqlmodel import Session

ALERT = "alert"  # an incident raised: every officer and leader over the school
NOTICE = "notice"  # a school hears its incident was acknowledged or its submission reviewed


def tell(s: Session, ctx: Context, to: User, reply: Reply, *, kind: str, period: str, step: str = "") -> None:
    """Queue `reply` for `to` on the priority lane (quiet hours do not hold it), inside session `s`."""
    tell_each(s, ctx, [(to, reply)], kind=kind, period=period, step=step)


def tell_each(
    s: Session,
    ctx: Context,
    messages: Sequence[tuple[User, Reply]],
    *,
    kind: str,
    period: str,
    step: str = "",
) -> None:
    """`tell` each of several people their own reply (one person once), in one INSERT: an incident's
    alerts to every officer and leader over the school cost one statement, not one each."""
    now = ctx.clock.now()
    planned = [
        Planned(to, kind, period[:100], step[:32], reply, priority=PRIORITY_ALERT, quiet=False)
        for to, reply in messages
    ]
    new = {user_id: row_id for row_id, user_id in q.enqueued(s, [p.row(now) for p in planned])}
    for p in planned:
        found = new.get(p.user.id or 0)
        if found is None:  # queued already (the same key): that row is the one to send
            s.flush()
            row = q.outbox_row(s, p.user.channel, p.user.id or 0, kind, p.period, p.step)
            found = row.id if row is not None else None
        if found is not None and found not in ctx.queued:
            ctx.queued.append(found)
