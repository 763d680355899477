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

from sqlalchemy import bindparam, delete, func
from sqlmodel import Session, col, select

from storage.db import insert_rows, table_of
from storage.models import Received
from storage.queries.locks import Stored


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
