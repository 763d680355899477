"""Threads that run each update's database work off the event loop, each thread with its own loop.

    workers = Workers(16)
    replies = await workers.run(work)    # work() -> T runs on a worker thread; the loop goes on
    workers.close()

A handler is `async` (a few await a download or a thread), but its database work is synchronous
(SQLModel sessions). Running the whole update on a worker thread keeps handlers as they are: the
thread runs it on an event loop of its own (`loop_run`), so the handler's awaits work there, while
the bot's event loop keeps taking updates, sending replies and showing "typing...". On PostgreSQL
the threads' round trips overlap; on SQLite they take turns (storage/db.py `Database.serial`), off
the loop all the same. Each chat's order is kept by the caller (bot/channels/turns.py): one chat's
next update starts after its previous one returned.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
SPARE_THREADS = 4  # threads for what the units hand to `asyncio.to_thread`, all units together
_thread = threading.local()  # a worker thread's own loop (`Workers.own_loop`)


def tracked(loop: asyncio.AbstractEventLoop, coroutine: Any, /, **options: Any) -> asyncio.Task[Any]:
    """A worker loop's task factory: the task, remembered in its thread's set until it is done."""
    task: asyncio.Task[Any] = asyncio.Task(coroutine, loop=loop, **options)
    started: set[asyncio.Task[Any]] = _thread.tasks
    started.add(task)
    task.add_done_callback(started.discard)
    return task


class Began:
    """When an update's own work began (`time.monotonic()`): None while it still waits its turn (a worker
    thread, SQLite's one writer). "typing..." is timed from here (bot/channels/base.py `with_typing`):
    at the peak an update waits in line behind hundreds of others, and an indicator for each waiting chat
    would be a request more for every update, making the line longer for all of them."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def mark(self) -> None:
        """The work begins now (the first call counts: a unit run again keeps its first start)."""
        if self.at is None:
            self.at = time.monotonic()

    def running_for(self) -> float:
        """Seconds since the work began; 0 while it waits."""
        return 0.0 if self.at is None else time.monotonic() - self.at


class Workers:
    """A bounded pool of threads; each thread keeps one asyncio loop for the coroutines it runs."""

    def __init__(self, size: int, name: str = "schoolbot-unit") -> None:
        self.size = size  # threads: what runs at once
        self.loops: list[asyncio.AbstractEventLoop] = []  # one a thread, made when the thread starts
        # What the handlers hand to `asyncio.to_thread` (a workbook, a chart), shared by the threads' loops.
        self.spare = ThreadPoolExecutor(max_workers=SPARE_THREADS, thread_name_prefix=f"{name}-spare")
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name, initializer=self.own_loop)

    def own_loop(self) -> None:
        """On a new worker thread: the loop its coroutines run on (`loop_run`), kept for its life, with
        the tasks started on it kept in view (`tracked`)."""
        loop = asyncio.new_event_loop()
        loop.set_default_executor(self.spare)
        loop.set_task_factory(tracked)
        _thread.loop = loop
        _thread.tasks = set()
        self.loops.append(loop)  # list.append is atomic: threads start one at a time anyway

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` on a worker thread, in a copy of the caller's context (what it set, such as the ids
        its log lines carry, goes along, as with `asyncio.to_thread`); the caller's loop is free meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, contextvars.copy_context().run, work
        )

    @staticmethod
    def loop_run(coroutine: Coroutine[Any, Any, T]) -> T:
        """On a worker thread: run `coroutine` to its end on the thread's own loop (one made for it
        and closed after, on a thread that has none). Its task starts in a copy of the thread's
        current context, so what the caller set (the open unit) is seen. A task it started and left
        running is cancelled before this returns, as `asyncio.run` does: nothing of one update runs
        on into the next."""
        loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
        if loop is None or loop.is_closed():
            return asyncio.run(coroutine)
        try:
            return loop.run_until_complete(coroutine)
        finally:
            # The thread's own unfinished tasks (asyncio.all_tasks looks at every task of the process,
            # the bot loop's hundreds included, on every update).
            left = [task for task in _thread.tasks if not task.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))

    def close(self) -> None:
        """Wait for the work in hand, then let the threads go and close their loops, and then the threads
        their `asyncio.to_thread` calls ran on."""
        self.pool.shutdown(wait=True)
        for loop in self.loops:
            loop.close()
        self.loops.clear()
        self.spare.shutdown(wait=True)
