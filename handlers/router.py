"""Routing: commands, menu buttons, button presses and free text to handlers, by role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from handlers import (
    announce,
    article,
    bundle,
    common,
    deadlines_ics,
    digest,
    drafts,
    find,
    incident,
    linking,
    nomination,
    onboarding,
    people,
    profile,
    published,
    registration,
    reminders,
    report,
    review,
    school_status,
    submissions,
)
from handlers.common import Command
from handlers.forms import Engine, Form, has_content
from handlers.leaders import buttons, ranking, reader, summary, workbook
from handlers.types import Context, Handler, Incoming, Kind, Reply

STAFF = frozenset({"officer", "leader"})
PRINCIPAL = frozenset({"principal"})
EVERYONE_REGISTERED = frozenset({"principal", "officer", "leader", "admin"})


@dataclass(frozen=True)
class ButtonRoute:
    """Presses whose data starts with `prefix:` go to `handler`, for these roles (None: anyone)."""

    prefix: str
    handler: Handler
    roles: frozenset[str] | None


FormStart = Callable[[Incoming, Context, Engine], Awaitable[list[Reply]]]


def form_command(
    name: str,
    form: Form,
    engine_ref: Callable[[], Engine],
    menu: str,
    describe: str,
    start: FormStart | None = None,
) -> Command:
    """A command that opens a form, through the feature's own `start` when it has one."""

    async def open_form(msg: Incoming, ctx: Context) -> list[Reply]:
        if start is not None:
            return await start(msg, ctx, engine_ref())
        return await engine_ref().start(form.name, ctx)

    return Command(name, open_form, form.roles, menu=menu, describe=describe)


class Router:
    """The declared table: which input goes to which handler, and who may reach it."""

    def __init__(self, commands: list[Command], forms: list[Form], buttons: list[ButtonRoute]) -> None:
        self.commands = {c.name: c for c in commands}
        self.home = common.home_screen(commands)
        self.engine = Engine(forms, self.home)
        self.buttons = {b.prefix: b for b in buttons}

    def menu_for(self, role: str | None) -> list[Command]:
        """The commands a role can use, for the platform's command menu."""
        return [c for c in self.commands.values() if c.describe and c.open_to(role)]

    async def route(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """Send one incoming message to the handler that owns it."""
        ctx = replace(ctx, extras={**ctx.extras, "home": self.home})
        if msg.kind == Kind.COMMAND:
            return await self.command(msg, ctx)
        if msg.kind == Kind.CHOICE:
            return await self.button(msg, ctx)
        if msg.kind == Kind.EDITED:  # a sent message changed: the answer it gave, if any, follows
            return await self.engine.on_edit(msg, ctx) if ctx.user is not None and ctx.user.role else []
        if ctx.user is None or ctx.user.role is None:
            return await registration.on_text(msg, ctx, self.engine)
        replies = await self.engine.on_message(msg, ctx)
        if replies is not None:
            return replies
        if msg.kind == Kind.UNSUPPORTED:  # a file the platform kept back: the truth, not "not understood"
            return [Reply(ctx.t("menu.not_passed"))]
        return [Reply(ctx.t("menu.not_understood")), self.home(ctx)]

    async def command(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """A slash command: unknown, not for this role, or run."""
        cmd = self.commands.get(msg.command.lower())
        if cmd is None:
            return [
                Reply(ctx.t("error.unknown_command", command=msg.command[:32])),
                *self.where_you_were(ctx),
            ]
        if not cmd.allows(ctx.user):
            return [Reply(ctx.t(denied_key(ctx)))]
        return await cmd.handler(msg, ctx)

    async def button(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """A button press: a form step, a menu item, or a feature's own button."""
        prefix, _, rest = msg.choice.partition(":")
        if prefix == "m":
            return await self.command(replace(msg, kind=Kind.COMMAND, command=rest, args=""), ctx)
        route = self.buttons.get(prefix)
        if route is None:
            return [Reply(ctx.t("error.bad_button"))]
        if route.roles is not None and (ctx.user is None or ctx.user.role not in route.roles):
            return [Reply(ctx.t(denied_key(ctx)))]
        return await route.handler(msg, ctx)

    def where_you_were(self, ctx: Context) -> list[Reply]:
        """The current form screen, when a form is open, so an aside never loses the user's place."""
        draft = self.engine.active(ctx)
        form = self.engine.forms.get(draft.form) if draft else None
        return [self.engine.screen(form, draft, ctx)] if form and draft else []


def denied_key(ctx: Context) -> str:
    """Why a command is refused: not registered, or not for this role."""
    return "reg.how" if ctx.user is None or ctx.user.role is None else "error.not_for_role"


def build_router() -> Router:
    """The whole table, in priority order; the only place features are listed."""
    router: Router | None = None

    def engine() -> Engine:
        assert router is not None
        return router.engine

    async def cancel(msg: Incoming, ctx: Context) -> list[Reply]:
        draft = engine().active(ctx)
        form = engine().forms.get(draft.form) if draft is not None else None
        if draft is None or form is None:
            return [Reply(ctx.t("form.nothing_to_cancel"))]
        return [engine().cancel_question(form, draft, ctx)]

    async def menu(msg: Incoming, ctx: Context) -> list[Reply]:
        return [ctx.extras["home"](ctx), *resume_offers(ctx)]

    def resume_offers(ctx: Context) -> list[Reply]:
        draft = engine().active(ctx)
        if draft is None or not has_content(draft.answers):
            return []
        return [engine().resume_offer(engine().forms[draft.form], draft, ctx)]

    commands = [
        Command("start", lambda msg, ctx: registration.start(msg, ctx, engine()), None, describe="cmd.start"),
        Command("menu", menu, EVERYONE_REGISTERED, describe="cmd.menu"),
        form_command(
            "article", article.ARTICLE_FORM, engine, "menu.article", "cmd.article", article.start_article
        ),
        form_command("nominate", nomination.NOMINATION_FORM, engine, "menu.nominate", "cmd.nominate"),
        form_command("report", report.REPORT_FORM, engine, "menu.report", "cmd.report", report.start_report),
        Command(
            "mystatus", school_status.my_status, PRINCIPAL, menu="menu.mystatus", describe="cmd.mystatus"
        ),
        Command("status", summary.status, STAFF, menu="menu.status", describe="cmd.status"),
        Command("ranking", ranking.ranking, STAFF, describe="cmd.ranking"),
        Command("export", workbook.export, STAFF, describe="cmd.export"),
        Command(
            "nominations",
            nomination.list_nominations,
            EVERYONE_REGISTERED,
            menu="menu.nominations",
            describe="cmd.nominations",
        ),
        form_command("incident", incident.INCIDENT_FORM, engine, "menu.incident", "cmd.incident"),
        Command(
            "incidents",
            incident.list_incidents,
            EVERYONE_REGISTERED,
            menu="menu.incidents",
            describe="cmd.incidents",
        ),
        # Leaders read items (from the digest, /find) but do not vet them: no review queue in their menus.
        Command("review", review.queue, review.REVIEWERS, menu="menu.review", describe="cmd.review"),
        Command(
            "published",
            published.waiting,
            review.REVIEWERS,
            menu="menu.published",
            describe="cmd.published",
        ),
        Command("find", find.find, review.VIEWERS, menu="menu.find", describe="cmd.find"),
        Command("bundle", bundle.bundle_command, review.VIEWERS, menu="menu.bundle", describe="cmd.bundle"),
        Command("digest", digest.digest_command, review.VIEWERS, menu="menu.digest", describe="cmd.digest"),
        Command("announce", announce.announce_command, STAFF, menu="menu.announce", describe="cmd.announce"),
        Command("cancel", cancel, EVERYONE_REGISTERED, describe="cmd.cancel"),
        Command(
            "drafts",
            lambda msg, ctx: drafts.list_drafts(msg, ctx, engine()),
            EVERYONE_REGISTERED,
            describe="cmd.drafts",
        ),
        Command("calendar", deadlines_ics.calendar_command, EVERYONE_REGISTERED, describe="cmd.calendar"),
        Command(
            "profile",
            lambda msg, ctx: profile.open_profile(msg, ctx, engine()),
            EVERYONE_REGISTERED,
            describe="cmd.profile",
        ),
        Command("people", people.people, people.MANAGERS, describe="cmd.people"),
        Command("onboarding", onboarding.onboarding, onboarding.READERS, describe="cmd.onboarding"),
        Command("whoami", common.whoami, None, describe="cmd.whoami"),
        Command("link", linking.link, None, describe="cmd.link"),
        Command("language", common.choose_language, None, menu="menu.language", describe="cmd.language"),
        Command("help", common.show_help, None, menu="menu.help", describe="cmd.help"),
    ]
    router = Router(
        commands,
        forms=[
            article.ARTICLE_FORM,
            nomination.NOMINATION_FORM,
            report.REPORT_FORM,
            incident.INCIDENT_FORM,
            incident.REPLY_FORM,
            incident.UPDATE_FORM,
            incident.RESULT_FORM,
            review.RETURN_FORM,
            review.PUBLISH_FORM,
            announce.ANNOUNCE_FORM,
            profile.PROFILE_FORM,
        ],
        buttons=[
            ButtonRoute("f", lambda msg, ctx: engine().on_button(msg, ctx), EVERYONE_REGISTERED),
            ButtonRoute("k", incident.acknowledge, STAFF),
            ButtonRoute(announce.PREFIX, lambda msg, ctx: announce.button(msg, ctx, engine()), STAFF),
            ButtonRoute(announce.RECEIPT, announce.confirm, PRINCIPAL),
            ButtonRoute(
                incident.PREFIX,
                lambda msg, ctx: incident.case_button(msg, ctx, engine()),
                frozenset({*STAFF, *PRINCIPAL}),
            ),
            ButtonRoute("as", lambda msg, ctx: article.start_choice(msg, ctx, engine()), PRINCIPAL),
            ButtonRoute(
                drafts.PREFIX, lambda msg, ctx: drafts.restore(msg, ctx, engine()), EVERYONE_REGISTERED
            ),
            ButtonRoute("se", lambda msg, ctx: submissions.edit(msg, ctx, engine()), PRINCIPAL),
            ButtonRoute(reminders.SNOOZE_PREFIX, reminders.snooze, PRINCIPAL),
            ButtonRoute("o", lambda msg, ctx: review.open_submission(msg, ctx, engine()), review.VIEWERS),
            ButtonRoute("rv", lambda msg, ctx: review.act(msg, ctx, engine()), review.REVIEWERS),
            ButtonRoute(review.PUBLISHED_PREFIX, published.more, review.REVIEWERS),
            ButtonRoute(find.PREFIX, find.more, review.VIEWERS),
            ButtonRoute(reader.PREFIX, buttons.button, STAFF),
            ButtonRoute(people.PREFIX, people.button, people.MANAGERS),
            ButtonRoute(onboarding.PREFIX, onboarding.button, onboarding.READERS),
            ButtonRoute("l", common.language_button, None),
        ],
    )
    return router
