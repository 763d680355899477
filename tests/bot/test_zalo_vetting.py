"""Vetting over Zalo: a 6,000-character article reaches an officer whole and in order, in messages
under Zalo's 2,000-character limit, cut only between paragraphs; the actions still answer by number."""

from __future__ import annotations

from pathlib import Path

from bot.channels.zalo import MAX_TEXT
from tests.bot.test_zalo import OFFICER, Zl, api_fixture, settings_fixture, zl_fixture  # noqa: F401
from tests.bot.test_zalo import _loopback_only as _loopback_only  # nothing leaves 127.0.0.1
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files
from tests.handlers.test_vetting import paragraphs, send_article, the_article


async def test_a_6000_character_article_reaches_an_officer_on_zalo_whole(zl: Zl, tmp_path: Path) -> None:
    body = paragraphs(6, size=1100)
    await send_article(Chat(zl.app, "principal", "Cô Lò Thị Lan"), photo_files(tmp_path), body)
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    await zl.send(OFFICER, "/review")
    before = len(zl.api.texts_to(OFFICER.id))
    await zl.pick(OFFICER, "Mở #1")
    messages = zl.api.texts_to(OFFICER.id)[before:]
    assert len(messages) >= 4 and all(len(m) <= MAX_TEXT for m in messages)
    placed = [(i, m.index(p)) for p in body for i, m in enumerate(messages) if p in m]
    assert len(placed) == len(body) and placed == sorted(placed)  # each paragraph whole, in order
    done = await zl.pick(OFFICER, "Duyệt")
    assert "Đã duyệt #1" in done and the_article(zl.app).status == "approved"
