"""The durable inbox: platform updates stored as they came, before the platform hears they arrived.

A channel stores each update (`store_received`) and only then answers the webhook's POST or moves its
polling offset past it; the update's handling deletes its row in the handling's own transaction
(`forget_received`), so a crash at any moment leaves each update either stored (handled after the
restart) or handled (its key is in ProcessedUpdate), never lost and never handled twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func
from sqlalchemy.engine import Dialect
from sqlmodel import Session, col, select

from storage.db import insert_rows, table_of
from storage.models import Received, UTCDateTime
from storage.queries.locks import Prepared, Stored, escape_of


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
    values = [_row(channel, a, now) for a in arrivals]
    return {key: row_id for key, row_id in insert_rows(s, Received, values, ("key", "id"))}


def _row(channel: str, arrival: Arrival, now: datetime) -> dict[str, Any]:
    """An update's row as stored (its key and chat cut to their columns)."""
    return {
        "channel": channel,
        "key": arrival.key[:96],
        "chat": arrival.chat[:64],
        "payload": arrival.payload,
        "received_at": now,
    }


class StoreSQL:
    """The durable inbox's INSERT prepared on a connection of the driver's own (PostgreSQL, `setup` on
    each new one; storage/db.py `DriverConnection`), for `store_prepared`."""

    def __init__(self, dialect: Dialect) -> None:
        from sqlalchemy.dialects import postgresql  # only on PostgreSQL; not at start

        columns = ("channel", "key", "chat", "payload", "received_at")
        stmt = (
            postgresql.insert(_RECEIVED)
            .values({name: bindparam(f"new_{name}", type_=_RECEIVED.c[name].type) for name in columns})
            .on_conflict_do_nothing()
            .returning(_RECEIVED.c.key, _RECEIVED.c.id)
        )
        self.store = Prepared("schoolbot_store", stmt, dialect)

    def setup(self, conn: Any) -> None:
        """Prepare the INSERT on a new connection (the driver's, in autocommit)."""
        conn.execute(self.store.prepare)


_AT = UTCDateTime()


def store_prepared(
    conn: Any, sql: StoreSQL, batches: Sequence[tuple[str, Sequence[Arrival]]], now: datetime
) -> dict[str, int]:
    """`store_received` for several channels' updates at once, on the driver's connection: one EXECUTE
    of the prepared INSERT an update, all in one transaction sent as one plain query (one round trip,
    where a unit's Session took three and more CPU than the statements). The new rows' ids by key; a
    key given twice is the first one's. The values are as SQLAlchemy's JSON and UTC columns write them."""
    escape = escape_of(conn)
    at = _AT.process_bind_param(now, None)
    assert at is not None
    stamp = at.isoformat(sep=" ")  # the batch's one time, as the column writes it
    calls = []
    for channel, arrivals in batches:
        for arrival in arrivals:
            row = _row(channel, arrival, now) | {"payload": json.dumps(arrival.payload), "received_at": stamp}
            calls.append(sql.store.call(escape, **{f"new_{name}": value for name, value in row.items()}))
    if not calls:
        return {}
    cursor = conn.execute("; ".join(["BEGIN", *calls, "COMMIT"]))
    rows: dict[str, int] = {}
    while True:
        if cursor.description is not None:
            for key, row_id in cursor.fetchall():
                rows.setdefault(key, int(row_id))
        if not cursor.nextset():
            return rows


def waiting(s: Session, channel: str) -> list[Received]:
    """The channel's updates not handled yet, in the order they came (after a crash or a stop)."""
    return list(s.exec(select(Received).where(col(Received.channel) == channel).order_by(col(Received.id))))


_RECEIVED = table_of(Received)
_FORGET = delete(_RECEIVED).where(_RECEIVED.c.id.in_(bindparam("ids", expanding=True)))  # built once


def forget_received(s: Session, ids: Sequence[int]) -> None:
    """The updates are handled: their rows go (in the handling's transaction)."""
    if ids:
        s.execute(_FORGET, {"ids": list(ids)})


def waiting_counts(s: Session) -> list[tuple[str, int]]:
    """(channel, count) of the stored updates not handled yet."""
    stmt = select(Received.channel, func.count()).group_by(col(Received.channel))
    return [(channel, int(n)) for channel, n in s.exec(stmt)]


def next_in_chat(s: Session, channel: str, head: Stored, limit: int) -> list[Stored]:
    """Up to `limit` stored updates of `head`'s chat after it, oldest first (the rest of an album: its
    holder's claim on the head keeps them from every other worker)."""
    stmt = (
        select(Received.id, Received.key, Received.chat, Received.payload)
        .where(
            col(Received.channel) == channel,
            col(Received.chat) == head.chat,
            col(Received.id) > head.id,
        )
        .order_by(col(Received.id))
        .limit(limit)
    )
    return [Stored(row_id or 0, key, chat, dict(payload)) for row_id, key, chat, payload in s.exec(stmt)]
