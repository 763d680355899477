"""Zalo's monthly message budget: what the plan allows, counted as messages are sent."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from handlers.calendar import Clock
from storage import queries as q
from storage.db import Database
from storage.errors import (
    RetryAfter,
)

log = logging.getLogger("schoolbot.zalo")


class BudgetExhausted(RetryAfter):
    """The month's message budget is used up; try again when the month turns (`retry_after`)."""


class BudgetStore(Protocol):
    """Where the month's count lives: this process (MemoryBudgetStore) or, later, the database."""

    def used(self, month: str) -> int:
        """Messages counted for `month` ("YYYY-MM")."""
        ...

    def add(self, month: str, count: int) -> int:
        """Count `count` more for `month` (negative: give back); the new total."""
        ...

    def reserve(self, month: str, count: int, limit: int) -> int | None:
        """Count `count` more for `month` in one step if the total stays within `limit`; the new total, or None."""
        ...


class MemoryBudgetStore:
    """The count in this process only: a restart starts it again from zero."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def used(self, month: str) -> int:
        """Messages counted for `month`."""
        return self.counts.get(month, 0)

    def add(self, month: str, count: int) -> int:
        """Count more for `month`; the new total."""
        self.counts[month] = self.used(month) + count
        return self.counts[month]

    def reserve(self, month: str, count: int, limit: int) -> int | None:
        """Count more for `month` if it fits `limit` (no await in between: one step for the event loop)."""
        if self.used(month) + count > limit:
            return None
        return self.add(month, count)


class DbBudgetStore:
    """The count in the database: it survives restarts and is shared with `schoolbot outbox`."""

    def __init__(self, db: Database, channel: str = "zalo") -> None:
        self.db = db
        self.channel = channel

    def used(self, month: str) -> int:
        """Messages counted for `month`."""
        with self.db.session() as s:
            return q.usage(s, self.channel, month)

    def add(self, month: str, count: int) -> int:
        """Count more for `month`; the new total."""
        with self.db.session() as s:
            return q.add_usage(s, self.channel, month, count)

    def reserve(self, month: str, count: int, limit: int) -> int | None:
        """Count more for `month` if it fits `limit` (one conditional UPDATE); the new total, or None."""
        with self.db.session() as s:
            if not q.reserve_usage(s, self.channel, month, count, limit):
                return None
            return q.usage(s, self.channel, month)


class MonthlyBudget:
    """Messages the bot may send in a calendar month (office time zone); `limit` None: no limit.

    Counted as messages are sent, in `store`: this process's memory unless a durable store (a
    database table, shared with `schoolbot outbox`) is given. The outbox's sends `reserve` their
    messages before they go, checked and counted in one step of the store, so sends side by side
    (concurrent tasks, other processes on the same database) cannot all pass the check before any
    of them is counted.
    """

    def __init__(
        self, limit: int | None, clock: Clock, used: int = 0, store: BudgetStore | None = None
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.store: BudgetStore = store or MemoryBudgetStore()
        self._warned = ""
        if used:
            self.store.add(self.month(), used)

    def month(self) -> str:
        """The current month, "YYYY-MM"."""
        return self.clock.now().strftime("%Y-%m")

    @property
    def used(self) -> int:
        """Messages sent this month."""
        return self.store.used(self.month())

    @property
    def remaining(self) -> int | None:
        """Messages left this month (None: no limit)."""
        return None if self.limit is None else max(0, self.limit - self.used)

    def allows(self, count: int = 1) -> bool:
        """Whether `count` more messages fit in this month's budget."""
        remaining = self.remaining
        return remaining is None or remaining >= count

    def reserve(self, count: int = 1) -> bool:
        """Take `count` messages of this month's budget before sending them; False (nothing taken) if they do not fit."""
        month = self.month()
        if self.limit is None:
            self.store.add(month, count)
            return True
        total = self.store.reserve(month, count, self.limit)
        if total is None:
            return False
        self._warn_when_spent(month, total)
        return True

    def refund(self, count: int) -> None:
        """Give back reserved messages that were not sent."""
        if count > 0:
            self.store.add(self.month(), -count)

    def spend(self, count: int = 1) -> None:
        """Count messages sent; warn once a month when the budget runs out."""
        month = self.month()
        self._warn_when_spent(month, self.store.add(month, count))

    def _warn_when_spent(self, month: str, total: int) -> None:
        """Warn once a month when `total` reaches the limit."""
        if self.limit is not None and total >= self.limit and self._warned != month:
            self._warned = month
            log.warning(
                "the Zalo monthly budget of %d messages is used up for %s: alerts wait until %s",
                self.limit,
                month,
                self.resets_at().strftime("%Y-%m-%d %H:%M"),
            )

    def resets_at(self) -> datetime:
        """When the next month begins."""
        now = self.clock.now()
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        return now.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)

    def seconds_until_reset(self) -> float:
        """Seconds until the budget starts again."""
        return max(1.0, (self.resets_at() - self.clock.now()).total_seconds())

    def status(self) -> dict[str, Any]:
        """For `schoolbot outbox`: month, limit, used, remaining."""
        return {"month": self.month(), "limit": self.limit, "used": self.used, "remaining": self.remaining}
