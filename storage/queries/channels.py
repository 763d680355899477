"""Channels: monthly quotas, and one person's accounts on several channels."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import insert_ignore
from storage.models import ChannelUsage, LinkCode, User
from storage.queries.invites import new_code
from storage.queries.sweep import Principal


def add_usage(s: Session, channel: str, month: str, count: int) -> int:
    """Count `count` more messages sent on `channel` in `month` (negative: give back); the month's new total."""
    _count(s, channel, month, count, limit=None)
    return usage(s, channel, month)


def reserve_usage(s: Session, channel: str, month: str, count: int, limit: int) -> bool:
    """Count `count` messages on `channel` in `month` only if the total stays within `limit`; whether it did.

    One conditional UPDATE: two senders (tasks or processes) cannot both take the month's last messages.
    """
    return _count(s, channel, month, count, limit)


def _count(s: Session, channel: str, month: str, count: int, limit: int | None) -> bool:
    """Add `count` to the month's row (made at 0 if missing), unless that passes `limit`; whether it did."""
    insert_ignore(s, ChannelUsage, {"channel": channel, "month": month, "sent": 0})
    stmt = update(ChannelUsage).where(col(ChannelUsage.channel) == channel, col(ChannelUsage.month) == month)
    if limit is not None:
        stmt = stmt.where(col(ChannelUsage.sent) + count <= limit)
    result = s.execute(stmt.values(sent=col(ChannelUsage.sent) + count))
    return bool(getattr(result, "rowcount", 0))


def usage(s: Session, channel: str, month: str) -> int:
    """Messages sent on `channel` in `month`."""
    row = s.get(ChannelUsage, (channel, month))
    return row.sent if row else 0


def create_link_code(s: Session, user_id: int, now: datetime, hours: int = 24) -> str:
    """A one-time code that joins another channel's account to this user."""
    code = new_code()
    s.add(LinkCode(code=code, user_id=user_id, expires_at=now + timedelta(hours=hours)))
    return code


def link_accounts(s: Session, code: str, user: User, now: datetime) -> User | None:
    """Join `user` (on another channel) to the code's account: same person, role, school or office.

    None for an unknown or expired code, or one made on the same channel; the code is used once.
    """
    row = s.get(LinkCode, code.strip().upper())
    if row is None or row.expires_at <= now:
        return None
    source = s.get(User, row.user_id)
    s.delete(row)
    if source is None or source.channel == user.channel or source.role is None:
        return None
    person = source.person_id or source.id
    source.person_id = person
    user.person_id = person
    user.role, user.school_id, user.office_id, user.levels = (
        source.role,
        source.school_id,
        source.office_id,
        source.levels,
    )
    user.registered_at = now
    s.add(source)
    s.add(user)
    return source


def accounts_of(s: Session, user: User) -> list[User]:
    """Every account of the same person (at least the user's own)."""
    if user.person_id is None:
        return [user]
    return list(s.exec(select(User).where(col(User.person_id) == user.person_id).order_by(col(User.id))))


Account = TypeVar("Account", User, Principal)


def one_per_person(users: list[Account], prefer: str = "last_used") -> list[Account]:
    """One account per person, so a message reaches them once (Users, or the sweep's Principals).

    `prefer`: "last_used" (the account seen most recently), a channel name ("telegram", "zalo":
    that channel's account when the person has one), or "both" (every account).
    """
    if prefer == "both":
        return users
    people: dict[int, list[Account]] = {}
    for user in users:
        people.setdefault(user.person_id or -(user.id or 0), []).append(user)
    chosen = []
    for accounts in people.values():
        on_channel = [a for a in accounts if a.channel == prefer]
        pool = on_channel or accounts
        chosen.append(
            max(pool, key=lambda a: (a.last_seen_at is not None, a.last_seen_at or a.created_at, a.id or 0))
        )
    return sorted(chosen, key=lambda a: a.id or 0)
