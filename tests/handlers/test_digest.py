"""The officer's digest: new items by level, counts, missing schools; nothing new means no digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import add_district, add_user


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


async def test_the_digest_lists_what_is_new_in_scope(demo, chat_as, files) -> None:
    officer = chat_as("officer")
    empty = await officer.send("/digest")
    assert "Không có gì mới" in empty[0].text
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    digest = await chat_as("officer").send("/digest")
    text = digest[0].text
    assert "1 mục mới" in text and "Cấp THCS:" in text
    assert "#1 · Bài viết tháng · Trường PTDTBT THCS Pú Nhi · Ngày hội đọc sách" in text
    assert "Đang chờ thẩm định: 1 mục." in text
    assert "Chưa nộp Bài viết tháng 11/2026: 4 trường (còn 5 ngày)" in text
    assert "Trường Mầm non Hoa Ban" in text and "Pú Nhi," not in text.split("Chưa nộp")[1]
    assert any(c.value == "o:1" for c in digest[0].flat_choices())


async def test_the_digest_shows_nothing_out_of_scope(demo, chat_as, files) -> None:
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Khác")
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    digest = await chat_as("other_officer").send("/digest")
    assert "Không có gì mới" in digest[0].text


async def test_an_old_submission_is_not_new(demo, chat_as, files, clock) -> None:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")
    clock.advance(days=2)
    digest = await chat_as("officer").send("/digest")
    assert "Không có gì mới" in digest[0].text


async def test_the_daily_digest_goes_through_the_outbox_once_a_day(demo, chat_as, files, clock) -> None:
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
