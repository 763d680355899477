"""The form engine, driven through the console channel on the incident form."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import func, select

from bot.app import App, open_app
from bot.config import Settings
from handlers.calendar import FrozenClock
from handlers.forms import Action, DraftMode
from handlers.types import Incoming, Kind
from storage.models import Submission
from tests.conftest import Chat
from tests.handlers.helpers import WHAT, draft_of, fill_incident, snapshot, the_draft


async def fill_incident_rest(chat: Chat) -> None:
    """From the networks step on, as fill_incident answers them."""
    await chat.press("Facebook")
    await chat.press("Xong")
    await chat.press("Xong")  # no links
    await chat.press("Xong")  # no screenshots
    await chat.press("Bỏ qua")
    await chat.press("Nghiêm trọng")
    await chat.send("0912 345 678")


def press_value(chat: Chat, value: str, update_id: str) -> Incoming:
    """A button press replayed by its callback value (as Telegram would redeliver it)."""
    user = chat.session.user_id
    return Incoming("console", user, user, Kind.CHOICE, choice=value, update_id=update_id)


async def test_progress_mark_and_first_question(chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    replies = await chat.send("/incident")
    assert "Bước 1/9" in replies[-1].text
    assert "Vui lòng mô tả ngắn gọn sự việc đã xảy ra." in replies[-1].text
    labels = [c.label for c in replies[-1].flat_choices()]
    assert not any("Quay lại" in label for label in labels)  # nothing before the first step
    assert not any("Huỷ" in label for label in labels)  # cancel is on the review screen and /cancel


async def test_back_returns_to_the_previous_step_keeping_answers(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    await chat.press("Hôm qua")
    await chat.send("8:00")
    replies = await chat.press("Quay lại")
    assert "Bước 2/9" in replies[-1].text
    draft = the_draft(demo, "principal")
    assert (
        draft.step == "when" and draft.answers["what"] == WHAT and draft.answers["when"] == "2026-11-09T08:00"
    )


async def test_skip_an_optional_step_and_review_shows_it(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat, stop_before="actions")
    replies = await chat.press("Bỏ qua")
    assert "Bước 8/9" in replies[-1].text
    await chat.press("Rất nghiêm trọng")
    review = await chat.send("0912 345 678")
    assert "Đã xử lý: (không có)" in review[-1].text
    assert the_draft(demo, "principal").answers["actions"] is None


async def test_required_step_offers_no_skip_and_refuses_a_forged_skip(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    replies = await chat.send("/incident")
    assert not any("Bỏ qua" in c.label for c in replies[-1].flat_choices())
    draft = the_draft(demo, "principal")
    before = snapshot(demo, "principal")
    got = await demo.dispatcher.handle(press_value(chat, f"f:{draft.id}:{draft.version}:s:", "forged-skip"))
    assert "bắt buộc" in got[0].text
    assert snapshot(demo, "principal") == before


async def test_edit_an_answer_from_the_review_screen(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat)
    await chat.press("Sửa: Địa điểm")
    assert the_draft(demo, "principal").mode == "edit"
    review = await chat.send("Nhà văn hoá bản Pú Nhi")
    assert "Xem lại" in review[-1].text
    assert "Địa điểm: Nhà văn hoá bản Pú Nhi" in review[-1].text
    assert "Sự việc: " + WHAT in review[-1].text  # the rest is untouched


async def test_back_while_editing_returns_to_review_unchanged(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await fill_incident(chat)
    before = the_draft(demo, "principal").answers
    await chat.press("Sửa: Mức độ")
    review = await chat.press("Quay lại")
    assert "Xem lại" in review[-1].text
    assert the_draft(demo, "principal").answers == before


async def test_cancel_by_button_and_by_command_asks_first(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat)
    replies = await chat.press("Huỷ")
    assert "Huỷ bản nháp Báo cáo nhanh sự cố này? Những gì đã nhập sẽ mất" in replies[0].text
    assert draft_of(demo, "principal") is not None  # nothing happens before the answer
    replies = await chat.press("Có, huỷ")
    assert "Đã huỷ bản nháp" in replies[0].text and "/drafts" in replies[0].text
    assert draft_of(demo, "principal") is None
    await chat.send("/incident")
    await chat.send(WHAT)
    replies = await chat.send("/cancel")
    assert "Những gì đã nhập sẽ mất" in replies[0].text
    replies = await chat.press("Có, huỷ")
    assert "Đã huỷ" in replies[0].text and draft_of(demo, "principal") is None
    replies = await chat.send("/cancel")
    assert "Không có việc gì" in replies[0].text


async def test_no_to_the_cancel_question_keeps_everything(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat, stop_before="networks")
    before = snapshot(demo, "principal")
    await chat.send("/cancel")
    replies = await chat.press("Không")
    assert "Bước 4/9" in replies[-1].text  # the same step, asked again
    assert snapshot(demo, "principal") == before
    await fill_incident_rest(chat)
    review = await chat.press("Huỷ")
    replies = await chat.press("Không")
    assert "Xem lại" in replies[-1].text and review[0].text != replies[-1].text
    assert the_draft(demo, "principal").mode == "review"


async def test_resume_after_the_app_is_rebuilt_on_the_same_database(
    settings: Settings, clock: FrozenClock, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    await chat.press("Hôm qua")
    await chat.send("8:00")
    demo.db.dispose()

    with open_app(settings, clock) as rebuilt:
        again = Chat(rebuilt, "principal")
        offer = await again.send("/incident")
        assert "đang soạn dở" in offer[-1].text
        resumed = await again.press("Tiếp tục")
        assert "Bước 3/9" in resumed[-1].text
        fresh = await again.send("/menu")
        assert any("đang soạn dở" in r.text for r in fresh)
        restart = await again.press("Làm lại từ đầu")
        assert "Bước 1/9" in restart[-1].text
        assert the_draft(rebuilt, "principal").answers == {}


async def test_send_twice_makes_one_submission(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat)
    send = chat.value_of("Gửi")
    first = await demo.dispatcher.handle(press_value(chat, send, "tap-1"))
    second = await demo.dispatcher.handle(press_value(chat, send, "tap-2"))
    redelivered = await demo.dispatcher.handle(press_value(chat, send, "tap-1"))
    assert "Đã gửi báo cáo sự cố #1" in first[0].text
    assert "này đã được gửi." in second[0].text
    assert redelivered == []
    with demo.db.session() as s:
        assert s.exec(select(func.count()).select_from(Submission)).one() == 1


async def test_a_button_from_an_older_screen_changes_nothing(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await chat.send("/incident")
    await chat.send(WHAT)
    old_back = chat.value_of("Quay lại")
    await chat.press("Hôm qua")
    await chat.send("8:00")
    before = snapshot(demo, "principal")
    replies = await demo.dispatcher.handle(press_value(chat, old_back, "old"))
    assert "đã cũ" in replies[0].text and "Bước 3/9" in replies[0].text
    assert snapshot(demo, "principal") == before


async def test_forged_and_deleted_draft_buttons(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("principal")
    await fill_incident(chat)
    stale = chat.value_of("Gửi")
    await chat.press("Huỷ")
    await chat.press("Có, huỷ")
    gone = await demo.dispatcher.handle(press_value(chat, stale, "gone"))
    assert "không còn" in gone[0].text.lower() or "đã cũ" in gone[0].text
    for n, forged in enumerate(["f:999:1:g:", "f:x:y:z:", "zzz", "f:1:1:q:", "", "m:nonexistent", "k:abc"]):
        replies = await demo.dispatcher.handle(press_value(chat, forged, f"forged-{n}"))
        assert replies and replies[0].text, forged
        assert "lỗi" not in replies[0].text  # a short answer, not the apology for a crash


async def test_another_users_draft_cannot_be_driven(demo: App, chat_as: Callable[[str], Chat]) -> None:
    principal = chat_as("principal")
    await principal.send("/incident")
    draft = the_draft(demo, "principal")
    before = snapshot(demo, "principal")
    leader = chat_as("leader")
    replies = await demo.dispatcher.handle(press_value(leader, f"f:{draft.id}:{draft.version}:x:", "steal"))
    assert replies[0].text
    assert snapshot(demo, "principal") == before


def test_modes_and_actions_keep_their_wire_values() -> None:
    """Draft rows and button callback data written before the enums existed still read the same."""
    assert [m.value for m in DraftMode] == ["fill", "edit", "review", "sent"]
    letters = {a.name: a.value for a in Action}
    assert letters == {
        "ANSWER": "a",
        "USE_SUGGESTION": "u",
        "DONE": "d",
        "BACK": "b",
        "SKIP": "s",
        "CANCEL": "x",
        "EDIT": "e",
        "SEND": "g",
        "RESUME": "r",
        "RESTART": "n",
        "SECTION": "c",
        "SHOW": "v",
        "DISCARD": "y",
        "WRITE": "w",
    }
    assert f"{Action.SEND}" == "g" and str(DraftMode.SENT) == "sent"
