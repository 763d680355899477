"""The clock's work: the reminder ladders, escalation, and "Nhắc lại sau" (remind me tomorrow).

A sweep decides from data what is due now and writes it to the outbox; running it twice, on two
workers or after a restart creates nothing new (each row's key is unique). Only the latest due step
of each ladder is made, so a bot that was down sends one reminder, not a burst of stale ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from handlers.calendar import Calendar, Clock, Period, month_end, periodic_key
from handlers.i18n import Catalog, Translator
from handlers.months import report_label
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope, stats
from storage.db import Database
from storage.models import School, User

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.config import Settings

log = logging.getLogger("schoolbot.reminders")

ARTICLE = "article"
REPORT = "report"
SUBJECTS = {"a": ARTICLE, "r": REPORT}  # the letter in a remind-me-later button
FORM_BUTTON = {ARTICLE: "m:article", REPORT: "m:report"}  # the command that opens the right form
REMIND = "remind"
LATE = "late"
LATER = "-later"
SNOOZE_PREFIX = "r"
# The outbox's lanes: alerts go first and ignore the quiet hours; escalations before a reminder wave.
PRIORITY_ALERT = 0
PRIORITY_ESCALATION = 5
PRIORITY_REMINDER = 10
# The last escalation step stays due this long, so a bot that was down a few days still sends it.
ESCALATION_CATCH_UP = timedelta(days=7)
MAX_LISTED = 60  # schools named in one officer's list; the rest are counted


def kind_of(subject: str, what: str) -> str:
    """The outbox kind: "article-remind", "report-late"..."""
    return f"{subject}-{what}"


# ---- deadlines and their ladders --------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """Something schools must send by `due`: a month's article or a periodic report."""

    subject: str  # article | report
    period: str  # "2026-11" | "nam-2026": Submission.period once sent
    due: datetime
    name: str = ""  # a periodic report's configured name

    def what(self, t: Translator) -> str:
        """ "Bài viết tháng 11/2026" or the report's name with its year ("Báo cáo năm 2026")."""
        if self.subject == ARTICLE:
            period = Period.parse(self.period)
            return t("reminder.article", period=period.label if period else "")
        return report_label(t, self.name, self.due.year)

    def registered_by(self, clock: Clock) -> datetime:
        """A school owes it when registered before this: a month's end (as stats counts a month), or the
        report's deadline (a school that joined after it does not owe it)."""
        month = Period.parse(self.period) if self.subject == ARTICLE else None
        return month_end(month, clock) if month is not None else self.due


@dataclass(frozen=True)
class Step:
    """One rung of a ladder: made at `at`, still due until `until` (exclusive)."""

    key: str
    at: datetime
    until: datetime


def deadlines(cal: Calendar, now: datetime) -> list[Deadline]:
    """The deadlines whose reminders or escalations can be due around `now`."""
    this = Period.of(now)
    out = [Deadline(ARTICLE, p.key, cal.deadline(p)) for p in (this.shift(m) for m in range(-2, 3))]
    out += [
        Deadline(REPORT, periodic_key(item, due), due, item.name) for item, due in cal.periodic_deadlines(now)
    ]
    return out


def find_deadline(cal: Calendar, subject: str, period: str) -> Deadline | None:
    """The deadline a button names, from the configuration (None if it no longer exists)."""
    if subject == ARTICLE:
        month = Period.parse(period)
        return Deadline(ARTICLE, month.key, cal.deadline(month)) if month else None
    key, _, year = period.rpartition("-")
    if not (year.isdigit() and 2000 <= int(year) <= 2100):
        return None
    moment = cal.at_time(date(int(year), 6, 1), "12:00")
    for item, due in cal.periodic_deadlines(moment):
        if item.key == key and due.year == int(year):
            return Deadline(REPORT, period, due, item.name)
    return None


def reminder_steps(cal: Calendar, deadline: Deadline) -> list[Step]:
    """The reminder ladder of a deadline, earliest first; the last rung stays due until the deadline."""
    schedule = cal.schedule
    days = schedule.article_reminders if deadline.subject == ARTICLE else schedule.report_reminders
    times = sorted(
        (cal.at_time(deadline.due.date() - timedelta(days=d), schedule.reminder_at), f"d{d}") for d in days
    )
    times = [(at, key) for at, key in times if at <= deadline.due]
    return [
        Step(key, at, times[i + 1][0] if i + 1 < len(times) else deadline.due + timedelta(seconds=1))
        for i, (at, key) in enumerate(times)
    ]


def escalation_steps(cal: Calendar, deadline: Deadline) -> list[Step]:
    """The mornings after a deadline when officers and leaders hear who missed it."""
    schedule = cal.schedule
    times = [
        (cal.at_time(deadline.due.date() + timedelta(days=d), schedule.escalate_at), f"e{d}")
        for d in schedule.escalate_after_days
    ]
    return [
        Step(key, at, times[i + 1][0] if i + 1 < len(times) else at + ESCALATION_CATCH_UP)
        for i, (at, key) in enumerate(times)
    ]


def due_step(steps: list[Step], now: datetime) -> Step | None:
    """The one rung due at `now`: the latest that has come, while it is still due."""
    return next((s for s in reversed(steps) if s.at <= now < s.until), None)


def snooze_target(cal: Calendar, now: datetime) -> datetime:
    """When "Nhắc lại sau" reminds again: the reminder hour tomorrow, or of the first day after a pause."""
    day = now.astimezone(cal.clock.tz).date() + timedelta(days=1)
    for _ in range(400):
        moment = cal.at_time(day, cal.schedule.reminder_at)
        if cal.can_send(moment):  # the reminder hour is never in the quiet hours (config rule)
            return moment
        day += timedelta(days=1)
    return cal.next_sendable(moment)


# ---- what a sweep makes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One outbox row a sweep would make."""

    user: User | q.Principal  # the sweep's reminders: a Principal (a light tuple); else a User
    kind: str
    period: str
    step: str
    reply: Reply
    school_id: int | None = None
    priority: int = PRIORITY_REMINDER
    quiet: bool = True
    not_before: datetime | None = None

    def row(self, now: datetime) -> dict[str, Any]:
        """The values of its outbox row."""
        return q.pending_row(
            self.user,
            self.kind,
            self.period,
            self.step,
            self.reply.to_payload(),
            now,
            school_id=self.school_id,
            priority=self.priority,
            quiet=self.quiet,
            not_before=self.not_before,
        )

    @property
    def key(self) -> tuple[int, str, str, str]:
        """(recipient, kind, period, step)."""
        return (self.user.id or 0, self.kind, self.period, self.step)


@dataclass
class Plan:
    """Everything due at one moment, or why nothing is."""

    at: datetime
    items: list[Planned] = field(default_factory=list)
    held: str = ""  # "quiet" or the pause's name: nothing bulk is made now
    unreachable: dict[str, int] = field(default_factory=dict)  # deadline -> schools with no user


@dataclass(frozen=True)
class Org:
    """The organisation as the sweep needs it, read once: the schools as plain tuples of the columns the
    sweep uses (a wave reads thousands), which of them a reminder can reach, the few staff as Users.
    The principals themselves are read a batch of schools at a time as the reminders are made
    (`principals_of`): a wave's thousands of accounts are never held at once."""

    schools: list[q.SchoolName]
    reachable: set[int]  # ids of the schools with a reachable principal
    staff: list[User]
    seen: dict[tuple[str, ...], dict[int, set[int]]]  # levels -> office -> ids of the schools under it
    registered: dict[int, datetime] = field(default_factory=dict)  # school id -> when it joined

    def school_ids_seen_by(self, user: User) -> set[int]:
        """The ids of the schools an officer or leader sees (their offices, their levels)."""
        return self.seen.get(scope.levels_of(user), {}).get(user.office_id or 0, set())


def read_org(
    db: Database, prefer: str = "last_used", *, reminding: bool = True, escalating: bool = True
) -> Org:
    """Schools, which of them have a reachable principal, staff (one account per person, as
    delivery.prefer says), offices.

    Only what is due is read: which schools can be reminded for reminders; the staff, what each of
    them sees and when each school joined for escalations (a reminder day reads no staff, an
    escalation morning no principal)."""
    with db.session() as s:
        schools = q.all_schools(s)
        reachable = q.schools_with_principals(s) if reminding else set()
        staff = q.reachable_staff(s) if escalating else []
        seen = {levels: scope.schools_under_each(s, levels) for levels in {scope.levels_of(u) for u in staff}}
        registered = stats.registrations(s) if escalating else {}
        for row in staff:
            s.expunge(row)
    return Org(schools, reachable, q.one_per_person(staff, prefer), seen, registered)


def principals_of(db: Database, school_ids: list[int], prefer: str) -> dict[int, list[q.Principal]]:
    """The accounts to remind at each of these schools: one per person at each school, as
    delivery.prefer says (a person who heads two schools is reminded for each)."""
    with db.reading() as s:
        accounts = q.reachable_principals(s, school_ids)
    by_school: dict[int, list[q.Principal]] = {}
    for account in accounts:
        by_school.setdefault(account.school_id, []).append(account)
    return {school: q.one_per_person(group, prefer) for school, group in by_school.items()}


def plan(
    db: Database, clock: Clock, settings: Settings, catalog: Catalog, at: datetime | None = None
) -> Plan:
    """What is due at `at` (default now): reminders to schools that have not sent, escalations."""
    result, items = planning(db, clock, settings, catalog, at)
    result.items = list(items)
    return result


def planning(
    db: Database, clock: Clock, settings: Settings, catalog: Catalog, at: datetime | None = None
) -> tuple[Plan, Iterator[Planned]]:
    """`plan`, its items made one at a time as they are taken (the principals read a batch of schools
    at a time: take them outside a session), so that a sweep holds one batch of a wave's rows and
    accounts at a time, not the wave."""
    cal = Calendar(clock, settings.schedule)
    now = (at or clock.now()).astimezone(clock.tz)
    result = Plan(now)
    pause = cal.pause_at(now)
    if pause is not None or cal.quiet(now):
        result.held = pause.name if pause is not None else "quiet"
        return result, iter(())
    due_now = []
    for deadline in deadlines(cal, now):
        remind = due_step(reminder_steps(cal, deadline), now)
        late = due_step(escalation_steps(cal, deadline), now)
        if remind is not None or late is not None:
            due_now.append((deadline, remind, late))
    if not due_now:
        return result, iter(())
    org = read_org(
        db,
        settings.prefer,
        reminding=any(remind is not None for _, remind, _ in due_now),
        escalating=any(late is not None for _, _, late in due_now),
    )
    translators: dict[tuple[str, str], Translator] = {}

    def t_for(user: User | q.Principal) -> Translator:
        key = (user.locale or settings.locale, user.channel)
        if key not in translators:
            translators[key] = catalog.translator(*key)
        return translators[key]

    work = []
    for deadline, remind, late in due_now:
        with db.session() as s:
            sent = q.schools_that_sent(s, deadline.subject, deadline.period)
        if remind is not None:
            missing = [sc for sc in org.schools if sc.id not in sent and sc.id not in org.reachable]
            if missing:
                result.unreachable[f"{deadline.subject}:{deadline.period}"] = len(missing)
        work.append((deadline, remind, late, sent))

    def items() -> Iterator[Planned]:
        for deadline, remind, late, sent in work:
            if remind is not None:
                owing = [sc for sc in org.schools if sc.id not in sent and sc.id in org.reachable]
                for start in range(0, len(owing), PRINCIPAL_BATCH):
                    batch = owing[start : start + PRINCIPAL_BATCH]
                    principals = principals_of(db, [sc.id for sc in batch], settings.prefer)
                    yield from reminders(cal, deadline, remind, batch, principals, now, t_for)
            if late is not None:
                yield from escalations(deadline, late, org, sent, t_for, cal)

    return result, items()


def reminders(
    cal: Calendar,
    deadline: Deadline,
    step: Step,
    schools: list[q.SchoolName],
    principals: dict[int, list[q.Principal]],
    now: datetime,
    t_for: Any,
) -> Iterator[Planned]:
    """One reminder to every principal to remind (`principals_of`) of each of these schools."""
    snooze = snooze_target(cal, now) <= deadline.due
    for school in schools:
        for user in principals.get(school.id, []):
            reply = reminder_reply(t_for(user), deadline, school.name, now.date(), step.key if snooze else "")
            yield Planned(
                user, kind_of(deadline.subject, REMIND), deadline.period, step.key, reply, school.id
            )


def reminder_reply(t: Translator, deadline: Deadline, school: str, today: date, snooze_step: str) -> Reply:
    """What is missing, the deadline and the days left; a button that opens the form, and maybe "later"."""
    days = (deadline.due.date() - today).days
    fields = {"what": deadline.what(t), "school": school, "due": deadline.due.strftime("%d/%m/%Y")}
    text = t("reminder.today", **fields) if days <= 0 else t("reminder.body", days=days, **fields)
    buttons: list[tuple[Choice, ...]] = [
        (Choice(t(f"reminder.open_{deadline.subject}"), FORM_BUTTON[deadline.subject]),)
    ]
    if snooze_step:
        code = next(k for k, v in SUBJECTS.items() if v == deadline.subject)
        buttons.append(
            (Choice(t("reminder.later"), f"{SNOOZE_PREFIX}:{code}:{deadline.period}:{snooze_step}"),)
        )
    return Reply(text, tuple(buttons))


def escalations(
    deadline: Deadline, step: Step, org: Org, sent: set[int], t_for: Any, cal: Calendar
) -> list[Planned]:
    """Each officer and leader: of the schools in scope (their offices, their levels), how many sent it,
    and by name those that did not: registered (not sent) and not registered."""
    by_id = {sc.id: sc for sc in org.schools}
    until = deadline.registered_by(cal.clock)
    out = []
    for user in org.staff:
        visible = [by_id[i] for i in org.school_ids_seen_by(user) if i in by_id]
        missed = sorted(
            (sc for sc in visible if sc.id not in sent), key=lambda sc: (sc.name_folded, sc.id or 0)
        )
        if not missed:
            continue
        joined = org.registered
        missing = [sc for sc in missed if sc.id in joined and joined[sc.id] < until]
        unregistered = [sc for sc in missed if not (sc.id in joined and joined[sc.id] < until)]
        t = t_for(user)
        lines = [
            t(
                "escalation.head",
                what=deadline.what(t),
                due=deadline.due.strftime("%d/%m/%Y"),
                sent=len(visible) - len(missed),
                total=len(visible),
                missing=len(missing),
                unregistered=len(unregistered),
            )
        ]
        for key, group in (("escalation.missing", missing), ("escalation.unregistered", unregistered)):
            if group:
                lines += [t(key, count=len(group)), *(f"• {sc.name}" for sc in group[:MAX_LISTED])]
                if len(group) > MAX_LISTED:
                    lines.append(t("escalation.more", count=len(group) - MAX_LISTED))
        text = "\n".join(lines)
        out.append(
            Planned(
                user,
                kind_of(deadline.subject, LATE),
                deadline.period,
                step.key,
                Reply(text),
                priority=PRIORITY_ESCALATION,
            )
        )
    return out


# ---- the sweep ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did: outbox rows made, rows cancelled, and why nothing bulk was made (Plan.held)."""

    created: int
    cancelled: int
    held: str = ""


FULFILS = {kind_of(ARTICLE, REMIND): ARTICLE, kind_of(REPORT, REMIND): REPORT}
# Rows per transaction, so a big wave never holds the write lock for long; the sweep holds one batch of
# rows at a time (a 3,000-school wave: the process grew 8.0 MB over the sweep with 100, 10.6 MB with 500)
INSERT_BATCH = 100
# Schools whose principals are read at once as a wave's reminders are made (`principals_of`; a
# 3,000-school wave on SQLite: the sweep grew 3.1 MB with 100, 5.0 with 1,000, 5.5 reading them all)
PRINCIPAL_BATCH = 100


def sweep(db: Database, clock: Clock, settings: Settings, catalog: Catalog) -> SweepReport:
    """Make the outbox rows due now (insert, ignoring existing keys); cancel what is no longer due."""
    now = clock.now()
    with db.session() as s:
        cancelled = q.cancel_fulfilled_reminders(s, now, FULFILS)
        cancelled += cancel_past_deadline(s, Calendar(clock, settings.schedule), now)
    result, items = planning(db, clock, settings, catalog, now)
    due = created = 0
    # One batch of rows at a time, made just before its transaction: a wave of thousands is never
    # held whole (its items, their texts and rows were most of the sweep's memory).
    while rows := [item.row(now) for item in islice(items, INSERT_BATCH)]:
        due += len(rows)
        with db.session() as s:
            created += q.enqueue(s, rows)
    if created:
        with db.session() as s:
            cancelled += q.cancel_superseded(s, now)
    if created or cancelled:
        log.info("sweep at %s: %d due, %d new, %d cancelled", now, due, created, cancelled)
    return SweepReport(created, cancelled, result.held)


def cancel_past_deadline(s: Session, cal: Calendar, now: datetime) -> int:
    """Reminders still waiting when their deadline has passed (the clock jumped, a long outage) are void."""
    cancelled = 0
    for kind, period in q.pending_periods(s, sorted(FULFILS)):
        deadline = find_deadline(cal, FULFILS[kind], period)
        if deadline is None or now > deadline.due:
            cancelled += q.cancel_pending(s, kind, period, now, "the deadline passed before it was sent")
    return cancelled


def existing(db: Database, items: Iterable[Planned]) -> set[tuple[int, str, str, str]]:
    """The keys among `items` that are in the outbox already (for a dry run)."""
    items = list(items)
    if not items:
        return set()
    with db.session() as s:
        return q.outbox_keys(s, sorted({i.kind for i in items}), sorted({i.period for i in items}))


# ---- "Nhắc lại sau" ------------------------------------------------------------------------------


async def snooze(msg: Incoming, ctx: Context) -> list[Reply]:
    """A principal presses "Nhắc lại sau" under a reminder: once per step, tomorrow morning."""
    user = ctx.user
    assert user is not None and user.id is not None
    parts = msg.choice.split(":")
    subject = SUBJECTS.get(parts[1]) if len(parts) == 4 else None
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    deadline = find_deadline(cal, subject, parts[2]) if subject else None
    if deadline is None or parts[3].endswith(LATER):
        return [Reply(ctx.t("reminder.later_gone"))]
    kind, step, now = kind_of(deadline.subject, REMIND), parts[3], ctx.clock.now()
    target = snooze_target(cal, now)
    with ctx.db.session() as s:
        if q.outbox_row(s, user.channel, user.id, kind, deadline.period, step) is None:
            return [Reply(ctx.t("reminder.later_gone"))]
        if user.school_id in q.schools_that_sent(s, deadline.subject, deadline.period):
            return [Reply(ctx.t("reminder.later_done"))]
        if target > deadline.due:
            return [Reply(ctx.t("reminder.later_too_late", due=deadline.due.strftime("%d/%m/%Y")))]
        ladder = next((r for r in reminder_steps(cal, deadline) if now < r.at <= target), None)
        if ladder is not None:  # the ladder reminds by then anyway
            return [Reply(ctx.t("reminder.later_ok", when=ladder.at.strftime("%H:%M %d/%m")))]
        earlier = q.outbox_row(s, user.channel, user.id, kind, deadline.period, step + LATER)
        if earlier is not None:
            when = earlier.not_before.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m")
            return [Reply(ctx.t("reminder.later_again", when=when))]
        school = s.get(School, user.school_id)
        reply = reminder_reply(ctx.t, deadline, school.name if school else "", target.date(), "")
        later = Planned(user, kind, deadline.period, step + LATER, reply, user.school_id, not_before=target)
        q.enqueue(s, [later.row(now)])
    return [Reply(ctx.t("reminder.later_ok", when=target.strftime("%H:%M %d/%m")))]
