"""Bài viết tháng: the principal's monthly article, with the photo and video rules checked in the chat."""

from __future__ import annotations

from typing import Any

from handlers import submissions
from handlers.calendar import Calendar, Period
from handlers.forms import Answers, Engine, Form, Option, Step, StepKind, display
from handlers.profile import national
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
    """A fixed part of the school's previous article (author, contact, theme)."""
    with ctx.db.session() as s:
        last = q.latest_submission(s, school_id(ctx), KIND)
    return last.answers.get(field) if last else None


def known_author(ctx: Context, answers: Answers) -> str | None:
    """Who writes: the previous article's author, else the writer's full name (else the platform name)."""
    found = previous(ctx, "author")
    if found:
        return str(found)
    user = ctx.user
    return (user.full_name.strip() or user.display_name.strip() or None) if user is not None else None


def known_contact(ctx: Context, answers: Answers) -> str | None:
    """How to reach the writer: as the previous article gave it, else the phone of their profile."""
    found = previous(ctx, "contact")
    if found:
        return str(found)
    return national(ctx.user.phone) if ctx.user is not None and ctx.user.phone else None


def has_link(answers: Answers) -> bool:
    """The text may be left out when the article is a link to where it is already published."""
    return bool(answers.get("link"))


def has_body(answers: Answers) -> bool:
    """The link may be left out when the text was written here."""
    return bool(answers.get("body"))


def previous_theme(ctx: Context, answers: Answers) -> str | None:
    """The previous article's theme, offered again: as chosen when this month offers it, else as its words."""
    with ctx.db.session() as s:
        last = q.latest_submission(s, school_id(ctx), KIND)
    if last is None or not last.answers.get("theme"):
        return None
    theme = str(last.answers["theme"])
    if theme.startswith("other:") or any(o.value == theme for o in theme_options(ctx, answers)):
        return theme
    words = str(last.answers.get("theme_text") or "")
    return f"other:{words}" if words else None


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


def photo_when_where(ctx: Context, answers: Answers) -> dict[str, str | None]:
    """The photos' date and place, offered for the when-and-where step."""
    return {"when": photo_date(ctx, answers), "where": photo_place(ctx, answers)}


TOPIC, PHOTOS, FACTS, TEXT, WRITER = (
    f"article.steps.sec_{name}" for name in ("topic", "photos", "facts", "text", "writer")
)
# Asked in turn: theme, title, the three photos, when and where (the photos' EXIF offered), what and
# who, how, the text (or its link), last: a long text's later parts arrive on the review screen and
# join it. Extra photos, videos and the link are offered on the review screen; the author and the
# contact are known (previous article, profile) and asked only when the bot has never had them.
ARTICLE_STEPS = (
    Step(
        "period",
        "article.period",
        StepKind.CHOICE,
        ask=False,
        default=default_period,
        choices=period_options,
        section=TOPIC,
    ),
    Step(
        "theme",
        "article.theme",
        StepKind.CHOICE,
        choices=theme_options,
        other=True,
        max_len=300,
        default=previous_theme,
        section=TOPIC,
    ),
    Step("title", "article.title", StepKind.TEXT, max_len=200, section=TOPIC),
    Step("photo_wide", "article.photo_wide", StepKind.PHOTO, section=PHOTOS),
    Step("photo_speaker", "article.photo_speaker", StepKind.PHOTO, section=PHOTOS),
    Step("photo_closeup", "article.photo_closeup", StepKind.PHOTO, section=PHOTOS),
    Step(
        "photos_extra",
        "article.photos_extra",
        StepKind.PHOTOS,
        optional=True,
        max_items=10,
        ask=False,
        section=PHOTOS,
    ),
    Step("videos", "article.videos", StepKind.VIDEOS, optional=True, max_items=5, ask=False, section=PHOTOS),
    Step(
        "when",
        "article.steps.when_where",
        StepKind.WHEN_WHERE,
        past_only=True,
        max_age_days=366,
        max_len=300,
        also=("where",),
        default=photo_when_where,
        section=FACTS,
    ),
    Step("where", "article.where", StepKind.TEXT, max_len=300, ask=False, section=FACTS),
    Step("what", "article.steps.what_who", StepKind.TEXT, max_len=800, section=FACTS),
    Step("how", "article.how", StepKind.TEXT, max_len=500, section=FACTS),
    Step("author", "article.author", StepKind.TEXT, max_len=200, known=known_author, section=WRITER),
    Step("contact", "article.contact", StepKind.TEXT, max_len=200, known=known_contact, section=WRITER),
    Step("body", "article.steps.body", StepKind.APPEND, optional=has_link, link_key="link", section=TEXT),
    Step("link", "article.link", StepKind.URL, optional=has_body, ask=False, section=TEXT),
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


BODY_PREVIEW = 1200  # characters of the text shown on the review screen


def preview(ctx: Context, answers: Answers) -> str:
    """The article as it will read: title, topic, when and where, what happened, the text, the
    photos, who wrote it; each part changed under its section's edit button."""

    def part(key: str) -> str:
        step = ARTICLE_FORM.step(key)
        assert step is not None
        return display(step, answers.get(key), ctx, short=True)

    def labelled(*keys: str) -> str:
        return " · ".join(
            f"{ctx.t(step.prompt + '_short')}: {part(step.key)}"
            for step in (ARTICLE_FORM.step(k) for k in keys)
            if step is not None
        )

    title = str(answers.get("title") or ctx.t("form.skipped"))
    place = ", ".join(
        x for x in (part("when") if answers.get("when") else "", str(answers.get("where") or "")) if x
    )
    facts = "\n".join(str(answers[k]) for k in ("what", "who", "how") if answers.get(k))
    body = str(answers.get("body") or "")
    if len(body) > BODY_PREVIEW:
        body = ctx.t("form.preview", start=body[:BODY_PREVIEW].rstrip(), chars=len(body))
    blocks = [
        f"📰 {title.upper()}\n{labelled('theme')}\n{labelled('period')}",
        "\n".join(x for x in (place, facts) if x),
        "\n".join(x for x in (body, labelled("link") if answers.get("link") else "") if x),
        f"{labelled('photo_wide', 'photo_speaker', 'photo_closeup')}\n{labelled('photos_extra', 'videos')}",
        labelled("author", "contact"),
    ]
    return "\n\n".join(b for b in blocks if b)


ARTICLE_FORM = Form(
    name=KIND,
    title="article.title_form",
    roles=frozenset({"principal"}),
    submit=submit,
    steps=ARTICLE_STEPS,
    preview=preview,
)


async def start_article(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """/article: the form at once; what is known of the last article is offered or filled in."""
    return await engine.start(KIND, ctx)


async def start_choice(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """A "Bài mới" / "Dùng lại" button from before the form offered these itself: the copy keeps
    theme, author and contact (not asked again), never photos or facts."""
    if msg.choice.endswith(":copy"):
        with ctx.db.session() as s:
            last = q.latest_submission(s, school_id(ctx), KIND)
        if last is not None:
            kept = ("theme", "author", "contact")
            prefill = {k: last.answers.get(k) for k in kept if last.answers.get(k)}
            prefill["theme"] = previous_theme(ctx, {})
            replies = await engine.start(KIND, ctx, prefill=prefill, skip=kept)
            return [Reply(ctx.t("article.copied")), *replies]
    return await engine.start(KIND, ctx)
