"""Bài viết tháng: the principal's monthly article, with the photo and video rules checked in the chat."""

from __future__ import annotations

from typing import Any

from handlers import submissions
from handlers.calendar import Calendar, Period
from handlers.forms import Answers, DraftMode, Engine, Form, Option, Step, StepKind
from handlers.types import Choice, Context, Incoming, Reply
from storage import plan
from storage import queries as q
from storage.models import Draft, School

KIND = "article"
# When a school's office has no plan, the standing themes of domain.md.
STANDING = ("activity", "good_deeds", "innovation", "policy")


def calendar(ctx: Context) -> Calendar:
    """The office's calendar."""
    return Calendar(ctx.clock, ctx.settings.schedule)


def school_of(ctx: Context) -> School:
    """The writer's school."""
    assert ctx.user is not None and ctx.user.school_id is not None
    with ctx.db.session() as s:
        school = s.get(School, ctx.user.school_id)
    assert school is not None
    return school


def school_id(ctx: Context) -> int:
    """The writer's school's id."""
    assert ctx.user is not None and ctx.user.school_id is not None
    return ctx.user.school_id


def default_period(ctx: Context, answers: Answers) -> str:
    """This month unless it is already fulfilled, then next month (domain.md)."""
    with ctx.db.session() as s:
        done = q.fulfilled_periods(s, school_id(ctx))
    return calendar(ctx).article_periods(done)[0].key


def period_options(ctx: Context, answers: Answers) -> tuple[Option, ...]:
    """The two periods an article may count for, each with its deadline and whether it would be late."""
    cal = calendar(ctx)
    this = cal.current()
    options = []
    for period in (this, this.shift(1)):
        due = cal.deadline(period)
        status = (
            ctx.t("article.would_be_late") if cal.is_late(period, cal.now()) else ctx.t("article.on_time")
        )
        text = ctx.t("article.period_option", period=period.label, due=due.strftime("%d/%m"), status=status)
        options.append(Option(period.key, text=text))
    return tuple(options)


def theme_options(ctx: Context, answers: Answers) -> tuple[Option, ...]:
    """The office's themes for the article's month, or the standing themes when it has none."""
    if ctx.user is None or ctx.user.school_id is None:
        return ()  # only a school writes articles; others read the stored theme_text
    period = str(answers.get("period") or calendar(ctx).current().key)
    office_id = school_of(ctx).office_id
    with ctx.db.session() as s:
        themes = plan.themes_for(s, office_id, period)
    if themes:
        return tuple(Option(f"p{t.id}", text=t.theme) for t in themes[:12])
    return tuple(Option(f"s:{key}", f"article.themes.{key}") for key in STANDING)


def previous(ctx: Context, field: str) -> Any:
    """A fixed part of the school's previous article (author, contact), offered as a suggestion."""
    with ctx.db.session() as s:
        last = q.latest_submission(s, school_id(ctx), KIND)
    return last.answers.get(field) if last else None


def photo_date(ctx: Context, answers: Answers) -> str | None:
    """The date the photos were taken, when their EXIF says so."""
    return (answers.get("_exif") or {}).get("date")


def photo_place(ctx: Context, answers: Answers) -> str | None:
    """Where the photos were taken, when their EXIF has GPS: a map link the officer can open."""
    gps = (answers.get("_exif") or {}).get("gps")
    if not gps:
        return None
    lat, lon = gps
    return ctx.t("article.gps_place", lat=f"{lat:.5f}", lon=f"{lon:.5f}")


ARTICLE_STEPS = (
    Step(
        "period", "article.period", StepKind.CHOICE, ask=False, default=default_period, choices=period_options
    ),
    Step("theme", "article.theme", StepKind.CHOICE, choices=theme_options, other=True, max_len=300),
    Step("title", "article.title", StepKind.TEXT, max_len=200),
    Step("photo_wide", "article.photo_wide", StepKind.PHOTO),
    Step("photo_speaker", "article.photo_speaker", StepKind.PHOTO),
    Step("photo_closeup", "article.photo_closeup", StepKind.PHOTO),
    Step("photos_extra", "article.photos_extra", StepKind.PHOTOS, optional=True, max_items=10),
    Step("what", "article.what", StepKind.TEXT, max_len=500),
    Step("where", "article.where", StepKind.TEXT, max_len=300, default=photo_place),
    Step("when", "article.when", StepKind.DATE, past_only=True, max_age_days=366, default=photo_date),
    Step("who", "article.who", StepKind.TEXT, max_len=500),
    Step("how", "article.how", StepKind.TEXT, max_len=500),
    Step("body", "article.body", StepKind.APPEND, optional=True),
    Step("link", "article.link", StepKind.URL, optional=lambda a: bool(a.get("body"))),
    Step("videos", "article.videos", StepKind.VIDEOS, optional=True, max_items=5),
    Step(
        "author", "article.author", StepKind.TEXT, max_len=200, default=lambda ctx, a: previous(ctx, "author")
    ),
    Step(
        "contact",
        "article.contact",
        StepKind.TEXT,
        max_len=200,
        default=lambda ctx, a: previous(ctx, "contact"),
    ),
)


def theme_text(ctx: Context, answers: Answers) -> str:
    """The theme as words, whatever way it was chosen."""
    value = str(answers.get("theme") or "")
    if value.startswith("other:"):
        return value.removeprefix("other:")
    option = next((o for o in theme_options(ctx, answers) if o.value == value), None)
    return option.shown(ctx) if option else value


async def submit(ctx: Context, draft: Draft) -> list[Reply]:
    """Send the article: a new submission (on time or late), or a new version of one being edited."""
    period = Period.parse(str(draft.answers.get("period"))) or calendar(ctx).current()
    answers = {
        **draft.answers,
        "theme_text": theme_text(ctx, draft.answers),
        "period_text": ctx.t("article.period_label", period=period.label),
    }
    due = calendar(ctx).deadline(period)
    saved = submissions.save(ctx, draft, kind=KIND, answers=answers, period=period.key, due=due)
    if saved.refused:
        return [Reply(ctx.t("submission.edit_refused"))]
    if saved.repeated:
        return [Reply(ctx.t("form.already_sent", title=ctx.t(ARTICLE_FORM.title)))]
    status = ((Choice(ctx.t("menu.mystatus"), "m:mystatus"),),)
    assert saved.row is not None
    if saved.resubmitted:
        return [Reply(ctx.t("article.resubmitted", period=period.label, version=saved.row.version), status)]
    key = "article.sent_late" if saved.row.late else "article.sent"
    return [Reply(ctx.t(key, period=period.label, due=due.strftime("%d/%m/%Y")), status)]


ARTICLE_FORM = Form(
    name=KIND,
    title="article.title_form",
    roles=frozenset({"principal"}),
    submit=submit,
    steps=ARTICLE_STEPS,
)


async def start_article(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """/article: offer to reuse last month's fixed parts when there is a previous article."""
    assert ctx.user is not None and ctx.user.id is not None
    with ctx.db.session() as s:
        draft = q.get_draft(s, ctx.user.id, KIND)
        last = q.latest_submission(s, school_id(ctx), KIND)
    unfinished = draft is not None and draft.mode != DraftMode.SENT
    if last is None or unfinished:
        return await engine.start(KIND, ctx)
    return [
        Reply(
            ctx.t("article.start_how"),
            (
                (Choice(ctx.t("article.start_new"), "as:new"),),
                (Choice(ctx.t("article.start_copy"), "as:copy"),),
            ),
        )
    ]


async def start_choice(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """ "New" or "from last month's": the copy keeps theme, author and contact, never photos or facts."""
    if msg.choice.endswith(":copy"):
        with ctx.db.session() as s:
            last = q.latest_submission(s, school_id(ctx), KIND)
        if last is not None:
            prefill = {k: last.answers.get(k) for k in ("theme", "author", "contact") if last.answers.get(k)}
            replies = await engine.start(KIND, ctx, prefill=prefill)
            return [Reply(ctx.t("article.copied")), *replies]
    return await engine.start(KIND, ctx)
