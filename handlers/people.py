"""/people: a school's people for an officer (their scope) or an admin, and removing one who has left.

`/people <name or code>` finds the school in the reader's scope and lists its registered people, each
with a remove button; removing asks first (and warns when it is the school's last account, which
makes the school count as not registered), then ends the person's access at once on every channel.
What they sent stays, under their name.
"""

from __future__ import annotations

from datetime import datetime

from handlers.leaders.reader import choose_school
from handlers.profile import person_label
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.models import School, User
from storage.scope import Scope, levels_of

PREFIX = "pp"  # pp:s:<school id> the list, pp:r:<user id> remove (asks), pp:y:<user id> remove (done)
MANAGERS = frozenset({"officer", "admin"})


def scope_of(ctx: Context) -> Scope | None:
    """The reader's scope: their office's schools, within an officer's levels."""
    user = ctx.user
    if user is None or user.office_id is None or user.role not in MANAGERS:
        return None
    return Scope(user.office_id, levels_of(user))


async def people(msg: Incoming, ctx: Context) -> list[Reply]:
    """/people <school>: the school's people, or a choice of schools, or how to ask."""
    scope = scope_of(ctx)
    text = msg.args.strip()
    if scope is None:
        return [Reply(ctx.t("people.no_scope"))]
    if not text:
        return [Reply(ctx.t("people.how"))]
    return choose_school(ctx, scope, text, lambda school: school_people(ctx, school), PREFIX)


def school_people(ctx: Context, school: School, note: str = "") -> Reply:
    """The school's registered people, one line each, with a remove button each."""
    with ctx.db.session() as s:
        rows = q.school_users(s, school.id or 0)
    if not rows:
        text = ctx.t("people.none", school=school.name)
        return Reply(f"{note}\n\n{text}" if note else text)
    lines = [ctx.t("people.title", school=school.name, count=len(rows))]
    lines += [f"{n}. {person_line(ctx, user)}" for n, user in enumerate(rows, 1)]
    buttons = tuple(
        (Choice(ctx.t("people.remove", label=person_label(user, ctx.t)), f"{PREFIX}:r:{user.id}"),)
        for user in rows
    )
    text = "\n".join(lines)
    return Reply(f"{note}\n\n{text}" if note else text, buttons)


def person_line(ctx: Context, user: User) -> str:
    """A person's line: label, channel, since when, phone."""
    parts = [
        person_label(user, ctx.t),
        ctx.t(f"link.channels.{user.channel}"),
        ctx.t("people.since", date=day(ctx, user.registered_at or user.created_at)),
    ]
    if user.phone:
        parts.append(user.phone)
    return " · ".join(parts)


def day(ctx: Context, moment: datetime) -> str:
    """dd/mm/yyyy in the office's zone."""
    return moment.astimezone(ctx.clock.tz).strftime("%d/%m/%Y")


async def button(msg: Incoming, ctx: Context) -> list[Reply]:
    """pp:s / pp:r / pp:y: a school's list, the removal question, the removal; outside scope: refused."""
    _, action, number = [*msg.choice.split(":", 2), "", ""][:3]
    scope = scope_of(ctx)
    if scope is None or not number.isdigit() or action not in ("s", "r", "y"):
        return [Reply(ctx.t("error.bad_button"))]
    with ctx.db.session() as s:
        if action == "s":
            school = stats.school_in_scope(s, scope, int(number))
            person = None
        else:
            person = s.get(User, int(number))
            seen = person is not None and person.role == q.SCHOOL_ROLE and person.school_id is not None
            school = stats.school_in_scope(s, scope, person.school_id or 0) if seen and person else None
    if school is None:
        return [Reply(ctx.t("people.not_found"))]
    if person is None:
        return [school_people(ctx, school)]
    if action == "r":
        return [ask_removal(ctx, school, person)]
    return [remove(ctx, school, person)]


def ask_removal(ctx: Context, school: School, person: User) -> Reply:
    """ "Remove X from school Y?" with the warning for a school's last account; Remove / Back."""
    with ctx.db.session() as s:
        last = q.is_last_person(s, person)
    lines = [ctx.t("people.ask", label=person_label(person, ctx.t), school=school.name)]
    if last:
        lines.append(ctx.t("people.last_warning"))
    buttons = (
        (Choice(ctx.t("people.confirm"), f"{PREFIX}:y:{person.id}"),),
        (Choice(ctx.t("btn.back"), f"{PREFIX}:s:{school.id}"),),
    )
    return Reply("\n".join(lines), buttons)


def remove(ctx: Context, school: School, person: User) -> Reply:
    """End the person's access now; the school's list again, with what happened."""
    with ctx.db.session() as s:
        last = q.is_last_person(s, person)
        q.remove_person(s, s.merge(person), ctx.clock.now())
    note = ctx.t("people.removed", label=person_label(person, ctx.t), school=school.name)
    if last:
        note += "\n" + ctx.t("people.removed_last")
    return school_people(ctx, school, note)
