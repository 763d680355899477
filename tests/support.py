"""Helpers shared by tests of every layer: a migrated database per test, waiting on a running bot."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from handlers.calendar import FrozenClock
from storage import migrate
from storage.db import Database
from storage.models import Outbox, User

if TYPE_CHECKING:
    from bot.app import App


def migrate_template(path: Path) -> Path:
    """Migrate a new SQLite file at `path` to the latest schema, once, for tests to copy."""
    db = Database(sqlite_url(path))
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


def migrated_copy(template: Path, target: Path) -> str:
    """A copy of the migrated `template` at `target` (its folder made); the copy's SQLite URL.

    The app still upgrades it when it opens it, and finds nothing to do: 0.03 s against 0.2 s.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return sqlite_url(target)


def sqlite_url(path: Path) -> str:
    """The database URL of a SQLite file."""
    return f"sqlite:///{path}"


PG_ADMIN_URL = os.environ.get("SCHOOLBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_admin() -> Any:
    """An autocommit connection to the local PostgreSQL server; the test skips (saying why) without one."""
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}: {exc}".splitlines()[0])


def drop_connections(database: str) -> int:
    """The local server drops every connection to `database` but ours (pg_terminate_backend, as a
    restart does); how many it dropped."""
    with pg_admin() as admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        )


def pg_database_url(name: str) -> str:
    """The app's URL of database `name` on the server of PG_ADMIN_URL."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until `condition()` holds; fail (never hang) after `timeout` seconds. Often at first, then
    every 50 ms: many conditions read the database, and a long wait must not compete with the bot."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.005
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(pause)
        pause = min(0.05, pause * 1.5)


class HasId(Protocol):
    """A row with an id once flushed."""

    id: int | None


def id_of(row: HasId) -> int:
    """The id of a row the test has flushed (or read back), which it therefore has."""
    assert row.id is not None, row
    return row.id


def frozen(app: App) -> FrozenClock:
    """The app's clock, frozen as every test builds it (conftest's `clock`), for the test to move."""
    assert isinstance(app.clock, FrozenClock), app.clock
    return app.clock


def at_once(*calls: Callable[[], object]) -> None:
    """Run every call in its own thread, all started before any is waited for."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def outbox_statuses(app: App) -> collections.Counter[str]:
    """How many outbox rows stand at each status: one grouped count, cheap enough to poll."""
    with app.db.session() as s:
        stmt = select(col(Outbox.status), func.count()).group_by(col(Outbox.status))
        return collections.Counter({status: int(n) for status, n in s.exec(stmt)})


def outbox_rows(app: App, **where: object) -> list[Outbox]:
    """The outbox rows whose columns equal `where`, oldest first."""
    with app.db.session() as s:
        stmt = select(Outbox).order_by(col(Outbox.id))
        for name, value in where.items():
            stmt = stmt.where(getattr(Outbox, name) == value)
        return list(s.exec(stmt))


def add_principals(
    app: App, n: int, places: Sequence[tuple[int | None, int | None]], first: int, channel: str = "telegram"
) -> list[User]:
    """`n` principals on `channel` (ids from `first`), in turn at each (school id, office id) of `places`."""
    with app.db.session() as s:
        users = [
            User(
                channel=channel,
                external_id=str(first + i),
                chat_id=str(first + i),
                role="principal",
                school_id=places[i % len(places)][0],
                office_id=places[i % len(places)][1],
                created_at=app.clock.now(),
            )
            for i in range(n)
        ]
        s.add_all(users)
        s.flush()
        for u in users:
            s.refresh(u)
            s.expunge(u)
    return users


async def answer_steps(
    steps: Sequence[str], answers: Mapping[str, Callable[[], Awaitable[object]]], stop_before: str | None
) -> None:
    """Give each step's answer in order; with `stop_before`, stop when that step is being asked."""
    for step in steps:
        if step == stop_before:
            return
        await answers[step]()


# ---- words, not keys: every text a person is shown during a test -----------------------------------

SHOWN: list[str] = []
"""Every text a person was shown in the running test: console replies and their buttons, the outbox's
messages, and what the fake Telegram and Zalo servers were asked to send. tests/conftest.py scans them."""

URL = re.compile(r"\S+://\S+")
KEYS = (
    re.compile(r"(?<![\w/.:@-])(?=[a-z0-9_]*[a-z])[a-z0-9_]+-20\d\d(?![\w-])"),  # "nam-2026", "6thang-2026"
    re.compile(r"(?<![\w/.:@-])20\d\d-(?:0[1-9]|1[0-2])(?![\w-])"),  # a month's key, "2026-11"
    re.compile(r"\b20\d\d-20\d\d-HK[12]\b"),  # a semester's key
)
NEGATIVE_DAYS = re.compile(r"(?<![\w/])-\s?\d+\s*(?:ngày|days?\b|day\(s\))")


def shown(*texts: object) -> None:
    """Keep texts a person was shown, for the scan at the end of the test."""
    SHOWN.extend(t for t in texts if isinstance(t, str) and t)


def keys_shown(texts: Sequence[str]) -> list[str]:
    """The internal keys ("nam-2026", "2026-11") and negative numbers of days ("còn -15 ngày") in `texts`."""
    found = []
    for text in texts:
        words = URL.sub(" ", text)
        for pattern in (*KEYS, NEGATIVE_DAYS):
            found += [f"{m.group(0)!r} in {text[:300]!r}" for m in pattern.finditer(words)]
    return found
