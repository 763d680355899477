"""A database that falters under load, over the real python-telegram-bot stack against the loopback fake
Bot API: SQLite's write lock held by another connection for a second and a half, and PostgreSQL dropping
every connection of the bot (as a restart does). No one sees an error; nothing is lost.

The PostgreSQL test skips (saying why) without a local server, like tests/storage/test_postgres.py.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.app import open_app
from handlers.calendar import FrozenClock
from tests.bot.test_lanes import running, settings_for, texts_to
from tests.bot.test_outbox_telegram import _loopback_only as _loopback_only  # nothing leaves 127.0.0.1
from tests.fakes.telegram_api import FakeBotAPI, TgUser, text_update
from tests.storage.test_postgres import pg_url_fixture as pg_url_fixture  # a database of its own
from tests.support import add_principals, drop_connections, until

WAIT = 60.0
CLOCK = datetime(2026, 11, 10, 8, 0)
PEOPLE = 12
LOCKED_FOR = 1.5  # seconds another connection holds SQLite's write lock


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    with FakeBotAPI() as api:
        yield api


async def test_sqlite_locked_by_another_connection_for_a_moment_shows_no_one_an_error(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """Another program holds the database's write lock for a second and a half just as twelve
    principals write: the bot waits for it (busy_timeout) and then answers every one of them, with no
    apology and nothing dropped."""
    with open_app(settings_for(tmp_path, api, database_url), FrozenClock(CLOCK)) as app:
        principals = add_principals(app, PEOPLE, [(None, None)], first=7800)
        people = [TgUser(int(u.chat_id), f"Hiệu trưởng {u.chat_id}") for u in principals]
        t = app.catalog.translator("vi")
        async with running(app) as channel:
            path = make_url(database_url).database
            assert path is not None
            holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")  # the write lock, as another writer holds it
            handled_at_release: list[int] = []

            def release() -> None:
                handled_at_release.append(channel.handled)
                holder.execute("COMMIT")
                holder.close()

            timer = threading.Timer(LOCKED_FOR, release)
            timer.start()
            try:
                api.push_update(*[text_update(p, "/help") for p in people])
                await until(lambda: channel.handled >= PEOPLE, "every update handled", WAIT)
                await until(lambda: all(texts_to(api, p) for p in people), "every reply", WAIT)
            finally:
                timer.join()
    assert handled_at_release and handled_at_release[0] < PEOPLE  # they came while it was locked
    for person in people:
        assert texts_to(api, person) == [t("help.principal")]  # no apology, each once


async def test_postgres_dropping_the_bots_connections_under_load_loses_nothing(
    tmp_path: Path, pg_url: str, api: FakeBotAPI
) -> None:
    """Three rounds of twelve principals writing on PostgreSQL; after each round the server drops
    every connection the bot has (pg_terminate_backend, what a restart does to them): the bot meets them
    dead (a ping after a rest in the pool, or the first statement: the unit runs again) and connects
    again, and every message is answered, with no apology."""
    rounds = 3
    database = make_url(pg_url).database
    assert database is not None
    with open_app(settings_for(tmp_path, api, pg_url), FrozenClock(CLOCK), upgrade=False) as app:
        principals = add_principals(app, PEOPLE, [(None, None)], first=7900)
        people = [TgUser(int(u.chat_id), f"Hiệu trưởng {u.chat_id}") for u in principals]
        t = app.catalog.translator("vi")
        dropped = 0
        async with running(app) as channel:
            for n in range(1, rounds + 1):
                api.push_update(*[text_update(p, "/help") for p in people])
                await until(lambda: channel.handled >= n * PEOPLE, f"round {n} handled", WAIT)  # noqa: B023
                dropped += drop_connections(database)
            await until(lambda: all(len(texts_to(api, p)) == rounds for p in people), "every reply", WAIT)
    assert dropped >= rounds  # the bot's connections were there to drop, each round
    for person in people:
        assert texts_to(api, person) == [t("help.principal")] * rounds
