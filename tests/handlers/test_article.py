"""The monthly article through the console channel: rules, media, periods, versions, status."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.app import open_app
from handlers.types import Incoming, Kind
from storage.models import MediaFile, Submission, SubmissionVersion, User
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import draft_of
from tests.media.samples import jpeg, mp4, write


def article_draft(app, user="principal"):
    return draft_of(app, user, "article")


def snapshot(app) -> tuple:
    d = article_draft(app)
    return (d.step, d.mode, d.answers, d.version)


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


async def test_a_whole_article_is_stored_with_its_photos(demo, chat_as, files) -> None:
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
        assert stored.is_file() and stored.name.startswith(m.sha256)
        assert (
            stored.read_bytes()
            == files[{2000: "wide", 1600: "speaker", 1280: "closeup"}[m.width]].read_bytes()
        )


async def test_photo_rules_refuse_with_the_reason_and_keep_the_draft(demo, chat_as, files, tmp_path) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    before = snapshot(demo)
    cases = [
        (f"/file {files['small']}", "Ảnh nhỏ quá (800×600)"),
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


async def test_the_same_photo_twice_is_refused(demo, chat_as, files, tmp_path) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_speaker")
    copy = write(tmp_path, "ban-sao.jpg", files["wide"].read_bytes())
    before = snapshot(demo)
    replies = await chat.send(f"/file {copy}")
    assert "đã gửi rồi" in replies[0].text and snapshot(demo) == before


async def test_exif_date_and_place_are_offered(demo, chat_as, files) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="what")
    replies = await chat.send("Học sinh thi kể chuyện")
    assert "Gợi ý: Vị trí chụp ảnh: https://maps.google.com/?q=21.39167,103.02000" in replies[-1].text
    await chat.press("Dùng gợi ý")
    assert "Gợi ý: 05/11/2026" in chat.last.text
    await chat.press("Dùng gợi ý")
    answers = article_draft(demo).answers
    assert answers["when"] == "2026-11-05" and "21.39167" in answers["where"]


async def test_extra_photos_album_and_limit(demo, chat_as, files, tmp_path) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photos_extra")
    good = [_file_media(write(tmp_path, f"album{i}.jpg", jpeg(1300 + i, 1000, "white"))) for i in range(3)]
    album = (*good, _file_media(files["small"]))
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.MEDIA, media=album, update_id="album")
    )
    assert len(replies) == 1  # one reply for the whole album
    assert "Đã nhận 3 ảnh (tổng 3/10); 1 tệp không đạt." in replies[0].text
    many = tuple(_file_media(write(tmp_path, f"m{i}.jpg", jpeg(1300, 1000 + i, "black"))) for i in range(9))
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.MEDIA, media=many, update_id="many")
    )
    assert "tổng 10/10" in replies[0].text and "không đạt" in replies[0].text
    assert len(article_draft(demo).answers["photos_extra"]) == 10


async def test_photos_sent_together_fill_the_roles_in_order(demo, chat_as, files) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="photo_wide")
    media = tuple(_file_media(files[k]) for k in ("wide", "speaker", "closeup", "extra"))
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.MEDIA, media=media, update_id="all")
    )
    answers = article_draft(demo).answers
    assert answers["photo_wide"]["width"] == 2000 and answers["photo_speaker"]["width"] == 1600
    assert answers["photo_closeup"]["width"] == 1280 and len(answers["photos_extra"]) == 1
    assert "Ảnh thêm" in replies[-1].text


async def test_videos_by_metadata_and_a_link(demo, chat_as, files, tmp_path) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="videos")
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


async def test_text_in_several_messages_or_a_link_at_least_one(demo, chat_as, files) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="body")
    long_part = "Đoạn dài. " * 500  # beyond one Telegram message
    await chat.send(long_part)
    await chat.send("Đoạn cuối.")
    await chat.press("Xong")
    body = article_draft(demo).answers["body"]
    assert body.startswith("Đoạn dài.") and body.endswith("Đoạn cuối.") and len(body) > 4096
    assert any("Bỏ qua" in c.label for c in chat.last.flat_choices())  # the link is optional now

    other = Chat(demo, "principal")
    await other.send("/cancel")
    await write_article(other, files, stop_before="body")
    await other.press("Xong")  # no text: the link becomes required
    assert not any("Bỏ qua" in c.label for c in other.last.flat_choices())
    before = snapshot(demo)
    replies = await other.send("thcspunhi.edu.vn bài viết")
    assert "Đường link chưa đúng" in replies[0].text and snapshot(demo) == before
    await other.send("https://thcspunhi.edu.vn/bai-viet")
    assert article_draft(demo).answers["link"] == "https://thcspunhi.edu.vn/bai-viet"


async def test_dates_in_the_future_or_over_a_year_old_are_refused(demo, chat_as, files) -> None:
    chat = chat_as("principal")
    await write_article(chat, files, stop_before="when")
    before = snapshot(demo)
    replies = await chat.send("20/11/2026")
    assert "chưa tới" in replies[0].text
    replies = await chat.send("01/10/2025")
    assert "quá xa" in replies[0].text
    assert snapshot(demo) == before


async def test_resume_after_a_rebuild_in_the_middle_of_the_photos(
    settings, clock, demo, chat_as, files
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


async def test_late_after_the_15th_and_the_second_article_of_a_month(demo, chat_as, files, clock) -> None:
    clock.advance(days=7)  # 17 November
    chat = chat_as("principal")
    await write_article(chat, files)
    assert "nộp muộn" in chat.last.text
    replies = await chat.press("Gửi")
    assert "Nộp muộn" in replies[0].text
    await write_article(chat, files)  # November is fulfilled: the next one counts for December
    assert "Tính cho: Tháng 12/2026 (hạn 15/12) – đúng hạn" in chat.last.text
    await chat.press("Sửa: Tính cho")
    await chat.press("Tháng 11/2026")
    assert "Tính cho: Tháng 11/2026" in chat.last.text
    await chat.press("Gửi")
    with demo.db.session() as s:
        rows = s.exec(select(Submission).where(Submission.kind == "article").order_by(Submission.id)).all()
    assert [(r.period, r.late) for r in rows] == [("2026-11", True), ("2026-11", True)]


async def test_edit_until_reviewed_and_after_return_keeping_versions(demo, chat_as, files) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    status = await chat.send("/mystatus")
    assert "Đã nộp 10/11, đúng hạn · Chờ duyệt" in status[0].text
    await chat.press("Sửa bài tháng 11/2026")
    assert "Sửa Bài viết tháng đã gửi" in chat.last.text
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
        versions = s.exec(select(SubmissionVersion).order_by(SubmissionVersion.version)).all()
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
    assert "không sửa được" in replies[0].text


async def test_another_schools_article_cannot_be_edited(demo, chat_as, files) -> None:
    from tests.handlers.helpers import add_user

    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    add_user(demo, "other", "principal", "PGD-DEMO", "Thầy Khác")
    with demo.db.session() as s:
        from storage import queries as q

        other = q.get_user(s, "console", "other")
        other.school_id = q.school_by_code(s, "TH-THITRAN").id
        s.add(other)
        row = s.exec(select(Submission)).one()
    replies = await demo.dispatcher.handle(
        Incoming("console", "other", "other", Kind.CHOICE, choice=f"se:{row.id}", update_id="steal")
    )
    assert "Không tìm thấy" in replies[0].text


async def test_start_from_last_months_copies_only_the_fixed_parts(demo, chat_as, files, clock) -> None:
    chat = chat_as("principal")
    await write_article(chat, files)
    await chat.press("Gửi")
    clock.advance(days=30)
    await chat.send("/article")
    await chat.press("Dùng lại")
    answers = article_draft(demo).answers
    assert answers["theme"] == "s:activity" and answers["author"] == "Cô Lò Thị Lan"
    assert "title" not in answers and "photo_wide" not in answers
    assert answers["period"] == "2026-12"


async def test_the_offices_themes_are_offered(demo, chat_as, tmp_path) -> None:
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


async def test_my_status_over_six_months(demo, chat_as, files, clock) -> None:
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


def _file_media(path: Path):
    from bot.channels.console import file_incoming

    return file_incoming(path, "principal", 0).media[0]


@pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
def test_export_names_never_leave_their_folder(tmp_path) -> None:
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
