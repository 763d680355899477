"""People, not nicknames: a person's full name, position and callback phone, and the one way they are shown.

Asked right after a registration code is accepted (a school's people: name, position, phone; officers
and leaders: name and phone, their role says what they do) and changed later with /profile: the
profile form, one question at a time, over the form engine. `person_label` is the one display rule
(the full name with the position's label, else the platform name) wherever the office reads who did
something.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from handlers.forms import Engine, Form, Step, StepKind
from handlers.forms.steps import offering
from handlers.types import Context, Incoming, Reply
from storage import queries as q
from storage.models import Draft, DraftMode, User

if TYPE_CHECKING:
    from sqlmodel import Session

POSITIONS = ("principal", "vice", "media")  # User.position keys, labelled profile.positions.<key>
NAME_MAX = 120  # User.full_name's length
SCHOOL = "_school"  # hidden answer: the person is a school's (their position is asked)
REGISTERED = frozenset({"principal", "officer", "leader", "admin"})
Translate = Callable[..., str]


def person_label(user: User | None, t: Translate) -> str:
    """The full name with the position's label when given, else the platform name."""
    if user is None:
        return t("profile.nobody")
    name = user.full_name.strip() or user.display_name.strip() or t("profile.nobody")
    if user.position in POSITIONS:
        return t("profile.label", name=name, position=t(f"profile.positions.{user.position}"))
    return name


def labels_of(s: Session, ids: Iterable[int | None], t: Translate) -> dict[int, str]:
    """Each user id's label, read once."""
    return {i: person_label(s.get(User, i), t) for i in {i for i in ids if i is not None}}


def international(phone: str) -> str:
    """0912345678 -> +84912345678 (how User.phone is stored)."""
    return "+84" + phone[1:] if phone.startswith("0") else phone


def national(phone: str) -> str:
    """+84912345678 -> 0912345678 (how the form shows and checks a number)."""
    return "0" + phone[3:] if phone.startswith("+84") else phone


async def save(ctx: Context, draft: Draft) -> list[Reply]:
    """Write the profile on every account of the person, then the home screen."""
    assert ctx.user is not None
    answers = draft.answers
    phone = str(answers.get("phone") or "")
    position = str(answers.get("position") or "") if answers.get(SCHOOL) else ""
    with ctx.db.session() as s:
        accounts = q.save_profile(
            s, s.merge(ctx.user), str(answers["full_name"]), position, international(phone)
        )
        fresh = next(a for a in accounts if a.id == ctx.user.id)
        s.flush()
        s.refresh(fresh)
        s.expunge(fresh)
    label = person_label(fresh, ctx.t)
    return [Reply(ctx.t("profile.saved", label=label)), ctx.extras["home"](replace(ctx, user=fresh))]


PROFILE_FORM = Form(
    name="profile",
    title="profile.title",
    roles=REGISTERED,
    submit=save,
    steps=(
        Step("full_name", "profile.name", StepKind.NAME, max_len=NAME_MAX),
        offering(
            "position", "profile.position", "profile.positions", POSITIONS, when=lambda a: bool(a.get(SCHOOL))
        ),
        Step("phone", "profile.phone", StepKind.PHONE, optional=True),
    ),
)


def current(user: User) -> dict[str, Any]:
    """The form's answers for what the person has given so far."""
    school = user.role == q.SCHOOL_ROLE
    answers: dict[str, Any] = {SCHOOL: school, "full_name": user.full_name or None}
    if school:
        answers["position"] = user.position if user.position in POSITIONS else None
    answers["phone"] = national(user.phone) or None
    return answers


async def ask_after_registration(ctx: Context, engine: Engine) -> list[Reply]:
    """Right after a code is accepted: the profile's first question."""
    assert ctx.user is not None
    prefill = {SCHOOL: ctx.user.role == q.SCHOOL_ROLE}
    draft = engine.fresh(PROFILE_FORM, ctx, prefill)
    return [engine.screen(PROFILE_FORM, draft, ctx, note=ctx.t("profile.intro"))]


async def open_profile(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """/profile: the name, position and phone on file, each with its change button; a missing one asked."""
    assert ctx.user is not None
    answers = current(ctx.user)
    given = tuple(k for k, v in answers.items() if v not in (None, "") and not k.startswith("_"))
    draft = engine.fresh(PROFILE_FORM, ctx, answers, skip=given)
    asked = [s for s in PROFILE_FORM.asked(draft.answers) if not s.is_optional(draft.answers)]
    if not asked:  # what is required is known: straight to the screen that changes it (the phone too)
        with ctx.db.session() as s:
            draft = q.save_draft(
                s, draft, step=draft.step, mode=DraftMode.REVIEW, answers=draft.answers, now=ctx.clock.now()
            )
    return [engine.screen(PROFILE_FORM, draft, ctx)]
