"""The digest: what is new since the last one, and the standing picture, for officers (and leaders, read-only).

What is new: the articles, nominations and reports sent or resent since the last digest (a day, when
there was none), by level, each with a button that opens it, and the incidents raised since then. The
standing picture, every time: who has not sent this month's article and the periodic reports due
(grouped by level, not sent and not registered apart, counted by storage/stats.py as /status counts
them), and the incidents nobody has acknowledged yet. The clock's daily digest goes only when something
is new; `/digest` on demand always answers with the picture.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from handlers.calendar import Calendar, Period, month_end, periodic_key
from handlers.consent import schools_of, shield
from handlers.leaders.reader import day, level_label, level_sort
from handlers.leaders.summary import stale_line
from handlers.months import days_phrase, days_to, period_name
from handlers.profile import labels_of
from handlers.review import PUBLISHED_PREFIX, REVIEWERS, queue_entry
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope, stats
from storage.models import School, User

if TYPE_CHECKING:
    from handlers.calendar import Clock
    from handlers.config import Settings
    from handlers.i18n import Catalog
    from storage.db import Database

ON_DEMAND_WINDOW = timedelta(days=1)
NAMES_SHOWN = 15  # schools named per level and group; the rest are counted
NAMES_READ = 300  # schools read per group to share out among the levels
REPORTS_AHEAD = timedelta(days=30)  # a periodic report is "due" from this long before its deadline
REPORTS_AFTER = timedelta(days=30)  # ... until this long after it
OPEN_INCIDENTS = timedelta(days=30)  # an unacknowledged incident stays in the picture this long
BUTTONS = 20
DIGEST_KIND = "digest"


def build_digest(ctx: Context, reader: User, since: datetime, always: bool = False) -> Reply | None:
    """The digest for one officer or leader; None when nothing is new and `always` is not asked."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    now = cal.now()
    office = scope.of_user(reader)
    with ctx.db.session() as s:
        new = q.submissions_since(s, scope.ids_seen_by(reader), since)
        guard = shield(s, schools_of(new), reader)
        found = {row.school_id: s.get(School, row.school_id) for row in new}
        senders = labels_of(s, (row.user_id for row in new), ctx.t)
        schools = {i: school for i, school in found.items() if school is not None}
        _, waiting = q.awaiting_review(s, scope.ids_seen_by(reader), limit=0)
        _, unpublished = q.awaiting_publication(s, scope.ids_seen_by(reader), limit=0)
        every = scope.of_user(reader, by_level=False)  # incidents reach officers of every level
        incidents = stats.incidents_between(s, every, now - OPEN_INCIDENTS, now) if every else []
        open_days = timedelta(days=ctx.settings.incident.open_days)
        stale = stats.incidents_open_since(s, every, now - open_days) if every else []
        standing = standing_lines(ctx, s, office, cal) if office is not None else []
    raised = [i for i in incidents if i.created_at >= since]
    if not new and not raised and not always:
        return None
    t = ctx.t
    when = since.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m")
    count = len(new) + len(raised)
    lines = [
        t("digest.title", since=when, count=count) if count else t("digest.standing.nothing_new", since=when)
    ]
    if reader.role == "leader":
        lines.append(t("read_only.note"))
    buttons: list[tuple[Choice, ...]] = []
    by_level: dict[str, list[Any]] = defaultdict(list)
    for row in new:
        by_level[schools[row.school_id].level].append(row)
    for level in sorted(by_level, key=level_sort):
        lines.append(t("digest.level", level=level_label(t, t.has, level)))
        for row in by_level[level]:
            who = senders.get(row.user_id, "")
            line, button = queue_entry(ctx, "digest.item", row, schools[row.school_id], guard, who)
            lines.append(line)
            buttons.append(button)
    if raised:
        lines.append(t("digest.standing.raised", items=incident_items(ctx, raised)))
    lines.append(t("digest.waiting", count=waiting))
    if unpublished:
        lines.append(t("digest.standing.unpublished", count=unpublished))
    lines += standing
    unacked = [i for i in incidents if not i.acks]
    if unacked:
        lines.append(t("digest.standing.unacked", count=len(unacked), items=incident_items(ctx, unacked)))
    elif every is not None:
        lines.append(t("digest.standing.no_incidents"))
    if stale:
        lines.append(stale_line(ctx, stale))
    if unpublished and reader.role in REVIEWERS:  # the way to /published: approved, not yet marked
        buttons = [*buttons[: BUTTONS - 1], (Choice(t("vetting.to_publish"), f"{PUBLISHED_PREFIX}:0"),)]
    return Reply("\n".join(lines), tuple(buttons[:BUTTONS]))


def incident_items(ctx: Context, incidents: list[stats.IncidentLine]) -> str:
    """ "#3 Trường … (Rất nghiêm trọng); …" """
    return "; ".join(
        ctx.t(
            "status_leader.unacked_item",
            number=i.id,
            school=i.school,
            severity=ctx.t(f"incident.level.{i.severity}"),
        )
        for i in incidents
    )


def standing_lines(ctx: Context, s: Session, office: scope.Scope, cal: Calendar) -> list[str]:
    """This month's article and the periodic reports due: how many of the scope's schools sent each,
    and by level the ones that did not, registered (not sent) or not (not registered)."""
    now = cal.now()
    period = cal.current()
    due = cal.deadline(period)
    lines = [ctx.t("digest.standing.title")]
    lines += deadline_lines(ctx, s, office, period.key, stats.ARTICLE, due, month_end(period, ctx.clock))
    for item, moment in cal.periodic_deadlines(now):
        if now - REPORTS_AFTER <= moment <= now + REPORTS_AHEAD:
            key = periodic_key(item, moment)
            lines += deadline_lines(ctx, s, office, key, stats.REPORT, moment, moment)
    return lines


def deadline_lines(
    ctx: Context, s: Session, office: scope.Scope, key: str, kind: str, due: datetime, until: datetime
) -> list[str]:
    """One deadline's standing: the total, then per level the schools that have not sent it."""
    t = ctx.t
    by_level = stats.month_by_level(s, office, key, until, kind=kind)
    total = sum(by_level.values(), stats.Figures())
    month = Period.parse(key) if kind == stats.ARTICLE else None
    what = t("reminder.article", period=month.label) if month else period_name(t, ctx.settings.schedule, key)
    head = t(
        "digest.standing.deadline",
        what=what,
        due=day(due, ctx.clock),
        left=days_phrase(t, days_to(due, ctx.clock.now())),
        sent=total.sent,
        schools=total.schools,
        missing=total.missing,
        unregistered=total.unregistered,
    )
    names = {
        group: by_school_level(stats.missing_schools(s, office, key, until, NAMES_READ, kind, group))
        for group in (False, True)
    }
    lines = [head]
    for level in sorted(by_level, key=level_sort):
        f = by_level[level]
        if not f.not_sent:
            continue
        parts = []
        for group, count in ((False, f.missing), (True, f.unregistered)):
            if count:
                listed = names[group].get(level, [])[:NAMES_SHOWN]
                more = t("digest.and_more", count=count - len(listed)) if count > len(listed) else ""
                key_name = "digest.standing.unregistered" if group else "digest.standing.missing"
                parts.append(t(key_name, count=count, names=", ".join(listed) + more))
        lines.append(
            t("digest.standing.level", level=level_label(t, t.has, level), sent=f.sent, schools=f.schools)
            + " "
            + "; ".join(parts)
        )
    return lines


def by_school_level(rows: list[tuple[School, str]]) -> dict[str, list[str]]:
    """School names by level."""
    out: dict[str, list[str]] = defaultdict(list)
    for school, _ in rows:
        out[school.level or ""].append(school.name)
    return out


async def digest_command(msg: Incoming, ctx: Context) -> list[Reply]:
    """/digest: what is new since the last digest (a day, when none), and always the standing picture."""
    assert ctx.user is not None
    now = ctx.clock.now()
    with ctx.db.session() as s:
        last = q.last_sent(s, DIGEST_KIND).get(ctx.user.id or 0)
    since = max(last, now - ON_DEMAND_WINDOW) if last is not None else now - ON_DEMAND_WINDOW
    reply = build_digest(ctx, ctx.user, since, always=True)
    assert reply is not None
    return [reply]


def digest_due(now: datetime, schedule: Any) -> bool:
    """Whether today's digest time has come (on a digest weekday)."""
    hour, minute = (int(x) for x in schedule.digest_at.split(":"))
    return now.weekday() in schedule.digest_days and (now.hour, now.minute) >= (hour, minute)


def sweep_digests(db: Database, clock: Clock, settings: Settings, catalog: Catalog) -> int:
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
