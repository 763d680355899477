"""Thẩm định: an officer opens a submission, approves it, returns it with a reason, or marks it published."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers import consent, dossier
from handlers.consent import OPEN, Shield, shield
from handlers.forms import Answers, Engine, Form, Step, StepKind, media_name
from handlers.forms.steps import offering
from handlers.incident import delivery
from handlers.months import period_name
from handlers.notify import NOTICE, tell
from handlers.profile import person_label
from handlers.types import Attachment, Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope
from storage.models import Draft, School, Submission, User

if TYPE_CHECKING:
    from sqlmodel import Session

REVIEWERS = frozenset({"officer", "admin"})
VIEWERS = frozenset({"officer", "leader", "admin"})
REASONS = ("facts", "photos", "accuracy", "length")
QUEUE_SHOWN = 20  # the oldest waiting items listed (and given a button) by /review
TARGET = "_target"
PUBLISHED_PREFIX = "pb"  # buttons of /published: "pb:<offset>" lists approved articles not yet published


def kind_title(ctx: Context, kind: str) -> str:
    """ "Bài viết tháng", "Đề xuất điển hình"..."""
    return ctx.t(f"review.kinds.{kind}")


def headline(ctx: Context, row: Submission, guard: Shield) -> str:
    """What the submission is about, in a few words, as the reader may see it (consent.py)."""
    answers = guard.answers(row)
    text = (
        answers.get("title") or answers.get("name") or period_name(ctx.t, ctx.settings.schedule, row.period)
    )
    return str(text)[:80]


def queue_entry(
    ctx: Context, key: str, row: Submission, school: School, guard: Shield, who: str = ""
) -> tuple[str, tuple[Choice]]:
    """A submission's line in an officer's list (`key`: the locale line; `who`: its sender, shown last) and
    the button that opens it."""
    what = headline(ctx, row, guard)
    line = ctx.t(key, number=row.id, kind=kind_title(ctx, row.kind), school=school.name, what=what)
    line = f"{line} · {who}" if who else line
    return line, (Choice(ctx.t("review.open", number=row.id), f"o:{row.id}"),)


def reviewable(ctx: Context, number: str) -> tuple[Submission, School] | None:
    """The submission with this id, if the user may see it."""
    if not number.isdigit() or ctx.user is None:
        return None
    with ctx.db.session() as s:
        row = s.get(Submission, int(number))
        if row is None or row.kind not in q.REVIEWED_KINDS:
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
        guard = shield(s, consent.schools_of(rows), ctx.user)
    if not rows:
        return [Reply(ctx.t("review.nothing"))]
    more = total > len(rows)
    lines = [ctx.t("review.queue_more" if more else "review.queue", count=total, shown=len(rows))]
    buttons = []
    for row in rows:
        school = schools[row.school_id]
        assert school is not None
        line, button = queue_entry(ctx, "review.line", row, school, guard)
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
    numbers: dict[str, int] = {}
    for step, item in wanted:
        row = rows.get(int(item["media_id"]))
        if row is None:
            continue
        numbers[step.key] = numbers.get(step.key, 0) + 1
        if step.kind == StepKind.DOCUMENT or (step.kind == StepKind.ATTACHMENT and row.kind != "photo"):
            kind = "document"
        else:
            kind = "video" if row.kind == "video" or row.mime_type.startswith("video/") else "photo"
        path = str(root / row.path) if row.path else ""
        found.append(
            Attachment(kind, media_name(step, numbers[step.key], ctx), row.file_id, row.channel, path)
        )
    return tuple(found)


async def open_submission(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """A submission whole: what changed since it was returned, every answer, its files; then its life and
    the actions, in a last message that the officer reads after the photos."""
    found = reviewable(ctx, msg.choice.partition(":")[2])
    if found is None:
        return [Reply(ctx.t("review.not_found"))]
    row, school = found
    form = engine.forms[row.kind]
    with ctx.db.session() as s:
        actions = q.review_actions(s, row.id or 0)
        versions = q.versions_of(s, row.id or 0)
        guard = shield(s, [row.school_id], ctx.user)
        sender = person_label(s.get(User, row.user_id), ctx.t)
    returned = next((a for a in reversed(actions) if a.action == "return"), None)
    answers = guard.answers(row)
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
    lines.append(ctx.t("people.sent_by", label=sender))
    if row.late:
        lines.append(ctx.t("review.late"))
    before = next((v.answers for v in versions if returned and v.version == returned.version), None)
    if returned is not None and row.version > returned.version and before is not None:
        old = guard.answers(row, before)
        lines += dossier.change_lines(ctx, form, old, answers)
    lines += dossier.fact_lines(ctx, form, answers)
    if answers.get("withheld"):
        lines.append(ctx.t("nomination.withheld"))
    files = (
        () if answers.get("withheld") else attachments(ctx, form, row.answers, Path(ctx.settings.media_dir))
    )
    life = dossier.history_lines(ctx, row, versions, actions)
    if ctx.user is None or ctx.user.role not in REVIEWERS:
        life.append(ctx.t("read_only.note"))  # a leader reads; no buttons, and the word why
    return [
        Reply("\n".join(lines), attachments=files),
        Reply("\n".join(life), action_buttons(ctx, row)),
    ]


def action_buttons(ctx: Context, row: Submission) -> tuple[tuple[Choice, ...], ...]:
    """Approve and return while it waits; publish once approved (officers only)."""
    if ctx.user is None or ctx.user.role not in REVIEWERS:
        return ()
    ref = f"{row.id}:{row.version}"
    if row.status == "submitted":
        return (
            (Choice(ctx.t("review.approve"), f"rv:a:{ref}"),),
            (Choice(ctx.t("review.return"), f"rv:r:{ref}"),),
            *consent_button(ctx, row),
        )
    if row.status == "approved" and row.kind in q.PUBLISHED_KINDS:
        return ((Choice(ctx.t("review.publish"), f"rv:p:{ref}"),),)
    return consent_button(ctx, row)


def consent_button(ctx: Context, row: Submission) -> tuple[tuple[Choice, ...], ...]:
    """ "Ghi nhận cha mẹ đã đồng ý" under a pupil's nomination sent without the parents' consent."""
    if row.kind != "nomination" or consent.publishable(row.answers):
        return ()
    return ((Choice(ctx.t("consent.record"), f"rv:c:{row.id}:{row.version}"),),)


def publish_button(ctx: Context, row: Submission) -> Choice:
    """ "🌐 Đã đăng #12": asks for the link of an approved article."""
    return Choice(ctx.t("vetting.publish_number", number=row.id), f"rv:p:{row.id}:{row.version}")


def next_buttons(ctx: Context, row: Submission) -> tuple[tuple[Choice, ...], ...]:
    """What an officer does next after a review: mark this article published (once approved), the
    approved articles not yet published, the items still waiting."""
    first = (publish_button(ctx, row),) if row.kind in q.PUBLISHED_KINDS and row.status == "approved" else ()
    return (
        *((first,) if first else ()),
        (Choice(ctx.t("vetting.to_publish"), f"{PUBLISHED_PREFIX}:0"),),
        (Choice(ctx.t("vetting.to_review"), "m:review"),),
    )


def already_published(ctx: Context, row: Submission) -> list[Reply]:
    """Marking published again: said so, with the link, who and when."""
    with ctx.db.session() as s:
        done = next((a for a in reversed(q.review_actions(s, row.id or 0)) if a.action == "publish"), None)
    link = done.note if done else ""
    again = (Choice(ctx.t("review.open", number=row.id), f"o:{row.id}"),)
    return [Reply(ctx.t("vetting.already_published", number=row.id, link=link), (again,))]


def parse_ref(data: str) -> tuple[str, str, int] | None:
    """ "rv:a:12:3" -> ("a", "12", 3)."""
    parts = data.split(":")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[1], parts[2], int(parts[3])


def tell_principals(s: Session, ctx: Context, row: Submission, action: str, key: str, **fields: Any) -> None:
    """The school's principals hear of a review at once (in the review's transaction), with a button
    to edit when returned."""
    for p in q.one_per_person(q.school_users(s, row.school_id), delivery(ctx)):
        t = ctx.t_for(p)
        buttons = ((Choice(t("review.edit_now"), f"se:{row.id}"),),) if key == "review.told_returned" else ()
        what = headline(ctx, row, OPEN)  # the school sees its own items whole
        reply = Reply(t(key, kind=t(f"review.kinds.{row.kind}"), what=what, **fields), buttons)
        tell(s, ctx, p, reply, kind=NOTICE, period=f"review:{row.id}", step=f"{action}:{row.version}")


async def act(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """The review buttons: approve at once; return and publish ask for the reason or the link first."""
    ref = parse_ref(msg.choice)
    found = reviewable(ctx, ref[1]) if ref else None
    if ref is None or found is None or ctx.user is None:
        return [Reply(ctx.t("review.not_found"))]
    action, _, version = ref
    row, _school = found
    if action == "p" and row.status == "published":
        return already_published(ctx, row)
    if action == "c" and (row.kind != "nomination" or consent.publishable(row.answers)):
        return [Reply(ctx.t("consent.already"))]
    if (
        (action != "c" and row.version != version)
        or (action in ("a", "r") and row.status != "submitted")
        or (action == "p" and row.status != "approved")
    ):
        return [Reply(ctx.t("review.already", status=ctx.t(f"status.review.{row.status}")))]
    if action == "a":
        return approve(ctx, row)
    if action == "c":
        return record_consent(ctx, row)
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
    row.status = "approved"
    return [Reply(ctx.t("review.approved", number=row.id), next_buttons(ctx, row))]


def record_consent(ctx: Context, row: Submission) -> list[Reply]:
    """The parents' consent arrived after sending: recorded with who and when; from then on the pupil's
    name and photos are shown and exported like anyone's. The school is told."""
    assert ctx.user is not None and ctx.user.id is not None
    with ctx.db.session() as s:
        done = q.record_consent(s, row.id or 0, ctx.user.id, ctx.clock.now(), consent.consented(row.answers))
        if done:
            tell_principals(s, ctx, row, "consent", "consent.told")
    if not done:
        return [Reply(ctx.t("consent.already"))]
    again = (Choice(ctx.t("review.open", number=row.id), f"o:{row.id}"),)
    return [Reply(ctx.t("consent.recorded", number=row.id, name=row.answers.get("name", "")), (again,))]


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
    """Đã đăng: the link on the office website is recorded and the school told; a link already given
    for another article is refused (pasted twice by mistake), with a button to give the right one."""
    link = str(draft.answers.get("link") or "")
    target = draft.answers.get(TARGET) or {}
    with ctx.db.session() as s:
        other = q.published_with(s, link)
    if other is not None and other.submission_id != target.get("id"):
        again = Choice(
            ctx.t("vetting.link_again", number=target.get("id")),
            f"rv:p:{target.get('id')}:{target.get('version')}",
        )
        taken = ctx.t("vetting.link_taken", other=other.submission_id, number=target.get("id"))
        return [Reply(taken, ((again,),))]
    return finish(ctx, draft, "publish", ("approved",), "published", link)


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
    if not done and action == "publish" and current_status(ctx, row) == "published":
        return already_published(ctx, row)
    if not done:
        return [Reply(ctx.t("review.already_someone"))]
    if action == "return":
        following = (Choice(ctx.t("vetting.to_review"), "m:review"),)
        return [Reply(ctx.t("review.returned", number=row.id), (following,))]
    seen = (Choice(ctx.t("review.open", number=row.id), f"o:{row.id}"),)
    waiting = (Choice(ctx.t("vetting.to_publish"), f"{PUBLISHED_PREFIX}:0"),)
    return [Reply(ctx.t("review.published", number=row.id), (seen, waiting))]


def current_status(ctx: Context, row: Submission) -> str:
    """The submission's status as stored now."""
    with ctx.db.session() as s:
        fresh = s.get(Submission, row.id)
    return fresh.status if fresh else ""


RETURN_FORM = Form(
    name="return",
    title="review.return_title",
    roles=REVIEWERS,
    submit=submit_return,
    steps=(offering("reason", "review.reason", "review.reasons", REASONS, other=True, max_len=500),),
)

PUBLISH_FORM = Form(
    name="publish",
    title="review.publish_title",
    roles=REVIEWERS,
    submit=submit_publish,
    steps=(Step("link", "review.link", StepKind.URL),),
)
