"""Đề xuất điển hình: nominating exemplary people and collectives for the press and for commendation."""

from __future__ import annotations

from typing import Any

from handlers import submissions
from handlers.calendar import Calendar
from handlers.consent import Shield, publishable, shield
from handlers.forms import Option, Step, StepKind
from handlers.forms.steps import offering
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage.models import Draft, School, Submission

KIND = "nomination"
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
)
WHO, DEEDS, CONTACT = (f"nomination.steps.sec_{name}" for name in ("who", "deeds", "contact"))

NOMINATION_STEPS = (
    Step("nominee", "nomination.steps.nominee", StepKind.CHOICE, options=NOMINEES, section=WHO),
    Step("name", "nomination.name", StepKind.NAME, max_len=150, section=WHO),
    Step("deeds", "nomination.deeds", StepKind.LONGTEXT, section=DEEDS),
    Step("photos", "nomination.photos", StepKind.PHOTOS, optional=True, max_items=10, section=DEEDS),
    Step("link", "nomination.link", StepKind.URL, optional=True, section=DEEDS),
    offering("purpose", "nomination.purpose", "nomination.purposes", PURPOSES),
    Step("contact_name", "nomination.contact_name", StepKind.NAME, max_len=150, section=CONTACT),
    Step("contact_phone", "nomination.contact_phone", StepKind.PHONE, section=CONTACT),
)


def semester_now(ctx: Context) -> str:
    """The semester a nomination sent now counts in (semester II from schedule.semester_two_starts)."""
    return Calendar(ctx.clock, ctx.settings.schedule).semester()


async def submit(ctx: Context, draft: Draft) -> list[Reply]:
    """Store the nomination (counted in this semester), or a new version of one being edited."""
    answers = {**draft.answers, "publishable": publishable(draft.answers)}
    if answers.get("kind") == "collective":
        answers["role"] = "collective"
    saved = submissions.save(ctx, draft, kind=KIND, answers=answers, period=semester_now(ctx), due=None)
    if saved.refused:
        return [Reply(ctx.t("submission.edit_refused"))]
    if saved.repeated:
        return [Reply(ctx.t("form.already_sent", title=ctx.t(NOMINATION_FORM.title)))]
    key = "nomination.sent" if answers["publishable"] else "nomination.sent_no_consent"
    return [Reply(ctx.t(key, name=answers.get("name", "")))]


NOMINATION_FORM = submissions.submission_form(KIND, "nomination.title", NOMINATION_STEPS, submit)


def describe(ctx: Context, row: Submission, school: School, guard: Shield) -> str:
    """One nomination as an officer or leader sees it, honouring the consent rule."""
    view = guard.answers(row)
    role = (
        ctx.t(f"nomination.roles.{view.get('role')}")
        if view.get("role") in ROLES
        else ctx.t("nomination.kinds.collective")
    )
    line = ctx.t(
        "nomination.line",
        number=row.id,
        school=school.name,
        name=view.get("name", ""),
        role=role,
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
                    name=row.answers.get("name", ""),
                    status=ctx.t(f"status.review.{row.status}"),
                )
            )
            if row.status in q.EDITABLE:
                buttons.append((Choice(ctx.t("nomination.edit", number=row.id), f"se:{row.id}"),))
        else:
            lines.append(describe(ctx, row, school, guard))
    return [Reply("\n".join(lines), tuple(buttons))]


def counts(ctx: Context, school_id: int) -> dict[str, Any]:
    """This semester's and this school year's nominations of a school."""
    semester = semester_now(ctx)
    year = semester.rsplit("-", 1)[0]
    with ctx.db.session() as s:
        rows = q.submissions_of(s, school_id, KIND)
    return {
        "semester": sum(1 for r in rows if r.period == semester),
        "year": sum(1 for r in rows if (r.period or "").startswith(year)),
    }
