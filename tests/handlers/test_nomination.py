"""Typical-example nominations through the console: photos, consent for students, checks, counting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.app import App
from bot.config import Settings
from handlers.calendar import FrozenClock
from handlers.types import Incoming, Kind
from storage.models import Submission
from tests.conftest import Chat
from tests.handlers.helpers import draft_of
from tests.media.samples import jpeg, write


def nomination_draft(app: App) -> tuple[str, str, dict[str, Any], int]:
    d = draft_of(app, "principal", "nomination")
    assert d is not None
    return (d.step, d.mode, d.answers, d.version)


async def nominate(
    chat: Chat,
    tmp_path: Path,
    *,
    role: str = "Giáo viên",
    name: str = "Nguyễn Thị Hoa",
    consent: str | None = None,
    photos: int = 2,
    stop_before: str | None = None,
) -> None:
    """Walk the nomination form; ends on the review screen."""
    nominee = {None: role, "Đã có đồng ý": f"{role} – cha mẹ đã đồng ý", "Chưa có": f"{role} – chưa có"}[
        consent
    ]
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("nominee", lambda: chat.press(nominee)),  # who, and a pupil's consent, in one choice
        ("name", lambda: chat.send(name)),
        ("deeds", lambda: chat.send("Mười năm dạy chữ cho học sinh vùng cao, 30 em đỗ vào trường chuyên.")),
        ("photos", lambda: _photos(chat, tmp_path, photos)),
        ("link", lambda: chat.press("Bỏ qua")),
        ("purpose", lambda: chat.press("Cả hai")),
        ("contact_name", lambda: chat.send("Lò Thị Lan")),
        ("contact_phone", lambda: chat.send("+84 912 345 678")),
    ]
    await chat.send("/nominate")
    for key, action in steps:
        if key == stop_before:
            return
        result = action()
        if result is not None:
            await result


async def _photos(chat: Chat, tmp_path: Path, count: int) -> None:
    for i in range(count):
        await chat.send(f"/file {write(tmp_path, f'minh-chung-{i}.jpg', jpeg(1600, 1200 + i, 'orange'))}")
    await chat.press("Xong")


async def test_a_teacher_with_photos(demo: App, chat_as: Callable[[str], Chat], tmp_path: Path) -> None:
    chat = chat_as("principal")
    await nominate(chat, tmp_path)
    assert "Ảnh minh chứng: 2 ảnh" in chat.last.text and "Điện thoại: 0912345678" in chat.last.text
    replies = await chat.press("Gửi")
    assert "Đã gửi Đề xuất điển hình: Nguyễn Thị Hoa" in replies[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
    assert row.period == "2026-2027-HK1" and row.answers["publishable"] is True
    assert row.answers["contact_phone"] == "0912345678" and len(row.answers["photos"]) == 2

    officer = chat_as("officer")
    listing = await officer.send("/nominations")
    assert "Nguyễn Thị Hoa (Giáo viên) · Cả hai · Chờ duyệt" in listing[0].text and "2 ảnh" in listing[0].text


async def test_a_student_without_consent_is_shown_by_initials(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await nominate(chat, tmp_path, role="Học sinh", name="Nguyễn Văn An", consent="Chưa có")
    assert "Đối tượng: Học sinh – chưa có đồng ý của cha mẹ" in chat.last.text
    replies = await chat.press("Gửi")
    assert "không được công bố" in replies[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
    assert row.answers["publishable"] is False

    for viewer in ("officer", "leader"):
        listing = await chat_as(viewer).send("/nominations")
        assert "N.V.A. (Học sinh)" in listing[0].text and "Nguyễn Văn An" not in listing[0].text
        assert "không công bố tên, ảnh" in listing[0].text and "2 ảnh" not in listing[0].text
    own = await chat_as("principal").send("/nominations")
    assert "Nguyễn Văn An" in own[0].text  # the school itself sees its own nomination


async def test_a_student_with_consent_is_shown_in_full(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await nominate(chat, tmp_path, role="Học sinh", name="Nguyễn Văn An", consent="Đã có đồng ý")
    await chat.press("Gửi")
    listing = await chat_as("officer").send("/nominations")
    assert "Nguyễn Văn An (Học sinh)" in listing[0].text


async def test_a_collective_is_not_asked_for_a_role(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await chat.send("/nominate")
    await chat.press("Tập thể")
    replies = await chat.send("Tổ Toán – Tin")
    assert "Cá nhân (tập thể) đã làm được việc gì" in replies[-1].text


@pytest.mark.parametrize(
    ("step", "answer", "reason"),
    [
        ("name", "12345", "bằng chữ"),
        ("name", "!!! ???", "bằng chữ"),
        ("name", "A1", "bằng chữ"),
        ("contact_phone", "12345", "Số điện thoại chưa đúng"),
        ("contact_phone", "0112345678", "Số điện thoại chưa đúng"),
        ("contact_phone", "không có", "Số điện thoại chưa đúng"),
    ],
)
async def test_bad_names_and_phones(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path, step: str, answer: str, reason: str
) -> None:
    chat = chat_as("principal")
    await nominate(chat, tmp_path, stop_before=step, photos=0)
    before = nomination_draft(demo)
    replies = await chat.send(answer)
    assert reason in replies[0].text
    assert nomination_draft(demo) == before


async def test_edit_until_reviewed_and_counted_per_semester(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path, clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    await nominate(chat, tmp_path, photos=0)
    await chat.press("Gửi")
    status = await chat.send("/mystatus")
    assert "Đề xuất điển hình: 1 trong học kỳ này, 1 trong năm học." in status[0].text
    await chat.send("/nominations")
    await chat.press("Sửa đề xuất")
    await chat.press("Sửa: Người được đề xuất")
    await chat.press("Sửa: Tên")
    await chat.send("Nguyễn Thị Hồng Hoa")
    replies = await chat.press("Gửi")
    assert "Nguyễn Thị Hồng Hoa" in replies[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
        assert (row.version, row.answers["name"]) == (2, "Nguyễn Thị Hồng Hoa")
        row.status = "approved"
        s.add(row)
    listing = await chat.send("/nominations")
    assert not listing[0].choices  # reviewed: no edit button any more
    refused = await demo.dispatcher.handle(
        Incoming(
            "console", "principal", "principal", Kind.CHOICE, choice=f"se:{row.id}", update_id="late-edit"
        )
    )
    assert "không thể sửa" in refused[0].text

    clock.set(clock.now().replace(year=2027, month=2, day=1))  # semester II
    status = await chat.send("/mystatus")
    assert "Đề xuất điển hình: 0 trong học kỳ này, 1 trong năm học." in status[0].text


async def test_a_province_that_starts_semester_two_in_december(
    settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """`schedule.semester_two_starts`: a nomination sent on 21 December counts in semester II."""
    from bot.app import open_app
    from bot.demo import seed_demo

    early = settings.model_copy(
        update={"schedule": settings.schedule.model_copy(update={"semester_two_starts": "12-20"})}
    )
    clock.set(clock.now().replace(month=12, day=21))
    with open_app(early, clock) as app:
        with app.db.session() as s:
            seed_demo(s, clock.now())
        chat = Chat(app, "principal")
        await nominate(chat, tmp_path, photos=0)
        await chat.press("Gửi")
        with app.db.session() as s:
            row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
        assert row.period == "2026-2027-HK2"
        status = await chat.send("/mystatus")
        assert "Đề xuất điển hình: 1 trong học kỳ này, 1 trong năm học." in status[0].text
        clock.set(
            clock.now().replace(day=19)
        )  # the day before semester II: the nomination is not "this semester"
        status = await chat.send("/mystatus")
        assert "Đề xuất điển hình: 0 trong học kỳ này, 1 trong năm học." in status[0].text
