"""Messages kept for a user who cannot be reached now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.models import Inbox


def keep_for_later(s: Session, user_id: int, payload: dict[str, Any], now: datetime) -> None:
    """Keep a message for a user who cannot be reached now."""
    s.add(Inbox(user_id=user_id, payload=payload, created_at=now))


def take_kept(s: Session, user_id: int, now: datetime) -> list[dict[str, Any]]:
    """The messages kept for a user, marked delivered."""
    rows = list(
        s.exec(
            select(Inbox)
            .where(col(Inbox.user_id) == user_id, col(Inbox.delivered_at).is_(None))
            .order_by(col(Inbox.id))
        )
    )
    for row in rows:
        row.delivered_at = now
        s.add(row)
    return [r.payload for r in rows]
