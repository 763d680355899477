"""One transaction per update, on a worker thread: dedupe, user, kept messages, the handler's reads and
writes together; reads take no SQLite lock; the event loop never waits on the database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

import storage.db
from bot.app import App, open_app
from bot.config import load_settings
from bot.demo import seed_demo
from bot.workers import Began
from handlers.types import Incoming, Kind, Reply
from storage import queries as q
from storage.db import Database, transient
from tests.handlers.helpers import WHAT, the_draft
from tests.storage.test_postgres import pg_url_fixture  # noqa: F401  (fixture)
from tests.support import pg_admin

GENERIC = "error.generic"


class Statements:
    """Every SQL statement the app's engine runs (BEGIN included), in order."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def __enter__(self) -> Statements:
        event.listen(self.db.engine, "before_cursor_execute", self.note)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.db.engine, "before_cursor_execute", self.note)

    def note(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        with self.lock:
            self.seen.append(" ".join(statement.split()))

    def starting(self, word: str) -> list[str]:
        return [s for s in self.seen if s.upper().startswith(word.upper())]


def text_from(who: str, line: str, update_id: str) -> Incoming:
    command = line[1:] if line.startswith("/") else ""
    kind = Kind.COMMAND if command else Kind.TEXT
    return Incoming(
        "console", who, who, kind, display_name=who, text=line, command=command, update_id=update_id
    )


def apology(app: App, replies: list[Reply]) -> bool:
    generic = app.catalog.translator(app.settings.locale, "console")(GENERIC)
    return any(r.text == generic for r in replies)


async def test_an_update_is_one_transaction_from_dedupe_to_the_handlers_writes(demo: App) -> None:
    await demo.dispatcher.handle(text_from("principal", "/mystatus", "u1"))  # the account is up to date
    with Statements(demo.db) as sql:
        replies = await demo.dispatcher.handle(text_from("principal", "/incident", "u2"))
    assert replies and not apology(demo, replies)
    begins = sql.starting("BEGIN")
    assert begins == ["BEGIN"]  # one transaction, begun deferred: its reads took no write lock
    assert sql.starting("INSERT INTO draft") and sql.starting("INSERT INTO processedupdate")
    # the update is marked handled last, in the same transaction as the draft the handler wrote
    writes = [s for s in sql.seen if s.upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes[-1].startswith("INSERT INTO processedupdate")


async def test_an_unchanged_writer_costs_no_update_of_their_account(demo: App) -> None:
    await demo.dispatcher.handle(text_from("principal", "/mystatus", "u1"))
    with Statements(demo.db) as sql:
        await demo.dispatcher.handle(text_from("principal", "/mystatus", "u2"))
    assert not sql.starting("UPDATE user")  # nothing changed: not even the menu shown

    renamed = Incoming("console", "principal", "principal", Kind.COMMAND, "Cô Lan", "/mystatus", "mystatus")
    with Statements(demo.db) as sql:
        await demo.dispatcher.handle(renamed)
    assert [s for s in sql.starting("UPDATE user") if "display_name" in s]


async def test_a_redelivered_update_is_handled_once_and_writes_nothing(demo: App) -> None:
    first = await demo.dispatcher.handle(text_from("principal", "/incident", "same"))
    with Statements(demo.db) as sql:
        again = await demo.dispatcher.handle(text_from("principal", "/incident", "same"))
    assert first and again == []
    assert not [s for s in sql.seen if s.upper().startswith(("INSERT", "UPDATE", "DELETE"))]


async def first_read_is_one_statement(app: App) -> None:
    """The writer, whether the update was handled, whether messages are kept for them: one read; the
    messages kept are shown first, once."""
    await app.dispatcher.handle(text_from("principal", "/mystatus", "r1"))  # the account exists
    with Statements(app.db) as sql:
        replies = await app.dispatcher.handle(text_from("principal", "/mystatus", "r2"))
    assert replies and not apology(app, replies)
    assert not sql.starting("SELECT processedupdate") and not sql.starting("SELECT inbox")
    with app.db.session() as s:
        user = q.get_user(s, "console", "principal")
        assert user is not None
        q.keep_for_later(s, user.id or 0, Reply("Tin giữ lại").to_payload(), app.clock.now())
    with Statements(app.db) as sql:
        replies = await app.dispatcher.handle(text_from("principal", "/mystatus", "r3"))
    assert [r.text for r in replies][:1] == ["Tin giữ lại"] and len(sql.starting("SELECT inbox")) == 1
    replies = await app.dispatcher.handle(text_from("principal", "/mystatus", "r4"))
    assert replies and "Tin giữ lại" not in [r.text for r in replies]
    assert await app.dispatcher.handle(text_from("principal", "/mystatus", "r4")) == []  # redelivered


async def test_an_updates_first_read_is_one_statement(demo: App) -> None:
    await first_read_is_one_statement(demo)


async def a_step_finds_its_draft_in_the_first_read(app: App) -> None:
    """A typed answer to a form's step: its draft came with the update's first read (no read of its
    own), and the step is saved."""
    await app.dispatcher.handle(text_from("principal", "/incident", "d1"))
    with Statements(app.db) as sql:
        replies = await app.dispatcher.handle(text_from("principal", WHAT, "d2"))
    assert replies and not apology(app, replies)
    assert not sql.starting("SELECT draft") and len(sql.starting("UPDATE draft")) == 1
    assert the_draft(app, "principal").step == "when"


async def test_a_step_finds_its_draft_in_the_first_read(demo: App) -> None:
    await a_step_finds_its_draft_in_the_first_read(demo)


def test_drafts_read_ahead_serve_one_read_and_go_when_the_unit_writes_a_draft(demo: App) -> None:
    """The drafts read with the writer answer the unit's first read of them, once; a later read goes
    to the database; a write to drafts in the unit drops what was read ahead, so the next read sees it."""
    now = demo.clock.now()
    with demo.db.session() as s:
        user = q.get_user(s, "console", "principal")
        assert user is not None and user.id is not None
        q.start_draft(s, user.id, "incident", "what", now, {})
    uid = user.id

    def read_twice(s: Any) -> tuple[list[str], list[str]]:
        q.writer_of(s, "console", "principal", "k1")
        with Statements(demo.db) as sql, demo.db.session() as block:
            first = [d.step for d in q.drafts_of(block, uid)]
            assert not sql.seen  # the first read is the one read ahead
            second = [d.step for d in q.drafts_of(block, uid)]
            assert sql.starting("SELECT draft")  # the second goes to the database
        return first, second

    assert demo.db.in_unit(read_twice) == (["what"], ["what"])

    def write_then_read(s: Any) -> list[str]:
        q.writer_of(s, "console", "principal", "k2")
        with demo.db.session() as block:
            q.start_draft(block, uid, "incident", "when", now, {})  # replaces the one read ahead
        with demo.db.session() as block:
            return [d.step for d in q.drafts_of(block, uid)]

    assert demo.db.in_unit(write_then_read) == ["when"]


def blocks_in_a_unit(db: Database) -> tuple[set[str], list[str]]:
    """Two blocks that only read (the second failing, its error caught), then three that write (the
    second failing on a duplicate key, its error caught) and one of a single statement that takes no
    savepoint, with the unit's own writes between them: the keys committed, and the savepoint
    statements."""
    insert = text("INSERT INTO processedupdate (key, created_at) VALUES (:key, CURRENT_TIMESTAMP)")

    def work(s: Any) -> None:
        with db.session() as block:  # reads only
            block.execute(text("SELECT count(*) FROM processedupdate")).scalar_one()
        with pytest.raises(LookupError), db.session() as block:  # reads only, and fails
            block.execute(text("SELECT key FROM processedupdate")).all()
            raise LookupError("nothing there")
        with db.session() as block:
            block.execute(insert, {"key": "block:1"})
        with db.session(savepoint=False) as block:  # one statement: no savepoint of its own
            block.execute(insert, {"key": "single:1"})
        s.execute(insert, {"key": "unit:between"})
        with pytest.raises(IntegrityError), db.session() as block:
            block.execute(insert, {"key": "block:2"})
            block.execute(insert, {"key": "block:1"})  # refused: the block's writes are undone
        with db.session() as block:
            block.execute(insert, {"key": "block:3"})
        s.execute(insert, {"key": "unit:last"})

    with Statements(db) as sql:
        db.in_unit(work)
    with db.session() as s:
        keys = {key for (key,) in s.execute(text("SELECT key FROM processedupdate"))}
    return keys, [line for line in sql.seen if "SAVEPOINT" in line]


def blocks_on(url: str) -> tuple[set[str], list[str]]:
    """`blocks_in_a_unit` on a database of its own, let go after."""
    db = Database(url)
    try:
        return blocks_in_a_unit(db)
    finally:
        db.dispose()


# `blocks_in_a_unit`'s savepoint work, step by step: a block that only reads takes no savepoint; each
# block's savepoint is taken at its first write, after the release of the one before; the failed one is
# rolled back and released; the last is released by the COMMIT. The one-statement block takes none: its
# write is kept by the release of the savepoint before it.
SAVEPOINT_STEPS = [
    ["SAVEPOINT block"],
    ["RELEASE SAVEPOINT block", "SAVEPOINT block"],
    ["ROLLBACK TO SAVEPOINT block", "RELEASE SAVEPOINT block"],
    ["SAVEPOINT block"],
]
KEYS_KEPT = {"block:1", "single:1", "unit:between", "block:3", "unit:last"}


def test_a_failed_block_is_undone_alone_and_the_unit_goes_on(database_url: str) -> None:
    """SAVEPOINT_STEPS, one statement at a time (SQLite)."""
    keys, savepoints = blocks_on(database_url)
    assert keys == KEYS_KEPT
    assert savepoints == [statement for step in SAVEPOINT_STEPS for statement in step]


def test_on_postgresql_a_failed_block_is_undone_alone_and_a_block_is_one_round_trip_at_most(
    pg_url: str,
) -> None:
    """The unit's transaction is not left aborted by the refused statement; SAVEPOINT_STEPS, each step
    one message."""
    keys, savepoints = blocks_on(pg_url)
    assert keys == KEYS_KEPT
    assert savepoints == ["; ".join(step) for step in SAVEPOINT_STEPS]


async def test_busy_sqlite_reaches_no_user_and_the_loop_goes_on(demo: App) -> None:
    """Another process writes while many chats are handled at once: a unit whose first write meets
    that writer is run again (never "database is locked" to a user), and the event loop keeps
    turning while the database is held."""
    other = Database(demo.settings.database_url)  # another process's connection to the same file
    release = threading.Event()
    holding = threading.Event()

    def hold_the_write_lock() -> None:
        with other.engine.connect() as conn:  # its hook begins IMMEDIATE: the write lock, held
            conn.exec_driver_sql("UPDATE school SET name = name WHERE id = 1")
            holding.set()
            release.wait(10)
            conn.commit()

    thread = threading.Thread(target=hold_the_write_lock)
    thread.start()
    try:
        holding.wait(5)
        ticks = 0
        chats = [f"p{i}" for i in range(12)]
        work = asyncio.gather(
            *(demo.dispatcher.handle(text_from(c, "/start", f"{c}:1")) for c in chats),
            demo.dispatcher.handle(text_from("principal", "/incident", "x1")),
        )
        task = asyncio.ensure_future(work)
        while ticks < 20:  # the loop runs while every update waits on the other process's lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert not task.done()
        release.set()
        results = await task
    finally:
        release.set()
        thread.join()
        other.dispose()
    assert all(replies and not apology(demo, replies) for replies in results)


async def test_an_update_begins_when_its_unit_has_the_database_not_while_it_waits(demo: App) -> None:
    assert demo.db.writer is not None
    demo.db.writer.acquire()  # SQLite's one writer in this process, taken: every unit waits its turn
    try:
        began = Began()
        handled = asyncio.ensure_future(
            demo.dispatcher.handle(text_from("principal", "/mystatus", "b1"), (), began)
        )
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert not handled.done() and began.at is None and began.running_for() == 0.0
    finally:
        demo.db.writer.release()
    assert await handled
    assert began.at is not None and began.running_for() > 0


@pytest.fixture(name="pg_demo")
def pg_demo_fixture(pg_url: str, clock: Any) -> Iterator[App]:
    with open_app(load_settings(None, database_url=pg_url), clock, upgrade=False) as app:
        with app.db.session() as s:
            seed_demo(s, clock.now())
        yield app


async def test_on_postgresql_an_updates_first_read_is_one_statement(pg_demo: App) -> None:
    await first_read_is_one_statement(pg_demo)


async def test_on_postgresql_an_update_is_marked_handled_in_its_first_read(pg_demo: App) -> None:
    """On PostgreSQL the update's key is marked handled in the unit's first statement, the read of its
    writer (one round trip fewer than a mark of its own); the handler's writes follow in the same
    transaction, and the update sent again is dropped."""
    await pg_demo.dispatcher.handle(text_from("principal", "/mystatus", "m1"))  # the account exists
    with Statements(pg_demo.db) as sql:
        replies = await pg_demo.dispatcher.handle(text_from("principal", "/incident", "m2"))
    assert replies and not apology(pg_demo, replies)
    assert sql.seen[0].startswith("WITH marked AS (INSERT INTO processedupdate")
    assert not sql.starting("INSERT INTO processedupdate") and sql.starting("INSERT INTO draft")
    with pg_demo.db.session() as s:
        user = q.get_user(s, "console", "principal")
        assert user is not None and q.seen_before(s, "console:m2") and q.drafts_of(s, user.id or 0)
    assert await pg_demo.dispatcher.handle(text_from("principal", "/incident", "m2")) == []


async def test_on_postgresql_a_step_finds_its_draft_in_the_first_read(pg_demo: App) -> None:
    await a_step_finds_its_draft_in_the_first_read(pg_demo)


async def test_on_postgresql_a_chat_waiting_on_the_database_holds_up_no_other(pg_demo: App) -> None:
    """One chat's update waits on a row lock another connection holds; the other chats' updates run
    and finish meanwhile (each update on its own thread and connection)."""
    with marking(pg_demo, "console:held") as conn:  # the held update's unit will wait on it at its mark
        held = asyncio.ensure_future(pg_demo.dispatcher.handle(text_from("principal", "/incident", "held")))
        others = await asyncio.gather(
            *(pg_demo.dispatcher.handle(text_from(f"q{i}", "/start", f"q{i}")) for i in range(6))
        )
        assert all(r and not apology(pg_demo, r) for r in others)
        assert not held.done()
        conn.execute(text("ROLLBACK"))
    replies = await held
    assert replies and not apology(pg_demo, replies)


@contextmanager
def marking(app: App, key: str) -> Iterator[Connection]:
    """Another connection marking the update `key` handled, in a transaction it leaves open: the caller
    ends it (COMMIT: another worker handled it; ROLLBACK: it gave up)."""
    other = Database(app.settings.database_url)
    try:
        with other.engine.connect() as conn:
            conn.execute(text("BEGIN"))
            conn.execute(
                text("INSERT INTO processedupdate (key, created_at) VALUES (:key, now())"), {"key": key}
            )
            yield conn
    finally:
        other.dispose()


async def test_on_postgresql_an_update_another_worker_handled_meanwhile_is_dropped_quietly(
    pg_demo: App,
) -> None:
    """Two workers handle the same update at once (a claim lost to a dropped connection): the one that
    finishes second finds the handled mark taken, undoes its work and answers nothing (no apology)."""
    with marking(pg_demo, "console:twice") as conn:  # the other worker's unit, not committed yet
        held = asyncio.ensure_future(pg_demo.dispatcher.handle(text_from("newcomer", "/start", "twice")))
        await asyncio.sleep(0.3)
        assert not held.done()  # waiting on the other's mark
        conn.execute(text("COMMIT"))
    assert await held == []
    with pg_demo.db.session() as s:  # the newcomer this unit created is undone with it
        assert s.execute(text("SELECT 1 FROM \"user\" WHERE external_id = 'newcomer'")).first() is None


def test_on_postgresql_a_unit_whose_connection_is_killed_midway_runs_again(pg_demo: App) -> None:
    """The server drops the unit's connection in the middle (pg_terminate_backend, as a restart does):
    the unit runs again on a new connection and its write is made once."""
    attempts: list[int] = []

    def work(s: Any) -> int:
        attempts.append(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
        s.execute(text("INSERT INTO processedupdate (key, created_at) VALUES ('console:cut', now())"))
        if len(attempts) == 1:
            with pg_admin() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (attempts[0],))
        return int(
            s.execute(text("SELECT count(*) FROM processedupdate WHERE key = 'console:cut'")).scalar_one()
        )

    assert pg_demo.db.in_unit(work) == 1
    assert len(attempts) == 2 and attempts[0] != attempts[1]
    with pg_demo.db.session() as s:
        assert (
            s.execute(text("SELECT count(*) FROM processedupdate WHERE key = 'console:cut'")).scalar_one()
            == 1
        )


def backend_of(db: Database) -> int:
    """The server process of the connection a session takes (the pool's most recently used)."""
    with db.session() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def cut(pid: int) -> None:
    """The server drops that connection (as a restart does), and has when this returns."""
    with pg_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def test_on_postgresql_a_connection_cut_while_it_rested_in_the_pool_is_replaced_unseen(
    pg_demo: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection that rested longer than PING_IDLE is pinged when taken: one the server
    dropped meanwhile is replaced before use, and the session sees no error."""
    monkeypatch.setattr(storage.db, "PING_IDLE", 0.0)
    first = backend_of(pg_demo.db)
    cut(first)
    assert backend_of(pg_demo.db) != first


def test_on_postgresql_a_connection_busy_a_moment_ago_is_taken_without_a_ping(
    pg_demo: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load no round trip goes to pinging: a connection cut right after its use fails its next
    statement, with an error a unit is run again for (`transient`), and the pool's older connections
    are dropped with it."""
    monkeypatch.setattr(storage.db, "PING_IDLE", 60.0)
    first = backend_of(pg_demo.db)
    cut(first)
    with pytest.raises(DBAPIError) as failed:
        backend_of(pg_demo.db)
    assert transient(failed.value)
    assert backend_of(pg_demo.db) != first


def test_on_postgresql_a_unit_that_fails_otherwise_is_not_run_again(pg_demo: App) -> None:
    """Only a lost connection or a deadlock is retried: a statement the database refuses fails at once."""
    attempts: list[int] = []

    def work(s: Any) -> None:
        attempts.append(1)
        s.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(ProgrammingError):
        pg_demo.db.in_unit(work)
    assert attempts == [1]
