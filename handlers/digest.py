"""The officer's daily digest: what came in, what waits for review, who still owes this month's article."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from handlers.calendar import Calendar, Period
from handlers.months import MonthState, month_state
from handlers.review import queue_entry
from handlers.types import Context, Incoming, Reply
from storage import queries as q
from storage import scope
from storage.models import User

ON_DEMAND_WINDOW = timedelta(days=1)
MISSING_SHOWN = 15


def build_digest(ctx: Context, officer: User, since: datetime) -> Reply | None:
    """The digest for one officer, or None when nothing is new (never an empty digest)."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    period = cal.current()
    with ctx.db.session() as s:
        schools = {sc.id: sc for sc in scope.schools_seen_by(s, officer) if sc.id is not None}
        new = q.submissions_since(s, scope.ids_seen_by(officer), since)
        _, waiting = q.awaiting_review(s, scope.ids_seen_by(officer), limit=0)
        sent = q.schools_that_sent(s, "article", period.key)
    if not new:
        return None
    lines = [
        ctx.t("digest.title", since=since.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m"), count=len(new))
    ]
    buttons = []
    by_level: dict[str, list[Any]] = defaultdict(list)
    for row in new:
        by_level[schools[row.school_id].level].append(row)
    for level in sorted(by_level):
        lines.append(ctx.t("digest.level", level=level))
        for row in by_level[level]:
            line, button = queue_entry(ctx, "digest.item", row, schools[row.school_id])
            lines.append(line)
            buttons.append(button)
    lines.append(ctx.t("digest.waiting", count=waiting))
    missing = sorted(
        (sc for i, sc in schools.items() if not state_of(cal, period, i in sent).sent),
        key=lambda sc: sc.name_folded,
    )
    if missing:
        left = cal.days_left(period)
        names = ", ".join(sc.name for sc in missing[:MISSING_SHOWN])
        more = (
            ctx.t("digest.and_more", count=len(missing) - MISSING_SHOWN)
            if len(missing) > MISSING_SHOWN
            else ""
        )
        lines.append(
            ctx.t("digest.missing", period=period.label, count=len(missing), days=left, names=names) + more
        )
    return Reply("\n".join(lines), tuple(buttons[:20]))


def state_of(cal: Calendar, period: Period, sent: bool) -> MonthState:
    """A school's month as the digest knows it: sent or not (it names every school that has not sent)."""
    # The digest reads neither lateness nor registration: only `.sent` of the state is used.
    return month_state(cal, period, True if sent else None, None, cal.now())


async def digest_command(msg: Incoming, ctx: Context) -> list[Reply]:
    """/digest: the same digest on demand, for the last 24 hours."""
    assert ctx.user is not None
    reply = build_digest(ctx, ctx.user, ctx.clock.now() - ON_DEMAND_WINDOW)
    return [reply] if reply is not None else [Reply(ctx.t("digest.nothing"))]


DIGEST_KIND = "digest"


def digest_due(now: datetime, schedule: Any) -> bool:
    """Whether today's digest time has come (on a digest weekday)."""
    hour, minute = (int(x) for x in schedule.digest_at.split(":"))
    return now.weekday() in schedule.digest_days and (now.hour, now.minute) >= (hour, minute)


def sweep_digests(db: Any, clock: Any, settings: Any, catalog: Any) -> int:
    """Make today's digest rows in the outbox (one per officer and day; none when nothing is new)."""
    from handlers.reminders import Planned

    now = clock.now()
    if not digest_due(now, settings.schedule):
        return 0
    today = now.date().isoformat()
    with db.session() as s:
        officers = q.reachable_staff(s, ("officer",))
        done = {key[0] for key in q.outbox_keys(s, [DIGEST_KIND], [today])}
        last = q.last_sent(s, DIGEST_KIND)
    prefer = settings.prefer
    rows = []
    for officer in q.one_per_person(officers, prefer):
        if officer.id in done:
            continue
        t = catalog.translator(officer.locale or settings.locale, officer.channel)
        ctx = Context(db, clock, t, settings, officer, officer.channel, catalog)
        reply = build_digest(ctx, officer, last.get(officer.id or 0) or now - ON_DEMAND_WINDOW)
        if reply is not None:
            rows.append(Planned(officer, DIGEST_KIND, today, "0", reply).row(now))
    if not rows:
        return 0
    with db.session() as s:
        return q.enqueue(s, rows)
