"""What every user has: the home menu, help, who am I, language, cancel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from handlers.types import Choice, Context, Handler, Incoming, Reply
from storage import queries as q
from storage.models import Office, School, User


@dataclass(frozen=True)
class Command:
    """A slash command (and, with `menu`, a home-menu button) open to some roles.

    `roles` None means everyone, registered or not; an empty set would mean no one.
    """

    name: str
    handler: Handler
    roles: frozenset[str] | None
    menu: str = ""
    describe: str = ""

    def allows(self, user: User | None) -> bool:
        """Whether this user may run the command."""
        return self.open_to(user.role if user is not None else None)

    def open_to(self, role: str | None) -> bool:
        """Whether a user with this role (None: unregistered) may run the command."""
        return self.roles is None or role in self.roles


def binding(ctx: Context, user: User) -> str:
    """ "Principal of THCS Pu Nhi" in the reader's language."""
    with ctx.db.session() as s:
        school = s.get(School, user.school_id) if user.school_id else None
        office = s.get(Office, user.office_id) if user.office_id else None
    place = school.name if school else (office.name if office else "")
    role = f"profile.positions.{user.position}" if school and user.position else f"role.{user.role}"
    return ctx.t("whoami.binding", role=ctx.t(role), place=place)


def home_screen(commands: list[Command]) -> Callable[[Context], Reply]:
    """The home screen: a greeting for the user's role and its menu buttons."""

    def home(ctx: Context) -> Reply:
        user = ctx.user
        if user is None or user.role is None:
            return Reply(ctx.t("reg.how"))
        buttons = tuple(
            (Choice(ctx.t(c.menu), f"m:{c.name}"),) for c in commands if c.menu and c.allows(user)
        )
        return Reply(ctx.t("menu.title", binding=binding(ctx, user)), buttons)

    return home


async def show_help(msg: Incoming, ctx: Context) -> list[Reply]:
    """What the bot does for this user's role."""
    role = ctx.user.role if ctx.user and ctx.user.role else "guest"
    return [Reply(ctx.t(f"help.{role}"))]


async def whoami(msg: Incoming, ctx: Context) -> list[Reply]:
    """Show what this chat account is bound to."""
    if ctx.user is None or ctx.user.role is None:
        return [Reply(ctx.t("whoami.none"))]
    return [Reply(ctx.t("whoami.is", binding=binding(ctx, ctx.user)))]


async def choose_language(msg: Incoming, ctx: Context) -> list[Reply]:
    """/language [vi|en]: switch at once with an argument, else offer the choice."""
    wanted = msg.args.strip().lower()
    if wanted:
        return await set_language(ctx, wanted)
    options = tuple((Choice(ctx.t(f"lang.{code}"), f"l:{code}"),) for code in ctx.catalog.languages)
    return [Reply(ctx.t("lang.ask"), options)]


async def language_button(msg: Incoming, ctx: Context) -> list[Reply]:
    """A language button."""
    return await set_language(ctx, msg.choice.partition(":")[2])


async def set_language(ctx: Context, code: str) -> list[Reply]:
    """Save the user's language and answer in it."""
    if code not in ctx.catalog.languages or ctx.user is None or ctx.user.id is None:
        return [Reply(ctx.t("lang.unknown", options=", ".join(ctx.catalog.languages)))]
    with ctx.db.session() as s:
        q.set_locale(s, ctx.user.id, code)
    return [Reply(ctx.catalog.translator(code, ctx.channel)("lang.set"))]
