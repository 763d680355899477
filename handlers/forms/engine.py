"""The form engine: one engine for every form, forms declared as data, drafts in the database.

Every form gets a progress mark counting the steps this writer will see, back, skip (optional
steps), a review screen with one edit button per section, a draft saved after every step, resume, a
cancel that asks first (the cancelled draft is kept a day for /drafts), answers corrected by
editing the sent message (Telegram), and a submit that happens once.
A form may offer more ways to send (`Form.sends`: an urgent send) and refuse to send as it
stands (`Form.check`: nobody to send to), the draft staying on its review screen.
Buttons carry `f:<draft id>:<version>:<action>:<arg>`, so a button from an older screen is
recognised as stale and never changes the draft.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from handlers.forms.kinds import KINDS
from handlers.forms.media_steps import WRITE, is_video_candidate
from handlers.forms.steps import (
    COLLECTING,
    MEDIA_KINDS,
    PHOTO_KINDS,
    Answers,
    Parsed,
    QuickDate,
    Step,
    StepKind,
)
from handlers.types import Choice, Context, Incoming, Kind, Reply
from storage import queries as q
from storage.errors import StaleDraft
from storage.models import CancelledDraft, Draft, DraftMode

SubmitHook = Callable[[Context, Draft], Awaitable[list[Reply]]]
HomeScreen = Callable[[Context], Reply]

PREVIEW = 160  # characters of a long answer shown on the review screen
SENT_AS = "_sent_as"  # which of the form's ways to send was pressed (Form.sends)
KNOWN = "_known"  # the steps filled from what the bot knew at the start: not asked in turn
MESSAGES = "_msgs"  # message id -> the step its text answered (and the text, for a long text)
KEEP_MESSAGES = 60  # message ids remembered per draft
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
        StepKind.FIGURES,
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
    # The review screen's text (the article as it will read); None: every answer under its section.
    preview: Callable[[Context, Answers], str] | None = None
    # More ways to send, each a button under the send button of the review screen: (name, label key).
    # The submit hook finds the name pressed in answers[SENT_AS] ("" for the plain send).
    sends: tuple[tuple[str, str], ...] = ()
    # Why the form cannot be sent as it stands (a locale key; "" when it can), asked before submit:
    # the draft stays on its review screen with the reason.
    check: Callable[[Context, Answers], str] | None = None

    def step(self, key: str) -> Step | None:
        """The step named `key`."""
        return next((s for s in self.steps if s.key == key), None)

    def asked(self, answers: Answers) -> list[Step]:
        """The steps asked in turn for these answers: not hidden, not known at the start, applying."""
        known = set(answers.get(KNOWN) or ())
        return [s for s in self.steps if s.ask and s.key not in known and s.applies(answers)]

    def after(self, key: str, answers: Answers) -> Step | None:
        """The next step asked after `key`, or None when the form is complete."""
        keys = [s.key for s in self.steps]
        later = set(keys[keys.index(key) + 1 :])
        return next((s for s in self.asked(answers) if s.key in later), None)

    def before(self, key: str, answers: Answers) -> Step | None:
        """The step asked before `key`, or None at the first."""
        keys = [s.key for s in self.steps]
        earlier = set(keys[: keys.index(key)])
        found = [s for s in self.asked(answers) if s.key in earlier]
        return found[-1] if found else None

    def initial(self, ctx: Context, answers: Answers, skip: tuple[str, ...] = ()) -> Answers:
        """A new draft's answers: hidden steps' defaults, what the bot knows, then what the caller
        prefilled; a step known, or prefilled and named in `skip`, is not asked in turn."""
        defaults = {s.key: s.default(ctx, answers) for s in self.steps if not s.ask and s.default}
        known = {}
        for s in self.steps:
            if s.ask and s.known is not None and answers.get(s.key) in (None, "", []):
                value = s.known(ctx, answers)
                if value not in (None, "", []):
                    known[s.key] = value
        merged = {**defaults, **known, **answers}
        given = [
            s.key
            for s in self.steps
            if s.ask and (s.key in known or (s.key in skip and answers.get(s.key) not in (None, "", [])))
        ]
        if not given:
            return merged
        return {**merged, KNOWN: sorted({*(answers.get(KNOWN) or ()), *given})}

    def sections(self, answers: Answers) -> list[tuple[str, list[Step]]]:
        """The review screen's sections in order: a label key and the steps shown under it."""
        found: dict[str, list[Step]] = {}
        for s in self.steps:
            if s.applies(answers):
                found.setdefault(s.section or s.prompt + "_short", []).append(s)
        return list(found.items())

    def spare(self, kind: StepKind, answers: Answers) -> Step | None:
        """A hidden step collecting files of this kind (extra photos), where files sent at other
        steps are kept."""
        return next((s for s in self.steps if s.kind == kind and not s.ask and s.applies(answers)), None)


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
    SECTION = "c"  # the edit button of a section of the review screen
    SHOW = "v"  # show the current screen again ("no" to the cancel question, back from a section)
    DISCARD = "y"  # "Có": cancel the draft (kept a day for /drafts)
    WRITE = "w"  # a long text's rewrite (arg "replace") or add-a-paragraph (arg "append")


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

    async def start(
        self, name: str, ctx: Context, prefill: Answers | None = None, skip: tuple[str, ...] = ()
    ) -> list[Reply]:
        """Open a form: offer to resume an unfinished draft, else ask the first step."""
        form = self.forms[name]
        assert ctx.user is not None and ctx.user.id is not None
        with ctx.db.session() as s:
            draft = q.get_draft(s, ctx.user.id, name)
            if draft is not None and draft.mode != DraftMode.SENT and has_content(draft.answers):
                return [self.resume_offer(form, draft, ctx)]
        draft = self.fresh(form, ctx, prefill or {}, skip)
        return [Reply(ctx.t("flow.started", title=ctx.t(form.title))), self.screen(form, draft, ctx)]

    def ready(self, name: str, ctx: Context, answers: Answers) -> list[Reply]:
        """Open a new draft of a form already filled (`answers`) on its review screen, ready to send."""
        form = self.forms[name]
        draft = self.fresh(form, ctx, answers)
        asked = form.asked(draft.answers)
        last = asked[-1] if asked else form.steps[-1]
        draft = self._save(draft, ctx, step=last.key, mode=DraftMode.REVIEW, answers=draft.answers)
        return [self.screen(form, draft, ctx)]

    def fresh(self, form: Form, ctx: Context, prefill: Answers, skip: tuple[str, ...] = ()) -> Draft:
        """A new draft of `form`, replacing any older one."""
        assert ctx.user is not None and ctx.user.id is not None
        answers = form.initial(ctx, prefill, skip)
        asked = form.asked(answers)
        first = asked[0] if asked else form.steps[0]
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
        if msg.kind == Kind.UNSUPPORTED:  # the platform kept a file back: say so, then the same screen
            step = form.step(draft.step)
            photo = step is not None and step.kind in PHOTO_KINDS and draft.mode != DraftMode.REVIEW
            key = "media.not_passed_photo" if photo else "media.not_passed"
            return [self.screen(form, draft, ctx, note=ctx.t(key))]
        if draft.mode == DraftMode.REVIEW:
            step = form.step(draft.step)
            if step is not None and step.kind == StepKind.APPEND and msg.kind == Kind.TEXT:
                return await self.more_text(form, draft, step, msg, ctx)  # the rest of a long text
            return [self.screen(form, draft, ctx, note=ctx.t("form.use_buttons"))]
        return await self.answer(form, draft, msg, ctx)

    async def on_button(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """A form button: check it belongs to the current screen, then act."""
        press = decode(msg.choice)
        if press is None or ctx.user is None:
            return [Reply(ctx.t("error.bad_button"))]
        with ctx.db.session() as s:
            draft = q.draft_by_id(s, press.draft_id)
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

    async def on_edit(self, msg: Incoming, ctx: Context) -> list[Reply]:
        """A sent message was edited: the answer it gave is changed to the new text, if the draft
        it answered is still open; an edit of anything else is let be."""
        if ctx.user is None or ctx.user.id is None or not msg.message_id:
            return []
        with ctx.db.session() as s:
            drafts = q.drafts_of(s, ctx.user.id)
        draft = next((d for d in drafts if msg.message_id in (d.answers.get(MESSAGES) or {})), None)
        form = self.forms.get(draft.form) if draft is not None else None
        if draft is None or form is None:
            return []
        if draft.mode == DraftMode.SENT:
            return [Reply(ctx.t("flow.edit_after_sent", title=ctx.t(form.title)))]
        answered = dict(draft.answers[MESSAGES][msg.message_id])
        step = form.step(str(answered.get("step")))
        if step is None or not step.applies(draft.answers):
            return []
        label = ctx.t(section_label(step))
        if step.kind == StepKind.APPEND:
            before, cleaned = str(draft.answers.get(step.key) or ""), " ".join(msg.text.split())
            old = str(answered.get("text") or "")
            if not old or old not in before or not cleaned:
                return [self.screen(form, draft, ctx, note=ctx.t("flow.edit_not_found", field=label))]
            parsed = Parsed(value=before.replace(old, msg.text.strip(), 1))
            answered["text"] = msg.text.strip()
        else:
            parsed = await KINDS[step.kind](step, replace(msg, kind=Kind.TEXT), ctx, draft.answers)
        if parsed.error:
            note = ctx.t(parsed.error, **dict(parsed.fields)) + "\n" + ctx.t("flow.edit_kept", field=label)
            return [self.screen(form, draft, ctx, note=note)]
        messages = {**draft.answers[MESSAGES], msg.message_id: answered}
        answers = {**draft.answers, **dict(parsed.extra), step.key: parsed.value, MESSAGES: messages}
        draft = self._save(draft, ctx, step=draft.step, mode=DraftMode(draft.mode), answers=answers)
        return [self.screen(form, draft, ctx, note=ctx.t("flow.edited", field=label))]

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

        Files left over after a single-photo step (an album) flow on to the next media steps, or to
        the form's hidden extra-photo step; files sent at a step that takes none are kept there too.
        """
        notes: list[str] = []
        step = form.step(draft.step)
        if step is not None and msg.kind == Kind.MEDIA and step.kind not in (*MEDIA_KINDS, StepKind.DOCUMENT):
            spare = self.spare_for(form, draft, msg)
            if spare is not None:
                return await self.keep_spare(form, draft, spare, msg, ctx)
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
            answers = remember_message(
                {**draft.answers, **dict(parsed.extra), step.key: parsed.value}, step, msg
            )
            if parsed.stay:
                draft = self._save(draft, ctx, step=step.key, mode=DraftMode(draft.mode), answers=answers)
                break
            draft = self._advance(form, draft, step, answers, ctx)
            following = form.step(draft.step)
            if not parsed.rest:
                break
            msg = replace(msg, media=parsed.rest)
            if draft.mode == DraftMode.FILL and following is not None and following.kind in MEDIA_KINDS:
                continue
            spare = self.spare_for(form, draft, msg)
            if spare is None:
                notes.append(ctx.t("media.rest_dropped", count=len(parsed.rest)))
                break
            return await self.keep_spare(form, draft, spare, msg, ctx, notes)
        return [self.screen(form, draft, ctx, note="\n".join(notes))]

    def spare_for(self, form: Form, draft: Draft, msg: Incoming) -> Step | None:
        """The hidden step that keeps files sent where no file is asked (extra photos, videos)."""
        kind = StepKind.VIDEOS if msg.media and is_video_candidate(msg.media[0]) else StepKind.PHOTOS
        return form.spare(kind, draft.answers)

    async def keep_spare(
        self,
        form: Form,
        draft: Draft,
        spare: Step,
        msg: Incoming,
        ctx: Context,
        notes: list[str] | None = None,
    ) -> list[Reply]:
        """Add files to a hidden collecting step, the draft staying where it is."""
        notes = list(notes or [])
        parsed = await KINDS[spare.kind](spare, msg, ctx, draft.answers)
        if parsed.error:
            notes.append(ctx.t(parsed.error, **dict(parsed.fields)))
        else:
            answers = {**draft.answers, **dict(parsed.extra), spare.key: parsed.value}
            draft = self._save(draft, ctx, step=draft.step, mode=DraftMode(draft.mode), answers=answers)
            kept = ctx.t("flow.kept_in", field=ctx.t(spare.prompt + "_short"))
            notes.append(f"{say(parsed, ctx)} {kept}" if parsed.note else kept)
        return [self.screen(form, draft, ctx, note="\n".join(notes))]

    async def more_text(
        self, form: Form, draft: Draft, step: Step, msg: Incoming, ctx: Context
    ) -> list[Reply]:
        """Text sent on the review screen right after a long text: one more paragraph of it (a long
        message the phone split in two arrives like this)."""
        answers = {**draft.answers, WRITE: {**(draft.answers.get(WRITE) or {}), step.key: "append"}}
        parsed = await KINDS[step.kind](step, msg, ctx, answers)
        if parsed.error:
            return [self.screen(form, draft, ctx, note=ctx.t(parsed.error, **dict(parsed.fields)))]
        answers = remember_message({**answers, **dict(parsed.extra), step.key: parsed.value}, step, msg)
        draft = self._save(draft, ctx, step=step.key, mode=DraftMode.REVIEW, answers=answers)
        label = ctx.t(section_label(step))
        return [self.screen(form, draft, ctx, note=ctx.t("flow.added_to", field=label))]

    def _advance(self, form: Form, draft: Draft, step: Step, answers: Answers, ctx: Context) -> Draft:
        nxt = None if draft.mode == DraftMode.EDIT else form.after(step.key, answers)
        if nxt is None:
            if form.prepare is not None:
                answers = form.prepare(ctx, answers)
            return self._save(draft, ctx, step=step.key, mode=DraftMode.REVIEW, answers=answers)
        return self._save(draft, ctx, step=nxt.key, mode=DraftMode.FILL, answers=answers)

    def _save(self, draft: Draft, ctx: Context, *, step: str, mode: DraftMode, answers: Answers) -> Draft:
        with ctx.db.session(savepoint=False) as s:  # one UPDATE, which either applies or not
            return q.save_draft(s, draft, step=step, mode=mode, answers=answers, now=ctx.clock.now())

    # ---- cancelling and restoring ------------------------------------------------------------

    def cancel_question(self, form: Form, draft: Draft, ctx: Context) -> Reply:
        """ "Cancel this draft? What was entered will be lost." Yes / No."""
        return Reply(
            ctx.t("flow.cancel_ask", title=ctx.t(form.title)),
            (
                (Choice(ctx.t("flow.cancel_yes"), button(draft, Action.DISCARD)),),
                (Choice(ctx.t("flow.cancel_no"), button(draft, Action.SHOW)),),
            ),
        )

    def restore(self, ctx: Context, kept_id: int) -> list[Reply]:
        """Bring back a draft cancelled within a day, fitted to the form as it is now: answers to
        steps that are gone are dropped, and the steps it never had are named to be filled."""
        assert ctx.user is not None and ctx.user.id is not None
        now = ctx.clock.now()
        with ctx.db.session() as s:
            found = s.get(CancelledDraft, kept_id)
            form = self.forms.get(found.form) if found is not None else None
            kept = q.take_cancelled(s, kept_id, ctx.user.id, now) if form is not None else None
            if kept is None or form is None:
                return [Reply(ctx.t("drafts.gone"))]
            notes = [ctx.t("drafts.restored", title=ctx.t(form.title))]
            current = q.get_draft(s, ctx.user.id, form.name)
            if current is not None and current.mode != DraftMode.SENT and has_content(current.answers):
                q.cancel_draft(s, current, [st.key for st in form.steps], now)
                notes.append(ctx.t("drafts.swapped", title=ctx.t(form.title)))
            answers, new, dropped = fit(form, kept)
            draft = q.start_draft(s, ctx.user.id, form.name, kept.step, now, answers)
            if new or dropped:
                names = ", ".join(ctx.t(section_label(st)) for st in new)
                notes.append(
                    ctx.t("drafts.changed", fields=names) if new else ctx.t("drafts.changed_dropped")
                )
            step, mode = resume_point(form, kept, answers, new)
            draft = q.save_draft(s, draft, step=step, mode=mode, answers=answers, now=now)
        return [self.screen(form, draft, ctx, note="\n".join(notes))]

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
        show_progress = number and draft.mode == DraftMode.FILL
        lines = [ctx.t("form.progress", n=number, total=len(asked))] if show_progress else []
        lines.append(ctx.t(step.prompt))
        current = draft.answers.get(step.key)
        writing = (draft.answers.get(WRITE) or {}).get(step.key)
        if (step.kind in COLLECTING or step.kind == StepKind.APPEND or draft.mode == DraftMode.EDIT) and (
            current not in (None, "", []) or any(draft.answers.get(k) for k in step.also)
        ):
            lines.append(ctx.t("form.so_far", value=shown(step, draft.answers, ctx)))
        if writing:
            lines.append(ctx.t(f"flow.write_{writing}"))
        suggestion = self.suggestion(step, draft, ctx)
        if suggestion is not None:
            offered = shown(step, suggestion, ctx, False) if step.also else display(step, suggestion, ctx)
            lines.append(ctx.t("form.suggestion", value=offered))
        rows = [*option_rows(step, draft, current, ctx)]
        if suggestion is not None:
            rows.insert(0, (Choice(ctx.t("btn.use_suggestion"), button(draft, Action.USE_SUGGESTION)),))
        if step.kind == StepKind.APPEND and current and not writing:
            rows.append(
                (
                    Choice(ctx.t("flow.rewrite"), button(draft, Action.WRITE, "replace")),
                    Choice(ctx.t("flow.append"), button(draft, Action.WRITE, "append")),
                )
            )
        rows.append(nav_row(form, step, draft, ctx))
        return Reply("\n".join(lines), tuple(r for r in rows if r), expects_text=step.kind in TYPED)

    def suggestion(self, step: Step, draft: Draft, ctx: Context) -> Any:
        """The step's suggested answer (a previous article's theme, a photo's date and place), if any.

        A grouped step's suggestion is a dict of its answers.
        """
        filled = draft.answers.get(step.key) not in (None, "", [])
        if not step.ask or step.default is None or (filled and not step.also):
            return None
        value = step.default(ctx, draft.answers)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v and not draft.answers.get(k)}
        return None if value in (None, "", [], {}) else value

    def review(self, form: Form, draft: Draft, ctx: Context) -> Reply:
        """The form as it will read, then send, "Sửa" per section, and cancel (asked first)."""
        head = ctx.t("form.review", title=ctx.t(form.title))
        if form.preview is not None:
            body = form.preview(ctx, draft.answers)
        else:
            body = "\n".join(
                line
                for label, steps in form.sections(draft.answers)
                for line in section_lines(label, steps, draft, ctx)
            )
        edits = [
            (Choice(ctx.t("btn.edit", field=ctx.t(label)), button(draft, Action.SECTION, str(index))),)
            for index, (label, _) in enumerate(form.sections(draft.answers))
        ]
        choices = (
            (Choice(ctx.t("btn.send"), button(draft, Action.SEND)),),
            *((Choice(ctx.t(label), button(draft, Action.SEND, name)),) for name, label in form.sends),
            *edits,
            (Choice(ctx.t("btn.cancel"), button(draft, Action.CANCEL)),),
        )
        return Reply(f"{head}\n\n{body}", choices)

    def section(self, form: Form, draft: Draft, index: int, ctx: Context) -> Reply:
        """A section's answers, one button for each to change, and back to the review."""
        label, steps = form.sections(draft.answers)[index]
        lines = [ctx.t("flow.section", section=ctx.t(label)), *section_lines("", steps, draft, ctx)]
        rows = tuple(
            (
                Choice(
                    ctx.t("btn.edit", field=ctx.t(st.prompt + "_short")),
                    button(draft, Action.EDIT, str(form.steps.index(st))),
                ),
            )
            for st in steps
        )
        back = (Choice(ctx.t("btn.back"), button(draft, Action.SHOW)),)
        return Reply("\n".join(lines), (*rows, back))


def section_lines(label: str, steps: list[Step], draft: Draft, ctx: Context) -> list[str]:
    """A section of the review screen: its title (when given), then one line per answer."""
    lines = [f"▸ {ctx.t(label)}"] if label and (len(steps) > 1 or steps[0].section) else []
    for step in steps:
        lines.append(
            f"• {ctx.t(step.prompt + '_short')}: {display(step, draft.answers.get(step.key), ctx, short=True)}"
        )
    return lines


def section_label(step: Step) -> str:
    """The label key a step is called by on screen: its short label."""
    return step.prompt + "_short"


def shown(step: Step, answers: Answers, ctx: Context, short: bool = True) -> str:
    """A step's answer as read from the answers: a grouped step's parts joined with " · "."""
    if not step.also:
        return display(step, answers.get(step.key), ctx, short)
    parts = [display(step, answers[step.key], ctx, short)] if answers.get(step.key) else []
    parts += [str(answers[k]) for k in step.also if answers.get(k)]
    return " · ".join(parts) or ctx.t("form.skipped")


def remember_message(answers: Answers, step: Step, msg: Incoming) -> Answers:
    """Note which step a typed message answered, so that editing the message can change it."""
    if (
        not msg.message_id
        or msg.kind != Kind.TEXT
        or step.kind not in TYPED | {StepKind.WHEN_WHERE, StepKind.CHOICE}
    ):
        return answers
    entry: dict[str, Any] = {"step": step.key}
    if step.kind == StepKind.APPEND:
        entry["text"] = msg.text.strip()
    messages = {**(answers.get(MESSAGES) or {}), msg.message_id: entry}
    return {**answers, MESSAGES: dict(list(messages.items())[-KEEP_MESSAGES:])}


def fit(form: Form, kept: CancelledDraft) -> tuple[Answers, list[Step], list[str]]:
    """A cancelled draft's answers fitted to the form as it is now: (answers, the steps it never had
    that must be filled, the answers dropped because their step is gone)."""
    keys = {s.key for s in form.steps} | {k for s in form.steps for k in s.also}
    had = set((kept.steps or {}).get("keys") or keys)
    answers = {k: v for k, v in kept.answers.items() if k.startswith("_") or k in keys}
    dropped = [k for k, v in kept.answers.items() if k not in answers and v not in (None, "", [])]
    if KNOWN in answers:
        answers[KNOWN] = [k for k in answers[KNOWN] if k in keys]
    new = [s for s in form.asked(answers) if s.key not in had and not s.is_optional(answers)]
    return answers, new, dropped


def resume_point(
    form: Form, kept: CancelledDraft, answers: Answers, new: list[Step]
) -> tuple[str, DraftMode]:
    """Where a restored draft picks up: the first step it still lacks, else where it was."""
    asked = form.asked(answers)
    if new:
        return new[0].key, DraftMode.FILL
    if kept.mode == DraftMode.REVIEW or form.step(kept.step) is None:
        missing = next(
            (s for s in asked if not s.is_optional(answers) and answers.get(s.key) in (None, "", [])), None
        )
        if missing is not None:
            return missing.key, DraftMode.FILL
        return (asked[-1].key if asked else form.steps[0].key), DraftMode.REVIEW
    return kept.step, DraftMode(kept.mode)


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
    if step.kind in (StepKind.DATE, StepKind.WHEN_WHERE, StepKind.DATETIME):
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
    """Back (unless first) and skip (optional steps). Cancel is not here, next to "Quay lại", where
    a hurried thumb would hit it: it is on the review screen and the /cancel command, and asks first."""
    row = []
    if draft.mode == DraftMode.EDIT or form.before(step.key, draft.answers) is not None:
        row.append(Choice(ctx.t("btn.back"), button(draft, Action.BACK)))
    if step.is_optional(draft.answers) and step.kind not in COLLECTING:  # there "Xong" skips
        row.append(Choice(ctx.t("btn.skip"), button(draft, Action.SKIP)))
    return tuple(row)


def display(step: Step, value: Any, ctx: Context, short: bool = False) -> str:
    """An answer as the user reads it."""
    if value is None or value == [] or value == "":
        return ctx.t("form.skipped")
    if step.kind in MEDIA_KINDS:
        return media_summary(value, ctx)
    if step.kind in (StepKind.DOCUMENT, StepKind.ATTACHMENT) and isinstance(value, dict):
        if value.get("doctype") == "photo":
            return media_summary(value, ctx)
        if "link" in value:  # shown whole, short or not: it is how the officer reaches the file
            return ctx.t("media.document_link", link=value["link"])
        return ctx.t("media.document", name=value.get("name") or value.get("doctype", ""))
    if isinstance(value, list):
        return ", ".join(display(step, v, ctx) for v in value)
    if step.kind in (StepKind.DATE, StepKind.WHEN_WHERE):
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    if step.kind == StepKind.DATETIME:
        return datetime.fromisoformat(value).strftime("%H:%M %d/%m/%Y")
    text = str(value)
    if text.startswith("other:"):
        return text.removeprefix("other:")
    option = next((o for o in step.options_for(ctx, {}) if o.value == text), None)
    if option is not None:
        return option.shown(ctx)
    if short and len(text) > PREVIEW:
        return ctx.t("form.preview", start=text[:PREVIEW].rstrip(), chars=len(text))
    return text


def media_name(step: Step, number: int, ctx: Context) -> str:
    """A file as people call it: its role and its number ("Ảnh toàn cảnh 1"), never a path or a file id."""
    return ctx.t("media.named", role=ctx.t(step.prompt + "_short"), number=number)


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
    """Take the suggested answer (a grouped step's suggestion fills each of its answers it holds)."""
    step = form.step(draft.step)
    value = (
        engine.suggestion(step, draft, ctx) if step is not None and draft.mode != DraftMode.REVIEW else None
    )
    if step is None or value is None:
        return [engine.screen(form, draft, ctx, note=ctx.t("error.stale_button"))]
    answers = {**draft.answers, **value} if isinstance(value, dict) else {**draft.answers, step.key: value}
    if any(answers.get(k) in (None, "", []) for k in step.keys):  # a date without a place: ask the rest
        missing = "flow.need_date" if answers.get(step.key) in (None, "") else "flow.need_place"
        draft = engine._save(draft, ctx, step=step.key, mode=DraftMode(draft.mode), answers=answers)
        return [engine.screen(form, draft, ctx, note=ctx.t(missing))]
    return [engine.screen(form, engine._advance(form, draft, step, answers, ctx), ctx)]


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
    """Ask before cancelling: nothing changes until "Có"."""
    return [engine.cancel_question(form, draft, ctx)]


async def act_discard(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """ "Có": the draft goes to the cancelled ones, which /drafts can restore for a day."""
    with ctx.db.session() as s:
        if has_content(draft.answers):
            q.cancel_draft(s, draft, [st.key for st in form.steps], ctx.clock.now())
        else:
            q.delete_draft(s, draft.id or 0)
    title = ctx.t(form.title)
    key = "flow.cancelled" if has_content(draft.answers) else "form.cancelled"
    return [Reply(ctx.t(key, title=title)), engine.home(ctx)]


async def act_show(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """The current screen again, nothing changed ("Không" to cancelling, back from a section)."""
    return [engine.screen(form, draft, ctx)]


async def act_section(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """ "Sửa" on a section: its one answer to change, or the choice of which of its answers."""
    sections = form.sections(draft.answers)
    if draft.mode != DraftMode.REVIEW or not arg.isdigit() or int(arg) >= len(sections):
        return [engine.screen(form, draft, ctx, note=ctx.t("error.bad_button"))]
    steps = sections[int(arg)][1]
    if len(steps) == 1:
        return await act_edit(engine, form, draft, str(form.steps.index(steps[0])), ctx)
    return [engine.section(form, draft, int(arg), ctx)]


async def act_write(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """A long text's "Viết lại" (the next message replaces it) or "Thêm đoạn" (it is added)."""
    step = form.step(draft.step)
    if step is None or step.kind != StepKind.APPEND or arg not in ("replace", "append"):
        return [engine.screen(form, draft, ctx, note=ctx.t("error.bad_button"))]
    mode = DraftMode.EDIT if draft.mode == DraftMode.REVIEW else DraftMode(draft.mode)
    answers = {**draft.answers, WRITE: {**(draft.answers.get(WRITE) or {}), step.key: arg}}
    return [engine.screen(form, engine._save(draft, ctx, step=step.key, mode=mode, answers=answers), ctx)]


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
    if arg and arg not in dict(form.sends):
        return [engine.screen(form, draft, ctx, note=ctx.t("error.bad_button"))]
    refusal = form.check(ctx, draft.answers) if form.check is not None else ""
    if refusal:
        return [engine.screen(form, draft, ctx, note=ctx.t(refusal))]
    if arg or draft.answers.get(SENT_AS):
        answers = {**draft.answers, SENT_AS: arg}
        draft = engine._save(draft, ctx, step=draft.step, mode=DraftMode.REVIEW, answers=answers)
    replies = await form.submit(ctx, draft)
    engine._save(draft, ctx, step=draft.step, mode=DraftMode.SENT, answers=draft.answers)
    return replies


async def act_resume(engine: Engine, form: Form, draft: Draft, arg: str, ctx: Context) -> list[Reply]:
    """Continue an unfinished draft where it was left (it becomes the one typed answers go to)."""
    touched = engine._save(draft, ctx, step=draft.step, mode=DraftMode(draft.mode), answers=draft.answers)
    return [engine.screen(form, touched, ctx)]


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
    Action.SECTION: act_section,
    Action.SHOW: act_show,
    Action.DISCARD: act_discard,
    Action.WRITE: act_write,
}
