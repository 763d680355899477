"""Chats in order, side by side: the lines both channels use (bot/channels/turns.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.channels.turns import ChatTurns, Turns


async def test_one_chat_in_order_other_chats_alongside() -> None:
    turns = ChatTurns(places=4)
    log: list[str] = []
    gate = asyncio.Event()

    def job(name: str, wait: bool = False) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            log.append(f"{name} starts")
            if wait:
                await gate.wait()
            log.append(f"{name} ends")

        return work

    turns.run("a", job("a1", wait=True))
    turns.run("a", job("a2"))
    turns.run("b", job("b1"))
    await asyncio.sleep(0.01)
    assert log == ["a1 starts", "b1 starts", "b1 ends"]  # b did not wait for a; a2 waits for a1
    gate.set()
    await asyncio.gather(*turns.running)
    assert log[3:] == ["a1 ends", "a2 starts", "a2 ends"]
    assert turns.last == {}  # idle chats are forgotten


async def test_a_place_taken_first_is_served_first_even_if_entered_later() -> None:
    turns = Turns()
    log: list[str] = []
    album = turns.take("a")  # an album takes its place now, and gathers its parts for a moment

    async def message() -> None:
        async with turns.take("a"):
            log.append("message")

    async def flush() -> None:
        await asyncio.sleep(0.02)
        async with album:
            log.append("album")

    await asyncio.gather(message(), flush())
    assert log == ["album", "message"] and turns.last == {}


async def test_a_turn_given_up_while_waiting_does_not_hold_up_the_next() -> None:
    turns = Turns()
    first = turns.take("a")
    await first.__aenter__()
    second = turns.take("a")
    waiting = asyncio.ensure_future(second.__aenter__())
    third = turns.take("a")
    await asyncio.sleep(0)
    waiting.cancel()  # the second's task is stopped before its turn
    await asyncio.gather(waiting, return_exceptions=True)
    entering = asyncio.ensure_future(third.__aenter__())
    await asyncio.sleep(0.01)
    assert not entering.done()  # the first still has its turn: the third keeps waiting for it
    await first.__aexit__(None, None, None)
    await asyncio.wait_for(entering, timeout=1)  # and is not stuck behind the second
    await third.__aexit__(None, None, None)
    assert turns.last == {}


async def test_a_place_never_entered_is_freed_by_release_after_those_ahead() -> None:
    turns = Turns()
    ahead = turns.take("a")
    await ahead.__aenter__()
    unused = turns.take("a")  # an album whose flush was cancelled before its turn
    unused.release()
    after = asyncio.ensure_future(turns.take("a").__aenter__())
    await asyncio.sleep(0.01)
    assert not after.done()
    await ahead.__aexit__(None, None, None)
    (await asyncio.wait_for(after, timeout=1)).release()
    assert turns.last == {}
