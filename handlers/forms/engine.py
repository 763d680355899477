"""The form engine: one engine for every form, forms declared as data, drafts in the database.

Every form gets a progress mark, back, skip (optional steps), cancel, a review screen where any
answer can be changed, a draft saved after every step, resume, and a submit that happens once.
Buttons carry `f:<draft id>:<version>:<action>:<arg>`, so a button from an older screen is
recognised as stale and never changes the draft.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Any

from handlers.forms.kinds import KINDS
from handlers.forms.steps import COLLECTING, MEDIA_KINDS, Answers, Parsed, QuickDate, Step, StepKind
from handlers.types import Choice, Context, Incoming, Kind, Reply
from storage import queries as q
from storage.errors import StaleDraft
from storage.models import Draft, DraftMode

SubmitHook = Callable[[Context, Draft], Awaitable[list[Reply]]]
HomeScreen = Callable[[Context], Reply]

PREVIEW = 160  # characters of a long answer shown on the review screen
TYPED = frozenset(
    {
        StepKind.TEXT,
        StepKind.LONGTEXT,
        StepKind.URL,
        StepKind.APPEND,
        StepKind.VIDEOS,
        StepKind.NUMBER,
        StepKind.PHONE,
        StepKind.NAME,
    }
)


@dataclass(frozen=True)
class Form:
    """A form: a name, a title key, ordered steps, who may fill it and what sending does."""

    name: str
    title: str
    steps: tuple[Step, ...]
    roles: frozenset[str]
    submit: SubmitHook
    # Fills answers the form derives (a report's figures) before the review screen is shown.
    prepare: Callable[[Context, Answers], Answers] | None = None

    def step(self, key: str) -> Step | None:
        """The step named `key`."""
        return next((s for s in self.steps if s.key == key), None)

    def asked(self, answers: Answers) -> list[Step]:
        """The steps asked in turn for these answers (hidden steps are changed from the review)."""
        return [s for s in self.steps if s.ask and s.applies(answers)]

    def after(self, key: str, answers: Answers) -> Step | None:
        """The next step asked after `key`, or None when the form is complete."""
        keys = [s.key for s in self.steps]
        return next((s for s in self.steps[keys.index(key) + 1 :] if s.ask and s.applies(answers)), None)

    def before(self, key: str, answers: Answers) -> Step | None:
        """The step asked before `key`, or None at the first."""
        keys = [s.key for s in self.steps]
        earlier = [s for s in self.steps[: keys.index(key)] if s.ask and s.applies(answers)]
        return earlier[-1] if earlier else None

    def initial(self, ctx: Context, answers: Answers) -> Answers:
        """A new draft's answers: hidden steps' defaults, then whatever the caller prefilled."""
        defaults = {s.key: s.default(ctx, answers) for s in self.steps if not s.ask and s.default}
        return {**defaults, **answers}


class Action(StrEnum):
    """What a form button does: the fourth field of its callback data, one letter to stay short."""

    ANSWER = "a"
    USE_SUGGESTION = "u"
    DONE = "d"
    BACK = "b"
    SKIP = "s"
    CANCEL = "x"
    EDIT = "e"
    SEND = "g"
    RESUME = "r"
    RESTART = "n"


def button(draft: Draft, action: Action, arg: str = "") -> str:
    """Callback data for a button on this draft's current screen (well under 64 bytes)."""
    return f"f:{draft.id}:{draft.version}:{action}:{arg}"


@dataclass(frozen=True)
class Press:
    """A decoded form button."""

    draft_id: int
    version: int
    action: Action | None  # None: a letter no button carries
    arg: str


def decode(data: str) -> Press | None:
    """Read `f:<id>:<version>:<action>:<arg>`; None for anything else."""
    parts = data.split(":", 4)
    if len(parts) != 5 or parts[0] != "f" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return Press(int(parts[1]), int(parts[2]), action_of(parts[3]), parts[4])


def action_of(letter: str) -> Action | None:
    """The action a button's letter names, or None."""
    try:
        return Action(letter)
    except ValueError:
        return None


def has_content(answers: Answers) -> bool:
    """Whether a draft holds anything the user typed or sent (hidden defaults do not count)."""
    return any(v not in (None, "", []) for k, v in answers.items() if not k.startswith("_"))


class Engine:
    """Runs every form over Draft rows."""

    def __init__(self, forms: list[Form], home: HomeScreen) -> None:
        self.forms = {f.name: f for f in forms}
        self.home = home

    # ---- entry points ----------------------------------------------------------------------

    async def start(self, name: str, ctx: Context, prefill: Answers | None = None) -> list[Reply]:
        """Open a form: offer to resume an unfinished draft, else ask the first step."""
        form = self.forms[name]
        assert ctx.user is not None and ctx.user.id is not None
        with ctx.db.session() as s:
            draft = q.get_draft(s, ctx.user.id, name)
            if draft is not None and draft.mode != DraftMode.SENT and has_content(draft.answers):
                return [self.resume_offer(form, draft, ctx)]
        draft = self.fresh(form, ctx, prefill or {})
        return [Reply(ctx.t("form.started", title=ctx.t(form.title))), self.screen(form, draft, ctx)]

    def fresh(self, form: Form, ctx: Context, prefill: Answers) -> Draft:
        """A new draft of `form`, replacing any older one."""
        assert ctx.user is not None and ctx.user.id is not None
        answers = form.initial(ctx, prefill)
        first = form.asked(answers)[0]
        with ctx.db.session() as s:
            return q.start_draft(s, ctx.user.id, form.name, first.key, ctx.clock.now(), answers)

    def active(self, ctx: Context) -> Draft | None:
        """The draft the user is working on: the most recent one not yet sent."""
        if ctx.user is None or ctx.user.id is None:
            return None
        with ctx.db.session() as s:
            return next((d for d in q.drafts_of(s, ctx.user.id) if d.mode != DraftMode.SENT), None)

    async def on_message(self, msg: Incoming, ctx: Context) -> list[Reply] | None:
        """Take a typed answer (or a file) for the active draft; None when there is no active draft."""
        draft = self.active(ctx)
        if draft is None:
            return None
        form = self.forms.get(draft.form)
        if form is None:
            return None
        if draft.mode == DraftMode.REVIEW:
            return [self.screen(form, draft, ctx, note=ctx.t("form.use_buttons"))]
        return await self.answer(form, draft, msg, ctx)

    async def on_button(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """A form button: check it belongs to the current screen, then act."""
        press = decode(msg.choice)
        if press is None or ctx.user is None:
            return [Reply(ctx.t("error.bad_button"))]
        with ctx.db.session() as s:
            draft = s.get(Draft, press.draft_id)
        if draft is None or draft.user_id != ctx.user.id:
            return [Reply(ctx.t("error.gone_button")), self.home(ctx)]
        form = self.forms.get(draft.form)
        if form is None:
            return [Reply(ctx.t("error.bad_button"))]
        if draft.mode == DraftMode.SENT:
            return [Reply(ctx.t("form.already_sent", title=ctx.t(form.title)))]
        if press.version != draft.version:
            return [self.screen(form, draft, ctx, note=ctx.t("error.stale_button"))]
        action = ACTIONS.get(press.action) if press.action is not None else None
        if action is None:
            return [Reply(ctx.t("error.bad_button"))]
        try:
            return await action(self, form, draft, press.arg, ctx)
        except StaleDraft:
            return [Reply(ctx.t("error.stale_button"))]

    def resume_offer(self, form: Form, draft: Draft, ctx: Context) -> Reply:
        """ "You have an unfinished X: continue or start over?"."""
        saved = draft.updated_at.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m")
        return Reply(
            ctx.t("form.resume", title=ctx.t(form.title), saved=saved),
            (
                (Choice(ctx.t("btn.continue"), button(draft, Action.RESUME)),),
                (Choice(ctx.t("btn.restart"), button(draft, Action.RESTART)),),
            ),
        )

    # ---- answering -------------------------------------------------------------------------

    async def answer(self, form: Form, draft: Draft, msg: Incoming, ctx: Context) -> list[Reply]:
        """Read an answer to the current step; re-ask with the reason when it is not valid.

        Files left over after a single-photo step (an album) flow on to the next media steps.
        """
        notes: list[str] = []
        while True:
            step = form.step(draft.step)
            if step is None:
                break
            parsed = await KINDS[step.kind](step, msg, ctx, draft.answers)
            if parsed.error:
                notes.append(ctx.t(parsed.error, **dict(parsed.fields)))
                break
            if parsed.note:
                notes.append(say(parsed, ctx))
            answers = {**draft.answers, **dict(parsed.extra), step.key: parsed.value}
            if parsed.stay:
                draft = self._save(draft, ctx, step=step.key, mode=DraftMode(draft.mode), answers=answers)
                break
            draft = self._advance(form, draft, step, answers, ctx)
            following = form.step(draft.step)
            if not parsed.rest:
                break
            if draft.mode != DraftMode.FILL or following is None or following.kind not in MEDIA_KINDS:
                notes.append(ctx.t("media.rest_dropped", count=len(parsed.rest)))
                break
            msg = replace(msg, media=parsed.rest)
        return [self.screen(form, draft, ctx, note="\n".join(notes))]

    def _advance(self, form: Form, draft: Draft, step: Step, answers: Answers, ctx: Context) -> Draft:
        nxt = None if draft.mode == DraftMode.EDIT else form.after(step.key, answers)
        if nxt is None:
            if form.prepare is not None:
                answers = form.prepare(ctx, answers)
            return self._save(draft, ctx, step=step.key, mode=DraftMode.REVIEW, answers=answers)
        return self._save(draft, ctx, step=nxt.key, mode=DraftMode.FILL, answers=answers)

    def _save(self, draft: Draft, ctx: Context, *, step: str, mode: DraftMode, answers: Answers) -> Draft:
        with ctx.db.session() as s:
            return q.save_draft(s, draft, step=step, mode=mode, answers=answers, now=ctx.clock.now())

    # ---- screens ---------------------------------------------------------------------------

    def screen(self, form: Form, draft: Draft, ctx: Context, note: str = "") -> Reply:
        """What the user sees now: the current step's question, or the review screen."""
        reply = (
            self.review(form, draft, ctx)
            if draft.mode == DraftMode.REVIEW
            else self.question(form, draft, ctx)
        )
        return replace(reply, text=f"{note}\n\n{reply.text}") if note else reply

    def question(self, form: Form, draft: Draft, ctx: Context) -> Reply:
        """The current step: progress, prompt, what it holds so far, a suggestion, and its buttons."""
        step = form.step(draft.step) or form.steps[0]
        asked = form.asked(draft.answers)
        number = next((i for i, s in enumerate(asked, 1) if s.key == step.key), None)
        lines = [ctx.t("form.progress", n=number, total=len(asked))] if number else []
        lines.append(ctx.t(step.prompt))
        current = draft.answers.get(step.key)
        if step.kind in COLLECTING and current:
            lines.append(ctx.t("form.so_far", value=display(step, current, ctx)))
        suggestion = self.suggestion(step, draft, ctx)
        if suggestion is not None:
            lines.append(ctx.t("form.suggestion", value=display(step, suggestion, ctx)))
        rows = [*option_rows(step, draft, current, ctx)]
        if suggestion is not None:
            rows.insert(0, (Choice(ctx.t("btn.use_suggestion"), button(draft, Action.USE_SUGGESTION)),))
        rows.append(nav_row(form, step, draft, ctx))
        return Reply("\n".join(lines), tuple(r for r in rows if r), expects_text=step.kind in TYPED)

    def suggestion(self, step: Step, draft: Draft, ctx: Context) -> Any:
        """The step's suggested answer (a previous article's author, a photo's date), if any."""
        if not step.ask or step.default is None or draft.answers.get(step.key) not in (None, "", []):
            return None
        value = step.default(ctx, draft.answers)
        return None if value in (None, "", []) else value

    def review(self, form: Form, draft: Draft, ctx: Context) -> Reply:
        """Every answer, then send, change any answer, or cancel."""
        lines = [ctx.t("form.review", title=ctx.t(form.title))]
        edits = []
        for index, step in enumerate(form.steps):
            if not step.applies(draft.answers):
                continue
            label = ctx.t(step.prompt + "_short")
            lines.append(f"• {label}: {display(step, draft.answers.get(step.key), ctx, short=True)}")
            edits.append((Choice(ctx.t("btn.edit", field=label), button(draft, Action.EDIT, str(index))),))
        choices = (
            (Choice(ctx.t("btn.send"), button(draft, Action.SEND)),),
            *edits,
            (Choice(ctx.t("btn.cancel"), button(draft, Action.CANCEL)),),
        )
        return Reply("\n".join(lines), choices)


def say(parsed: Parsed, ctx: Context) -> str:
    """A parser's note(s), joined with "+", in the reader's language."""
    fields = dict(parsed.note_fields)
    return " ".join(ctx.t(key, **fields) for key in parsed.note.split("+"))


def option_rows(step: Step, draft: Draft, current: Any, ctx: Context) -> list[tuple[Choice, ...]]:
    """The buttons for a step's options (with ticks on a multiple choice), quick dates, and "Xong"."""
    options = step.options_for(ctx, draft.answers)
    if step.kind == StepKind.CHOICE:
        return [(Choice(o.shown(ctx), button(draft, Action.ANSWER, o.value)),) for o in options]
    if step.kind == StepKind.MULTI:
        picked = set(current or [])
        ticks = [
            (
                Choice(
                    ("✅ " if o.value in picked else "") + o.shown(ctx), button(draft, Action.ANSWER, o.value)
                ),
            )
            for o in options
        ]
        return [*ticks, (Choice(ctx.t("btn.done"), button(draft, Action.DONE)),)]
    if step.kind == StepKind.DATE:
        return [
            (
                Choice(ctx.t("btn.today"), button(draft, Action.ANSWER, QuickDate.TODAY)),
                Choice(ctx.t("btn.yesterday"), button(draft, Action.ANSWER, QuickDate.YESTERDAY)),
            )
        ]
    if step.kind in COLLECTING:
        return [(Choice(ctx.t("btn.done"), button(draft, Action.DONE)),)]
    return []


def nav_row(form: Form, step: Step, draft: Draft, ctx: Context) -> tuple[Choice, ...]:
    """Back (unless first), skip (optional steps), cancel."""
    row = []
    if draft.mode == DraftMode.EDIT or form.before(step.key, draft.answers) is not None:
        row.append(Choice(ctx.t("btn.back"), button(draft, Action.BACK)))
    if step.is_optional(draft.answers) and step.kind not in COLLECTING:  # there "Xong" skips
        row.append(Choice(ctx.t("btn.skip"), button(draft, Action.SKIP)))
    row.append(Choice(ctx.t("btn.cancel"), button(draft, Action.CANCEL)))
    return tuple(row)


def display(step: Step, value: Any, ctx: Context, short: bool = False) -> str:
    """An answer as the user reads it."""
    if value is None or value == [] or value == "":
        return ctx.t("form.skipped")
    if step.kind in MEDIA_KINDS:
        return media_summary(value, ctx)
    if step.kind == StepKind.DOCUMENT and isinstance(value, dict):
        if "link" in value:  # shown whole, short or not: it is how the officer reaches the file
            return ctx.t("media.document_link", link=value["link"])
        return ctx.t("media.document", name=value.get("name") or value.get("doctype", ""))
    if isinstance(value, list):
        return ", ".join(display(step, v, ctx) for v in value)
    if step.kind == StepKind.DATE:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    text = str(value)
    if text.startswith("other:"):
        return text.removeprefix("other:")
    option = next((o for o in step.options_for(ctx, {}) if o.value == text), None)
    if option is not None:
        return option.shown(ctx)
    if short and len(text) > PREVIEW:
        return ctx.t("form.preview", start=text[:PREVIEW].rstrip(), chars=len(text))
    return text


def media_summary(value: Any, ctx: Context) -> str:
    """ "1 ảnh 1600×1200", "3 ảnh", "1 video, 1 link"."""
    items = value if isinstance(value, list) else [value]
    links = [i for i in items if "link" in i]
    videos = [
        i
        for i in items
        if "link" not in i and (i.get("kind") == "video" or (i.get("mime") or "").startswith("video/"))
    ]
    photos = [i for i in items if i not in links and i not in videos]
    parts = []
    if len(items) == 1 and photos and photos[0].get("width"):
        parts.append(ctx.t("media.one_photo", width=photos[0]["width"], height=photos[0]["height"]))
    elif photos and not videos:
        parts.append(ctx.t("media.photos", count=len(photos)))
    if videos:
        parts.append(ctx.t("media.videos", count=len(videos)))
    if links:
        parts.append(ctx.t("media.links", count=len(links)))
    return ", ".join(parts) or ctx.t("form.skipped")


# ---- button actions ----------------------------------------------------------------------------

ActionHandler = Callable[[Engine, Form, Draft, str, Context], Awaitable[list[Reply]]]


async def act_answer(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """An option button: the same as typing that option."""
    if draft.mode == DraftMode.REVIEW:
        return [engine.screen(form, draft, ctx, note=ctx.t("error.stale_button"))]
    msg = Incoming(channel=ctx.channel, user_id="", chat_id="", kind=Kind.CHOICE, choice=arg)
    return await engine.answer(form, draft, msg, ctx)


async def act_use_suggestion(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Take the suggested answer."""
    step = form.step(draft.step)
    value = (
        engine.suggestion(step, draft, ctx) if step is not None and draft.mode != DraftMode.REVIEW else None
    )
    if step is None or value is None:
        return [engine.screen(form, draft, ctx, note=ctx.t("error.stale_button"))]
    return [
        engine.screen(form, engine._advance(form, draft, step, {**draft.answers, step.key: value}, ctx), ctx)
    ]


async def act_done(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Finish a step that collects (choices, photos, videos, text in several messages)."""
    step = form.step(draft.step)
    if step is None or step.kind not in COLLECTING or draft.mode == DraftMode.REVIEW:
        return [engine.screen(form, draft, ctx)]
    if not draft.answers.get(step.key) and not step.is_optional(draft.answers):
        return [engine.screen(form, draft, ctx, note=ctx.t("error.pick_at_least_one"))]
    answers = {**draft.answers, step.key: draft.answers.get(step.key) or None}
    return [engine.screen(form, engine._advance(form, draft, step, answers, ctx), ctx)]


async def act_back(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Go to the previous step (or, while editing, back to the review)."""
    if draft.mode == DraftMode.REVIEW:
        last = form.asked(draft.answers)[-1]
        return [
            engine.screen(
                form, engine._save(draft, ctx, step=last.key, mode=DraftMode.FILL, answers=draft.answers), ctx
            )
        ]
    if draft.mode == DraftMode.EDIT:
        return [
            engine.screen(
                form,
                engine._save(draft, ctx, step=draft.step, mode=DraftMode.REVIEW, answers=draft.answers),
                ctx,
            )
        ]
    prev = form.before(draft.step, draft.answers)
    if prev is None:
        return [engine.screen(form, draft, ctx)]
    return [
        engine.screen(
            form, engine._save(draft, ctx, step=prev.key, mode=DraftMode.FILL, answers=draft.answers), ctx
        )
    ]


async def act_skip(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Skip an optional step."""
    step = form.step(draft.step)
    if step is None or not step.is_optional(draft.answers) or draft.mode == DraftMode.REVIEW:
        return [engine.screen(form, draft, ctx, note=ctx.t("error.cannot_skip"))]
    return [
        engine.screen(form, engine._advance(form, draft, step, {**draft.answers, step.key: None}, ctx), ctx)
    ]


async def act_cancel(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Drop the draft."""
    with ctx.db.session() as s:
        q.delete_draft(s, draft.id or 0)
    return [Reply(ctx.t("form.cancelled", title=ctx.t(form.title))), engine.home(ctx)]


async def act_edit(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Change one answer from the review screen."""
    if draft.mode != DraftMode.REVIEW or not arg.isdigit() or int(arg) >= len(form.steps):
        return [engine.screen(form, draft, ctx, note=ctx.t("error.bad_button"))]
    step = form.steps[int(arg)]
    return [
        engine.screen(
            form, engine._save(draft, ctx, step=step.key, mode=DraftMode.EDIT, answers=draft.answers), ctx
        )
    ]


async def act_send(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Send: the form's submit hook runs; the draft is kept as sent so a second tap is recognised."""
    if draft.mode != DraftMode.REVIEW:
        return [engine.screen(form, draft, ctx, note=ctx.t("error.stale_button"))]
    missing = [
        s
        for s in form.asked(draft.answers)
        if not s.is_optional(draft.answers) and draft.answers.get(s.key) in (None, "", [])
    ]
    if missing:
        step = missing[0]
        note = ctx.t("form.missing", field=ctx.t(step.prompt + "_short"))
        return [
            engine.screen(
                form,
                engine._save(draft, ctx, step=step.key, mode=DraftMode.EDIT, answers=draft.answers),
                ctx,
                note=note,
            )
        ]
    replies = await form.submit(ctx, draft)
    engine._save(draft, ctx, step=draft.step, mode=DraftMode.SENT, answers=draft.answers)
    return replies


async def act_resume(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Continue an unfinished draft where it was left."""
    return [engine.screen(form, draft, ctx)]


async def act_restart(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Throw the unfinished draft away and start again."""
    return [engine.screen(form, engine.fresh(form, ctx, {}), ctx)]


ACTIONS: dict[Action, ActionHandler] = {
    Action.ANSWER: act_answer,
    Action.USE_SUGGESTION: act_use_suggestion,
    Action.DONE: act_done,
    Action.BACK: act_back,
    Action.SKIP: act_skip,
    Action.CANCEL: act_cancel,
    Action.EDIT: act_edit,
    Action.SEND: act_send,
    Action.RESUME: act_resume,
    Action.RESTART: act_restart,
}
