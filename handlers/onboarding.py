"""/onboarding: who is on board, for officers and leaders; an officer re-issues a school's code.

`/onboarding` gives the scope's totals by level (schools, registered, not yet, codes outstanding) and
the schools by name, a page at a time (a phone screen); `/onboarding <name or code>` one school: its
people (name, position, channel, since when) and its outstanding codes, with, for an officer, a button
to re-issue the code: the outstanding ones stop working at once and the new code comes with its
Telegram deep link to send on. The same rows make the registration sheet of the status workbook
(`handlers/leaders/workbook.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col

from handlers.calendar import Clock
from handlers.leaders.reader import Translate, Where, choose_school, day, level_label, level_sort, where_of
from handlers.profile import person_label
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.db import Database
from storage.exports import Sheet, Value
from storage.models import Invite, School, User
from storage.scope import in_scope

PREFIX = (
    "ob"  # ob:p:<page> a page, ob:s:<school> one school, ob:r:<school> re-issue (asks), ob:y:<school> do it
)
READERS = frozenset({"officer", "leader", "admin"})
ISSUERS = frozenset({"officer", "admin"})
PAGE = 10


def invite_link(username: str, code: str) -> str:
    """The Telegram deep link that sends /start CODE ("" without the bot's username)."""
    name = username.strip().lstrip("@")
    return f"https://t.me/{name}?start={code}" if name else ""


@dataclass(frozen=True)
class Totals:
    """One level's figures (or the scope's): schools, registered, not yet, codes outstanding."""

    schools: int
    registered: int
    codes: int

    @classmethod
    def of(cls, rows: Sequence[q.Boarding]) -> Totals:
        """The figures of these schools."""
        return cls(len(rows), sum(r.registered for r in rows), sum(len(r.codes) for r in rows))

    @property
    def unregistered(self) -> int:
        """Schools with no registered account."""
        return self.schools - self.registered


def totals(rows: Iterable[q.Boarding]) -> dict[str, Totals]:
    """Per level, the figures of `rows`."""
    by_level: dict[str, list[q.Boarding]] = {}
    for row in rows:
        by_level.setdefault(row.school.level, []).append(row)
    return {level: Totals.of(by_level[level]) for level in sorted(by_level, key=level_sort)}


def read_rows(db: Database, where: Where, now: datetime) -> list[q.Boarding]:
    """Every school of the scope with its people and outstanding codes, detached from the session."""
    with db.session() as s:
        rows = q.boarding(s, in_scope(where.scope), now)
        for row in rows:
            s.expunge(row.school)
            for item in (*row.people, *row.codes):
                s.expunge(item)
    return rows


async def onboarding(msg: Incoming, ctx: Context) -> list[Reply]:
    """/onboarding [school]: the scope's totals and schools a page at a time, or one school."""
    where = where_of(ctx)
    if isinstance(where, Reply):
        return [where]
    text = msg.args.strip()
    if text:
        return search(ctx, where, text)
    return [overview(ctx, where, 0)]


def overview(ctx: Context, where: Where, page: int) -> Reply:
    """Totals by level, then one page of schools, with the pages' buttons."""
    rows = read_rows(ctx.db, where, ctx.clock.now())
    by_level = totals(rows)
    whole = Totals.of(rows)
    t = ctx.t
    lines = [t("onboarding.title", office=where.office.name, date=day(ctx.clock.now(), ctx.clock))]
    lines.append(total_line(t, t("onboarding.all"), whole))
    lines += [total_line(t, level_label(t, t.has, level), f) for level, f in by_level.items()]
    pages = max(1, -(-len(rows) // PAGE))
    page = min(max(page, 0), pages - 1)
    lines.append("")
    lines.append(t("onboarding.page", page=page + 1, pages=pages))
    lines += [school_line(ctx, row) for row in rows[page * PAGE : (page + 1) * PAGE]]
    lines.append("")
    lines.append(t("onboarding.how_one"))
    nav = []
    if page > 0:
        nav.append(Choice(t("onboarding.prev"), f"{PREFIX}:p:{page - 1}"))
    if page < pages - 1:
        nav.append(Choice(t("onboarding.next"), f"{PREFIX}:p:{page + 1}"))
    return Reply("\n".join(lines), (tuple(nav),) if nav else ())


def total_line(t: Translate, label: str, f: Totals) -> str:
    """One level's line: schools, registered, not registered, codes outstanding."""
    return t(
        "onboarding.totals",
        label=label,
        schools=f.schools,
        registered=f.registered,
        unregistered=f.unregistered,
        codes=f.codes,
    )


def school_line(ctx: Context, row: q.Boarding) -> str:
    """One school on a page: who registered and since when, or the codes outstanding."""
    t = ctx.t
    if row.registered:
        who = ", ".join(person_label(p, t) for p in row.people)
        return t("onboarding.line_in", school=row.school.name, who=who, date=day(row.since, ctx.clock))
    if row.codes:
        until = day(max(c.expires_at for c in row.codes), ctx.clock)
        return t("onboarding.line_code", school=row.school.name, count=len(row.codes), date=until)
    return t("onboarding.line_out", school=row.school.name)


def search(ctx: Context, where: Where, text: str) -> list[Reply]:
    """/onboarding <name or code>: the school, a choice when several match, or a plain "none"."""
    return choose_school(ctx, where.scope, text, lambda school: school_reply(ctx, where, school), PREFIX)


def school_reply(ctx: Context, where: Where, school: School, note: str = "") -> Reply:
    """One school: its people with their channel and date, its outstanding codes, the re-issue button."""
    with ctx.db.session() as s:
        row = q.boarding(s, [col(School.id) == school.id], ctx.clock.now())[0]
        lines = [ctx.t("onboarding.school", school=school.name, code=school.code)]
        lines += [person_line(ctx, p) for p in row.people] or [ctx.t("onboarding.nobody")]
        lines += [code_line(ctx, c) for c in row.codes] or [ctx.t("onboarding.no_code")]
    buttons: tuple[tuple[Choice, ...], ...] = ()
    if ctx.user is not None and ctx.user.role in ISSUERS:
        buttons = ((Choice(ctx.t("onboarding.reissue"), f"{PREFIX}:r:{school.id}"),),)
    text = "\n".join(lines)
    return Reply(f"{note}\n\n{text}" if note else text, buttons)


def person_line(ctx: Context, user: User) -> str:
    """A person of the school: their label, channel and since when."""
    return ctx.t(
        "onboarding.person",
        label=person_label(user, ctx.t),
        channel=ctx.t(f"link.channels.{user.channel}"),
        date=day(user.registered_at or user.created_at, ctx.clock),
    )


def code_line(ctx: Context, invite: Invite) -> str:
    """An outstanding code and until when it works."""
    return ctx.t("onboarding.code", code=invite.code, date=day(invite.expires_at, ctx.clock))


async def button(msg: Incoming, ctx: Context) -> list[Reply]:
    """ob:p / ob:s / ob:r / ob:y: a page, a school, the re-issue question, the re-issue; outside: refused."""
    _, action, number = [*msg.choice.split(":", 2), "", ""][:3]
    where = where_of(ctx)
    if isinstance(where, Reply):
        return [where]
    if not number.isdigit() or action not in ("p", "s", "r", "y"):
        return [Reply(ctx.t("error.bad_button"))]
    if action == "p":
        return [overview(ctx, where, int(number))]
    with ctx.db.session() as s:
        school = stats.school_in_scope(s, where.scope, int(number))
        if school is not None:
            s.expunge(school)
    if school is None:
        return [Reply(ctx.t("onboarding.not_found"))]
    if action == "s":
        return [school_reply(ctx, where, school)]
    if ctx.user is None or ctx.user.role not in ISSUERS:
        return [Reply(ctx.t("error.not_for_role"))]
    if action == "r":
        return [ask_reissue(ctx, school)]
    return reissue(ctx, where, school)


def ask_reissue(ctx: Context, school: School) -> Reply:
    """ "Re-issue the code of X? The codes sent before stop working." Re-issue / Back."""
    buttons = (
        (Choice(ctx.t("onboarding.reissue_yes"), f"{PREFIX}:y:{school.id}"),),
        (Choice(ctx.t("btn.back"), f"{PREFIX}:s:{school.id}"),),
    )
    return Reply(ctx.t("onboarding.reissue_ask", school=school.name), buttons)


def reissue(ctx: Context, where: Where, school: School) -> list[Reply]:
    """A new code for the school (the old ones end now), with its deep link, to send on."""
    days = ctx.settings.registration.invite_days
    with ctx.db.session() as s:
        invite = q.reissue_code(s, school.id or 0, ctx.clock.now(), days)
        code, until = invite.code, invite.expires_at
    link = invite_link(ctx.settings.telegram.username, code)
    lines = [ctx.t("onboarding.reissued", school=school.name, code=code, date=day(until, ctx.clock))]
    lines.append(ctx.t("onboarding.link", link=link) if link else ctx.t("onboarding.no_link", code=code))
    return [Reply("\n".join(lines))]


# ---- the registration sheet of the status workbook ---------------------------------------------------


SHEET_COLUMNS = ("number", "code", "school", "level", "state", "since", "people", "codes")


def registration_sheet(t: Translate, clock: Clock, where: Where, rows: list[q.Boarding]) -> Sheet:
    """/onboarding's rows as a sheet: one line per school, its people and outstanding codes one a line."""
    out: list[list[Value]] = []
    for n, row in enumerate(rows, start=1):
        people = "\n".join(
            t(
                "onboarding.person_cell",
                label=person_label(p, t),
                channel=t(f"link.channels.{p.channel}"),
                date=day(p.registered_at or p.created_at, clock),
            )
            for p in row.people
        )
        codes = "\n".join(
            t("onboarding.code_cell", code=c.code, date=day(c.expires_at, clock)) for c in row.codes
        )
        state = t("onboarding.state_in") if row.registered else t("onboarding.state_out")
        since = row.since.astimezone(clock.tz).date() if row.since else None
        out.append([n, row.school.code, row.school.name, row.school.level, state, since, people, codes])
    title = t("onboarding.sheet_title", office=where.office.name, date=day(clock.now(), clock))
    headers = tuple(t(f"onboarding.col.{k}") for k in SHEET_COLUMNS)
    return Sheet(t("onboarding.sheet"), title, headers, out)
