"""Thẩm định: an officer opens a submission, approves it, returns it with a reason, or marks it published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handlers.forms import Answers, Engine, Form, Step, StepKind, display, options_from
from handlers.incident import delivery
from handlers.nomination import public_view
from handlers.notify import NOTICE, tell
from handlers.types import Attachment, Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope
from storage.models import Draft, School, Submission, User

REVIEWERS = frozenset({"officer", "admin"})
VIEWERS = frozenset({"officer", "leader", "admin"})
REASONS = ("facts", "photos", "accuracy", "length")
QUEUE_SHOWN = 20  # the oldest waiting items listed (and given a button) by /review
TARGET = "_target"


def kind_title(ctx: Context, kind: str) -> str:
    """ "Bài viết tháng", "Đề xuất điển hình"..."""
    return ctx.t(f"review.kinds.{kind}")


def headline(ctx: Context, row: Submission) -> str:
    """What the submission is about, in a few words (a nominee without consent by initials)."""
    answers = public_view(row.answers) if row.kind == "nomination" else row.answers
    text = answers.get("title") or answers.get("name") or row.period or ""
    return str(text)[:80]


def queue_entry(ctx: Context, key: str, row: Submission, school: School) -> tuple[str, tuple[Choice]]:
    """A submission's line in an officer's list (`key`: the locale line) and the button that opens it."""
    line = ctx.t(
        key, number=row.id, kind=kind_title(ctx, row.kind), school=school.name, what=headline(ctx, row)
    )
    return line, (Choice(ctx.t("review.open", number=row.id), f"o:{row.id}"),)


def reviewable(ctx: Context, number: str) -> tuple[Submission, School] | None:
    """The submission with this id, if the user may see it."""
    if not number.isdigit() or ctx.user is None:
        return None
    with ctx.db.session() as s:
        row = s.get(Submission, int(number))
        if row is None or row.kind not in ("article", "nomination", "report"):
            return None
        if not scope.sees(s, ctx.user, row.school_id):
            return None
        school = s.get(School, row.school_id)
    return (row, school) if school else None


async def queue(msg: Incoming, ctx: Context) -> list[Reply]:
    """/review: what is waiting in the user's scope, oldest first, each with a button to open it."""
    assert ctx.user is not None
    with ctx.db.session() as s:
        rows, total = q.awaiting_review(s, scope.ids_seen_by(ctx.user), limit=QUEUE_SHOWN)
        schools = {row.school_id: s.get(School, row.school_id) for row in rows}
    if not rows:
        return [Reply(ctx.t("review.nothing"))]
    more = total > len(rows)
    lines = [ctx.t("review.queue_more" if more else "review.queue", count=total, shown=len(rows))]
    buttons = []
    for row in rows:
        school = schools[row.school_id]
        assert school is not None
        line, button = queue_entry(ctx, "review.line", row, school)
        lines.append(line)
        buttons.append(button)
    if more:
        lines.append(ctx.t("review.queue_rest", rest=total - len(rows)))
    return [Reply("\n".join(lines), tuple(buttons))]


def attachments(ctx: Context, form: Form, answers: Answers, root: Path) -> tuple[Attachment, ...]:
    """The files of a submission, each captioned with its role, from their stored records."""
    wanted: list[tuple[Step, dict[str, Any]]] = []
    for step in form.steps:
        value = answers.get(step.key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "media_id" in item:
                wanted.append((step, item))
    with ctx.db.session() as s:
        rows = {m.id: m for m in q.media_files(s, [int(item["media_id"]) for _, item in wanted])}
    found = []
    for step, item in wanted:
        row = rows.get(int(item["media_id"]))
        if row is None:
            continue
        if step.kind == StepKind.DOCUMENT:
            kind = "document"
        else:
            kind = "video" if row.kind == "video" or row.mime_type.startswith("video/") else "photo"
        path = str(root / row.path) if row.path else ""
        found.append(Attachment(kind, ctx.t(step.prompt + "_short"), row.file_id, row.channel, path))
    return tuple(found)


def changes(ctx: Context, form: Form, row: Submission, returned: Answers | None) -> str:
    """The answers changed since the version the officer returned."""
    if returned is None:
        return ""
    changed = [
        ctx.t(s.prompt + "_short") for s in form.steps if returned.get(s.key) != row.answers.get(s.key)
    ]
    return ctx.t("review.changed", fields=", ".join(changed) or ctx.t("review.unchanged"))


async def open_submission(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """A submission's fields in order, what changed since it was returned, its files, and the actions."""
    found = reviewable(ctx, msg.choice.partition(":")[2])
    if found is None:
        return [Reply(ctx.t("review.not_found"))]
    row, school = found
    form = engine.forms[row.kind]
    with ctx.db.session() as s:
        actions = q.review_actions(s, row.id or 0)
        versions = {v.version: v.answers for v in q.versions_of(s, row.id or 0)}
    returned = next((a for a in reversed(actions) if a.action == "return"), None)
    answers = public_view(row.answers) if row.kind == "nomination" else row.answers
    lines = [
        ctx.t(
            "review.header",
            number=row.id,
            kind=kind_title(ctx, row.kind),
            school=school.name,
            status=ctx.t(f"status.review.{row.status}"),
            version=row.version,
        )
    ]
    if row.late:
        lines.append(ctx.t("review.late"))
    if returned is not None and row.version > returned.version:
        lines.append(changes(ctx, form, row, versions.get(returned.version)))
    for step in form.steps:
        if step.applies(answers) and step.key in answers:
            lines.append(f"• {ctx.t(step.prompt + '_short')}: {shown(ctx, step, answers)}")
    if answers.get("withheld"):
        lines.append(ctx.t("nomination.withheld"))
    for action in actions:
        lines.append(history_line(ctx, action))
    files = (
        () if answers.get("withheld") else attachments(ctx, form, row.answers, Path(ctx.settings.media_dir))
    )
    return [Reply("\n".join(lines), action_buttons(ctx, row), attachments=files)]


def shown(ctx: Context, step: Step, answers: Answers) -> str:
    """An answer as the officer reads it; a choice made from the school's own options by its saved label."""
    if step.choices is not None:
        return str(answers.get(f"{step.key}_text") or answers.get(step.key) or ctx.t("form.skipped"))
    return display(step, answers.get(step.key), ctx, short=True)


def history_line(ctx: Context, action: Any) -> str:
    """ "Trả lại bởi Anh Minh lúc 09:30 10/11: <lý do>"."""
    with ctx.db.session() as s:
        who = s.get(User, action.user_id)
    when = action.created_at.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m")
    name = who.display_name if who else "?"
    return ctx.t(f"review.did.{action.action}", name=name, when=when, note=action.note)


def action_buttons(ctx: Context, row: Submission) -> tuple[tuple[Choice, ...], ...]:
    """Approve and return while it waits; publish once approved (officers only)."""
    if ctx.user is None or ctx.user.role not in REVIEWERS:
        return ()
    ref = f"{row.id}:{row.version}"
    if row.status == "submitted":
        return (
            (Choice(ctx.t("review.approve"), f"rv:a:{ref}"),),
            (Choice(ctx.t("review.return"), f"rv:r:{ref}"),),
        )
    if row.status == "approved" and row.kind == "article":
        return ((Choice(ctx.t("review.publish"), f"rv:p:{ref}"),),)
    return ()


def parse_ref(data: str) -> tuple[str, str, int] | None:
    """ "rv:a:12:3" -> ("a", "12", 3)."""
    parts = data.split(":")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[1], parts[2], int(parts[3])


def tell_principals(s: Any, ctx: Context, row: Submission, action: str, key: str, **fields: Any) -> None:
    """The school's principals hear of a review at once (in the review's transaction), with a button
    to edit when returned."""
    for p in q.one_per_person(q.school_users(s, row.school_id), delivery(ctx)):
        t = ctx.t_for(p)
        buttons = ((Choice(t("review.edit_now"), f"se:{row.id}"),),) if key == "review.told_returned" else ()
        reply = Reply(t(key, kind=t(f"review.kinds.{row.kind}"), what=headline(ctx, row), **fields), buttons)
        tell(s, ctx, p, reply, kind=NOTICE, period=f"review:{row.id}", step=f"{action}:{row.version}")


async def act(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """The review buttons: approve at once; return and publish ask for the reason or the link first."""
    ref = parse_ref(msg.choice)
    found = reviewable(ctx, ref[1]) if ref else None
    if ref is None or found is None or ctx.user is None:
        return [Reply(ctx.t("review.not_found"))]
    action, _, version = ref
    row, _school = found
    if (
        row.version != version
        or (action in ("a", "r") and row.status != "submitted")
        or (action == "p" and row.status != "approved")
    ):
        return [Reply(ctx.t("review.already", status=ctx.t(f"status.review.{row.status}")))]
    if action == "a":
        return approve(ctx, row)
    if action in ("r", "p"):
        form = RETURN_FORM if action == "r" else PUBLISH_FORM
        draft = engine.fresh(form, ctx, {TARGET: {"id": row.id, "version": row.version}})
        return [Reply(ctx.t(f"review.asking.{action}", number=row.id)), engine.screen(form, draft, ctx)]
    return [Reply(ctx.t("error.bad_button"))]


def approve(ctx: Context, row: Submission) -> list[Reply]:
    """Đã duyệt: recorded with who and when; the second officer to press it is told."""
    assert ctx.user is not None and ctx.user.id is not None
    with ctx.db.session() as s:
        done = q.review(
            s, row.id or 0, row.version, ctx.user.id, "approve", ctx.clock.now(), ("submitted",), "approved"
        )
        if done:
            tell_principals(s, ctx, row, "approve", "review.told_approved")
    if not done:
        return [Reply(ctx.t("review.already_someone"))]
    return [Reply(ctx.t("review.approved", number=row.id))]


def reason_text(ctx: Context, answers: Answers) -> str:
    """The reason as the school will read it."""
    value = str(answers.get("reason") or "")
    if value.startswith("other:"):
        return value.removeprefix("other:")
    return ctx.t(f"review.reasons.{value}") if value in REASONS else value


async def submit_return(ctx: Context, draft: Draft) -> list[Reply]:
    """Trả lại: the reason is required; the school is told at once and can edit."""
    return finish(ctx, draft, "return", ("submitted",), "returned", reason_text(ctx, draft.answers))


async def submit_publish(ctx: Context, draft: Draft) -> list[Reply]:
    """Đã đăng: the link on the office website is recorded and the school told."""
    return finish(ctx, draft, "publish", ("approved",), "published", str(draft.answers.get("link") or ""))


def finish(
    ctx: Context, draft: Draft, action: str, from_status: tuple[str, ...], to_status: str, note: str
) -> list[Reply]:
    """Apply a return or a publish if nobody else reviewed the submission meanwhile."""
    assert ctx.user is not None and ctx.user.id is not None
    target = draft.answers.get(TARGET) or {}
    found = reviewable(ctx, str(target.get("id", "")))
    if found is None:
        return [Reply(ctx.t("review.not_found"))]
    row, _ = found
    key = "review.told_returned" if action == "return" else "review.told_published"
    with ctx.db.session() as s:
        done = q.review(
            s,
            row.id or 0,
            int(target.get("version", -1)),
            ctx.user.id,
            action,
            ctx.clock.now(),
            from_status,
            to_status,
            note,
        )
        if done:
            tell_principals(s, ctx, row, action, key, note=note)
    if not done:
        return [Reply(ctx.t("review.already_someone"))]
    mine = ctx.t("review.returned" if action == "return" else "review.published", number=row.id)
    return [Reply(mine)]


RETURN_FORM = Form(
    name="return",
    title="review.return_title",
    roles=REVIEWERS,
    submit=submit_return,
    steps=(
        Step(
            "reason",
            "review.reason",
            StepKind.CHOICE,
            other=True,
            max_len=500,
            options=options_from("review.reasons", REASONS),
        ),
    ),
)

PUBLISH_FORM = Form(
    name="publish",
    title="review.publish_title",
    roles=REVIEWERS,
    submit=submit_publish,
    steps=(Step("link", "review.link", StepKind.URL),),
)
