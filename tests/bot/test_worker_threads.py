"""The unit threads (bot/workers.py): each runs an update's coroutine on a loop of its own and leaves
nothing of it running into the next update, without touching the bot loop's tasks."""

from __future__ import annotations

import asyncio
import threading

from bot.workers import Workers


async def test_a_task_an_update_left_running_is_cancelled_and_the_bot_loops_tasks_are_not() -> None:
    workers = Workers(1)
    bot_task = asyncio.create_task(asyncio.sleep(30))  # a task of the bot's own loop
    cancelled = threading.Event()
    finished: list[str] = []
    left: list[asyncio.Task[None]] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def update(name: str) -> str:
        left.append(asyncio.create_task(forever()))  # started and left behind
        await asyncio.sleep(0)
        finished.append(name)
        return name

    try:
        first = await workers.run(lambda: Workers.loop_run(update("first")))
        assert cancelled.is_set()  # before the unit returned
        second = await workers.run(lambda: Workers.loop_run(update("second")))  # the same thread and loop
    finally:
        workers.close()

    assert (first, second, finished) == ("first", "second", ["first", "second"])
    assert all(task.cancelled() for task in left) and not bot_task.done()
    bot_task.cancel()
