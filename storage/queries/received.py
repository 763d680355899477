"""The durable inbox: platform updates stored as they came, before the platform hears they arrived.

A channel stores each update (`store_received`) and only then answers the webhook's POST or moves its
polling offset past it; the update's handling deletes its row in the handling's own transaction
(`forget_received`), so a crash at any moment leaves each update either stored (handled after the
restart) or handled (its key is in ProcessedUpdate), never lost and never handled twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Integer, all_, bindparam, cast, delete, exists, func, literal_column
from sqlalchemy.sql.expression import ColumnClause
from sqlmodel import Session, col, select

from storage.db import insert_rows, table_of
from storage.models import Outbox, ProcessedUpdate, Received
from storage.queries.outbox import STANDBY, settle_standby


@dataclass(frozen=True)
class Arrival:
    """One update as a channel stores it: its dedupe key, its chat, the platform's JSON."""

    key: str
    chat: str
    payload: dict[str, Any]


def store_received(s: Session, channel: str, arrivals: Sequence[Arrival], now: datetime) -> dict[str, int]:
    """Store updates not stored yet (a redelivery of one still waiting adds nothing); the new rows' ids
    by key."""
    if not arrivals:
        return {}
    values = [
        {"channel": channel, "key": a.key[:96], "chat": a.chat[:64], "payload": a.payload, "received_at": now}
        for a in arrivals
    ]
    return {key: row_id for key, row_id in insert_rows(s, Received, values, ("key", "id"))}


def waiting(s: Session, channel: str) -> list[Received]:
    """The channel's updates not handled yet, in the order they came (after a crash or a stop)."""
    return list(s.exec(select(Received).where(col(Received.channel) == channel).order_by(col(Received.id))))


_RECEIVED = table_of(Received)
_FORGET = delete(_RECEIVED).where(_RECEIVED.c.id.in_(bindparam("ids", expanding=True)))  # built once


def forget_received(s: Session, ids: Sequence[int]) -> None:
    """The updates are handled: their rows go (in the handling's transaction)."""
    if ids:
        s.execute(_FORGET, {"ids": list(ids)})


_OUTBOX = table_of(Outbox)
# A claim's end (PostgreSQL), built once: the standby rows of the replies sent go in the same statement
# as the update's row (a data-modifying WITH runs to completion whether or not it is read).
_FORGET_SETTLED = _FORGET.add_cte(
    delete(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(bindparam("settled", expanding=True)),
        _OUTBOX.c.status == STANDBY,
        _OUTBOX.c.lease_owner == bindparam("owner"),
    )
    .cte("settled")
)


def let_go(s: Session, ids: Sequence[int], settled: Sequence[int], owner: str) -> None:
    """A claim on the shared inbox ends (bot/claims.py, PostgreSQL): the updates' rows go, and with them,
    in one statement, the standby rows `settled` of their replies that went (only those `owner` still
    holds, as `settle_standby`)."""
    if not settled or not ids:
        forget_received(s, ids)
        settle_standby(s, list(settled), owner)
        return
    s.execute(_FORGET_SETTLED, {"ids": list(ids), "settled": list(settled), "owner": owner})


def waiting_counts(s: Session) -> list[tuple[str, int]]:
    """(channel, count) of the stored updates not handled yet."""
    stmt = select(Received.channel, func.count()).group_by(col(Received.channel))
    return [(channel, int(n)) for channel, n in s.exec(stmt)]


_KEYS = table_of(ProcessedUpdate)
_HANDLED = exists().where(_KEYS.c.key == Received.key).label("handled")

# The shared inbox's chats held by workers (bot/claims.py, PostgreSQL): session-level advisory locks,
# keyed (CHAT_LOCKS, hashtext of "<channel>:<chat>"). Two chats may share a key: they then wait on
# each other, no more. The server lets a connection's locks go when it ends, however it ends.
CHAT_LOCKS = 0x5C0B
_LOCK_OF = func.hashtext(col(Received.channel).concat(":").concat(col(Received.chat)))
_SPACE: ColumnClause[int] = literal_column(str(CHAT_LOCKS))
# Built once: every free place of every worker asks. The chats' oldest updates in order, less those
# this worker holds already (a session's advisory lock is taken again by the same session, so these
# must be left out before the lock is tried), the first one whose lock can be taken, read whole with
# whether its key was handled. The candidates are a MATERIALIZED CTE, read in their order: without
# that fence PostgreSQL moved the lock call into the scan under the sort and took every candidate's
# lock. So the lock is tried row by row, in order, and no further than the first taken.
_HEADS = (
    select(func.min(Received.id).label("id"), _LOCK_OF.label("lock"))
    .where(
        col(Received.channel) == bindparam("channel"),
        all_(bindparam("held", type_=ARRAY(Integer))) != _LOCK_OF,  # one statement, whatever is held
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
_LOCK_HEAD = select(Received, _HANDLED, _TAKEN.c.lock).join(_TAKEN, col(Received.id) == _TAKEN.c.id)
_UNLOCK_CHAT = select(func.pg_advisory_unlock(_SPACE, cast(bindparam("lock"), Integer)))
_HEAD_OF = (
    select(Received, _HANDLED)
    .where(col(Received.channel) == bindparam("channel"), col(Received.chat) == bindparam("chat"))
    .order_by(col(Received.id))
    .limit(1)
)


def lock_head(s: Session, channel: str, held: Collection[int]) -> tuple[Received, bool, int] | None:
    """On a worker's locks connection (autocommit): the oldest stored update of a chat that no worker
    holds, its chat now held by this connection; whether its key was handled already, and the chat's
    lock. None when every chat waiting is held. `held`: the locks this worker holds already.

    The row is read as the statement began, the lock taken a moment later: its holder may have handled
    it and let go in between. It was then handled before the read began, so the read says handled
    (read the chat's head again, `chat_head`: handled by a worker that lost its hold, or gone), but for
    a holder whose whole handling and reply fitted in that moment, which its unit's own check catches
    (bot/dispatch.py `Redelivered`)."""
    found = s.exec(_LOCK_HEAD, params={"channel": channel, "held": sorted(held)}).first()
    if found is None:
        return None
    head, handled, lock = found
    return head, bool(handled), int(lock)


def chat_head(s: Session, channel: str, chat: str) -> tuple[Received, bool] | None:
    """The chat's oldest stored update, and whether its key was handled already (in the same read: a
    worker that lost its hold may have handled it); None when the chat has none left."""
    found = s.exec(_HEAD_OF, params={"channel": channel, "chat": chat}).first()
    if found is None:
        return None
    head, handled = found
    return head, bool(handled)


def unlock_chat(s: Session, lock: int) -> None:
    """On the locks connection that took it: the chat's lock goes (its next update can be taken)."""
    s.execute(_UNLOCK_CHAT, {"lock": lock})


def next_in_chat(s: Session, head: Received, limit: int) -> list[Received]:
    """Up to `limit` stored updates of `head`'s chat after it, oldest first (the rest of an album: its
    holder's claim on the head keeps them from every other worker)."""
    stmt = (
        select(Received)
        .where(
            col(Received.channel) == head.channel,
            col(Received.chat) == head.chat,
            col(Received.id) > (head.id or 0),
        )
        .order_by(col(Received.id))
        .limit(limit)
    )
    return list(s.exec(stmt))
