"""Random text and random update shapes thrown at the real dispatcher."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App
from handlers.forms.steps import MAX_TEXT
from handlers.types import Incoming, Kind, Media
from tests.conftest import Chat
from tests.handlers.helpers import snapshot

GENERIC = "Xin lỗi, đã có lỗi"
counter = itertools.count()

media = st.builds(
    Media,
    kind=st.sampled_from(["photo", "document", "video", "audio", "animation", ""]),
    file_id=st.text(max_size=80),
    mime_type=st.text(max_size=30),
    width=st.none() | st.integers(-5, 10_000),
    height=st.none() | st.integers(-5, 10_000),
    duration=st.none() | st.integers(-5, 100_000),
)
choices = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda a, b, c, d: f"f:{a}:{b}:{c}:{d}",
        st.integers(-2, 50),
        st.integers(-2, 50),
        st.sampled_from([*"abdsxegrnq", "", "zz"]),
        st.text(max_size=10),
    ),
    st.builds(lambda p, r: f"{p}:{r}", st.sampled_from(["m", "k", "l", "f", "x"]), st.text(max_size=20)),
)
updates = st.builds(
    Incoming,
    st.just("console"),
    st.just("principal"),
    st.just("principal"),
    st.sampled_from(list(Kind)),
    display_name=st.text(max_size=300),
    text=st.text(max_size=MAX_TEXT + 50),
    command=st.text(max_size=40),
    args=st.text(max_size=40),
    choice=choices,
    media=st.lists(media, max_size=3).map(tuple),
    update_id=st.builds(lambda: f"h-{next(counter)}"),  # a new update each time
)


def is_valid_text(msg: Incoming) -> bool:
    """Whether a text step could take this message (the only way its draft may change)."""
    text = msg.text.strip()
    return msg.kind == Kind.TEXT and bool(text) and any(ch.isalnum() for ch in text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(updates, min_size=1, max_size=6))
def test_no_input_crashes_and_drafts_change_only_through_valid_answers(
    demo: App, chat_as: Callable[[str], Chat], batch: list[Incoming]
) -> None:
    chat = chat_as("principal")

    async def scenario() -> None:
        await chat.send("/incident")
        if "soạn dở" in chat.last.text:
            await chat.press("Làm lại")
        for msg in batch:
            before = snapshot(demo, "principal")
            replies = await demo.dispatcher.handle(msg)
            after = snapshot(demo, "principal")
            assert all(GENERIC not in r.text for r in replies), (msg, replies)
            assert all(r.text for r in replies)
            if before != after and before is not None and after is not None and before[0] == "what":
                # At the first (text) step only a real answer, a valid button or a restart moves the draft.
                assert is_valid_text(msg) or msg.kind in (Kind.CHOICE, Kind.COMMAND), msg

    asyncio.run(scenario())
