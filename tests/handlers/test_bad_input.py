"""Bad input: each gets a short, clear answer in the user's language; the draft is unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from handlers.types import Incoming, Kind, Media
from tests.conftest import Chat
from tests.handlers.helpers import WHAT, fill_incident, snapshot

GENERIC = "Xin lỗi, đã có lỗi"


def incoming(user: str, n: int, **fields: Any) -> Incoming:
    return Incoming("console", user, user, fields.pop("kind", Kind.TEXT), update_id=f"bad-{n}", **fields)


BAD_AT_TEXT_STEP = [
    (dict(text=""), "trống"),
    (dict(text="   \n  "), "trống"),
    (dict(text="x" * 4097), "quá dài"),
    (dict(text="abc\x00\x01\x02def"), "ký tự không hợp lệ"),
    (dict(text="😀😀🎉"), "bằng chữ"),
    (dict(text="!!! ??? ..."), "bằng chữ"),
    (dict(kind=Kind.STICKER), "trả lời bằng chữ"),
    (dict(kind=Kind.LOCATION), "trả lời bằng chữ"),
    (dict(kind=Kind.VOICE), "trả lời bằng chữ"),
    (dict(kind=Kind.CONTACT), "trả lời bằng chữ"),
    (dict(kind=Kind.OTHER), "trả lời bằng chữ"),
    (
        dict(kind=Kind.MEDIA, media=(Media(kind="document", file_id="abc", mime_type="application/pdf"),)),
        "trả lời bằng chữ",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), BAD_AT_TEXT_STEP)
async def test_bad_input_at_a_text_step(
    demo: App, chat_as: Callable[[str], Chat], fields: dict[str, Any], expected: str
) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    before = snapshot(demo, "principal")
    replies = await demo.dispatcher.handle(incoming("principal", 1, **fields))
    assert expected in replies[0].text
    assert "Bước 1/9" in replies[0].text  # the question is asked again
    assert len(replies[0].text) < 400
    assert snapshot(demo, "principal") == before


async def test_a_file_sent_from_the_console_at_a_text_step(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    photo = tmp_path / "anh.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"0" * 100)
    chat = chat_as("principal")
    await chat.send("/incident")
    before = snapshot(demo, "principal")
    replies = await chat.send(f"/file {photo}")
    assert "trả lời bằng chữ" in replies[0].text
    replies = await chat.send(f"'{photo}'")  # dragged into the terminal
    assert "trả lời bằng chữ" in replies[0].text
    assert snapshot(demo, "principal") == before


@pytest.mark.parametrize("text", ["32/13/2026", "ngày mai", "abc", "31/02/2026", "15/11/2099"])
async def test_bad_dates(demo: App, chat_as: Callable[[str], Chat], text: str) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    before = snapshot(demo, "principal")
    replies = await chat.send(text)
    assert "Bước 2/9" in replies[0].text
    assert "ngày" in replies[0].text.lower() or "Ngày" in replies[0].text
    assert snapshot(demo, "principal") == before


@pytest.mark.parametrize("text", ["05/11/2026", "5/11", "hôm nay", "Hom qua", "9-11-26", "20/12"])
async def test_good_dates(demo: App, chat_as: Callable[[str], Chat], text: str) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    replies = await chat.send(f"{text} 8:00")  # a day and the time of day
    assert "Bước 3/9" in replies[0].text


async def test_unknown_command_in_the_middle_of_a_form(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    before = snapshot(demo, "principal")
    replies = await chat.send("/xyz")
    assert "Không có lệnh /xyz" in replies[0].text
    assert "Bước 2/9" in replies[1].text  # the user's place is shown again
    assert snapshot(demo, "principal") == before


async def test_a_known_command_in_the_middle_of_a_form_leaves_the_draft(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    before = snapshot(demo, "principal")
    for command in ("/help", "/whoami", "/incidents", "/language"):
        replies = await chat.send(command)
        assert replies and GENERIC not in replies[0].text
    assert snapshot(demo, "principal") == before
    replies = await chat.send("hôm nay 8:00")
    assert "Bước 3/9" in replies[-1].text


async def test_typing_at_a_choice_step_asks_to_pick(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat, stop_before="severity", skip_actions=True)
    before = snapshot(demo, "principal")
    replies = await chat.send("rất rất nặng")
    assert "Vui lòng chọn" in replies[0].text and snapshot(demo, "principal") == before
    replies = await demo.dispatcher.handle(incoming("principal", 7, kind=Kind.STICKER))
    assert "Vui lòng chọn" in replies[0].text and snapshot(demo, "principal") == before


async def test_done_with_nothing_chosen_is_refused(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat, stop_before="networks")
    before = snapshot(demo, "principal")
    replies = await chat.press("Xong")
    assert "ít nhất một" in replies[0].text
    assert snapshot(demo, "principal") == before


async def test_text_at_the_review_screen_changes_nothing(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat)
    before = snapshot(demo, "principal")
    replies = await chat.send("gửi luôn đi")
    assert "Vui lòng chọn Gửi, Sửa hoặc Huỷ" in replies[0].text
    assert snapshot(demo, "principal") == before


async def test_unregistered_user_gets_the_explanation_for_anything(demo: App) -> None:
    updates: list[dict[str, Any]] = [
        dict(text="xin chào bạn"),
        dict(kind=Kind.STICKER),
        dict(kind=Kind.COMMAND, command="incident"),
    ]
    for n, fields in enumerate(updates):
        replies = await demo.dispatcher.handle(incoming("stranger", n, **fields))
        assert "chưa đăng ký" in replies[0].text


async def test_each_role_reaches_only_its_own_handlers(demo: App, chat_as: Callable[[str], Chat]) -> None:
    officer = chat_as("officer")
    replies = await officer.send("/incident")
    assert "không dành cho" in replies[0].text
    principal = chat_as("principal")
    replies = await demo.dispatcher.handle(incoming("principal", 9, kind=Kind.CHOICE, choice="k:1"))
    assert "không dành cho" in replies[0].text
    replies = await demo.dispatcher.handle(incoming("officer", 10, kind=Kind.CHOICE, choice="m:incident"))
    assert "không dành cho" in replies[0].text
    menu = await principal.send("/menu")
    officer_menu = await officer.send("/menu")
    assert any(c.value == "m:incident" for c in menu[0].flat_choices())
    assert not any(c.value == "m:incident" for c in officer_menu[0].flat_choices())


async def test_language_switch_is_kept(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    replies = await chat.send("/language en")
    assert replies[0].text == "Switched to English."
    replies = await chat.send("/incident")
    assert "Step 1/9" in replies[-1].text
    replies = await chat.send("/language xx")
    assert "No such language" in replies[0].text
    await chat.send("/language")
    replies = await chat.press("Tiếng Việt")
    assert replies[0].text == "Đã chuyển sang tiếng Việt."


async def test_redelivered_update_is_processed_once(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat_as("principal")
    msg = incoming("principal", 42, kind=Kind.COMMAND, command="incident")
    first = await demo.dispatcher.handle(msg)
    second = await demo.dispatcher.handle(msg)
    assert first and second == []


async def test_an_internal_failure_is_an_apology_not_a_trace(
    demo: App, chat_as: Callable[[str], Chat], caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that fails inside (here: a table vanished) answers with the apology and logs the trace."""
    from sqlalchemy import text

    chat = chat_as("principal")
    await chat.send("/incident")
    with demo.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE draft"))
    replies = await demo.dispatcher.handle(incoming("principal", 99, text=WHAT))
    assert GENERIC in replies[0].text
    assert "Traceback" not in replies[0].text and "draft" not in replies[0].text
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)


def test_dates_without_a_year_at_a_past_only_step() -> None:
    from datetime import date

    from handlers.forms.steps import read_date

    today = date(2026, 1, 5)
    assert read_date("20/12", today, past=True) == date(2025, 12, 20)
    assert read_date("20/12", today) == date(2026, 12, 20)
    assert read_date("3/1", today, past=True) == date(2026, 1, 3)
    assert read_date("29/2", date(2026, 1, 5), past=True) is None
