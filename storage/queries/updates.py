"""Platform update keys already handled, so a redelivery is done once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlmodel import Session, col

from storage.db import insert_ignore, table_of
from storage.models import ProcessedUpdate


def first_time_seen(s: Session, key: str, now: datetime) -> bool:
    """Record an update key; False when it was recorded before (a redelivery)."""
    return insert_ignore(s, ProcessedUpdate, {"key": key, "created_at": now}) == 1


_KEYS = table_of(ProcessedUpdate)
# Built once: every update asks (the statement's building and cache key cost more than the read).
_SEEN = select(_KEYS.c.key).where(_KEYS.c.key == bindparam("key"))


def seen_before(s: Session, key: str) -> bool:
    """Whether an update with this key was handled already (a read: it takes no lock)."""
    return s.execute(_SEEN, {"key": key}).first() is not None


def forget_updates_before(s: Session, cutoff: datetime) -> int:
    """Drop update keys older than `cutoff` (platforms redeliver for a day at most)."""
    result = s.execute(delete(ProcessedUpdate).where(col(ProcessedUpdate.created_at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
