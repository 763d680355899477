"""Test helpers: fill the incident form, read drafts and inboxes, add users, schools and offices."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session, select

from bot.app import App
from storage import queries as q
from storage.models import Draft, Inbox, Office, School, Submission, User
from storage.text import fold
from tests.conftest import Chat
from tests.support import answer_steps

Row = TypeVar("Row")
WHAT = "Phụ huynh đăng bài sai sự thật về bữa ăn bán trú"


STEPS = ("what", "when", "where", "networks", "links", "photos", "actions", "severity", "phone")


async def fill_incident(
    chat: Chat, stop_before: str | None = None, skip_actions: bool = False, what: str = WHAT
) -> None:
    """Open the incident form and answer each step in order through the console (`what`: the
    incident's description).

    With `stop_before`, stop when that step is being asked; otherwise end on the review screen. The
    callback phone is asked only when the principal's profile has none.
    """
    answers = {
        "what": lambda: chat.send(what),
        "when": lambda: _when(chat),
        "where": lambda: chat.send("Trường PTDTBT THCS Pú Nhi, điểm bản Pú Nhi"),
        "networks": lambda: _networks(chat),
        "links": lambda: chat.press("Xong"),
        "photos": lambda: chat.press("Xong"),
        "actions": lambda: (
            chat.press("Bỏ qua")
            if skip_actions
            else chat.send("Đã gặp phụ huynh và đăng thông tin chính thức")
        ),
        "severity": lambda: chat.press("Nghiêm trọng"),
        "phone": lambda: _phone(chat),
    }
    await chat.send("/incident")
    await answer_steps(STEPS, answers, stop_before)


async def _when(chat: Chat) -> None:
    await chat.press("Hôm qua")
    await chat.send("14:30")


async def _phone(chat: Chat) -> None:
    if any("gọi lại?" in r.text for r in chat.batch):  # asked: the profile had no number
        await chat.send("0912 345 678")


async def _networks(chat: Chat) -> None:
    await chat.press("Facebook")
    await chat.send("nhóm Zalo phụ huynh lớp 7A")
    await chat.press("Xong")


def draft_of(app: App, external_id: str, form: str = "incident") -> Draft | None:
    """A console user's draft, fresh from the database."""
    with app.db.session() as s:
        user = q.get_user(s, "console", external_id)
        assert user is not None
        return q.get_draft(s, user.id or 0, form)


def the_draft(app: App, external_id: str, form: str = "incident") -> Draft:
    """A console user's draft, fresh from the database, which the test knows is there."""
    draft = draft_of(app, external_id, form)
    assert draft is not None, f"no {form} draft for {external_id}"
    return draft


def snapshot(app: App, external_id: str) -> tuple[Any, ...] | None:
    """What a draft holds, for before/after comparisons."""
    draft = draft_of(app, external_id)
    return None if draft is None else (draft.step, draft.mode, dict(draft.answers), draft.version)


def inbox_texts(app: App, external_id: str) -> list[str]:
    """The texts kept for a console user who is not chatting."""
    with app.db.session() as s:
        user = q.get_user(s, "console", external_id)
        if user is None:
            return []
        rows = s.exec(select(Inbox).where(Inbox.user_id == user.id)).all()
        return [r.payload["text"] for r in rows]


def flushed(s: Session, row: Row) -> Row:
    """`row` added and flushed, so that it has an id."""
    s.add(row)
    s.flush()
    return row


def console_user(s: Session, external_id: str, joined: datetime, **fields: Any) -> User:
    """A registered console user (role, school, office... in `fields`), flushed so that it has an id."""
    return flushed(
        s,
        User(
            channel="console",
            external_id=external_id,
            chat_id=external_id,
            created_at=joined,
            **{"display_name": external_id, **fields},
        ),
    )


def add_principal(s: Session, school: School, external_id: str, joined: datetime, **fields: Any) -> User:
    """A registered console principal of `school`."""
    return console_user(
        s, external_id, joined, role="principal", school_id=school.id, office_id=school.office_id, **fields
    )


def add_user(
    app: App,
    external_id: str,
    role: str,
    office_code: str,
    name: str,
    joined: datetime | None = None,
    **fields: Any,
) -> None:
    """A registered console user bound to an office (since now, unless `joined`)."""
    with app.db.session() as s:
        office = q.office_by_code(s, office_code)
        assert office is not None
        console_user(
            s,
            external_id,
            joined or app.clock.now(),
            display_name=name,
            role=role,
            office_id=office.id,
            **fields,
        )


def add_school(s: Session, code: str, name: str, level: str, office_id: int | None) -> School:
    """A school with its folded name, flushed so that it has an id (`office_id`: a flushed office's)."""
    assert office_id is not None
    return flushed(s, School(code=code, name=name, name_folded=fold(name), level=level, office_id=office_id))


def add_district(app: App, code: str, parent_code: str = "SGD-DEMO") -> None:
    """Another district office under the demo province."""
    with app.db.session() as s:
        parent = q.office_by_code(s, parent_code)
        assert parent is not None
        s.add(Office(code=code, name=f"Phòng GD&ĐT {code}", kind="district", parent_id=parent.id))


def add_submission(
    s: Session,
    school_code: str,
    kind: str,
    answers: dict[str, Any],
    when: datetime,
    token: str,
    **fields: Any,
) -> Submission:
    """A submission of a demo school by the console principal, as stored (status "submitted" unless
    `fields` say otherwise)."""
    school = q.school_by_code(s, school_code)
    user = q.get_user(s, "console", "principal")
    assert school is not None and user is not None
    row = Submission(
        kind=kind,
        school_id=school.id or 0,
        user_id=user.id or 0,
        answers=answers,
        token=token,
        created_at=when,
        updated_at=when,
        **{"status": "submitted", **fields},
    )
    return flushed(s, row)
