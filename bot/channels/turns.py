"""Chats in order, side by side: each chat's work waits for that chat's earlier work, nothing else.

    turns = Turns()
    turn = turns.take(chat)      # synchronous: the place in line is this chat's next, from now
    async with turn:             # waits for the chat's earlier turns (however they ended)
        ...

Taking a place is synchronous so that work which starts later (an album gathered for a moment) can
hold its place ahead of messages that arrive meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType


class Turn:
    """One place in a chat's line; entering waits for the places before it, leaving frees it."""

    def __init__(self, turns: Turns, chat: Hashable, previous: asyncio.Future[None] | None) -> None:
        self.turns = turns
        self.chat = chat
        self.previous = previous
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __aenter__(self) -> Turn:
        try:
            if self.previous is not None:
                await asyncio.shield(self.previous)
        except BaseException:
            self.release()  # given up before its turn: the places after it must not wait forever
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        """Free the place (once), but never before the places ahead of it: a place given up while
        waiting passes its wait on, so the line's order holds."""
        if self.previous is not None and not self.previous.done():
            self.previous.add_done_callback(lambda _: self._free())
        else:
            self._free()

    def _free(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self.turns.last.get(self.chat) is self.done:
            del self.turns.last[self.chat]  # nobody is in the chat's line any more


class Turns:
    """Every chat's line."""

    def __init__(self) -> None:
        self.last: dict[Hashable, asyncio.Future[None]] = {}  # the latest place of each busy chat

    def take(self, chat: Hashable) -> Turn:
        """The chat's next place in line, taken now."""
        turn = Turn(self, chat, self.last.get(chat))
        self.last[chat] = turn.done
        return turn


class ChatTurns:
    """Work for different chats side by side (at most `places` at once); one chat's work in the order
    it came. A chat waits for its turn before it takes a shared place, so one busy chat crowds out
    nobody."""

    def __init__(self, places: int) -> None:
        self.turns = Turns()
        self.places = asyncio.Semaphore(places)
        self.running: set[asyncio.Task[None]] = set()

    @property
    def last(self) -> dict[Hashable, asyncio.Future[None]]:
        """The chats with work waiting or running."""
        return self.turns.last

    def run(self, chat: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        """Start `work` once the chat's earlier work is done and a place is free."""
        task = asyncio.ensure_future(self.in_turn(self.turns.take(chat), work))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def in_turn(self, turn: Turn, work: Callable[[], Awaitable[None]]) -> None:
        """Wait for the chat's turn, then for a place; then work."""
        async with turn, self.places:
            await work()

    async def cancel(self) -> None:
        """Stop whatever is still running or waiting."""
        for task in list(self.running):
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)
