"""The durable inbox: platform updates stored as they came, before the platform hears they arrived.

A channel stores each update (`store_received`) and only then answers the webhook's POST or moves its
polling offset past it; the update's handling deletes its row in the handling's own transaction
(`forget_received`), so a crash at any moment leaves each update either stored (handled after the
restart) or handled (its key is in ProcessedUpdate), never lost and never handled twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, func
from sqlalchemy.orm import aliased
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


_OLDER = aliased(Received)
_KEYS = table_of(ProcessedUpdate)
# Built once: every free place of every worker asks (building the statement cost more than the read).
_HEAD = (
    select(Received, exists().where(_KEYS.c.key == Received.key).label("handled"))
    .where(
        col(Received.channel) == bindparam("channel"),
        ~select(_OLDER.id)
        .where(
            _OLDER.channel == Received.channel,
            _OLDER.chat == Received.chat,
            col(_OLDER.id) < Received.id,
        )
        .exists(),
    )
    .order_by(col(Received.id))
    .limit(1)
    .with_for_update(skip_locked=True)
)


def claim_head(s: Session, channel: str) -> tuple[Received, bool] | None:
    """The oldest stored update of a chat that no other worker holds, locked until `s`'s transaction
    ends (PostgreSQL: FOR UPDATE SKIP LOCKED), and whether its key was handled already (in the same
    read: a worker that lost its claim may have handled it). Only a chat's oldest row is a candidate,
    and a row another worker holds is skipped, so a chat's next update cannot be taken while its
    current one is in hand: its row exists until the claim's transaction deletes it and commits."""
    found = s.exec(_HEAD, params={"channel": channel}).first()
    if found is None:
        return None
    head, handled = found
    return head, bool(handled)


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
