"""The engine and its sessions; the only place that knows SQLite's particulars."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Insert, Select, Table, create_engine, event, true
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel

from storage.errors import StartFailed

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

log = logging.getLogger("schoolbot.db")

_open: ContextVar[bool] = ContextVar("schoolbot_session_open", default=False)
# The transaction of the update being handled (`Database.unit`): sessions opened inside it join it.
_unit: ContextVar[Session | None] = ContextVar("schoolbot_unit", default=None)
# How SQLite transactions begin: IMMEDIATE (the write lock up front) unless a unit reads first.
_again: ContextVar[bool] = ContextVar("schoolbot_again", default=False)  # `Database.again` running
_begin: ContextVar[str] = ContextVar("schoolbot_begin", default="BEGIN IMMEDIATE")
LOCK_WAIT = 15.0  # seconds a SQLite transaction waits for this process's other one (as busy_timeout)
# PostgreSQL: a unit whose connection was lost (a restart, pg_terminate_backend) or that lost a
# deadlock is run again after these pauses (seconds); a restart takes a few seconds.
RETRY_PAUSES = (0.05, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
TRANSIENT_STATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006"})
T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)


def _sqlite_hooks(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE so writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        # A deferred transaction that later writes can fail at once with "database is locked"
        # when another connection wrote in between; IMMEDIATE takes the write lock up front,
        # and busy_timeout makes a second writer wait for it. An update's unit begins deferred
        # (its reads take no lock) and is run again IMMEDIATE if that happens (`Database.in_unit`).
        conn.exec_driver_sql(_begin.get())


# Threads running updates' units side by side on PostgreSQL (bot/dispatch.py `Workers`; the setting
# `database_threads`, this its default). Their round trips wait with the GIL let go, but their Python
# takes turns on it, and with the server on the same machine a unit is nine tenths CPU: on the
# interactive bench (two cores shared with the server) 3 answered 11-14 % more than 8 with 10-13 % less
# CPU an update (quiet), and a lower p95 in four pairs of five at 100 updates a second; 2 and 4 fewer
# than 3 (session 11). 8 had answered 2-22 % more than 16 (session 6). A database a few milliseconds
# away needs more: each unit waits some 8 round trips.
UNIT_THREADS = 3


def make_engine(url: str, threads: int = UNIT_THREADS) -> Engine:
    """An engine for `url`; SQLite files get their folder created and their pragmas set. On PostgreSQL
    its pool keeps a connection for each of `threads` units at once, and some for the rest."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15, "cached_statements": SQLITE_STATEMENTS},
        )
        _sqlite_hooks(engine)
        _take_savepoints(engine)
        return engine
    # A connection for each worker thread running updates (claims in the shared inbox take theirs there
    # too), one for each channel's chat locks (bot/claims.py), and some for the outbox's and the clock's
    # own work. The most recently used first (LIFO): under a light load a few connections stay busy and
    # are taken without a ping (`_ping_when_idle`).
    engine = create_engine(url, pool_size=threads + 8, max_overflow=8, pool_use_lifo=True)
    _ping_when_idle(engine)
    _take_savepoints(engine)
    return engine


PING_IDLE = 1.0  # seconds a pooled PostgreSQL connection may rest before it is pinged on its next use
_RESTED = "schoolbot_rested_at"  # a pooled connection's info: when it went back to the pool


def _ping_when_idle(engine: Engine) -> None:
    """A connection that rested in the pool over PING_IDLE is pinged when taken, and on failure the
    pool's older connections are all dropped and a new one is made (what `pool_pre_ping` does on every
    checkout: a round trip, each update took two or three). A connection busy a moment ago is taken
    unpinged: one that a PostgreSQL restart cut meanwhile fails its first statement, and the work runs
    again (`Database.in_unit` / `transient`; the claims and the outbox look again), as a connection
    cut in the middle of its work always did."""

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:
            record.info[_RESTED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.get(_RESTED)
        if rested is None or time.monotonic() - rested < PING_IDLE:
            return  # a new connection, or one busy a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # any failure: this connection is of no use
            raise InvalidatePoolError(f"a pooled connection failed its ping ({reason(exc)})") from exc


# Prepared statements each SQLite connection keeps (the sqlite3 module's LRU cache; its default is 128).
# A prepared statement of ours takes about 10 kB of SQLite's memory, and under load both pooled
# connections filled the default cache: 2.9 MB, 1.2 MB with 32, which hold an update's whole working
# set (the bench's quiet run: 1 % of statements prepared again, 0.5 % with 128).
SQLITE_STATEMENTS = 32
# On SQLite the units take turns (`Database.serial`, held for the whole unit), so more threads only
# wait on that lock, each with its stack, its event loop and its update in hand: 16 threads peaked
# 2 MB higher than 4 under the bench's 200 chatting principals. A few wait ready for the lock.
SQLITE_UNIT_THREADS = 4


def transient(exc: BaseException) -> bool:
    """PostgreSQL lost the connection (a restart, a terminated backend) or chose this transaction as a
    deadlock's or serialization's victim: the same work can simply run again."""
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return bool(exc.connection_invalidated) or state in TRANSIENT_STATES


def busy(exc: BaseException) -> bool:
    """SQLite's "database is locked": a write lock taken elsewhere, or a snapshot gone stale."""
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


class Database:
    """Owns the engine; hands out short transactions, and one transaction per update (`unit`).

    On SQLite, this process runs one transaction at a time (`serial`, a lock it takes before
    BEGIN): threads wait for each other on a Python lock rather than in SQLite's busy handler
    (which sleeps in steps of up to 100 ms), and a unit's deferred snapshot cannot be made stale
    by this process's own writes. PostgreSQL runs them side by side (row locks only).
    """

    def __init__(self, url: str, threads: int = UNIT_THREADS) -> None:
        self.url = url
        self.threads = threads  # PostgreSQL: units side by side (`database_threads`)
        self.engine = make_engine(url, threads)
        self.writer = threading.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded engine."""
        return self.engine.dialect.name == "sqlite"

    @property
    def where(self) -> str:
        """The database's URL as it may be shown: the password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self, *, savepoint: bool = True) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error.

        Sessions never nest: a second one opened inside the first would wait on the first's write
        lock (SQLite BEGIN IMMEDIATE) until the busy timeout; it fails at once instead.

        Inside an update's unit (`unit`) it joins the unit's transaction instead: a savepoint that
        is released on success and rolled back on error, and the rows read are let go at the end
        (as a closed session's would be), so the update's blocks stay independent of each other.
        `savepoint=False`: a block of one statement, which needs none (a failed statement leaves
        nothing behind on SQLite and fails the whole unit on PostgreSQL): a form's step saved its
        draft after a savepoint of its own, one round trip more on every update.
        """
        if _open.get():
            raise RuntimeError("a database session was opened inside another; pass the open session down")
        token = _open.set(True)
        try:
            unit = _unit.get()
            if unit is not None:
                with joined(unit, savepoint) as s:
                    yield s
            else:
                with self.serial(), Session(self.engine, expire_on_commit=False) as s, s.begin():
                    yield s
        finally:
            _open.reset(token)

    @contextmanager
    def serial(self) -> Iterator[None]:
        """On SQLite, this process's one transaction at a time; elsewhere nothing."""
        if self.writer is None:
            yield
            return
        if not self.writer.acquire(timeout=LOCK_WAIT):
            raise OperationalError("BEGIN", None, Exception("database is locked (this process)"))
        try:
            yield
        finally:
            self.writer.release()

    @contextmanager
    def unit(self, immediate: bool = False) -> Iterator[Session]:
        """One transaction for everything an update does; `session()` inside it joins it.

        On SQLite it begins deferred: its reads take no lock, the write lock is taken at its first
        write. Use `in_unit`, which runs the work again when that upgrade meets another writer.
        """
        if _open.get() or _unit.get() is not None:
            raise RuntimeError("a unit was opened inside a session or another unit")
        begin = _begin.set("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            with self.serial(), Session(self.engine, expire_on_commit=False) as s, s.begin():
                token = _unit.set(s)
                try:
                    yield s
                finally:
                    _unit.reset(token)
        finally:
            _begin.reset(begin)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction for figures read often (/metrics, /healthz): on SQLite a deferred
        BEGIN, which takes no write lock and waits for no writer (WAL), outside `serial`; rolled back."""
        begin = _begin.set("BEGIN")
        try:
            with Session(self.engine, expire_on_commit=False) as s:
                try:
                    yield s
                finally:
                    s.rollback()
        finally:
            _begin.reset(begin)

    def in_unit(self, work: Callable[[Session], T]) -> T:
        """`work` in one unit, committed; on SQLite, run once more with the write lock taken up front
        when its first write met another process's write ("database is locked", which never reaches
        a user); on PostgreSQL, run again (after a short pause, a few times) when its connection was
        lost or it lost a deadlock (`transient`). `work` must do nothing outside the database that it
        cannot do twice."""
        try:
            with self.unit() as s:
                return work(s)
        except DBAPIError as exc:
            if not self.is_sqlite and transient(exc):
                return self.again(work, exc)
            if not (self.is_sqlite and busy(exc)):
                raise
        with self.unit(immediate=True) as s:
            return work(s)

    def again(self, work: Callable[[Session], T], first: DBAPIError) -> T:
        """`work` run again after a transient PostgreSQL failure, pausing longer each time."""
        failure: DBAPIError = first
        with rerun():
            for pause in RETRY_PAUSES:
                log.warning("a transaction failed (%s); running it again", reason(failure))
                time.sleep(pause)
                try:
                    with self.unit() as s:
                        return work(s)
                except DBAPIError as exc:
                    if not transient(exc):
                        raise
                    failure = exc
            raise failure

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


class DriverConnection:
    """A connection of the driver's own (psycopg, in autocommit), taken from the engine's pool for
    statements prepared on it once (storage/queries/locks.py `Prepared`): SQLAlchemy's work for a
    statement (a Session, its transaction, its result) costs more CPU than the round trip of one that
    runs on almost every update. Made when first needed and set up by `setup`; dropped (`drop`) at
    its first error, so nothing it held is left in doubt, and made again when next needed. Used by
    one thread at a time: hold `mutex` around `open` and what is run on it."""

    def __init__(self, db: Database, setup: Callable[[Any], None]) -> None:
        self.db = db
        self.setup = setup
        self.mutex = threading.Lock()
        self.pooled: Any = None  # the pool's proxy of the connection, given back (invalidated) on drop
        self.conn: Any = None  # the driver's connection behind it
        self.generation = 0  # counts the connections made

    def open(self) -> Any:
        """The driver's connection, made and set up when there is none."""
        if self.pooled is None:
            self.pooled = self.db.engine.raw_connection()
            self.conn = self.pooled.driver_connection
            self.conn.autocommit = True
            self.generation += 1
            try:
                self.setup(self.conn)
            except BaseException:
                self.drop()
                raise
        return self.conn

    def drop(self) -> None:
        """Close the connection (a failed statement may have left it in doubt)."""
        pooled, self.pooled, self.conn = self.pooled, None, None
        if pooled is not None:
            with contextlib.suppress(Exception):
                pooled.invalidate()
                pooled.close()


@contextmanager
def sole_worker(url: str) -> Iterator[None]:
    """While open, this process is the only `schoolbot run` on a SQLite file: an exclusive lock on
    `<file>.run` (the kernel lets it go when the process ends, however it ends). A second one is
    refused with StartFailed. PostgreSQL takes any number of workers (and in-memory SQLite one)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = Path(database + ".run")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            where = parsed.render_as_string(hide_password=True)
            raise StartFailed(
                f"database_url = {where}: another schoolbot run (pid {other}) is already working on "
                "this SQLite database, and SQLite takes one worker; to run several, use PostgreSQL "
                "(README: Deploying)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # lets the lock go


@contextmanager
def joined(unit: Session, savepoint: bool = True) -> Iterator[Session]:
    """A block of an update's unit: a savepoint, and the rows it read let go at the end.

    The savepoint is plain SQL on the unit's connection rather than SQLAlchemy's `begin_nested`,
    whose bookkeeping cost more than the statements (several blocks an update): blocks never nest
    (`Database.session` refuses), and every block ends with the session emptied, so the ORM has no
    state to roll back with it. Its writes are flushed before the savepoint is released.

    A block that only reads takes no savepoint (`_Blocks`): a block's savepoint is taken just before
    its first statement that may write, after the release of the savepoint of the block before; the
    last one is released by the unit's COMMIT. So at most one is open at a time, and the unit's writes
    between two blocks are kept by the release like the block's own. A block that wrote nothing has
    nothing to undo: an error in it goes on as it came (a database error in a read fails the unit,
    which no handler catches to go on). On PostgreSQL the release and the savepoint are one message
    (the simple query protocol), so a block costs at most one round trip; SQLite takes one statement
    at a time. Most blocks only read: /mystatus's five took ten statements, now none.
    """
    conn = unit.connection()
    try:
        with _Blocks.of(unit, conn).block(savepoint):
            yield unit
            unit.flush()
    finally:
        unit.expunge_all()


class _Blocks:
    """The savepoints of one unit's blocks (kept in the unit Session's `info`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.one_by_one = conn.dialect.name != "postgresql"  # SQLite: one statement an execute
        self.open = False  # a block's savepoint is open (released when the next one is taken)
        self.pending = False  # the block running has written nothing yet: its savepoint is not taken

    @staticmethod
    def of(unit: Session, conn: Connection) -> _Blocks:
        """The unit's savepoints; the engine's hook is in place (`_take_savepoints`)."""
        blocks = unit.info.get(_BLOCKS)
        if not isinstance(blocks, _Blocks) or blocks.conn is not conn:
            blocks = unit.info[_BLOCKS] = _Blocks(conn)
        return blocks

    @contextmanager
    def block(self, savepoint: bool = True) -> Iterator[None]:
        """One block: its savepoint taken at its first write (`take`), its writes undone on error;
        without `savepoint`, a block of one statement, which takes none and has nothing to undo."""
        self.pending = savepoint
        token = _block.set(self)
        try:
            yield
        except BaseException:
            if savepoint and not self.pending:  # it wrote: its writes go, and so does its savepoint
                self.open = False
                with contextlib.suppress(SQLAlchemyError):  # a lost connection fails the unit anyway
                    self.run("ROLLBACK TO SAVEPOINT block", "RELEASE SAVEPOINT block")
            raise
        finally:
            self.pending = False
            _block.reset(token)

    def take(self) -> None:
        """The block's savepoint, before its first statement that may write."""
        self.pending = False
        self.run(*(("RELEASE SAVEPOINT block",) if self.open else ()), "SAVEPOINT block")
        self.open = True

    def run(self, *statements: str) -> None:
        """The statements, in one message where the database takes several."""
        if self.one_by_one:
            for statement in statements:
                self.conn.exec_driver_sql(statement)
        else:
            self.conn.exec_driver_sql("; ".join(statements))


_BLOCKS = "schoolbot_blocks"  # a unit's Session.info: its `_Blocks`
_block: ContextVar[_Blocks | None] = ContextVar("schoolbot_block", default=None)  # the block running here


def _take_savepoints(engine: Engine) -> None:
    """A block's savepoint is taken before the block's first statement that may write."""

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        blocks = _block.get()
        if blocks is not None and blocks.pending and blocks.conn is conn and _may_write(statement):
            blocks.take()
        unit = _unit.get()
        ahead = unit.info.get(_AHEAD) if unit is not None else None
        if ahead and _may_write(statement):  # rows read ahead of a table written now are stale
            head = statement[:40].lower()
            for table in [t for t in ahead if t in head]:
                del ahead[table]


_AHEAD = "schoolbot_ahead"  # a unit's Session.info: rows read ahead, by table (`read_ahead`)


def read_ahead(unit: Session, table: str, key: object, rows: list[Any]) -> None:
    """Rows of `table` read with an update's first statement (all of them for `key`, say the writer's
    id), kept for the unit's first read of them (`take_ahead`): one round trip fewer. A statement of
    the unit that writes to the table drops them (the engine's hook, `_take_savepoints`)."""
    unit.info.setdefault(_AHEAD, {})[table] = (key, rows)


def take_ahead(s: Session, table: str, key: object | None = None) -> list[Any] | None:
    """The rows of `table` read ahead in this unit (for `key`; None: whichever), taken once: a second
    read goes to the database as any read does. None when none are held."""
    ahead = s.info.get(_AHEAD)
    held = ahead.pop(table, None) if ahead else None
    if held is None or (key is not None and held[0] != key):
        return None
    return list(held[1])


def _may_write(statement: str) -> bool:
    """Anything but a plain SELECT (one that locks rows, FOR UPDATE / FOR SHARE, counts as a write)."""
    return statement.lstrip()[:6].upper() != "SELECT" or " FOR " in statement.upper()


def reason(exc: BaseException) -> str:
    """An error's first line; for a database error, the driver's (no statement, no parameters)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


@contextmanager
def rerun() -> Iterator[None]:
    """What runs inside is a unit run again after a transient failure (`running_again`)."""
    token = _again.set(True)
    try:
        yield
    finally:
        _again.reset(token)


def running_again() -> bool:
    """Whether this unit is a run again after a transient failure (`Database.again`): its first run may
    have committed, the answer lost with the connection."""
    return _again.get()


def in_unit_now() -> bool:
    """Whether an update's unit is open here (its sessions join it)."""
    return _unit.get() is not None


def table_of(model: type[SQLModel] | Table) -> Table:
    """The Table behind a SQLModel class (SQLModel leaves `__table__` untyped)."""
    if isinstance(model, Table):
        return model
    table = sa_inspect(model).local_table
    if not isinstance(table, Table):  # a table=True model always maps one Table
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def _insert(session: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The session's dialect's INSERT construct, which knows ON CONFLICT (SQLite or PostgreSQL)."""
    return dialect_insert(session.get_bind().dialect.name, table)


def dialect_insert(dialect: str, table: Table | type[SQLModel]) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT construct. Each dialect's module is imported here, not with this one: a
    process loads only its own database's (the other is 2 MB of modules)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


@functools.cache
def _insert_new_stmt(dialect: str, table: Table, returning: tuple[str, ...]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING, built once per table: its values come with each
    execution (an update's hot path inserts one row a time, and building the statement cost more)."""
    columns = [table.c[name] for name in returning] or list(table.primary_key.columns)
    return dialect_insert(dialect, table).on_conflict_do_nothing().returning(*columns)


@functools.cache
def _insert_entity_stmt(dialect: str, model: type[SQLModel]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the model, built once per model (its values come
    with each execution: building the VALUES and their cache key each time was most of its cost)."""
    return dialect_insert(dialect, model).on_conflict_do_nothing().returning(model)


def insert_entity(session: Session, model: type[M], values: dict[str, Any]) -> M | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the new row as the model's object, in the session as
    if it had been read; None when a row with its key was there already (the caller reads that one).
    One round trip where an insert and then a read of what it made took two (SQLAlchemy's ORM bulk
    INSERT with RETURNING, of one row)."""
    stmt = _insert_entity_stmt(session.get_bind().dialect.name, model)
    return session.scalars(stmt, [values]).first()


def insert_ignore(
    session: Session, model: type[SQLModel] | Table, values: dict[str, Any] | list[dict[str, Any]]
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite or PostgreSQL; the number of rows inserted."""
    return len(insert_new(session, model, values))


def insert_new(
    session: Session,
    model: type[SQLModel] | Table,
    values: dict[str, Any] | list[dict[str, Any]],
    returning: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ... ON CONFLICT DO NOTHING; the `returning` columns (default: the primary key) of the
    rows actually inserted."""
    # Count RETURNING rows: drivers disagree on rowcount here (psycopg 3 reports -1).
    stmt = _insert_new_stmt(session.get_bind().dialect.name, table_of(model), returning)
    if isinstance(values, dict):
        return [tuple(row) for row in session.execute(stmt, values).all()]
    return [tuple(row) for row in session.execute(stmt.values(values)).all()]


def insert_rows(
    session: Session, model: type[SQLModel] | Table, rows: list[dict[str, Any]], returning: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """INSERT ... ON CONFLICT DO NOTHING of several rows given as parameters of the statement built once
    (`_insert_new_stmt`): SQLAlchemy sends them as one multi-row INSERT ("insertmanyvalues"), where
    `insert_new` puts a list's VALUES in the statement, compiled anew each time (about 2 ms on a hot
    path). The `returning` columns of the rows actually inserted. Every row must have the same keys."""
    if not rows:
        return []
    stmt = _insert_new_stmt(session.get_bind().dialect.name, table_of(model), returning)
    return [tuple(row) for row in session.execute(stmt, rows).all()]


def upsert_select(
    session: Session, model: type[SQLModel] | Table, columns: list[str], rows: Select[Any]
) -> None:
    """INSERT INTO table (columns) SELECT ... ON CONFLICT (primary key) DO UPDATE the other columns."""
    table = table_of(model)
    # SQLite needs a WHERE in the SELECT of an upsert, or it may read ON CONFLICT as a join's ON.
    stmt = _insert(session, table).from_select(columns, rows.where(true()))
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in columns if c not in keys}
    )
    session.execute(stmt)
