"""Cancelling asks first, /drafts restores for a day (fitted to a form that changed), and every
form's progress mark counts the steps its writer sees, without a jump, on every branch."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import App
from handlers.calendar import FrozenClock
from handlers.types import Reply
from storage.models import CancelledDraft, Draft
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import draft_of, fill_incident, the_draft
from tests.handlers.test_nomination import nominate

PROGRESS = re.compile(r"Bước (\d+)/(\d+)")


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


def article(app: App) -> Draft | None:
    return draft_of(app, "principal", "article")


async def cancel(chat: Chat) -> None:
    [question] = await chat.send("/cancel")
    assert question.text.startswith("Huỷ bản nháp") and "Những gì đã nhập sẽ mất" in question.text
    await chat.press("Có, huỷ")


async def test_a_cancelled_draft_is_restored_where_it_was(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="what")
    before = the_draft(demo, "principal", "article")
    await cancel(chat)
    assert article(demo) is None
    listing = await chat.send("/drafts")
    assert "Bài viết tháng – đã huỷ lúc" in listing[0].text and "khôi phục được đến" in listing[0].text
    replies = await chat.press("Khôi phục: Bài viết tháng")
    assert "Đã khôi phục bản nháp Bài viết tháng." in replies[-1].text
    assert "Hoạt động gì, những ai tham gia?" in replies[-1].text and "Bước 7/10" in replies[-1].text
    restored = the_draft(demo, "principal", "article")
    assert (restored.step, restored.mode, restored.answers) == (before.step, before.mode, before.answers)
    assert restored.token != before.token  # a restored draft is sent once, like any other
    again = await chat.send("/drafts")
    assert "đang soạn" in again[0].text and "đã huỷ" not in again[0].text
    await chat.press("Tiếp tục: Bài viết tháng")
    assert "Hoạt động gì" in chat.last.text


async def test_restoring_keeps_the_draft_written_meanwhile(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    await cancel(chat)
    await chat.send("/article")
    await chat.press("Gương người tốt")  # a new draft of the same form, begun since
    await chat.send("/drafts")
    replies = await chat.press("Khôi phục")
    assert "đã được cất vào /drafts" in replies[-1].text
    assert the_draft(demo, "principal", "article").answers["title"] == "Ngày hội đọc sách"
    listing = await chat.send("/drafts")
    assert "đã huỷ" in listing[0].text  # the other one is kept in its turn
    await chat.press("Khôi phục")
    assert the_draft(demo, "principal", "article").answers["theme"] == "s:good_deeds"


async def test_a_cancelled_draft_is_kept_for_24_hours(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    await cancel(chat)
    await chat.send("/drafts")
    restore = chat.value_of("Khôi phục")
    clock.advance(hours=24, minutes=1)
    listing = await chat.send("/drafts")
    assert "không có bản nháp nào" in listing[0].text
    from handlers.types import Incoming, Kind

    late = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.CHOICE, choice=restore, update_id="late")
    )
    assert "không còn khôi phục được" in late[0].text and article(demo) is None
    with demo.db.session() as s:
        assert s.exec(select(CancelledDraft)).all() == []  # forgotten, not only hidden


async def test_restoring_after_the_form_changed(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    """The draft was cancelled under an older article form: one with a "who" step and no "how" step.
    What still fits comes back; the new step is named and asked; the gone answer is dropped."""
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="contact")
    await cancel(chat)
    with demo.db.session() as s:
        kept = s.exec(select(CancelledDraft)).one()
        answers = {k: v for k, v in kept.answers.items() if k != "how"}
        kept.answers = {**answers, "who": "Toàn trường, 320 học sinh"}
        kept.steps = {"keys": [k for k in kept.steps["keys"] if k != "how"] + ["who"]}
        kept.step, kept.mode = "who", "fill"  # it was at a step the form no longer has
        s.add(kept)
    await chat.send("/drafts")
    replies = await chat.press("Khôi phục")
    text = replies[-1].text
    assert "Biểu mẫu đã thay đổi từ khi huỷ; thầy/cô vui lòng nhập thêm: Diễn biến, kết quả." in text
    assert "Số người tham gia, diễn biến và kết quả" in text  # asked at once
    restored = the_draft(demo, "principal", "article")
    assert restored.step == "how" and "who" not in restored.answers
    assert (
        restored.answers["title"] == "Ngày hội đọc sách" and restored.answers["photo_wide"]["width"] == 2000
    )
    await chat.send("Sôi nổi")
    assert "Số điện thoại hoặc email" in chat.last.text  # then on where the walk goes


async def test_restoring_a_draft_whose_form_is_gone(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    await cancel(chat)
    with demo.db.session() as s:
        kept = s.exec(select(CancelledDraft)).one()
        kept.form = "oldform"
        s.add(kept)
    listing = await chat.send("/drafts")
    assert "không có bản nháp nào" in listing[0].text  # a form the bot no longer has is not offered


def marks(replies: list[Reply]) -> list[tuple[int, int]]:
    return [(int(n), int(t)) for r in replies for n, t in PROGRESS.findall(r.text)]


def assert_counts_honestly(chat: Chat) -> int:
    """Each step's mark once, numbered 1, 2, 3... of a total that never changes and is reached."""
    seen = marks(chat.replies)
    assert seen, "no progress mark"
    totals = {t for _, t in seen}
    numbers = [n for n, _ in seen]
    assert len(totals) == 1, seen
    distinct = list(dict.fromkeys(numbers))
    assert distinct == list(range(1, totals.pop() + 1)), seen
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(numbers)), seen  # no jump
    return len(distinct)


@pytest.mark.parametrize(
    ("role", "consent"),
    [("Giáo viên", None), ("Học sinh", "Đã có đồng ý"), ("Học sinh", "Chưa có"), ("Tập thể", None)],
)
async def test_the_nomination_counts_honestly_on_every_branch(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path, role: str, consent: str | None
) -> None:
    chat = chat_as("principal")
    await nominate(chat, tmp_path, role=role, consent=consent, photos=1)
    assert "Xem lại" in chat.last.text
    assert assert_counts_honestly(chat) == 8


async def test_the_article_counts_honestly_first_and_later(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    assert assert_counts_honestly(chat) == 10  # the contact is asked: the school's first article
    await chat.press("Gửi")
    clock.advance(days=30)
    later = Chat(demo, "principal")
    await write_article(later, files)
    assert assert_counts_honestly(later) == 9  # now known: counted out from the start


async def test_the_incident_and_the_report_count_honestly(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat, skip_actions=True)
    assert assert_counts_honestly(chat) == 9  # the callback phone is asked: the profile has none
    await chat.press("Gửi")
    report = Chat(demo, "principal")
    await report.send("/report")
    await report.press("Dùng gợi ý")
    await report.send("4")
    await report.send("Đã có 3 bài được đăng trên báo điện tử của tỉnh.")
    await report.press("Bỏ qua")
    await report.press("Bỏ qua")
    assert "Xem lại" in report.last.text
    assert assert_counts_honestly(report) == 5


async def test_continue_from_drafts_makes_that_draft_the_one_answered(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    clock.advance(minutes=5)
    await fill_incident(chat, stop_before="when")  # a second draft, more recent
    clock.advance(minutes=5)
    listing = await chat.send("/drafts")
    assert (
        "Bài viết tháng – đang soạn" in listing[0].text
        and "Báo cáo nhanh sự cố – đang soạn" in listing[0].text
    )
    await chat.press("Tiếp tục: Bài viết tháng")
    assert "Ảnh 1/3" in chat.last.text
    await chat.send(f"/file {files['wide']}")  # goes to the article, not to the incident
    assert the_draft(demo, "principal", "article").answers["photo_wide"]["width"] == 2000
    assert "when" not in the_draft(demo, "principal", "incident").answers


async def test_a_button_of_a_cancelled_form_does_not_act_on_the_next_one(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    """A form's buttons name their draft by id and version: the next draft never gets a cancelled
    one's id (SQLite gave it again), so a button left on the old screen finds its draft gone."""
    chat = chat_as("principal")
    await chat.send("/article")
    old = chat.value_of("Gương người tốt")  # the article's first screen: its draft at version 1
    await cancel(chat)
    await chat.send("/incident")
    before = draft_of(demo, "principal", "incident")
    assert before is not None and before.version == 1
    from handlers.types import Incoming, Kind

    stale = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.CHOICE, choice=old, update_id="stale")
    )
    assert stale[0].text == "Nút này không còn dùng được."
    after = the_draft(demo, "principal", "incident")
    assert (after.id, after.version, after.answers) == (before.id, 1, before.answers)


async def test_an_old_restore_button_does_not_bring_back_another_cancelled_draft(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    """A "Khôi phục" button names its cancelled draft by id: once that one is restored, the button
    finds it gone, though another draft was cancelled since (SQLite gave its id again before)."""
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    await cancel(chat)
    await chat.send("/drafts")
    restore = chat.value_of("Khôi phục")
    await chat.press("Khôi phục")
    await chat.send("/incident")
    await chat.send("Tin đồn sai sự thật về nhà trường")
    await cancel(chat)  # the article was restored; now the incident is the one kept
    from handlers.types import Incoming, Kind

    old = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.CHOICE, choice=restore, update_id="old")
    )
    assert "không còn khôi phục được" in old[0].text
    assert draft_of(demo, "principal", "incident") is None
    with demo.db.session() as s:
        assert [k.form for k in s.exec(select(CancelledDraft)).all()] == ["incident"]
