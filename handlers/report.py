"""Báo cáo định kỳ: the six-month and yearly reports on communications work, figures pre-filled."""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime

from handlers import submissions
from handlers.forms import Answers, Engine, Option, Step, StepKind
from handlers.months import days_phrase, days_to
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.models import Draft

KIND = "report"
LATE_WINDOW_DAYS = 180  # a missed deadline is still offered (as late) for this long
OPEN_DAYS = 60  # a report can be sent from this many days before its deadline
# The figures the bot counts itself; the school can correct each one on the review screen.
FIGURES = (
    "articles_sent",
    "articles_on_time",
    "articles_approved",
    "articles_published",
    "nominations_press",
    "nominations_commendation",
    "incidents",
)


@dataclass(frozen=True)
class Occurrence:
    """One deadline of one configured report: "nam-2026" is the yearly report due 1 Dec 2026."""

    key: str
    name: str
    due: datetime
    previous: datetime
    late: bool
    done: bool


def due_in(ctx: Context, due: str, year: int) -> datetime:
    """A configured "MM-DD" deadline in a year, at 23:59:59 local time."""
    month, day = (int(x) for x in due.split("-"))
    return datetime(year, month, min(day, monthrange(year, month)[1]), 23, 59, 59, tzinfo=ctx.clock.tz)


def open_occurrences(ctx: Context) -> list[Occurrence]:
    """The reports that can be sent now: those owed (late) and those due within OPEN_DAYS."""
    now = ctx.clock.now()
    return [o for o in occurrences(ctx) if o.late or (o.due - now).days <= OPEN_DAYS]


def occurrences(ctx: Context) -> list[Occurrence]:
    """For each configured report: the one still owed (a recent missed one, late), else the next."""
    if ctx.user is None or ctx.user.school_id is None:
        return []  # reports belong to schools
    now = ctx.clock.now()
    with ctx.db.session() as s:
        done = q.fulfilled_periods(s, ctx.user.school_id, KIND)
        joined = stats.school_registered(s, ctx.user.school_id)
    found = []
    for item in ctx.settings.schedule.periodic:
        this_year = due_in(ctx, item.due, now.year)
        past = this_year if this_year <= now else due_in(ctx, item.due, now.year - 1)
        upcoming = due_in(ctx, item.due, past.year + 1)
        # A deadline that passed before the school joined the bot is not owed to it.
        owed = (
            f"{item.key}-{past.year}" not in done
            and (now - past).days <= LATE_WINDOW_DAYS
            and joined is not None
            and joined <= past
        )
        due = past if owed else upcoming
        key = f"{item.key}-{due.year}"
        previous = due_in(ctx, item.due, due.year - 1)
        found.append(Occurrence(key, item.name, due, previous, late=owed, done=key in done))
    return sorted(found, key=lambda o: o.due)


def occurrence(ctx: Context, key: str) -> Occurrence | None:
    """The open occurrence with this key."""
    return next((o for o in open_occurrences(ctx) if o.key == key), None)


def which_options(ctx: Context, answers: Answers) -> tuple[Option, ...]:
    """The reports the school can send now, each with its deadline and state."""
    options = []
    for o in open_occurrences(ctx):
        state = (
            ctx.t("report.state.done")
            if o.done
            else ctx.t("report.state.late")
            if o.late
            else ctx.t("report.state.open")
        )
        options.append(
            Option(
                o.key, text=ctx.t("report.option", name=o.name, due=o.due.strftime("%d/%m/%Y"), state=state)
            )
        )
    return tuple(options)


def next_due(ctx: Context, answers: Answers) -> str | None:
    """The report due next (not late, not sent): the suggested choice."""
    return next((o.key for o in open_occurrences(ctx) if not o.late and not o.done), None)


def figures(ctx: Context, o: Occurrence) -> dict[str, int]:
    """What the bot saw of the school between the previous deadline of this kind and this one."""
    assert ctx.user is not None and ctx.user.school_id is not None
    with ctx.db.session() as s:
        rows = q.submissions_between(s, ctx.user.school_id, o.previous, o.due)
    articles = [r for r in rows if r.kind == "article"]
    nominations = [r for r in rows if r.kind == "nomination"]
    return {
        "articles_sent": len(articles),
        "articles_on_time": sum(1 for r in articles if not r.late),
        "articles_approved": sum(1 for r in articles if r.status in ("approved", "published")),
        "articles_published": sum(1 for r in articles if r.status == "published"),
        "nominations_press": sum(1 for r in nominations if r.answers.get("purpose") in ("press", "both")),
        "nominations_commendation": sum(
            1 for r in nominations if r.answers.get("purpose") in ("commendation", "both")
        ),
        "incidents": sum(1 for r in rows if r.kind == "incident"),
    }


def prepare(ctx: Context, answers: Answers) -> Answers:
    """Fill the figures for the chosen report (again only if the choice changed: edits are kept)."""
    which = answers.get("which")
    if not which or answers.get("_figures_for") == which:
        return answers
    o = occurrence(ctx, str(which))
    if o is None:
        return answers
    return {**answers, **figures(ctx, o), "_figures_for": which}


FIGURES_SECTION, WORDS_SECTION = "report.steps.sec_figures", "report.steps.sec_words"
REPORT_STEPS = (
    Step("which", "report.which", StepKind.CHOICE, choices=which_options, default=next_due),
    *(Step(key, f"report.fig.{key}", StepKind.NUMBER, ask=False, section=FIGURES_SECTION) for key in FIGURES),
    Step("press_coverage", "report.press_coverage", StepKind.NUMBER, optional=True, section=FIGURES_SECTION),
    Step("highlights", "report.highlights", StepKind.LONGTEXT, section=WORDS_SECTION),
    Step("difficulties", "report.difficulties", StepKind.LONGTEXT, optional=True, section=WORDS_SECTION),
    Step("document", "report.document", StepKind.DOCUMENT, optional=True),
)


async def submit(ctx: Context, draft: Draft) -> list[Reply]:
    """Store the report: one per school per deadline, late after the deadline."""
    answers = prepare(ctx, draft.answers)
    o = occurrence(ctx, str(answers.get("which")))
    editing = submissions.EDIT_KEY in answers
    if o is None:
        return [Reply(ctx.t("report.unknown_deadline"))]
    if o.done and not editing:
        return [already_in(ctx, o)]
    answers = {
        **answers,
        "which_text": ctx.t("report.option_sent", name=o.name, due=o.due.strftime("%d/%m/%Y")),
    }
    saved = submissions.save(ctx, draft, kind=KIND, answers=answers, period=o.key, due=o.due)
    if saved.refused:
        return [Reply(ctx.t("submission.edit_refused"))]
    if saved.repeated:
        return [Reply(ctx.t("form.already_sent", title=ctx.t(REPORT_FORM.title)))]
    assert saved.row is not None
    key = "report.sent_late" if saved.row.late else "report.sent"
    return [Reply(ctx.t(key, name=o.name, due=o.due.strftime("%d/%m/%Y")))]


def already_in(ctx: Context, o: Occurrence) -> Reply:
    """ "This report is in already" with a button to edit it (until it is reviewed)."""
    assert ctx.user is not None and ctx.user.school_id is not None
    with ctx.db.session() as s:
        rows = q.submissions_of(s, ctx.user.school_id, KIND, [o.key])
    buttons = tuple((Choice(ctx.t("report.edit"), f"se:{r.id}"),) for r in rows[:1] if r.status in q.EDITABLE)
    return Reply(ctx.t("report.already_in", name=o.name, due=o.due.strftime("%d/%m/%Y")), buttons)


REPORT_FORM = submissions.submission_form(KIND, "report.title", REPORT_STEPS, submit, prepare)


async def start_report(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """/report: the form, unless every configured report is already in."""
    if all(o.done for o in open_occurrences(ctx)):
        return [Reply(ctx.t("report.all_in"))]
    return await engine.start(KIND, ctx)


def status_lines(ctx: Context) -> list[str]:
    """For /mystatus: a report still owed after its deadline, and the next deadline with its state."""
    lines = []
    found = occurrences(ctx)  # two reads of the database: once for both uses
    for o in found:
        if o.late:
            lines.append(ctx.t("report.owed", name=o.name, due=o.due.strftime("%d/%m/%Y")))
    upcoming = [o for o in found if not o.late]
    if upcoming:
        o = upcoming[0]
        left = days_phrase(ctx.t, days_to(o.due, ctx.clock.now()))
        state = ctx.t("report.state.done") if o.done else ctx.t("report.state.open")
        lines.append(
            ctx.t("report.status", name=o.name, due=o.due.strftime("%d/%m/%Y"), left=left, state=state)
        )
    return lines
