"""Review over Telegram: an officer opens an article and receives its photos as an album, then approves."""

from __future__ import annotations

from pathlib import Path

from tests.bot.test_telegram import DISTRICT_OFFICER, Tg, api_fixture, settings_fixture, tg_fixture  # noqa: F401
from tests.bot.test_telegram_article import texts
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article


async def test_an_officer_on_telegram_reviews_an_article(tg: Tg, tmp_path: Path) -> None:
    principal = Chat(tg.app, "principal", "Cô Lò Thị Lan")
    files = photo_files(tmp_path)
    await write_article(principal, files)
    await principal.press("Gửi")

    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    queue = await tg.send(DISTRICT_OFFICER, "/review")
    assert "1 mục chờ thẩm định" in texts(queue)
    before = len(tg.api.calls_to("sendMediaGroup"))
    opened = await tg.press(DISTRICT_OFFICER, tg.button(DISTRICT_OFFICER, "Mở #1"))
    assert "Bài viết tháng" in texts(opened)
    albums = tg.api.calls_to("sendMediaGroup")[before:]
    assert len(albums) == 1
    media = albums[0]["media"]
    assert [m["caption"] for m in media] == ["Ảnh toàn cảnh 1", "Ảnh người phát biểu 1", "Ảnh cận cảnh 1"]
    assert all(m["type"] == "photo" for m in media)

    done = await tg.press(DISTRICT_OFFICER, tg.button(DISTRICT_OFFICER, "Duyệt"))
    assert "Đã duyệt #1" in texts(done)
    assert "đã được duyệt" in principal.text()  # the principal's console chat is open: shown at once
    again = await tg.press(DISTRICT_OFFICER, "rv:a:1:1")
    assert "đã được xử lý" in texts(again)
