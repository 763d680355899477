"""Messages kept for a user who cannot be reached now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from storage.db import table_of
from storage.models import Inbox


def keep_for_later(s: Session, user_id: int, payload: dict[str, Any], now: datetime) -> None:
    """Keep a message for a user who cannot be reached now."""
    s.add(Inbox(user_id=user_id, payload=payload, created_at=now))


_INBOX = table_of(Inbox)
# Built once: every update asks, and almost always finds nothing.
_KEPT = (
    select(_INBOX.c.id, _INBOX.c.payload)
    .where(_INBOX.c.user_id == bindparam("user_id"), _INBOX.c.delivered_at.is_(None))
    .order_by(_INBOX.c.id)
)
_DELIVERED = (
    update(_INBOX)
    .where(_INBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(delivered_at=bindparam("now", type_=_INBOX.c.delivered_at.type))
)


def take_kept(s: Session, user_id: int, now: datetime) -> list[dict[str, Any]]:
    """The messages kept for a user, marked delivered."""
    rows = s.execute(_KEPT, {"user_id": user_id}).all()
    if rows:
        s.execute(_DELIVERED, {"ids": [row.id for row in rows], "now": now})
    return [row.payload for row in rows]
