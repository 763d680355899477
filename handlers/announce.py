"""/announce: the office speaks to its schools, and sees who has read it.

An officer or leader writes a message (and may add a photo or a PDF/DOCX), picks the schools (all in
scope, some levels, or those that have not sent this month's article, as /status counts them), and
sees it as the schools will, with how many schools and people it reaches, before sending it plainly
or urgently. Each person of each school gets it through the outbox (paced, once: the key names the
announcement; held in the quiet hours and pauses unless urgent) with a "received" button; /announce
lists the office's recent announcements with how many schools confirmed, and opens one to name those
that have not. The month's plan themes are offered there as a ready announcement while the office
has not announced them that month.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from handlers.calendar import Calendar, month_end
from handlers.forms import Engine, Form, Option, Step, StepKind
from handlers.forms.engine import SENT_AS
from handlers.i18n import Translator
from handlers.leaders.reader import LEVEL_ORDER, Where, level_label, where_of
from handlers.reminders import PRIORITY_ESCALATION, PRIORITY_REMINDER, Planned
from handlers.review import attachments
from handlers.types import Choice, Context, Incoming, Reply
from storage import plan, stats
from storage import queries as q
from storage.models import Announcement, Draft, Office, School, User
from storage.scope import ids_seen_by, level_filter, levels_of, school_ids

PREFIX = "an"  # an:n a new announcement, an:t the month's plan themes, an:v:<id> one announcement
RECEIPT = "ar"  # ar:<id>: a recipient presses "received"
ROLES = frozenset({"officer", "leader"})
ALL, LEVEL, MISSING = "all", "level", "missing"
URGENT = "urgent"  # the review screen's second way to send: through quiet hours and pauses
THEMES = "_themes"  # a draft made from the month's plan themes: the month's key
MESSAGE_LIMIT = 3500  # one Telegram message (4,096) with the office's heading and the closing line
PREVIEW_CHARS = 60
RECENT = 5
NAMES_SHOWN = 60
THEMES_LISTED = 10


# ---- who receives it --------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """The schools an announcement is for, and the people it reaches at each (one account a person)."""

    schools: list[School]
    people: dict[int, list[User]] = field(default_factory=dict)

    @property
    def reached(self) -> int:
        """Schools with at least one person to receive it."""
        return sum(1 for sc in self.schools if self.people.get(sc.id or 0))

    @property
    def recipients(self) -> list[tuple[User, int]]:
        """(person, their school id), school by school."""
        return [(u, sc.id or 0) for sc in self.schools for u in self.people.get(sc.id or 0, [])]


def audience(ctx: Context, where: Where, answers: dict[str, object]) -> Audience:
    """The schools of the sender's scope the answers choose, and their registered people."""
    scope = where.scope
    chosen = str(answers.get("audience") or ALL)
    ids = school_ids(scope)
    if chosen == LEVEL:
        ids = ids.where(level_filter(levels_chosen(answers)))
    with ctx.db.session() as s:
        schools = q.schools_where(s, ids)
        if chosen == MISSING:  # the /status rule: registered by the month's end, no article for it
            period = Calendar(ctx.clock, ctx.settings.schedule).current()
            until = month_end(period, ctx.clock)
            owing = stats.missing_schools(s, scope, period.key, until, max(scope.schools, 1))
            missing = {sc.id for sc, _ in owing}
            schools = [sc for sc in schools if sc.id in missing]
        people = q.school_people(s, ids)
        for row in [*schools, *(u for users in people.values() for u in users)]:
            s.expunge(row)
    wanted = {sc.id for sc in schools}
    chosen_people = {
        sid: q.one_per_person(users, ctx.settings.prefer) for sid, users in people.items() if sid in wanted
    }
    return Audience(schools, chosen_people)


def levels_chosen(answers: dict[str, object]) -> list[str]:
    """The levels picked at the levels step ("MN", "TH")."""
    raw = answers.get("levels")
    return [str(x) for x in raw] if isinstance(raw, list) else []


def audience_name(ctx: Context, answers: dict[str, object]) -> str:
    """Whom the answers choose, in words: every school, the schools of some levels, or those not yet sent."""
    chosen = str(answers.get("audience") or ALL)
    if chosen == LEVEL:
        names = ", ".join(level_label(ctx.t, ctx.t.has, lv) for lv in levels_chosen(answers))
        return ctx.t("announce.to_levels", levels=names)
    if chosen == MISSING:
        return ctx.t("announce.to_missing", month=Calendar(ctx.clock, ctx.settings.schedule).current().label)
    return ctx.t("announce.to_all")


# ---- the form -----------------------------------------------------------------------------------


def audience_options(ctx: Context, answers: dict[str, object]) -> tuple[Option, ...]:
    """All schools, by level, or those that have not sent this month's article."""
    month = Calendar(ctx.clock, ctx.settings.schedule).current().label
    return (
        Option(ALL, "announce.audiences.all"),
        Option(LEVEL, "announce.audiences.level"),
        Option(MISSING, text=ctx.t("announce.audiences.missing", month=month)),
    )


def level_options(ctx: Context, answers: dict[str, object]) -> tuple[Option, ...]:
    """The school levels, as many as the sender may reach."""
    allowed = (levels_of(ctx.user) if ctx.user is not None else ()) or LEVEL_ORDER
    return tuple(Option(lv, text=level_label(ctx.t, ctx.t.has, lv)) for lv in LEVEL_ORDER if lv in allowed)


def by_level(answers: dict[str, object]) -> bool:
    """The levels step is asked when the schools are chosen by level."""
    return answers.get("audience") == LEVEL


def preview(ctx: Context, answers: dict[str, object]) -> str:
    """The review screen: the message as the schools will read it, whom it reaches, and when it goes."""
    where = where_of(ctx)
    if not isinstance(where, Where):
        return where.text
    found = audience(ctx, where, answers)
    text = message_text(ctx.t, where.office, str(answers.get("message") or ""), ctx.clock.now(), False)
    lines = [text]
    if answers.get("file"):
        lines.append(ctx.t("announce.with_file"))
    lines += ["", audience_name(ctx, answers)]
    people = len(found.recipients)
    if people:
        lines.append(ctx.t("announce.reach", schools=found.reached, people=people))
    else:
        lines.append(ctx.t("announce.nobody"))
    unreached = len(found.schools) - found.reached
    if unreached and people:
        lines.append(ctx.t("announce.unreached", count=unreached))
    wait = held(ctx)
    if wait is not None and people:
        key = "announce.pause_note" if wait.pause else "announce.quiet_note"
        lines.append(ctx.t(key, when=wait.when, pause=wait.pause))
    return "\n".join(lines)


def check(ctx: Context, answers: dict[str, object]) -> str:
    """Nothing is sent to nobody: a choice of schools without a registered person is refused."""
    where = where_of(ctx)
    if not isinstance(where, Where):
        return "announce.no_scope"
    return "" if audience(ctx, where, answers).recipients else "announce.nobody"


@dataclass(frozen=True)
class Held:
    """Why a plain announcement made now waits, and until when ("07:00 11/11/2026")."""

    when: str
    pause: str = ""  # the pause's name (the New Year holiday); "" for the quiet hours


def held(ctx: Context) -> Held | None:
    """When a plain announcement made now goes out; None when it goes at once."""
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    now = ctx.clock.now()
    if cal.can_send(now):
        return None
    pause = cal.pause_at(now)
    return Held(cal.next_sendable(now).strftime("%H:%M %d/%m/%Y"), pause.name if pause is not None else "")


def message_text(t: Translator, office: Office, text: str, when: datetime, urgent: bool) -> str:
    """The announcement as a school reads it: who sends it, the day, the text, what to press."""
    head = t(
        "announce.head_urgent" if urgent else "announce.head",
        office=office.name,
        day=when.strftime("%d/%m/%Y"),
    )
    return f"{head}\n\n{text}\n\n{t('announce.please_confirm')}"


async def submit(ctx: Context, draft: Draft) -> list[Reply]:
    """Store the announcement once and queue a message for every person of every school it is for."""
    user = ctx.user
    assert user is not None and user.id is not None
    where = where_of(ctx)
    if not isinstance(where, Where):
        return [where]
    answers = draft.answers
    urgent = answers.get(SENT_AS) == URGENT
    found = audience(ctx, where, answers)
    now = ctx.clock.now()
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    levels = levels_chosen(answers) if answers.get("audience") == LEVEL else []
    values = {
        "token": draft.token,
        "office_id": where.office.id,
        "user_id": user.id,
        "text": str(answers.get("message") or ""),
        "attachment": answers.get("file") or {},
        "audience": str(answers.get("audience") or ALL),
        "levels": ",".join(levels),
        "period": str(answers.get(THEMES) or cal.current().key),
        "themes": bool(answers.get(THEMES)),
        "urgent": urgent,
        "schools": found.reached,
        "created_at": now,
    }
    with ctx.db.session() as s:
        row, created = q.create_announcement(s, values)
        if not created:
            return [Reply(ctx.t("announce.already_sent", number=row.id))]
        s.expunge(row)
    rows = planned(ctx, where.office, row, found)
    with ctx.db.session() as s:
        q.add_receipts(s, row.id or 0, [(u.id or 0, sid) for u, sid in found.recipients])
        for i in range(0, len(rows), q.OUTBOX_CHUNK):
            q.enqueue(s, [p.row(now) for p in rows[i : i + q.OUTBOX_CHUNK]])
    fields = {"number": row.id, "schools": found.reached, "people": len(rows)}
    wait = None if urgent else held(ctx)
    if wait is not None:
        key = "announce.queued_paused" if wait.pause else "announce.queued_quiet"
        return [Reply(ctx.t(key, when=wait.when, pause=wait.pause, **fields))]
    return [Reply(ctx.t("announce.queued", **fields))]


def planned(ctx: Context, office: Office, row: Announcement, found: Audience) -> list[Planned]:
    """One outbox row per recipient, in their language, with the "received" button."""
    period = q.announcement_period(row.id or 0)
    root = Path(ctx.settings.media_dir)
    made: dict[tuple[str, str], Reply] = {}
    out = []
    for person, school_id in found.recipients:
        key = (person.locale or ctx.settings.locale, person.channel)
        if key not in made:
            t = ctx.t_for(person)
            reader = replace(ctx, t=t)
            files = (
                attachments(reader, ANNOUNCE_FORM, {"file": row.attachment}, root) if row.attachment else ()
            )
            text = message_text(t, office, row.text, row.created_at.astimezone(ctx.clock.tz), row.urgent)
            button = Choice(t("announce.confirm_button"), f"{RECEIPT}:{row.id}")
            made[key] = Reply(text, ((button,),), attachments=files)
        out.append(
            Planned(
                person,
                q.ANNOUNCE,
                period,
                "0",
                made[key],
                school_id=school_id,
                priority=PRIORITY_ESCALATION if row.urgent else PRIORITY_REMINDER,
                quiet=not row.urgent,
            )
        )
    return out


ANNOUNCE_FORM = Form(
    name="announce",
    title="announce.title",
    roles=ROLES,
    submit=submit,
    preview=preview,
    check=check,
    sends=((URGENT, "announce.send_urgent"),),
    steps=(
        Step("message", "announce.message", StepKind.TEXT, max_len=MESSAGE_LIMIT),
        Step("file", "announce.file", StepKind.ATTACHMENT, optional=True),
        Step("audience", "announce.audience", StepKind.CHOICE, choices=audience_options),
        Step("levels", "announce.levels", StepKind.MULTI, choices=level_options, when=by_level),
    ),
)


# ---- the sender's side: /announce and its buttons ---------------------------------------------------


async def announce_command(msg: Incoming, ctx: Context) -> list[Reply]:
    """/announce: write a new one, announce the month's themes, or open a recent one."""
    where = where_of(ctx)
    if not isinstance(where, Where):
        return [where]
    assert ctx.user is not None
    t = ctx.t
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    month = cal.current()
    office_id = where.office.id or 0
    lines = [t("announce.menu", office=where.office.name)]
    buttons: list[tuple[Choice, ...]] = [(Choice(t("announce.new"), f"{PREFIX}:n"),)]
    with ctx.db.session() as s:
        themes = plan.themes_for(s, office_id, month.key)
        done = q.themes_announced(s, office_id, month.key)
        recent = q.recent_announcements(s, office_id, RECENT)
        counts = {a.id: q.receipts(s, a.id or 0, ids_seen_by(ctx.user)) for a in recent}
    if themes and done is None:
        label = t("announce.themes_button", month=month.label, count=len(themes))
        buttons.append((Choice(label, f"{PREFIX}:t"),))
    lines.append(t("announce.recent") if recent else t("announce.none_yet"))
    for a in recent:
        c = counts[a.id]
        when = a.created_at.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m")
        lines.append(
            t(
                "announce.line",
                number=a.id,
                when=when,
                start=short(a.text),
                confirmed=c.schools_confirmed,
                schools=c.schools,
            )
        )
        buttons.append((Choice(t("announce.open", number=a.id), f"{PREFIX}:v:{a.id}"),))
    return [Reply("\n".join(lines), tuple(buttons))]


def short(text: str) -> str:
    """The first words of a text, on one line."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[:PREVIEW_CHARS].rstrip() + "…"


async def button(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """The /announce buttons: a new announcement, the month's themes, one announcement's receipts."""
    parts = msg.choice.split(":")
    action = parts[1] if len(parts) > 1 else ""
    if action == "n":
        return await engine.start(ANNOUNCE_FORM.name, ctx)
    if action == "t":
        return themes(ctx, engine)
    if action == "v" and len(parts) == 3 and parts[2].isdigit():
        return [receipts_reply(ctx, int(parts[2]))]
    return [Reply(ctx.t("error.bad_button"))]


def themes(ctx: Context, engine: Engine) -> list[Reply]:
    """The month's plan themes as an announcement to every school, on its review screen to send."""
    where = where_of(ctx)
    if not isinstance(where, Where):
        return [where]
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    month = cal.current()
    with ctx.db.session() as s:
        found = plan.themes_for(s, where.office.id or 0, month.key)
        done = q.themes_announced(s, where.office.id or 0, month.key)
    if done is not None:
        return [Reply(ctx.t("announce.themes_done", month=month.label, number=done.id))]
    if not found:
        return [Reply(ctx.t("announce.themes_none", month=month.label))]
    items = "\n".join(f"{i}. {theme.theme}" for i, theme in enumerate(found[:THEMES_LISTED], 1))
    due = cal.deadline(month)
    text = ctx.t(
        "announce.themes_text",
        month=month.label,
        themes=items,
        time=due.strftime("%H:%M"),
        date=due.strftime("%d/%m/%Y"),
    )[:MESSAGE_LIMIT]
    return engine.ready(ANNOUNCE_FORM.name, ctx, {"message": text, "audience": ALL, THEMES: month.key})


def receipts_reply(ctx: Context, number: int) -> Reply:
    """One announcement of the reader's office: delivered, confirmed, and the schools yet to confirm."""
    user = ctx.user
    assert user is not None
    seen = ids_seen_by(user)
    with ctx.db.session() as s:
        row = s.get(Announcement, number)
        if row is None or row.office_id != user.office_id:
            return Reply(ctx.t("announce.not_found"))
        c = q.receipts(s, number, seen)
        waiting = q.unconfirmed_schools(s, number, seen, NAMES_SHOWN)
        delivery = q.delivery_counts(s, number)
    t = ctx.t
    when = row.created_at.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m/%Y")
    lines = [
        t("announce.detail", number=number, when=when, start=short(row.text)),
        t(
            "announce.delivery",
            sent=delivery.get("sent", 0),
            waiting=delivery.get("pending", 0) + delivery.get("claimed", 0),
            failed=delivery.get("blocked", 0) + delivery.get("dead", 0),
        ),
        t(
            "announce.confirmed_count",
            confirmed=c.schools_confirmed,
            schools=c.schools,
            people_confirmed=c.people_confirmed,
            people=c.people,
        ),
    ]
    missing = c.schools - c.schools_confirmed
    if missing:
        lines.append(t("announce.not_confirmed", count=missing))
        lines += [f"• {sc.name}" for sc in waiting]
        if missing > len(waiting):
            lines.append(t("announce.more", count=missing - len(waiting)))
    refresh = Choice(t("announce.refresh"), f"{PREFIX}:v:{number}")
    return Reply("\n".join(lines), ((refresh,),))


# ---- the school's side: "received" ---------------------------------------------------------------------


async def confirm(msg: Incoming, ctx: Context) -> list[Reply]:
    """A recipient presses "received": recorded once, for the person (any of their accounts)."""
    user = ctx.user
    assert user is not None and user.id is not None
    number = msg.choice.partition(":")[2]
    with ctx.db.session() as s:
        row = s.get(Announcement, int(number)) if number.isdigit() else None
        accounts = [a.id or 0 for a in q.accounts_of(s, user)]
        recipient, first = (
            q.confirm_receipt(s, row.id or 0, accounts, ctx.clock.now())
            if row is not None
            else (False, False)
        )
    if row is None or not recipient:
        return [Reply(ctx.t("announce.not_found"))]
    return [Reply(ctx.t("announce.confirmed" if first else "announce.confirmed_again", number=row.id))]
