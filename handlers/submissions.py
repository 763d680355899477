"""What every kind of submission shares: saving once (or as a new version), and editing until reviewed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from handlers.forms import Answers, DraftMode, Engine, Form, Step
from handlers.forms.engine import SubmitHook
from handlers.types import Context, Incoming, Reply
from storage import queries as q
from storage.models import Draft, Submission

EDIT_KEY = "_edit_of"  # a draft made from a sent submission carries its id and version
DERIVED = ("theme_text", "period_text", "which_text")  # answers computed at sending, not typed
DRAFT_ONLY = ("_msgs", "_write")  # the draft's own bookkeeping (which message answered what): not sent
SENDERS = frozenset({"principal"})  # who sends a school's submissions


def submission_form(
    kind: str,
    title: str,
    steps: tuple[Step, ...],
    submit: SubmitHook,
    prepare: Callable[[Context, Answers], Answers] | None = None,
) -> Form:
    """The form a school's principal fills to send a submission of `kind` (article, nomination, report).

    It is named by the kind: that is how `edit` finds it again for a sent submission.
    """
    return Form(name=kind, title=title, steps=steps, roles=SENDERS, submit=submit, prepare=prepare)


@dataclass(frozen=True)
class Saved:
    """What sending did: a new row, a new version of an edited one, a repeat, or a refusal."""

    row: Submission | None
    created: bool = False
    resubmitted: bool = False
    repeated: bool = False

    @property
    def refused(self) -> bool:
        """The edited submission was reviewed (or changed) meanwhile."""
        return self.row is None


def save(
    ctx: Context, draft: Draft, *, kind: str, answers: Answers, period: str | None, due: datetime | None
) -> Saved:
    """Store a draft's answers once: a new submission (late after `due`), or a new version."""
    user = ctx.user
    assert user is not None and user.id is not None and user.school_id is not None
    now = ctx.clock.now()
    answers = {k: v for k, v in answers.items() if k not in DRAFT_ONLY}
    edit_of = answers.pop(EDIT_KEY, None)
    with ctx.db.session() as s:
        if edit_of:
            row = q.resubmit(
                s, int(edit_of["id"]), int(edit_of["version"]), answers, now, user.id, draft.created_at
            )
            return Saved(row, resubmitted=row is not None)
        row, created = q.create_submission(
            s,
            kind=kind,
            school_id=user.school_id,
            user_id=user.id,
            token=draft.token,
            answers=answers,
            status="submitted",
            now=now,
            period=period,
        )
        if not created:
            return Saved(row, repeated=True)
        row.late = due is not None and now > due
        row.submitted_at = now
        s.add(row)
        s.flush()
        q.add_version(s, row, now, user.id, draft.created_at)
    return Saved(row, created=True)


async def edit(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """The "Sửa" button on a sent submission: its answers come back as a draft on the review screen."""
    number = msg.choice.partition(":")[2]
    with ctx.db.session() as s:
        row = s.get(Submission, int(number)) if number.isdigit() else None
    form = engine.forms.get(row.kind) if row is not None else None
    if row is None or form is None or ctx.user is None or row.school_id != ctx.user.school_id:
        return [Reply(ctx.t("submission.not_found"))]
    if row.status not in q.EDITABLE:
        return [Reply(ctx.t("submission.edit_refused"))]
    return [reopen(engine, form, row, ctx)]


def reopen(engine: Engine, form: Form, row: Submission, ctx: Context) -> Reply:
    """A draft holding a sent submission's answers, shown as its review screen."""
    answers = {k: v for k, v in row.answers.items() if k not in DERIVED}
    answers[EDIT_KEY] = {"id": row.id, "version": row.version}
    draft = engine.fresh(form, ctx, answers)
    with ctx.db.session() as s:
        draft = q.save_draft(
            s, draft, step=draft.step, mode=DraftMode.REVIEW, answers=draft.answers, now=ctx.clock.now()
        )
    title = ctx.t(form.title)
    if row.review_note:
        note = ctx.t("submission.editing", title=title, reason=row.review_note)
    else:
        note = ctx.t("submission.editing_plain", title=title)
    return engine.screen(form, draft, ctx, note=note)
