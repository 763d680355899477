"""Đề xuất điển hình: nominating exemplary people and collectives for the press and for commendation."""

from __future__ import annotations

from typing import Any

from handlers import submissions
from handlers.calendar import Calendar
from handlers.consent import Shield, publishable, shield
from handlers.forms import Answers, Option, Step, StepKind
from handlers.forms.steps import offering
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage.models import Draft, School, Submission

KIND = "nomination"
MODEL = "model"  # a nomination of a model, activity or solution (issue #15 item 8)
ROLES = ("manager", "teacher", "staff", "student", "parent", "community")
PURPOSES = ("press", "commendation", "both")


def nominee(value: str, kind: str, role: str, consent: str | None = None) -> Option:
    """One answer to "who is nominated": it gives the nominee's kind, role and (a pupil's) consent."""
    sets = (("kind", kind), ("role", role), ("consent", consent))
    return Option(value, f"nomination.nominees.{value}", sets=sets)


# Who is nominated, in one choice: a pupil's consent is part of the answer, so the form has no
# branch and its progress mark counts the same steps for everyone.
NOMINEES = (
    *(nominee(role, "individual", role) for role in ("manager", "teacher", "staff")),
    nominee("student_yes", "individual", "student", "yes"),
    nominee("student_no", "individual", "student", "no"),
    *(nominee(role, "individual", role) for role in ("parent", "community")),
    nominee("collective", "collective", "collective"),
    Option(MODEL, "nomination.model.nominee", sets=(("kind", MODEL), ("role", MODEL), ("consent", None))),
)
WHO, DEEDS, CONTACT = (f"nomination.steps.sec_{name}" for name in ("who", "deeds", "contact"))
WHAT, RESULTS = "nomination.model.sec_model", "nomination.model.sec_results"


def is_model(answers: Answers) -> bool:
    """A model, activity or solution (mô hình, giải pháp, cách làm hay) rather than a person."""
    return answers.get("kind") == MODEL


def person(answers: Answers) -> bool:
    """A person or a collective: the steps a model does not have."""
    return not is_model(answers)


def school_name(ctx: Context, answers: Answers) -> str | None:
    """The unit that runs a model: the writer's school, unless changed on the review screen."""
    if ctx.user is None or ctx.user.school_id is None:
        return None
    with ctx.db.session() as s:
        school = s.get(School, ctx.user.school_id)
    return school.name if school else None


NOMINATION_STEPS = (
    Step("nominee", "nomination.steps.nominee", StepKind.CHOICE, options=NOMINEES, section=WHO),
    Step("name", "nomination.name", StepKind.NAME, max_len=150, section=WHO, when=person),
    # A model has as many steps asked as a person (its unit is known; a document is added from the
    # review screen), so the progress mark does not change when "Mô hình" is chosen.
    Step("title", "nomination.model.title", StepKind.TEXT, max_len=200, section=WHAT, when=is_model),
    Step(
        "unit",
        "nomination.model.unit",
        StepKind.TEXT,
        max_len=200,
        section=WHAT,
        when=is_model,
        known=school_name,
    ),
    Step("deeds", "nomination.deeds", StepKind.LONGTEXT, section=DEEDS, when=person),
    Step("change", "nomination.model.change", StepKind.LONGTEXT, section=RESULTS, when=is_model),
    Step("results", "nomination.model.results", StepKind.FIGURES, section=RESULTS, when=is_model),
    Step("since", "nomination.model.since", StepKind.TEXT, max_len=100, section=RESULTS, when=is_model),
    Step("photos", "nomination.photos", StepKind.PHOTOS, optional=True, max_items=10, section=DEEDS),
    Step(
        "document",
        "nomination.model.document",
        StepKind.DOCUMENT,
        optional=True,
        ask=False,
        section=DEEDS,
        when=is_model,
    ),
    Step("link", "nomination.link", StepKind.URL, optional=True, section=DEEDS, when=person),
    offering("purpose", "nomination.purpose", "nomination.purposes", PURPOSES, when=person),
    Step("contact_name", "nomination.contact_name", StepKind.NAME, max_len=150, section=CONTACT),
    Step("contact_phone", "nomination.contact_phone", StepKind.PHONE, section=CONTACT),
)


def semester_now(ctx: Context) -> str:
    """The semester a nomination sent now counts in (semester II from schedule.semester_two_starts)."""
    return Calendar(ctx.clock, ctx.settings.schedule).semester()


async def submit(ctx: Context, draft: Draft) -> list[Reply]:
    """Store the nomination (counted in this semester), or a new version of one being edited."""
    answers = {**draft.answers, "publishable": publishable(draft.answers)}
    if answers.get("kind") in ("collective", MODEL):
        answers["role"] = answers["kind"]
    saved = submissions.save(ctx, draft, kind=KIND, answers=answers, period=semester_now(ctx), due=None)
    if saved.refused:
        return [Reply(ctx.t("submission.edit_refused"))]
    if saved.repeated:
        return [Reply(ctx.t("form.already_sent", title=ctx.t(NOMINATION_FORM.title)))]
    if is_model(answers):
        return [Reply(ctx.t("nomination.model.sent", title=answers.get("title", "")))]
    key = "nomination.sent" if answers["publishable"] else "nomination.sent_no_consent"
    return [Reply(ctx.t(key, name=answers.get("name", "")))]


NOMINATION_FORM = submissions.submission_form(KIND, "nomination.title", NOMINATION_STEPS, submit)


def describe(ctx: Context, row: Submission, school: School, guard: Shield) -> str:
    """One nomination as an officer or leader sees it, honouring the consent rule."""
    view = guard.answers(row)
    if is_model(view):
        return ctx.t(
            "nomination.model.line",
            number=row.id,
            school=school.name,
            title=view.get("title", ""),
            results=str(view.get("results", ""))[:120],
            status=ctx.t(f"status.review.{row.status}"),
        )
    line = ctx.t(
        "nomination.line",
        number=row.id,
        school=school.name,
        name=view.get("name", ""),
        role=role_label(ctx.t, view),
        purpose=ctx.t(f"nomination.purposes.{view.get('purpose')}"),
        status=ctx.t(f"status.review.{row.status}"),
    )
    if view.get("withheld"):
        line += "\n  " + ctx.t("nomination.withheld")
    elif view.get("photos"):
        line += "\n  " + ctx.t("media.photos", count=len(view["photos"]))
    return line


async def list_nominations(msg: Incoming, ctx: Context) -> list[Reply]:
    """/nominations: a principal sees the school's (with edit buttons); staff see their scope's."""
    user = ctx.user
    assert user is not None
    with ctx.db.session() as s:
        rows = q.nominations_in_scope(s, user, limit=15)
        guard = shield(s, sorted({row.school_id for row, _ in rows}), user)
    if not rows:
        return [Reply(ctx.t("nomination.none"))]
    lines = [ctx.t("nomination.list")]
    buttons: list[tuple[Choice, ...]] = []
    for row, school in rows:
        if user.role == "principal":
            lines.append(
                ctx.t(
                    "nomination.own_line",
                    number=row.id,
                    name=nominee_name(row.answers),
                    status=ctx.t(f"status.review.{row.status}"),
                )
            )
            if row.status in q.EDITABLE:
                buttons.append((Choice(ctx.t("nomination.edit", number=row.id), f"se:{row.id}"),))
        else:
            lines.append(describe(ctx, row, school, guard))
    return [Reply("\n".join(lines), tuple(buttons))]


def nominee_name(answers: Answers) -> str:
    """Who or what is nominated: a person's or collective's name, a model's title."""
    return str(answers.get("title" if is_model(answers) else "name") or "")


def role_label(t: Any, answers: Answers) -> str:
    """ "Giáo viên", "Tập thể", "Mô hình, giải pháp"."""
    role = answers.get("role")
    if role in ROLES:
        return str(t(f"nomination.roles.{role}"))
    return str(t("nomination.model.kind" if is_model(answers) else "nomination.kinds.collective"))


def counts(ctx: Context, school_id: int) -> dict[str, Any]:
    """This semester's and this school year's nominations of a school: people and models apart."""
    semester = semester_now(ctx)
    year = semester.rsplit("-", 1)[0]
    with ctx.db.session() as s:
        rows = q.submissions_of(s, school_id, KIND)
    people = [r for r in rows if not is_model(r.answers)]
    models = [r for r in rows if is_model(r.answers)]
    return {
        "semester": sum(1 for r in people if r.period == semester),
        "year": sum(1 for r in people if (r.period or "").startswith(year)),
        "models_semester": sum(1 for r in models if r.period == semester),
        "models_year": sum(1 for r in models if (r.period or "").startswith(year)),
    }
