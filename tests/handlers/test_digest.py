"""The digest: new items by level, and always the standing picture (who has not sent, open incidents);
the clock's daily digest goes only when something is new."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import App
from handlers.calendar import FrozenClock
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import add_district, add_user, fill_incident


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


async def test_the_digest_lists_what_is_new_in_scope(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    officer = chat_as("officer")
    empty = (await officer.send("/digest"))[0].text
    assert "không có mục mới" in empty
    # The standing picture even so: every school of the district, by level, registered or not.
    assert (
        "📝 Bài viết tháng 11/2026 (hạn 15/11/2026, còn 5 ngày): 0/5 trường đã nộp; chưa nộp 1, chưa đăng ký 4."
        in empty
    )
    assert (
        "• THCS: 0/2 – chưa nộp (1): Trường PTDTBT THCS Pú Nhi; chưa đăng ký (1): Trường THCS Thị Trấn"
        in empty
    )
    assert "🚨 Không có sự cố nào chờ xác nhận." in empty
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    digest = await chat_as("officer").send("/digest")
    text = digest[0].text
    assert "1 mục mới" in text and "Cấp THCS:" in text
    assert "#1 · Bài viết tháng · Trường PTDTBT THCS Pú Nhi · Ngày hội đọc sách" in text
    assert "Đang chờ thẩm định: 1 mục." in text
    assert "1/5 trường đã nộp; chưa nộp 0, chưa đăng ký 4." in text
    article = text.split("Tình hình hiện tại")[1].split("Báo cáo năm 2026")[0]
    assert "Trường Mầm non Hoa Ban" in article and "Pú Nhi" not in article
    assert (
        "📝 Báo cáo năm 2026 (hạn 01/12/2026, còn 21 ngày): 0/5 trường đã nộp; chưa nộp 1, chưa đăng ký 4."
        in text
    )
    assert any(c.value == "o:1" for c in digest[0].flat_choices())


async def test_the_digest_shows_nothing_out_of_scope(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Khác")
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    digest = await chat_as("other_officer").send("/digest")
    assert "không có mục mới" in digest[0].text and "Pú Nhi" not in digest[0].text
    assert "Trường" not in digest[0].text  # a district with no school: nobody else's schools


async def test_an_old_submission_is_not_new(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    clock.advance(days=2)
    digest = await chat_as("officer").send("/digest")
    assert "không có mục mới" in digest[0].text and "#1 ·" not in digest[0].text
    assert "1/5 trường đã nộp" in digest[0].text  # but the standing picture still counts it


async def test_the_daily_digest_goes_through_the_outbox_once_a_day(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], clock: FrozenClock
) -> None:
    from datetime import datetime

    from sqlmodel import select

    from handlers.digest import sweep_digests
    from storage.models import Outbox

    def sweep() -> int:
        return sweep_digests(demo.db, demo.clock, demo.settings, demo.catalog)

    def digests() -> list[Outbox]:
        with demo.db.session() as s:
            return list(s.exec(select(Outbox).where(Outbox.kind == "digest")))

    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    assert sweep() == 0  # 09:00: not yet
    clock.set(datetime(2026, 11, 10, 16, 31))
    assert sweep() == 1 and sweep() == 0  # once per officer and day
    rows = digests()
    assert rows[0].period == "2026-11-10" and "Ngày hội đọc sách" in rows[0].payload["text"]
    clock.set(datetime(2026, 11, 11, 16, 31))
    assert sweep() == 0  # nothing new since yesterday's digest: no digest
    clock.set(datetime(2026, 11, 14, 16, 31))  # a Saturday
    await write_article(principal, files)
    await principal.press("Gửi")
    assert sweep() == 0
    clock.set(datetime(2026, 11, 16, 16, 31))  # Monday: the weekend's article
    assert sweep() == 1
    assert "1 mục mới" in digests()[-1].payload["text"]


async def test_an_incident_raised_minutes_earlier_is_in_the_province_officers_digest(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    add_user(demo, "prov_officer", "officer", "SGD-DEMO", "Chị Sở Một")
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    clock.advance(minutes=3)
    replies = await chat_as("prov_officer").send("/digest")  # the alert kept for them comes first
    text = next(r.text for r in replies if r.text.startswith("📰"))
    assert "1 mục mới" in text
    assert "🚨 Sự cố mới: #1 Trường PTDTBT THCS Pú Nhi (Nghiêm trọng)" in text
    assert "🚨 Sự cố chưa ai xác nhận (1): #1 Trường PTDTBT THCS Pú Nhi (Nghiêm trọng)" in text


async def test_a_leader_gets_the_digest_read_only_and_no_review_entry_in_the_menu(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    leader = chat_as("leader")
    text = (await leader.send("/digest"))[0].text
    assert text.splitlines()[1].startswith("👁 Chế độ chỉ xem")
    assert "#1 · Bài viết tháng" in text
    menu = await leader.send("/menu")
    values = [c.value for c in menu[0].flat_choices()]
    assert "m:review" not in values and "m:digest" in values and "m:status" in values
    officer_menu = await chat_as("officer").send("/menu")
    assert "m:review" in [c.value for c in officer_menu[0].flat_choices()]


async def test_approved_articles_not_yet_published_are_one_button_away(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    from storage.models import Submission

    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    with demo.db.session() as s:
        s.execute(update(Submission).where(col(Submission.id) == 1).values(status="approved"))
    officer = chat_as("officer")
    digest = await officer.send("/digest")
    assert "🌐 Đã duyệt, chưa ghi nhận đăng: 1 bài." in digest[0].text
    listed = await officer.press("Bài đã duyệt, chờ ghi nhận đăng")
    assert any(c.label == "🌐 Đã đăng #1" for c in listed[0].flat_choices())
    leader = await chat_as("leader").send("/digest")  # leaders read; marking is the officers' work
    assert "chưa ghi nhận đăng: 1 bài" in leader[0].text
    assert all(not c.value.startswith("pb:") for c in leader[0].flat_choices())
