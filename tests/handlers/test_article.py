"""The monthly article through the console channel: rules, media, periods, versions, status."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from bot.app import App, open_app
from bot.config import Settings
from handlers.calendar import FrozenClock
from handlers.types import Incoming, Kind, Media, Reply
from storage.models import Draft, MediaFile, Submission, SubmissionVersion, User
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import the_draft
from tests.media.samples import jpeg, mp4, write


def article_draft(app: App, user: str = "principal") -> Draft:
    return the_draft(app, user, "article")


def snapshot(app: App) -> tuple[str, str, dict[str, Any], int]:
    d = article_draft(app)
    return (d.step, d.mode, d.answers, d.version)


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


async def test_a_whole_article_is_stored_with_its_photos(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    review = chat.last.text
    assert "Tính cho: Tháng 11/2026 (hạn 15/11) – đúng hạn" in review
    assert "Ảnh toàn cảnh: 1 ảnh 2000×1500" in review
    replies = await chat.press("Gửi")
    assert "Đã gửi Bài viết tháng 11/2026 – đúng hạn" in replies[0].text and "Chờ duyệt" in replies[0].text

    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        assert (row.period, row.status, row.late, row.version) == ("2026-11", "submitted", False, 1)
        assert row.answers["theme_text"] == "Hoạt động tiêu biểu của nhà trường"
        assert row.answers["photo_wide"]["width"] == 2000
        assert s.exec(select(func.count()).select_from(SubmissionVersion)).one() == 1
        media = s.exec(select(MediaFile)).all()
    assert len(media) == 3
    for m in media:
        stored = Path(demo.settings.media_dir) / m.path
        assert m.width is not None
        assert stored.is_file() and stored.name.startswith(m.sha256)
        assert (
            stored.read_bytes()
            == files[{2000: "wide", 1600: "speaker", 1280: "closeup"}[m.width]].read_bytes()
        )


async def test_photo_rules_refuse_with_the_reason_and_keep_the_draft(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    before = snapshot(demo)
    cases = [
        (f"/file {files['small']}", "Ảnh quá nhỏ (800×600)"),
        (f"/file {files['fake']}", "không phải là ảnh"),
        (f"/file {write(tmp_path, 'rong.jpg', b'')}", "trống"),
        (f"/file {write(tmp_path, 'ghi-chu.txt', 'văn bản'.encode())}", "không phải là ảnh"),
        (f"/file {files['clip']}", "không phải là ảnh"),
        ("Đây là ảnh", "cần một ảnh"),
    ]
    for line, reason in cases:
        replies = await chat.send(line)
        assert reason in replies[0].text, line
        assert snapshot(demo) == before
    big = tmp_path / "lon.jpg"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    replies = await chat.send(f"/file {big}")
    assert "quá lớn (50 MB)" in replies[0].text and snapshot(demo) == before


async def test_the_same_photo_twice_is_refused(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_speaker")
    copy = write(tmp_path, "ban-sao.jpg", files["wide"].read_bytes())
    before = snapshot(demo)
    replies = await chat.send(f"/file {copy}")
    assert "Ảnh này đã được gửi" in replies[0].text and snapshot(demo) == before


async def test_exif_date_and_place_are_offered_in_one_step(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="when")
    offer = chat.last.text
    assert "Hoạt động diễn ra ngày nào, ở đâu?" in offer
    assert "Gợi ý: 05/11/2026 · Vị trí chụp ảnh: https://maps.google.com/?q=21.39167,103.02000" in offer
    replies = await chat.press("Dùng gợi ý")  # one tap: both answers
    assert "Hoạt động gì, những ai tham gia?" in replies[-1].text
    answers = article_draft(demo).answers
    assert answers["when"] == "2026-11-05" and "21.39167" in answers["where"]


async def test_when_and_where_typed_in_parts(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="when")
    replies = await chat.press("Hôm qua")  # the date alone: the place is asked, on the same step
    assert "Đã ghi ngày" in replies[-1].text and "Hoạt động diễn ra ngày nào" in replies[-1].text
    assert article_draft(demo).step == "when"
    replies = await chat.send("tại nhà văn hoá bản Pú Nhi")
    assert "Hoạt động gì" in replies[-1].text
    answers = article_draft(demo).answers
    assert (answers["when"], answers["where"]) == ("2026-11-09", "nhà văn hoá bản Pú Nhi")


async def test_extra_photos_album_and_limit(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="when")  # extra photos sent after the three roles
    good = [_file_media(write(tmp_path, f"album{i}.jpg", jpeg(1300 + i, 1000, "white"))) for i in range(3)]
    album = (*good, _file_media(files["small"]))
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.MEDIA, media=album, update_id="album")
    )
    assert len(replies) == 1  # one reply for the whole album
    assert "Đã nhận 3 ảnh (tổng 3/10); 1 tệp không đạt." in replies[0].text
    assert "Đã lưu vào Ảnh thêm." in replies[0].text and "ngày nào, ở đâu" in replies[0].text
    assert article_draft(demo).step == "when"  # still asked: the photos did not answer it
    many = tuple(_file_media(write(tmp_path, f"m{i}.jpg", jpeg(1300, 1000 + i, "black"))) for i in range(9))
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.MEDIA, media=many, update_id="many")
    )
    assert "tổng 10/10" in replies[0].text and "không đạt" in replies[0].text
    assert len(article_draft(demo).answers["photos_extra"]) == 10


async def test_photos_sent_together_fill_the_roles_in_order(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    media = tuple(_file_media(files[k]) for k in ("wide", "speaker", "closeup", "extra"))
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.MEDIA, media=media, update_id="all")
    )
    answers = article_draft(demo).answers
    assert answers["photo_wide"]["width"] == 2000 and answers["photo_speaker"]["width"] == 1600
    assert answers["photo_closeup"]["width"] == 1280 and len(answers["photos_extra"]) == 1
    assert "Đã lưu vào Ảnh thêm" in replies[-1].text and article_draft(demo).step == "when"


async def test_videos_by_metadata_and_a_link(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)  # videos are offered on the review screen
    await chat.press("Sửa: Ảnh, video")
    await chat.press("Sửa: Video")
    before = snapshot(demo)
    replies = await chat.send(f"/file {files['long']}")
    assert "Video dài 2 phút 10 giây; mỗi cảnh quay 30 giây – 1 phút." in replies[0].text
    small = write(tmp_path, "480p.mp4", mp4(854, 480, 40))
    replies = await chat.send(f"/file {small}")
    assert "854×480" in replies[0].text and "720p" in replies[0].text
    avi = write(tmp_path, "clip.avi", b"RIFF0000AVI ")
    replies = await chat.send(f"/file {avi}")
    assert "mp4" in replies[0].text
    assert snapshot(demo) == before
    unreadable = write(tmp_path, "hong.mp4", b"\x00\x00\x00\x08free" * 4)
    replies = await chat.send(f"/file {unreadable}")
    assert "không đọc được độ phân giải" in replies[0].text
    replies = await chat.send(f"/file {files['clip']}")
    assert "Đã nhận video." in replies[0].text
    await chat.send("https://drive.google.com/drive/folders/abc")
    await chat.send("không phải link")
    assert "link thư mục" in chat.last.text
    await chat.send("ftp://may-chu.truong.edu.vn/video.mp4")  # a link, but not one a phone opens
    assert chat.last.text.startswith("Đường link chưa đúng")
    await chat.send("https://drive.google.com/" + "x" * 2100)
    assert chat.last.text.startswith("Đường link quá dài (2125 ký tự")
    videos = article_draft(demo).answers["videos"]
    assert len(videos) == 3 and videos[-1] == {"link": "https://drive.google.com/drive/folders/abc"}


async def test_text_in_several_messages_or_a_link_at_least_one(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="body")
    assert not any("Xong" in c.label for c in chat.last.flat_choices())  # one message answers it
    long_part = "Đoạn dài. " * 500  # beyond one Telegram message: the phone sends it in parts
    await chat.send(long_part)
    replies = await chat.send("Đoạn cuối.")  # a part arriving on the review screen joins the text
    assert "Đã thêm đoạn vừa gửi vào Nội dung" in replies[-1].text
    body = article_draft(demo).answers["body"]
    assert body.startswith("Đoạn dài.") and body.endswith("Đoạn cuối.") and len(body) > 4096

    other = Chat(demo, "principal")
    await other.send("/cancel")
    await other.press("Có, huỷ")
    await write_article(other, files, stop_before="body")
    assert not any("Bỏ qua" in c.label for c in other.last.flat_choices())  # text or link required
    before = snapshot(demo)
    replies = await other.send("ftp://thcspunhi.edu.vn/bai-viet")  # a link no phone opens
    assert "Đường link chưa đúng" in replies[0].text and snapshot(demo) == before
    await other.send("https://thcspunhi.edu.vn/bai-viet")  # a link instead of the text
    answers = article_draft(demo).answers
    assert answers["link"] == "https://thcspunhi.edu.vn/bai-viet" and answers["body"] is None
    assert (
        "Xem lại" in other.last.text
        and "Đường link bài viết: https://thcspunhi.edu.vn/bai-viet" in other.last.text
    )


async def test_dates_in_the_future_or_over_a_year_old_are_refused(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="when")
    before = snapshot(demo)
    replies = await chat.send("20/11/2026")
    assert "chưa tới" in replies[0].text
    replies = await chat.send("01/10/2025")
    assert "quá xa" in replies[0].text
    assert snapshot(demo) == before


async def test_resume_after_a_rebuild_in_the_middle_of_the_photos(
    settings: Settings, clock: FrozenClock, demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_closeup")
    demo.db.dispose()
    with open_app(settings, clock) as rebuilt:
        again = Chat(rebuilt, "principal")
        await again.send("/article")
        assert "đang soạn dở" in again.last.text
        replies = await again.press("Tiếp tục")
        assert "Ảnh 3/3" in replies[-1].text
        await again.send(f"/file {files['closeup']}")
        answers = article_draft(rebuilt).answers
        assert answers["photo_wide"]["width"] == 2000 and answers["photo_closeup"]["width"] == 1280


async def test_late_after_the_15th_and_the_second_article_of_a_month(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    clock.advance(days=7)  # 17 November
    chat = chat_as("principal")
    await write_article(chat, files)
    assert "nộp muộn" in chat.last.text
    replies = await chat.press("Gửi")
    assert "Nộp muộn" in replies[0].text
    await write_article(chat, files)  # November is fulfilled: the next one counts for December
    assert "Tính cho: Tháng 12/2026 (hạn 15/12) – đúng hạn" in chat.last.text
    await chat.press("Sửa: Chủ đề, tiêu đề")
    await chat.press("Sửa: Tính cho")
    await chat.press("Tháng 11/2026")
    assert "Tính cho: Tháng 11/2026" in chat.last.text
    await chat.press("Gửi")
    with demo.db.session() as s:
        rows = s.exec(
            select(Submission).where(Submission.kind == "article").order_by(col(Submission.id))
        ).all()
    assert [(r.period, r.late) for r in rows] == [("2026-11", True), ("2026-11", True)]


async def test_edit_until_reviewed_and_after_return_keeping_versions(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    status = await chat.send("/mystatus")
    assert "Đã nộp 10/11, đúng hạn · Chờ duyệt" in status[0].text
    await chat.press("Sửa bài tháng 11/2026")
    assert "Sửa Bài viết tháng đã gửi" in chat.last.text
    await chat.press("Sửa: Chủ đề, tiêu đề")
    await chat.press("Sửa: Tiêu đề")
    await chat.send("Ngày hội đọc sách 2026")
    replies = await chat.press("Gửi")
    assert "phiên bản 2" in replies[0].text

    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        row.status, row.review_note = "returned", "Thiếu ảnh người phát biểu trước phông"
        s.add(row)
    status = await chat.send("/mystatus")
    assert "Trả lại: Thiếu ảnh người phát biểu trước phông" in status[0].text
    await chat.press("Sửa bài tháng 11/2026")
    assert "Lý do: Thiếu ảnh người phát biểu" in chat.last.text
    replies = await chat.press("Gửi")
    assert "phiên bản 3" in replies[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        versions = s.exec(select(SubmissionVersion).order_by(col(SubmissionVersion.version))).all()
    assert (row.status, row.version, row.review_note) == ("submitted", 3, "")
    assert [v.answers["title"] for v in versions] == [
        "Ngày hội đọc sách",
        "Ngày hội đọc sách 2026",
        "Ngày hội đọc sách 2026",
    ]

    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        row.status = "approved"
        s.add(row)
    replies = await demo.dispatcher.handle(
        Incoming(
            "console", "principal", "principal", Kind.CHOICE, choice=f"se:{row.id}", update_id="edit-approved"
        )
    )
    assert "không thể sửa" in replies[0].text


async def test_another_schools_article_cannot_be_edited(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    from tests.handlers.helpers import add_user

    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    add_user(demo, "other", "principal", "PGD-DEMO", "Thầy Khác")
    with demo.db.session() as s:
        from storage import queries as q

        other = q.get_user(s, "console", "other")
        school = q.school_by_code(s, "TH-THITRAN")
        assert other is not None and school is not None
        other.school_id = school.id
        s.add(other)
        row = s.exec(select(Submission)).one()
    replies = await demo.dispatcher.handle(
        Incoming("console", "other", "other", Kind.CHOICE, choice=f"se:{row.id}", update_id="steal")
    )
    assert "Không tìm thấy" in replies[0].text


async def test_the_next_article_knows_author_contact_and_offers_the_theme(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    clock.advance(days=30)
    replies = await chat.send("/article")
    assert "Bước 1/9" in replies[-1].text  # author and contact are known: not asked
    assert "Gợi ý: Hoạt động tiêu biểu của nhà trường" in replies[-1].text
    await chat.press("Dùng gợi ý")
    answers = article_draft(demo).answers
    assert answers["theme"] == "s:activity" and answers["author"] == "Cô Lò Thị Lan"
    assert answers["contact"] == "0912 345 678" and sorted(answers["_known"]) == ["author", "contact"]
    assert "title" not in answers and "photo_wide" not in answers
    assert answers["period"] == "2026-12"


async def test_an_old_copy_button_does_not_ask_the_theme_again(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    clock.advance(days=30)
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.CHOICE, choice="as:copy", update_id="copy")
    )
    assert "Đã lấy chủ đề" in replies[0].text
    assert "Bước 1/8" in replies[-1].text and "Tiêu đề bài viết là gì?" in replies[-1].text
    assert article_draft(demo).answers["theme"] == "s:activity"


async def test_the_offices_themes_are_offered(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    from storage.plan import import_plan

    plan = tmp_path / "plan.csv"
    plan.write_text(
        "office_code,period,theme,notes\nPGD-DEMO,2026-11,Ngày Nhà giáo Việt Nam 20/11,\nSGD-DEMO,Q4/2026,An toàn giao thông,\n",
        encoding="utf-8",
    )
    import_plan(demo.db, plan)
    chat = chat_as("principal")
    replies = await chat.send("/article")
    labels = [c.label for c in replies[-1].flat_choices()]
    assert labels[:2] == ["Ngày Nhà giáo Việt Nam 20/11", "An toàn giao thông"]
    await chat.send("Tuyên truyền phòng chống đuối nước")  # "other": free text
    assert article_draft(demo).answers["theme"] == "other:Tuyên truyền phòng chống đuối nước"


async def test_my_status_over_six_months(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    chat = chat_as("principal")
    status = await chat.send("/mystatus")
    text = status[0].text
    assert "Bài viết tháng 11/2026: Chưa nộp · còn 5 ngày (hạn 15/11)" in text
    assert "Báo cáo năm, hạn 01/12/2026" in text
    # The school joined today: the months before are not missed, the June report is not owed.
    assert "10/2026 ▫️" in text and "11/2026 🕓" in text and "▫️ trước khi trường đăng ký" in text
    assert "Còn nợ" not in text
    with demo.db.session() as s:  # now as if it had joined in May
        for user in s.exec(select(User).where(User.role == "principal")):
            user.created_at = datetime(2026, 5, 2, tzinfo=UTC)
            s.add(user)
    text = (await chat.send("/mystatus"))[0].text
    assert "10/2026 ❌" in text and "06/2026 ❌" in text and "▫️" not in text
    assert "Còn nợ: Báo cáo 6 tháng (hạn 20/06/2026) – quá hạn, chưa nộp." in text
    await write_article(chat, files, stop_before="title")
    status = await chat.send("/mystatus")
    assert "Đang soạn (chưa gửi)" in status[0].text
    clock.advance(days=10)
    status = await chat.send("/mystatus")
    assert "quá hạn 5 ngày" in status[0].text and "11/2026 ❌" in status[0].text


def _file_media(path: Path) -> Media:
    from bot.channels.console import file_incoming

    return file_incoming(path, "principal", 0).media[0]


@pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
def test_export_names_never_leave_their_folder(tmp_path: Path) -> None:
    from storage.media import export_name, safe_filename

    folder = tmp_path / "export"
    folder.mkdir()
    nasty = [
        "../../etc/passwd",
        "..",
        ".",
        "/abs/path",
        "a/b\\c",
        "CON",
        "nul.txt",
        "x" * 500,
        "tên\x00có\x1fký tự",
        "  . . ",
        "Ảnh: toàn cảnh?*<>|",
        "...hidden",
        "—",
    ]
    for name in nasty:
        safe = safe_filename(name)
        target = (folder / safe).resolve()
        assert target.parent == folder.resolve(), name
        assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
        assert len(safe.encode()) <= 180
        target.write_text("ok")
    assert (
        export_name("Trường THCS Thị Trấn Điện Biên Đông", "Khai giảng")
        == "Trường THCS Thị Trấn Điện Biên Đông_Khai giảng"
    )
    assert export_name("THCS A/B", "Lễ: 20/11") == "THCS A B_Lễ 20 11"


class Counted:
    """A console chat that counts what the principal sends: each message and each tap is one answer
    (a photo is one message, as it is on every channel when sent one by one)."""

    def __init__(self, chat: Chat) -> None:
        self.chat, self.answers = chat, 0

    async def send(self, line: str) -> list[Reply]:
        self.answers += 1
        return await self.chat.send(line)

    async def press(self, label: str) -> list[Reply]:
        self.answers += 1
        return await self.chat.press(label)


async def accept_suggestions(walk: Counted, files: dict[str, Path]) -> list[Reply]:
    """An article with every suggestion taken: theme (last article's), when and where (the photo's)."""
    if "Gợi ý" in walk.chat.last.text:
        await walk.press("Dùng gợi ý")  # the theme of the previous article
    else:
        await walk.press("Hoạt động tiêu biểu")
    await walk.send("Ngày hội đọc sách")
    for role in ("wide", "speaker", "closeup"):
        await walk.send(f"/file {files[role]}")
    await walk.press("Dùng gợi ý")  # the date and the place the wide shot was taken
    await walk.send("Học sinh thi kể chuyện theo sách; toàn trường, 320 học sinh")
    await walk.send("Sôi nổi, 12 giải thưởng")
    if "Số điện thoại hoặc email" in walk.chat.last.text:
        await walk.send("0912 345 678")  # only until the bot has it
    await walk.send("Sáng 5/11, trường tổ chức ngày hội đọc sách cho toàn thể học sinh.")
    return await walk.press("Gửi")


async def test_a_complete_article_in_ten_answers(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    """Counted after /article (the command that opens the form) up to and including "Gửi"."""
    first = Counted(chat_as("principal"))
    await first.chat.send("/article")
    sent = await accept_suggestions(first, files)
    assert "Đã gửi Bài viết tháng 11/2026" in sent[0].text
    assert first.answers == 11  # the school's first article: the contact is typed once

    clock.advance(days=30)
    later = Counted(Chat(demo, "principal"))
    await later.chat.send("/article")
    sent = await accept_suggestions(later, files)
    assert "Đã gửi Bài viết tháng 12/2026" in sent[0].text
    assert later.answers == 10
    with demo.db.session() as s:
        rows = s.exec(
            select(Submission).where(Submission.kind == "article").order_by(col(Submission.id))
        ).all()
    assert [r.answers["contact"] for r in rows] == ["0912 345 678"] * 2
    assert [r.answers["author"] for r in rows] == ["Cô Lò Thị Lan"] * 2  # the profile's name
    for row in rows:  # every rule still held: three photos by role, the 5W1H, a text
        assert all(row.answers[k]["width"] >= 1280 for k in ("photo_wide", "photo_speaker", "photo_closeup"))
        assert row.answers["when"] == "2026-11-05" and "21.39167" in row.answers["where"]
        assert row.answers["what"] and row.answers["how"] and row.answers["body"]


async def test_the_review_screen_reads_as_the_article_with_one_edit_per_section(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    review = chat.last
    assert review.text.index("📰 NGÀY HỘI ĐỌC SÁCH") < review.text.index("05/11/2026, Sân trường")
    assert review.text.index("Sôi nổi, 12 giải thưởng") < review.text.index("Sáng 5/11, trường tổ chức")
    assert "Người viết: Cô Lò Thị Lan · Liên hệ: 0912 345 678" in review.text
    labels = [c.label for c in review.flat_choices()]
    assert labels == [
        "📤 Gửi",
        "✏️ Sửa: Chủ đề, tiêu đề",
        "✏️ Sửa: Ảnh, video",
        "✏️ Sửa: Thời gian, địa điểm, sự việc",
        "✏️ Sửa: Người viết, liên hệ",
        "✏️ Sửa: Nội dung, đường link",
        "✖️ Huỷ",
    ]


async def test_a_grouped_answer_changed_from_the_review_keeps_the_others(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    before = article_draft(demo).answers
    await chat.press("Sửa: Thời gian, địa điểm, sự việc")
    await chat.press("Sửa: Thời gian, địa điểm")
    assert "Đã có: 05/11/2026 · Sân trường PTDTBT THCS Pú Nhi" in chat.last.text
    refused = await chat.send("31/02/2026, sân vận động")  # no such date: nothing changes
    assert "Ngày chưa đúng" in refused[0].text and article_draft(demo).answers == before
    review = await chat.send("06/11/2026")  # the date alone
    assert "06/11/2026, Sân trường PTDTBT THCS Pú Nhi" in review[-1].text
    await chat.press("Sửa: Thời gian, địa điểm, sự việc")
    await chat.press("Sửa: Thời gian, địa điểm")
    await chat.send("Nhà văn hoá bản Pú Nhi")  # the place alone
    after = article_draft(demo).answers
    assert (after["when"], after["where"]) == ("2026-11-06", "Nhà văn hoá bản Pú Nhi")
    assert {k: after[k] for k in ("what", "how", "title", "body")} == {
        k: before[k] for k in ("what", "how", "title", "body")
    }
    await chat.press("Sửa: Thời gian, địa điểm, sự việc")
    back = await chat.press("Quay lại")  # the section's back: the review again, nothing changed
    assert "Xem lại" in back[-1].text and article_draft(demo).answers == after


async def test_the_text_can_be_rewritten_or_added_to(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Sửa: Nội dung, đường link")
    screen = await chat.press("Sửa: Nội dung")
    assert "Đã có: Sáng 5/11" in screen[-1].text
    await chat.press("Viết lại")
    assert "nội dung cũ sẽ được thay toàn bộ" in chat.last.text
    await chat.send("Bài viết mới hoàn toàn.")
    assert article_draft(demo).answers["body"] == "Bài viết mới hoàn toàn."
    await chat.press("Sửa: Nội dung, đường link")
    await chat.press("Sửa: Nội dung")
    await chat.press("Thêm đoạn")
    review = await chat.send("Đoạn thứ hai.")
    assert "Đã thêm đoạn: nội dung gồm 2 đoạn" in review[-1].text
    assert article_draft(demo).answers["body"] == "Bài viết mới hoàn toàn.\n\nĐoạn thứ hai."
    await chat.press("Sửa: Nội dung, đường link")
    await chat.press("Sửa: Nội dung")
    await chat.send("Đoạn thứ ba.")  # typed without choosing: added, nothing lost
    assert article_draft(demo).answers["body"].endswith("Đoạn thứ hai.\n\nĐoạn thứ ba.")


async def test_a_first_article_in_ten_answers_when_the_profile_has_the_phone(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    """A principal who gave a callback phone at registration (or in /profile) is not asked for the
    contact even the first time: ten answers from /article to "Gửi"."""
    principal = chat_as("principal")
    await principal.send("/profile")
    await principal.send("Lò Thị Lan")
    await principal.press("Hiệu trưởng")
    await principal.send("0912345678")
    await principal.press("Gửi")
    first = Counted(principal)
    await first.chat.send("/article")
    sent = await accept_suggestions(first, files)
    assert "Đã gửi Bài viết tháng 11/2026" in sent[0].text
    assert first.answers == 10
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
    assert (row.answers["contact"], row.answers["author"]) == ("0912345678", "Lò Thị Lan")
