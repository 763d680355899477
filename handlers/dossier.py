"""A submission as the officer reads it: the whole text, its facts, what changed since the return, its life.

The text is given whole; the channel cuts a long reply into messages at line breaks under its limit
(bot/channels/base.py `split_text`), and a body's paragraphs are lines of their own here, so an
article arrives in order and cut only between paragraphs (a paragraph longer than a message is cut at
a space). Files are named by their role and sent as attachments; their place on the server and their
platform references never appear in the text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.forms import Answers, Form, Step, StepKind, display
from handlers.forms.steps import MEDIA_KINDS
from handlers.profile import labels_of
from handlers.types import Context
from handlers.wordiff import Marks, word_diff
from storage.models import ReviewAction, Submission, SubmissionVersion

LONG = 120  # an answer longer than this (or of several lines) starts on a line of its own
FILES = MEDIA_KINDS | {StepKind.DOCUMENT}


def label(ctx: Context, step: Step) -> str:
    """A step's short name: "Tiêu đề", "Ảnh toàn cảnh"."""
    return ctx.t(step.prompt + "_short")


def shown(ctx: Context, step: Step, answers: Answers) -> str:
    """An answer whole, as the officer reads it; a choice made from the school's options by its label."""
    if step.choices is not None:
        return str(answers.get(f"{step.key}_text") or answers.get(step.key) or ctx.t("form.skipped"))
    return display(step, answers.get(step.key), ctx)


def links_of(value: Any) -> list[str]:
    """The links among a file step's items (videos on a shared drive)."""
    items = value if isinstance(value, list) else [value]
    return [str(i["link"]) for i in items if isinstance(i, dict) and i.get("link")]


def fact_lines(ctx: Context, form: Form, answers: Answers) -> list[str]:
    """Every answer in the form's order, whole: short ones on one line, long texts as paragraphs."""
    lines = []
    for step in form.steps:
        if not step.applies(answers) or step.key not in answers:
            continue
        text = shown(ctx, step, answers)
        if step.kind in FILES and answers.get("withheld") and answers.get(f"{step.key}_withheld"):
            text = ctx.t("consent.photos_withheld", count=answers[f"{step.key}_withheld"])
        if step.kind in MEDIA_KINDS:
            text = "\n".join([text, *links_of(answers.get(step.key))])
        if (
            step.kind in (StepKind.LONGTEXT, StepKind.APPEND, StepKind.FIGURES)
            or "\n" in text
            or len(text) > LONG
        ):
            lines.append(f"• {label(ctx, step)}:\n{text}")
        else:
            lines.append(f"• {label(ctx, step)}: {text}")
    return lines


# ---- what changed since the return -----------------------------------------------------------------


def marks(ctx: Context) -> Marks:
    """The diff's marks in the reader's language."""
    return Marks(
        removed=lambda words: ctx.t("vetting.diff.removed", words=words),
        added=lambda words: ctx.t("vetting.diff.added", words=words),
        cut=lambda count: ctx.t("vetting.diff.cut", count=count),
        more=lambda count: ctx.t("vetting.diff.more", count=count),
    )


def identity(item: Any) -> str:
    """What makes a file the same file: its content, else its stored record, else its link."""
    if not isinstance(item, dict):
        return str(item)
    return str(item.get("sha256") or item.get("media_id") or item.get("link") or "")


def replaced(ctx: Context, step: Step, old: Any, new: Any) -> str:
    """A file step whose files changed: its name, with the count when it changed ("Ảnh thêm (2 → 3)")."""
    before = [identity(i) for i in (old if isinstance(old, list) else [old]) if i]
    after = [identity(i) for i in (new if isinstance(new, list) else [new]) if i]
    if sorted(before) == sorted(after):
        return ""
    if step.kind in (StepKind.PHOTOS, StepKind.VIDEOS) and len(before) != len(after):
        return ctx.t("vetting.diff.count", field=label(ctx, step), before=len(before), after=len(after))
    return label(ctx, step)


def change_lines(ctx: Context, form: Form, returned: Answers, now: Answers) -> list[str]:
    """What changed since the returned version: each field's words, then the files replaced."""
    steps = [s for s in form.steps if returned.get(s.key) != now.get(s.key)]
    fields = ", ".join(label(ctx, s) for s in steps) or ctx.t("review.unchanged")
    lines = [ctx.t("review.changed", fields=fields)]
    files = []
    for step in steps:
        if step.kind in FILES:
            files.append(replaced(ctx, step, returned.get(step.key), now.get(step.key)))
            continue
        diff = word_diff(shown(ctx, step, returned), shown(ctx, step, now), marks(ctx))
        if diff.same:
            continue
        counts = ", ".join(
            ctx.t(f"vetting.diff.{key}_count", count=count)
            for key, count in (("removed", diff.removed), ("added", diff.added))
            if count
        )
        lines.append(ctx.t("vetting.diff.field", field=label(ctx, step), counts=counts, diff=diff.text))
    if any(files):
        lines.append(ctx.t("vetting.diff.files", fields=", ".join(f for f in files if f)))
    if len(lines) > 1:
        lines.append(ctx.t("vetting.diff.legend"))
    return lines


# ---- its life -------------------------------------------------------------------------------------


def when(ctx: Context, moment: datetime) -> str:
    """ "09:30 10/11/2026", in the office's time zone."""
    return moment.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m/%Y")


def history_lines(
    ctx: Context, row: Submission, versions: list[SubmissionVersion], actions: list[ReviewAction]
) -> list[str]:
    """Drafted, sent, returned, sent again, approved, published: each with who and when, in order.

    Ordered by version, then sending before what officers did to that version (the clock may give
    them the same minute).
    """
    ids = {row.user_id, *(v.user_id for v in versions), *(a.user_id for a in actions)}
    with ctx.db.session() as s:
        names = labels_of(s, ids, ctx.t)
    events: list[tuple[int, int, int, str]] = []
    sent = versions or [
        SubmissionVersion(submission_id=row.id or 0, version=1, created_at=row.submitted_at or row.created_at)
    ]
    for v in sent:
        name = names.get(v.user_id or row.user_id, "?")
        if v.version == 1 and v.drafted_at is not None:
            events.append(
                (1, 0, 0, ctx.t("vetting.history.drafted", name=name, when=when(ctx, v.drafted_at)))
            )
        key = "vetting.history.sent" if v.version == 1 else "vetting.history.resent"
        events.append(
            (v.version, 1, 0, ctx.t(key, name=name, when=when(ctx, v.created_at), version=v.version))
        )
    for a in actions:
        line = ctx.t(
            "consent.did" if a.action == "consent" else f"review.did.{a.action}",
            name=names.get(a.user_id, "?"),
            when=when(ctx, a.created_at),
            note=a.note,
        )
        events.append((a.version, 2, a.id or 0, line))
    status = ctx.t(f"status.review.{row.status}")
    return [ctx.t("vetting.history.title", status=status), *(line for *_, line in sorted(events))]
