"""The engine and its sessions; the only place that knows SQLite's particulars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, Table, create_engine, event, true
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

_open: ContextVar[bool] = ContextVar("schoolbot_session_open", default=False)


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
        # and busy_timeout makes a second writer wait for it.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder created and their pragmas set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        _sqlite_hooks(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """Owns the engine; hands out short transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded engine."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error.

        Sessions never nest: a second one opened inside the first would wait on the first's write
        lock (SQLite BEGIN IMMEDIATE) until the busy timeout; it fails at once instead.
        """
        if _open.get():
            raise RuntimeError("a database session was opened inside another; pass the open session down")
        token = _open.set(True)
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                yield s
        finally:
            _open.reset(token)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def table_of(model: type[SQLModel] | Table) -> Table:
    """The Table behind a SQLModel class (SQLModel leaves `__table__` untyped)."""
    if isinstance(model, Table):
        return model
    table = sa_inspect(model).local_table
    if not isinstance(table, Table):  # a table=True model always maps one Table
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def _insert(session: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT construct, which knows ON CONFLICT (SQLite or PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(
    session: Session, model: type[SQLModel] | Table, values: dict[str, Any] | list[dict[str, Any]]
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite or PostgreSQL; the number of rows inserted."""
    table = table_of(model)
    # Count RETURNING rows: drivers disagree on rowcount here (psycopg 3 reports -1).
    stmt = (
        _insert(session, table).values(values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    )
    return len(session.execute(stmt).all())


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
