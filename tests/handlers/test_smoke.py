from collections.abc import Callable

from tests.conftest import Chat


async def test_principal_sees_menu(chat_as: Callable[[str], Chat]) -> None:
    chat: Chat = chat_as("principal")
    replies = await chat.send("/menu")
    assert "Trường PTDTBT THCS Pú Nhi" in replies[0].text
    assert any(c.value == "m:incident" for c in replies[0].flat_choices())
