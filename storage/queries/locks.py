"""The chats a worker holds in the shared inbox (bot/claims.py `ChatLocks`, PostgreSQL): session-level
advisory locks on the worker's own locks connection, and the statements that take and let go of them.

Every update costs a take and a let-go, so these run on the driver's connection itself (psycopg, in
autocommit), as statements prepared there once (compiled from their SQLAlchemy constructs) and each
time EXECUTEd in one plain query: SQLAlchemy's work for a statement (a Session, its result, an ORM row)
cost more CPU than the statement's round trip, and a claim's end with the next take is five statements
in one round trip (`let_go`) at the driver's cost of one.

    sql = LockSQL(engine.dialect); sql.setup(conn)     # on each new locks connection
    found = lock_head(conn, sql, "telegram", held)      # (Stored, handled, lock, more) or None
    found = let_go(conn, sql, [row.id], settled, owner, unlock=lock, take=("telegram", held))
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    Integer,
    all_,
    any_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ColumnClause
from sqlmodel import col

from storage.db import table_of
from storage.models import Outbox, ProcessedUpdate, Received
from storage.queries.outbox import STANDBY


@dataclass(frozen=True)
class Stored:
    """A stored update as its claim holds it: its row, key, chat and the platform's JSON."""

    id: int
    key: str
    chat: str
    payload: dict[str, Any]


# Keyed (CHAT_LOCKS, hashtext of "<channel>:<chat>"). Two chats may share a key: they then wait on each
# other, no more. The server lets a connection's locks go when it ends, however it ends.
CHAT_LOCKS = 0x5C0B
_LOCK_OF = func.hashtext(col(Received.channel).concat(":").concat(col(Received.chat)))
_SPACE: ColumnClause[int] = literal_column(str(CHAT_LOCKS))
_KEYS = table_of(ProcessedUpdate)
_HANDLED = exists().where(_KEYS.c.key == Received.key).label("handled")
_ROW = (col(Received.id), col(Received.key), col(Received.chat), col(Received.payload), _HANDLED)
_IDS = ARRAY(Integer)

# The chats' oldest updates in order, less those this worker holds already (a session's advisory lock
# is taken again by the same session, so these must be left out before the lock is tried), the first
# one whose lock can be taken, read with whether its key was handled. The candidates are a MATERIALIZED
# CTE, read in their order: without that fence PostgreSQL moved the lock call into the scan under the
# sort and took every candidate's lock. So the lock is tried row by row, in order, and no further than
# the first taken.
_HEADS = (
    select(func.min(Received.id).label("id"), _LOCK_OF.label("lock"))
    .where(
        col(Received.channel) == bindparam("channel"),
        all_(bindparam("held", type_=_IDS)) != _LOCK_OF,  # one statement, whatever is held
    )
    # One pass over the rows (a NOT EXISTS of an older row in the chat compared every pair of them).
    .group_by(col(Received.channel), col(Received.chat))
    .order_by(func.min(Received.id))
    .cte("heads")
    .prefix_with("MATERIALIZED")
)
_TAKEN = (
    select(_HEADS.c.id, _HEADS.c.lock)
    .where(func.pg_try_advisory_lock(_SPACE, _HEADS.c.lock))
    .limit(1)
    .cte("taken")
    .prefix_with("MATERIALIZED")
)
# Whether another chat's update waits besides the one taken (held elsewhere, maybe): a free place looks.
_MORE = (select(func.count()).select_from(_HEADS).scalar_subquery() > 1).label("more")
_LOCK_HEAD = select(*_ROW, _TAKEN.c.lock, _MORE).join(_TAKEN, col(Received.id) == _TAKEN.c.id)
_HEAD_OF = (
    select(*_ROW)
    .where(col(Received.channel) == bindparam("channel"), col(Received.chat) == bindparam("chat"))
    .order_by(col(Received.id))
    .limit(1)
)
_UNLOCK = select(func.pg_advisory_unlock(_SPACE, cast(bindparam("lock"), Integer)))
_RECEIVED, _OUTBOX = table_of(Received), table_of(Outbox)
# A claim's end: the updates' rows go, and in the same statement the standby rows of their replies that
# went (only those `owner` still holds, as `settle_standby`; a data-modifying WITH runs to its end
# whether or not it is read).
_LET_GO = (
    delete(_RECEIVED)
    .where(_RECEIVED.c.id == any_(bindparam("ids", type_=_IDS)))
    .add_cte(
        delete(_OUTBOX)
        .where(
            _OUTBOX.c.id == any_(bindparam("settled", type_=_IDS)),
            _OUTBOX.c.status == STANDBY,
            _OUTBOX.c.lease_owner == bindparam("owner"),
        )
        .cte("settled")
    )
)


class Prepared:
    """A statement prepared once on the locks connection (`PREPARE`, its SQL compiled from the construct
    with $n parameters), run by an `EXECUTE` with its values written in: several of them go as one plain
    query, in one round trip and at the driver's cost of one statement."""

    def __init__(self, name: str, stmt: ClauseElement, dialect: Dialect) -> None:
        kind: Any = type(dialect)
        positional: Dialect = kind(paramstyle="numeric_dollar")  # the dialect's SQL, with $n
        compiled = stmt.compile(dialect=positional)
        assert isinstance(compiled, SQLCompiler)
        self.name = name
        self.prepare = f"PREPARE {name} AS {compiled}"
        self.order = list(compiled.positiontup or ())
        self.fixed = dict(compiled.params)

    def call(self, escape: Escape, **params: Any) -> str:
        """The EXECUTE of it with these values."""
        values = self.fixed | params
        return f"EXECUTE {self.name}({', '.join(literal(values[name], escape) for name in self.order)})"


Escape = Callable[[bytes], bytes]  # the connection's own quoting of a string literal (libpq's)


def literal(value: Any, escape: Escape) -> str:
    """A value written into an EXECUTE: an integer, a list of them (an array) or a string, quoted by the
    connection's libpq (`escape`); nothing else is taken."""
    if isinstance(value, bool) or not isinstance(value, int | str | list | tuple):
        raise TypeError(f"no literal for {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return escape(value.encode()).decode()
    return "'{" + ",".join(str(int(v)) for v in value) + "}'"


class LockSQL:
    """The statements of the chat locks on one locks connection: `setup` prepares them there."""

    def __init__(self, dialect: Dialect) -> None:
        self.lock_head = Prepared("schoolbot_lock_head", _LOCK_HEAD, dialect)
        self.head_of = Prepared("schoolbot_head_of", _HEAD_OF, dialect)
        self.unlock = Prepared("schoolbot_unlock", _UNLOCK, dialect)
        self.let_go = Prepared("schoolbot_let_go", _LET_GO, dialect)

    def setup(self, conn: Any) -> None:
        """Prepare the statements on a new locks connection (the driver's, in autocommit)."""
        conn.execute("; ".join(p.prepare for p in (self.lock_head, self.head_of, self.unlock, self.let_go)))


def run_plain(conn: Any, *statements: str) -> Any:
    """The statements as one plain query (one round trip); the cursor at the last one's result."""
    cursor = conn.execute("; ".join(statements))
    while cursor.nextset():
        pass
    return cursor


def escape_of(conn: Any) -> Escape:
    """The connection's own quoting of a string literal (libpq's, which knows its encoding)."""
    from psycopg import pq  # only on PostgreSQL; not at start

    escaping: Escape = pq.Escaping(conn.pgconn).escape_literal
    return escaping


Found = tuple[Stored, bool, int, bool]


def _found(row: Any) -> Found | None:
    """A take's row: the update, whether it was handled, its chat's lock, whether another chat's
    update was waiting too."""
    if row is None:
        return None
    row_id, key, chat, payload, handled, lock, more = row
    return Stored(row_id, key, chat, payload), bool(handled), int(lock), bool(more)


def lock_head(conn: Any, sql: LockSQL, channel: str, held: Collection[int]) -> Found | None:
    """On a worker's locks connection: the oldest stored update of a chat that no worker holds, its chat
    now held by this connection; whether its key was handled already, the chat's lock, and whether
    another chat not held here has an update waiting too (so that another free place looks only then).
    None when every chat waiting is held. `held`: the locks this worker holds already.

    The row is read as the statement began, the lock taken a moment later: its holder may have handled
    it and let go in between. It was then handled before the read began, so the read says handled
    (read the chat's head again, `chat_head`: handled by a worker that lost its hold, or gone), but for
    a holder whose whole handling and reply fitted in that moment, which its unit's own mark catches
    (bot/dispatch.py `unit`: the key marked in its first read)."""
    take = sql.lock_head.call(escape_of(conn), channel=channel, held=sorted(held))
    return _found(run_plain(conn, take).fetchone())


def chat_head(conn: Any, sql: LockSQL, channel: str, chat: str) -> tuple[Stored, bool] | None:
    """The chat's oldest stored update, and whether its key was handled already (in the same read: a
    worker that lost its hold may have handled it); None when the chat has none left."""
    row = run_plain(conn, sql.head_of.call(escape_of(conn), channel=channel, chat=chat)).fetchone()
    if row is None:
        return None
    row_id, key, chat, payload, handled = row
    return Stored(row_id, key, chat, payload), bool(handled)


def unlock_chat(conn: Any, sql: LockSQL, lock: int) -> None:
    """On the locks connection that took it: the chat's lock goes (its next update can be taken)."""
    run_plain(conn, sql.unlock.call(escape_of(conn), lock=lock))


def let_go(
    conn: Any,
    sql: LockSQL,
    ids: Sequence[int],
    settled: Sequence[int],
    owner: str,
    *,
    unlock: int | None,
    take: tuple[str, Collection[int]] | None = None,
) -> Found | None:
    """A claim ends, in one round trip: the updates' rows `ids` go with the standby rows `settled` of
    their replies, committed; then the chat's lock `unlock` goes (None: it went with an earlier
    connection), so its next update can be taken only once these rows are gone; then, given `take`
    (the channel, the locks held), the next chat is taken as `lock_head` would.

    The delete is a transaction of its own (BEGIN ... COMMIT): the statements of one plain query share
    a transaction unless they say otherwise, and the unlock would come before the commit."""
    escape = escape_of(conn)
    statements = [
        "BEGIN",
        sql.let_go.call(escape, ids=list(ids), settled=list(settled), owner=owner),
        "COMMIT",
    ]
    if unlock is not None:
        statements.append(sql.unlock.call(escape, lock=unlock))
    if take is not None:
        statements.append(sql.lock_head.call(escape, channel=take[0], held=sorted(take[1])))
    cursor = run_plain(conn, *statements)
    return None if take is None else _found(cursor.fetchone())
