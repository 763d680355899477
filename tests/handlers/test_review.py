"""The officer's review desk through the console: queue, open, approve, return, resubmit, publish, races."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.app import App
from bot.config import Settings
from handlers.notify import NOTICE
from handlers.types import Incoming, Kind
from storage import queries as q
from storage.models import Outbox, ReviewAction, School, Submission
from storage.scope import level_matches
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import add_district, add_user, inbox_texts
from tests.handlers.test_nomination import nominate


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


async def sent_article(chat_as: Callable[[str], Chat], files: dict[str, Path]) -> Chat:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    return principal


def press(user: str, value: str, n: str) -> Incoming:
    return Incoming("console", user, user, Kind.CHOICE, choice=value, update_id=n)


def the_article(app: App) -> Submission:
    with app.db.session() as s:
        return s.exec(select(Submission).where(Submission.kind == "article")).one()


def notices(app: App) -> list[tuple[str, str, str]]:
    """The outbox rows telling the school of a review: (period, step, status)."""
    with app.db.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.kind == NOTICE).order_by(col(Outbox.id))).all()
    return [(r.period, r.step, r.status) for r in rows]


async def test_files_are_named_by_role_and_number_never_by_path(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    """The console prints what the officer reads on every channel: "Ảnh minh chứng 2", not where the
    file lies on the server (data/media/83/83fb….jpg) nor the platform's reference to it."""
    principal = chat_as("principal")
    await nominate(principal, tmp_path, photos=2)
    await principal.press("Gửi")
    officer = chat_as("officer")
    await officer.send("/review")
    opened = await officer.press("Mở #1")
    assert [a.caption for a in opened[0].attachments] == ["Ảnh minh chứng 1", "Ảnh minh chứng 2"]
    screen = officer.text()
    assert "📎 Ảnh minh chứng 1\n" in screen and "📎 Ảnh minh chứng 2\n" in screen
    media = Path(demo.settings.media_dir)
    assert str(media) not in screen and str(media.resolve()) not in screen
    assert ".jpg" not in screen and "console:" not in screen and str(tmp_path) not in screen


async def test_queue_open_and_approve(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await sent_article(chat_as, files)
    officer = chat_as("officer")
    queue = await officer.send("/review")
    assert "1 mục chờ thẩm định" in queue[0].text and "Ngày hội đọc sách" in queue[0].text
    opened = await officer.press("Mở #1")
    shown = opened[0]
    assert "#1 · Bài viết tháng · Trường PTDTBT THCS Pú Nhi" in shown.text
    assert shown.text.index("Chủ đề") < shown.text.index("Tiêu đề") < shown.text.index("Ảnh toàn cảnh")
    captions = [a.caption for a in shown.attachments]
    assert captions == ["Ảnh toàn cảnh 1", "Ảnh người phát biểu 1", "Ảnh cận cảnh 1"]
    assert all(Path(a.path).is_file() for a in shown.attachments)
    assert "📎 Ảnh toàn cảnh 1\n" in officer.text()
    done = await officer.press("Duyệt")
    assert "Đã duyệt #1" in done[0].text
    row = the_article(demo)
    assert row.status == "approved" and row.reviewed_by_id is not None
    assert any("đã được duyệt" in t for t in inbox_texts(demo, "principal"))
    again = await demo.dispatcher.handle(press("officer", "rv:a:1:1", "again"))
    assert "đã được xử lý" in again[0].text


async def test_return_needs_a_reason_and_the_school_can_resubmit(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    principal = await sent_article(chat_as, files)
    officer = chat_as("officer")
    await officer.send("/review")
    await officer.press("Mở #1")
    asked = await officer.press("Trả lại")
    assert "cần có lý do" in asked[0].text
    empty = await officer.send("   ")
    assert "trống" in empty[0].text
    await officer.press("Ảnh chưa đạt")
    done = await officer.press("Gửi")
    assert "Đã trả lại #1" in done[0].text
    row = the_article(demo)
    assert row.status == "returned" and row.review_note == "Ảnh chưa đạt yêu cầu"

    told = inbox_texts(demo, "principal")
    assert any("được trả lại để chỉnh sửa" in t and "Ảnh chưa đạt yêu cầu" in t for t in told)
    assert notices(demo) == [("review:1", "return:1", "sent")]  # written with the return itself
    opened = await principal.send("/mystatus")  # the kept notice comes first, with its edit button
    assert "được trả lại để chỉnh sửa" in opened[0].text
    await principal.press("Sửa ngay")
    assert "Lý do: Ảnh chưa đạt yêu cầu" in principal.last.text
    await principal.press("Sửa: Chủ đề, tiêu đề")
    await principal.press("Sửa: Tiêu đề")
    await principal.send("Ngày hội đọc sách – có ảnh mới")
    await principal.press("Gửi")

    await officer.send("/review")
    reopened = await officer.press("Mở #1")
    assert "Đã sửa so với bản đã trả lại: Tiêu đề" in reopened[0].text
    assert "Tiêu đề (thêm 4 từ): Ngày hội đọc sách [+– có ảnh mới+]" in reopened[0].text
    life = reopened[1].text
    assert (
        life.index("Gửi, chờ duyệt")
        < life.index("Trả lại bởi Anh Nguyễn Văn Minh")
        < life.index("Gửi lại (bản 2)")
    )


async def test_two_officers_at_once_cannot_both_win(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await sent_article(chat_as, files)
    add_user(demo, "officer2", "officer", "PGD-DEMO", "Chị Thu")
    chat_as("officer")
    first = await demo.dispatcher.handle(press("officer", "rv:r:1:1", "o1"))
    assert "cần có lý do" in first[0].text
    second = await demo.dispatcher.handle(press("officer2", "rv:a:1:1", "o2"))
    assert "Đã duyệt" in second[0].text
    officer = chat_as("officer")
    await officer.send("Thiếu ảnh")
    late = await officer.press("Gửi")
    assert "đã xử lý mục này trước đồng chí" in late[0].text
    with demo.db.session() as s:
        actions = s.exec(select(ReviewAction)).all()
    assert [a.action for a in actions] == ["approve"] and the_article(demo).status == "approved"
    assert notices(demo) == [("review:1", "approve:1", "sent")]  # the loser told the school nothing


async def test_publish_with_the_office_link(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await sent_article(chat_as, files)
    officer = chat_as("officer")
    await demo.dispatcher.handle(press("officer", "rv:a:1:1", "a"))
    await demo.dispatcher.handle(press("officer", "rv:p:1:1", "p"))
    bad = await officer.send("không phải link")
    assert "Đường link chưa đúng" in bad[0].text
    await officer.send("https://pgd.edu.vn/tin-tuc/ngay-hoi-doc-sach")
    done = await officer.press("Gửi")
    assert "đã đăng" in done[0].text
    assert the_article(demo).status == "published"
    assert any("https://pgd.edu.vn/tin-tuc/ngay-hoi-doc-sach" in t for t in inbox_texts(demo, "principal"))


async def test_nothing_outside_scope_is_shown(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await sent_article(chat_as, files)
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Khác")
    outsider = chat_as("other_officer")
    queue = await outsider.send("/review")
    assert "Không có bài nào" in queue[0].text
    for value in ("o:1", "rv:a:1:1", "rv:r:1:1"):
        got = await demo.dispatcher.handle(press("other_officer", value, value))
        assert "Không tìm thấy" in got[0].text
    assert the_article(demo).status == "submitted"
    province = chat_as("leader")  # the district's leader may look, not act
    opened = await demo.dispatcher.handle(press("leader", "o:1", "lo"))
    assert "Bài viết tháng" in opened[0].text and not opened[0].choices
    assert not opened[-1].choices and opened[-1].text.endswith(  # no buttons, and the word why
        "👁 Chế độ chỉ xem: lãnh đạo xem bài và số liệu; việc duyệt, trả lại, ghi nhận đã đăng do cán bộ phụ trách thực hiện."
    )
    refused = await demo.dispatcher.handle(press("leader", "rv:a:1:1", "la"))
    assert "không dành cho" in refused[0].text
    assert province


async def test_an_officer_limited_to_a_level(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await sent_article(chat_as, files)  # THCS school
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "Cô Mầm Non")
    with demo.db.session() as s:
        user = q.get_user(s, "console", "mn_officer")
        assert user is not None
        user.levels = "MN"
        s.add(user)
        mn = s.exec(select(School).where(School.level == "MN")).first()
        combined = s.exec(select(School).where(School.level == "TH&THCS")).first()
    assert mn is not None and combined is not None
    queue = await chat_as("mn_officer").send("/review")
    assert "Không có bài nào" in queue[0].text
    got = await demo.dispatcher.handle(press("mn_officer", "o:1", "mn"))
    assert "Không tìm thấy" in got[0].text
    assert level_matches("MN", mn.level) and level_matches("TH", combined.level)
    assert level_matches("THCS", combined.level) and not level_matches("MN", combined.level)


async def test_a_nominee_without_consent_is_withheld_from_the_officer(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    principal = chat_as("principal")
    await nominate(principal, tmp_path, role="Học sinh", name="Nguyễn Văn An", consent="Chưa có")
    await principal.press("Gửi")
    officer = chat_as("officer")
    await officer.send("/review")
    opened = await officer.press("Mở #1")
    text = opened[0].text
    assert "N.V.A." in text and "Nguyễn Văn An" not in text
    assert "không công bố tên, ảnh" in text and opened[0].attachments == ()


async def test_stale_and_forged_review_buttons(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await sent_article(chat_as, files)
    chat_as("officer")
    for value in ("o:999", "o:abc", "rv:a:1:7", "rv:x:1:1", "rv:a:1", "rv:a:999:1"):
        got = await demo.dispatcher.handle(press("officer", value, value))
        assert got and got[0].text and "lỗi" not in got[0].text, value
    assert the_article(demo).status == "submitted"


async def test_an_officer_invite_limited_to_levels(
    demo: App, chat_as: Callable[[str], Chat], settings: Settings, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app as cli
    from tests.conftest import Chat

    env = {"SCHOOLBOT_DATABASE_URL": settings.database_url}
    (tmp_path / "x.toml").touch()  # every setting from the environment
    base = ["invites", "--office", "PGD-DEMO", "--config", str(tmp_path / "x.toml")]
    made = CliRunner().invoke(cli, [*base, "--role", "officer", "--levels", "mn"], env=env)
    assert made.exit_code == 0, made.output
    code = made.output.splitlines()[1].split()[0]
    newcomer = Chat(demo, "mn_newcomer")
    await newcomer.send(f"/start {code}")
    with demo.db.session() as s:
        newcomer_user = q.get_user(s, "console", "mn_newcomer")
        assert newcomer_user is not None and newcomer_user.levels == "MN"
    for wrong in (["--role", "leader", "--levels", "MN"], ["--role", "officer", "--levels", "MN,XYZ"]):
        refused = CliRunner().invoke(cli, [*base, *wrong], env=env)
        assert refused.exit_code == 2 and "--levels" in refused.output


async def test_a_long_queue_says_how_many_wait_and_lists_the_oldest(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    """25 items waiting: the officer reads 25, sees the 20 sent first with their buttons, and how many
    more there are; the digest counts all 25."""
    with demo.db.session() as s:
        school = s.exec(select(School).where(School.code == "THCS-PUNHI")).one()
        principal = q.get_user(s, "console", "principal")
        assert principal is not None and principal.id is not None and school.id is not None
        start = demo.clock.now() - timedelta(hours=30)  # the last 19 are new since yesterday
        for n in range(25):
            when = start + timedelta(hours=n)
            s.add(
                Submission(
                    kind="article",
                    school_id=school.id,
                    user_id=principal.id,
                    period=f"{2024 + n // 12}-{n % 12 + 1:02d}",
                    status="submitted",
                    answers={"title": f"Bài số {n + 1}"},
                    token=f"queue-{n}",
                    submitted_at=when,
                    created_at=when,
                    updated_at=when,
                )
            )
    officer = chat_as("officer")
    shown = (await officer.send("/review"))[0]
    assert shown.text.startswith("25 mục chờ thẩm định; 20 mục gửi sớm nhất:")
    assert "Bài số 1\n" in shown.text and "Bài số 20" in shown.text and "Bài số 21" not in shown.text
    assert shown.text.endswith("…còn 5 mục nữa. Xử lý xong các mục trên, vui lòng nhập /review để xem tiếp.")
    assert len(shown.flat_choices()) == 20
    digest = (await officer.send("/digest"))[0]
    assert "Đang chờ thẩm định: 25 mục." in digest.text
