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
