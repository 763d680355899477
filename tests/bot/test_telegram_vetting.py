"""Vetting over Telegram: a 6,000-character article arrives whole and in order, an article goes from the
school's draft to published by the officer's buttons, and /find works without accents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.channels.telegram.wire import MAX_TEXT
from tests.bot.test_telegram import DISTRICT_OFFICER, Tg, api_fixture, settings_fixture, tg_fixture  # noqa: F401
from tests.bot.test_telegram_article import texts
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files
from tests.handlers.test_vetting import LINK, paragraphs, send_article, text_of


def calls_to_chat(tg: Tg, since: int) -> list[tuple[str, dict[str, Any]]]:
    """The bot's successful sends to the officer's chat after call number `since`, in order."""
    return [
        (c.method, c.params)
        for c in tg.api.calls[since:]
        if c.status == 200 and str(c.params.get("chat_id")) == str(DISTRICT_OFFICER.id)
    ]


async def test_a_6000_character_article_arrives_whole_and_in_order(tg: Tg, tmp_path: Path) -> None:
    body = paragraphs(6, size=1100)
    await send_article(Chat(tg.app, "principal", "Cô Lò Thị Lan"), photo_files(tmp_path), body)
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    await tg.send(DISTRICT_OFFICER, "/review")
    before = len(tg.api.calls)
    await tg.press(DISTRICT_OFFICER, tg.button(DISTRICT_OFFICER, "Mở #1"))
    sent = calls_to_chat(tg, before)
    methods = [m for m, _ in sent]
    messages = [p["text"] for m, p in sent if m == "sendMessage"]
    assert len(messages) >= 3 and all(len(m) <= MAX_TEXT for m in messages)  # the text took two messages
    assert methods.index("sendMediaGroup") > methods.index("sendMessage")  # the photos after the text…
    assert methods[-1] == "sendMessage" and "Quá trình" in messages[-1]  # …the life and actions last
    assert sent[-1][1]["reply_markup"]["inline_keyboard"][0][0]["text"] == "✅ Duyệt"
    placed = [(i, m.index(p)) for p in body for i, m in enumerate(messages) if p in m]
    assert len(placed) == len(body) and placed == sorted(placed)  # each paragraph whole, in order
    assert "".join(messages).count("Đoạn ") == len(body)


async def test_from_draft_to_published_by_buttons_on_telegram(tg: Tg, tmp_path: Path) -> None:
    principal = Chat(tg.app, "principal", "Cô Lò Thị Lan")
    await send_article(principal, photo_files(tmp_path), ["Sáng 5/11, trường tổ chức ngày hội đọc sách."])
    Chat(tg.app, "leader")  # the console's live session now: the principal's notices are kept for later
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    me = DISTRICT_OFFICER
    await tg.send(me, "/menu")
    for label in ("Thẩm định", "Mở #1", "Trả lại", "Ảnh chưa đạt", "Gửi"):
        answer = await tg.press(me, tg.button(me, label))
    assert "Đã trả lại #1" in texts(answer)
    await principal.send("/menu")  # the kept notice comes first, with its edit button
    await principal.press("Sửa ngay")
    await principal.press("Sửa: Chủ đề, tiêu đề")
    await principal.press("Sửa: Tiêu đề")
    await principal.send("Ngày hội đọc sách 2026")
    await principal.press("Gửi")

    for label in ("Mục chờ thẩm định", "Mở #1", "Duyệt", "Đã đăng #1"):
        answer = await tg.press(me, tg.button(me, label))
    assert "Đường link bài đã đăng" in texts(answer)
    await tg.send(me, LINK)
    done = await tg.press(me, tg.button(me, "Gửi"))
    assert "đã đăng" in texts(done)
    assert LINK in text_of(await principal.send("/menu"))  # the school was told, with the link
    life = await tg.press(me, tg.button(me, "Mở #1"))
    history = texts(life)
    assert "Tiêu đề (thêm 1 từ): Ngày hội đọc sách [+2026+]" in history
    order = ["Gửi, chờ duyệt", "Trả lại bởi", "Gửi lại (bản 2)", "Duyệt bởi", "Đăng bởi Minh Nguyễn Văn"]
    assert [history.index(x) for x in order] == sorted(history.index(x) for x in order)


async def test_find_without_accents_on_telegram(tg: Tg, tmp_path: Path) -> None:
    await send_article(
        Chat(tg.app, "principal", "Cô Lò Thị Lan"), photo_files(tmp_path), ["Ngày hội đọc sách ở Pú Nhi."]
    )
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    found = await tg.send(DISTRICT_OFFICER, "/find pu nhi thang 11")
    assert "“pu nhi” · tháng 11/2026: 1 mục" in texts(found)
    opened = await tg.press(DISTRICT_OFFICER, tg.button(DISTRICT_OFFICER, "Mở #1"))
    assert "Ngày hội đọc sách ở Pú Nhi." in texts(opened)
