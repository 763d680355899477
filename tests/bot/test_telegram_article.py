"""The monthly article over Telegram: photos as files and as photos, an album, videos by metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import select

from storage import queries as q
from storage.models import MediaFile, Submission
from tests.bot.test_telegram import (  # noqa: F401
    DISTRICT_OFFICER,
    PRINCIPAL,
    Tg,
    api_fixture,
    settings_fixture,
    tg_fixture,
)
from tests.fakes.telegram_api import FakeBotAPI, callback_update, edited_update, message_update, text_update
from tests.media.samples import jpeg
from tests.support import until

_counter = iter(range(1, 10_000))


def document(
    api: FakeBotAPI, content: bytes, name: str = "anh.jpg", mime: str = "image/jpeg", **extra: Any
) -> dict[str, Any]:
    """A file the fake can serve, as a message's `document`."""
    n = next(_counter)
    file_id = f"DOC{n}"
    api.add_file(file_id, content, f"documents/{name}")
    return {
        "file_id": file_id,
        "file_unique_id": f"U{n}",
        "file_name": name,
        "mime_type": mime,
        "file_size": len(content),
        **extra,
    }


def photo_sizes(api: FakeBotAPI, content: bytes, width: int, height: int) -> list[dict[str, Any]]:
    """A photo as Telegram sends it: a thumbnail and the largest size."""
    n = next(_counter)
    api.add_file(f"PH{n}", content, f"photos/{n}.jpg")
    return [
        {"file_id": f"TH{n}", "file_unique_id": f"TU{n}", "width": 90, "height": 68, "file_size": 900},
        {
            "file_id": f"PH{n}",
            "file_unique_id": f"PU{n}",
            "width": width,
            "height": height,
            "file_size": len(content),
        },
    ]


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


async def to_photos(tg: Tg) -> None:
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await tg.send(PRINCIPAL, "/article")
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Hoạt động tiêu biểu"))
    await tg.send(PRINCIPAL, "Ngày hội đọc sách")


async def test_a_whole_article_over_telegram(tg: Tg, tmp_path: Path) -> None:
    api = tg.api
    await to_photos(tg)
    small = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, document=document(api, jpeg(900, 600), "nho.jpg"))
    )
    assert "Ảnh quá nhỏ (900×600)" in texts(small)
    got = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, document=document(api, jpeg(2000, 1500, "red")))
    )
    assert "Ảnh 2/3" in texts(got)
    got = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, photo=photo_sizes(api, jpeg(1280, 960, "blue"), 1280, 960))
    )
    assert 'dạng "Tệp"' in texts(got) and "Ảnh 3/3" in texts(got)  # the one-time note about compression
    got = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, document=document(api, jpeg(1600, 1200, "green"), "c.jpg"))
    )
    assert "ngày nào, ở đâu" in texts(got)

    album = [
        message_update(
            PRINCIPAL,
            media_group_id="ALB1",
            document=document(api, jpeg(1400, 1000 + i, "white"), f"a{i}.jpg"),
        )
        for i in range(3)
    ]
    before = len(api.sent_to(PRINCIPAL.id))
    tg.api.push_update(*album)
    await until(lambda: len(api.sent_to(PRINCIPAL.id)) > before, "the album's reply")
    await until(lambda: not tg.channel._album_tasks, "the album handled")
    answers = api.sent_to(PRINCIPAL.id)[before:]
    assert len(answers) == 1 and "Đã nhận 3 ảnh (tổng 3/10)" in answers[0]["text"]
    assert "Đã lưu vào Ảnh thêm" in answers[0]["text"]  # extra photos, sent after the three roles

    for text in ("05/11/2026, Sân trường", "Học sinh thi kể chuyện, 320 học sinh", "Sôi nổi", "0912345678"):
        await tg.send(PRINCIPAL, text)
    got = await tg.send(PRINCIPAL, "Sáng 5/11, trường tổ chức ngày hội đọc sách.")
    assert "Xem lại Bài viết tháng" in texts(got)
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Ảnh, video"))
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Sửa: Video"))

    long_clip = {
        "file_id": "V1",
        "file_unique_id": "VU1",
        "width": 1920,
        "height": 1080,
        "duration": 130,
        "mime_type": "video/mp4",
        "file_size": 5_000_000,
    }
    got = await tg.push_for(PRINCIPAL, message_update(PRINCIPAL, video=long_clip))
    assert "Video dài 2 phút 10 giây; mỗi cảnh quay 30 giây – 1 phút." in texts(got)
    huge = {
        "file_id": "V2",
        "file_unique_id": "VU2",
        "width": 1280,
        "height": 720,
        "duration": 40,
        "mime_type": "video/mp4",
        "file_size": 60 * 1024 * 1024,
    }
    got = await tg.push_for(PRINCIPAL, message_update(PRINCIPAL, video=huge))
    assert "giữ theo tham chiếu Telegram" in texts(got)
    got = await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Xong"))
    assert "Xem lại Bài viết tháng" in texts(got)
    sent = await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Gửi"))
    assert "Đã gửi Bài viết tháng 11/2026 – đúng hạn" in texts(sent)

    with tg.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        files = s.exec(select(MediaFile)).all()
    assert row.answers["photo_speaker"]["kind"] == "photo"
    assert len(row.answers["photos_extra"]) == 3
    assert row.answers["videos"][0]["file_id"] == "V2" and row.answers["videos"][0]["note"] == "too_large"
    stored = [f for f in files if f.path]
    assert len(stored) == 6  # three roles and three extra photos, downloaded and kept by sha256
    for f in stored:
        assert (Path(tg.app.settings.media_dir) / f.path).is_file()
    by_reference = next(f for f in files if f.file_id == "V2")
    assert by_reference.path == "" and by_reference.size == 60 * 1024 * 1024


async def test_a_failed_download_keeps_the_reference(tg: Tg) -> None:
    await to_photos(tg)
    item = document(tg.api, jpeg(2000, 1500))
    tg.api.fail("getFile", 500, times=10)
    got = await tg.push_for(PRINCIPAL, message_update(PRINCIPAL, document=item))
    assert "giữ tham chiếu" in texts(got)
    with tg.app.db.session() as s:
        kept = s.exec(select(MediaFile)).one()
    assert kept.file_id == item["file_id"] and kept.path == "" and kept.note == "kept_by_reference"

    tg.api.clear_failures()  # Telegram answers again: the retry stores the file
    assert await tg.app.clockwork.retry_downloads() == 1
    with tg.app.db.session() as s:
        kept = s.exec(select(MediaFile)).one()
    assert kept.note == "" and kept.sha256 and (Path(tg.app.settings.media_dir) / kept.path).is_file()
    assert await tg.app.clockwork.retry_downloads() == 0


async def test_a_document_that_claims_jpeg_but_is_not(tg: Tg) -> None:
    await to_photos(tg)
    got = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, document=document(tg.api, b"%PDF-1.4 not a jpeg", "anh.jpg"))
    )
    assert "không phải là ảnh" in texts(got)


async def test_a_slow_download_holds_up_only_its_own_chat(tg: Tg) -> None:
    """Chats are handled side by side: while one principal's photo is still downloading, an officer's
    answer comes at once; the principal's next message waits its turn and is answered after the photo."""
    api = tg.api
    await to_photos(tg)
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    before = len(api.sent_to(PRINCIPAL.id))
    api.hold_files()
    try:
        api.push_update(message_update(PRINCIPAL, document=document(api, jpeg(2000, 1500, "red"))))
        api.push_update(text_update(PRINCIPAL, "/whoami"))
        asked = await tg.send(DISTRICT_OFFICER, "/whoami")
        assert asked and len(api.sent_to(PRINCIPAL.id)) == before  # the officer did not wait
    finally:
        api.release_files()
    await until(lambda: len(api.sent_to(PRINCIPAL.id)) >= before + 2, "the principal's two answers")
    answers = texts(api.sent_to(PRINCIPAL.id)[before:])
    assert "Ảnh 2/3" in answers and answers.index("Ảnh 2/3") < answers.index("Tài khoản: Hiệu trưởng")
    turns = tg.channel.turns
    await until(lambda: turns is not None and not turns.last, "no chat's line kept once it is idle")


async def test_an_album_then_xong_at_once_keeps_the_album(tg: Tg) -> None:
    """A tap while an album is still being gathered waits for it: the photos are kept first (as extra
    photos, the three roles being filled). The tap came from the screen before the album, so it is
    answered as an old button with the current step (nothing is lost; one more tap moves on)."""
    api = tg.api
    await to_photos(tg)
    for colour, (w, h) in (("red", (2000, 1500)), ("blue", (1600, 1200)), ("green", (1280, 960))):
        photo = document(api, jpeg(w, h, colour), f"{colour}.jpg")
        await tg.push_for(PRINCIPAL, message_update(PRINCIPAL, document=photo))
    done = tg.button(PRINCIPAL, "Hôm qua")
    album = [
        message_update(
            PRINCIPAL,
            media_group_id="ALB9",
            document=document(api, jpeg(1400, 1000 + i, "white"), f"b{i}.jpg"),
        )
        for i in range(3)
    ]
    before, handled = len(api.sent_to(PRINCIPAL.id)), tg.channel.handled
    api.push_update(*album, callback_update(PRINCIPAL, done))
    await until(lambda: tg.channel.handled >= handled + 4, "the album's parts and the tap handled")
    answers = texts(api.sent_to(PRINCIPAL.id)[before:])
    assert answers.index("Đã nhận 3 ảnh (tổng 3/10)") < answers.index("Nút này đã cũ")
    assert len(article_answers(tg)["photos_extra"]) == 3
    moved = await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Hôm qua"))
    assert "Đã ghi ngày" in texts(moved) and len(article_answers(tg)["photos_extra"]) == 3


def article_answers(tg: Tg) -> dict[str, Any]:
    """The principal's article draft answers, as stored."""
    with tg.app.db.session() as s:
        user = q.get_user(s, "telegram", str(PRINCIPAL.id))
        assert user is not None and user.id is not None
        draft = q.get_draft(s, user.id, "article")
    assert draft is not None
    return dict(draft.answers)


async def test_editing_a_sent_answer_changes_the_draft(tg: Tg) -> None:
    """Telegram's edited_message: the answer the message gave is changed (a grouped one in part, a
    paragraph of the text in place); a wrong edit keeps the answer; after sending, it is said plainly."""
    api = tg.api
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    command = text_update(PRINCIPAL, "/article")
    await tg.push_for(PRINCIPAL, command)
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Hoạt động tiêu biểu"))
    title = text_update(PRINCIPAL, "Ngày hội đọc sácj")
    await tg.push_for(PRINCIPAL, title)
    for colour, (w, h) in (("red", (2000, 1500)), ("blue", (1600, 1200)), ("green", (1280, 960))):
        photo = document(api, jpeg(w, h, colour), f"{colour}.jpg")
        await tg.push_for(PRINCIPAL, message_update(PRINCIPAL, document=photo))
    when = text_update(PRINCIPAL, "05/11/2026, Sân trường")
    await tg.push_for(PRINCIPAL, when)

    got = await tg.push_for(PRINCIPAL, edited_update(title, "Ngày hội đọc sách"))
    assert "Đã cập nhật Tiêu đề theo tin nhắn thầy/cô vừa sửa." in texts(got)
    assert "Hoạt động gì, những ai tham gia?" in texts(got)  # still on the step it was on
    assert article_answers(tg)["title"] == "Ngày hội đọc sách"
    bad = await tg.push_for(PRINCIPAL, edited_update(when, "20/12/2026, Sân trường"))
    assert "chưa tới" in texts(bad) and "vẫn giữ câu trả lời trước của Thời gian, địa điểm" in texts(bad)
    assert article_answers(tg)["when"] == "2026-11-05"
    await tg.push_for(PRINCIPAL, edited_update(when, "06/11/2026"))  # the date alone: the place is kept
    assert (article_answers(tg)["when"], article_answers(tg)["where"]) == ("2026-11-06", "Sân trường")

    for text in ("Học sinh thi kể chuyện; 320 học sinh", "Sôi nổi", "0912345678"):
        await tg.send(PRINCIPAL, text)
    first = text_update(PRINCIPAL, "Đoạn một có lỗi chíng tả.")
    await tg.push_for(PRINCIPAL, first)
    await tg.send(PRINCIPAL, "Đoạn hai.")  # the rest of a long text, on the review screen
    got = await tg.push_for(PRINCIPAL, edited_update(first, "Đoạn một đã sửa chính tả."))
    assert "Đã cập nhật Nội dung" in texts(got) and "Xem lại Bài viết tháng" in texts(got)
    assert article_answers(tg)["body"] == "Đoạn một đã sửa chính tả.\n\nĐoạn hai."

    before = len(api.sent_to(PRINCIPAL.id))
    await tg.push(edited_update(command, "/articles"))  # a message that answered no step: let be
    assert len(api.sent_to(PRINCIPAL.id)) == before

    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Gửi"))
    late = await tg.push_for(PRINCIPAL, edited_update(title, "Ngày hội đọc sách 2026"))
    assert "Bài viết tháng đã được gửi, nên việc sửa tin nhắn không thay đổi bài đã gửi" in texts(late)
    with tg.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
    assert row.answers["title"] == "Ngày hội đọc sách" and row.answers["when"] == "2026-11-06"
    assert "_msgs" not in row.answers  # which message answered what stays with the draft
