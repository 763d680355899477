"""Announcements (/announce): the office's messages to its schools, their recipients and receipts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.db import insert_ignore
from storage.models import Announcement, AnnouncementReceipt, Outbox, School, User
from storage.queries.outbox import OUTBOX_CHUNK
from storage.scope import SchoolIds

ANNOUNCE = "announce"  # the outbox kind of an announcement's messages


def announcement_period(announcement_id: int) -> str:
    """The outbox period of an announcement's messages: "announce:12"."""
    return f"{ANNOUNCE}:{announcement_id}"


def school_people(s: Session, ids: SchoolIds) -> dict[int, list[User]]:
    """The registered people of these schools who have not blocked the bot, by school."""
    stmt = (
        select(User)
        .where(
            col(User.school_id).in_(ids),
            col(User.role) == "principal",
            col(User.blocked).is_(False),
        )
        .order_by(col(User.id))
    )
    out: dict[int, list[User]] = {}
    for user in s.exec(stmt):
        out.setdefault(user.school_id or 0, []).append(user)
    return out


def schools_where(s: Session, ids: SchoolIds) -> list[School]:
    """The schools of a SELECT of ids, by name."""
    stmt = select(School).where(col(School.id).in_(ids)).order_by(col(School.name_folded), col(School.id))
    return list(s.exec(stmt))


def create_announcement(s: Session, values: dict[str, Any]) -> tuple[Announcement, bool]:
    """The announcement of `values["token"]`, created once; (row, created)."""
    created = insert_ignore(s, Announcement, values) == 1
    row = s.exec(select(Announcement).where(col(Announcement.token) == values["token"])).first()
    assert row is not None
    return row, created


def add_receipts(s: Session, announcement_id: int, recipients: Sequence[tuple[int, int]]) -> int:
    """A receipt per (user id, school id) recipient; how many were new."""
    rows = [{"announcement_id": announcement_id, "user_id": u, "school_id": sc} for u, sc in recipients]
    return sum(
        insert_ignore(s, AnnouncementReceipt, rows[i : i + OUTBOX_CHUNK])
        for i in range(0, len(rows), OUTBOX_CHUNK)
    )


def confirm_receipt(
    s: Session, announcement_id: int, user_ids: Sequence[int], now: datetime
) -> tuple[bool, bool]:
    """A "received" from one of `user_ids` (a person's accounts): (is a recipient, confirmed just now)."""
    stmt = select(AnnouncementReceipt).where(
        col(AnnouncementReceipt.announcement_id) == announcement_id,
        col(AnnouncementReceipt.user_id).in_(user_ids),
    )
    receipts = list(s.exec(stmt))
    if not receipts:
        return False, False
    if any(r.confirmed_at is not None for r in receipts):
        return True, False
    s.execute(
        update(AnnouncementReceipt)
        .where(col(AnnouncementReceipt.id).in_([r.id for r in receipts]))
        .values(confirmed_at=now)
    )
    return True, True


def recent_announcements(s: Session, office_id: int, limit: int) -> list[Announcement]:
    """An office's latest announcements, newest first."""
    stmt = (
        select(Announcement)
        .where(col(Announcement.office_id) == office_id)
        .order_by(col(Announcement.id).desc())
        .limit(limit)
    )
    return list(s.exec(stmt))


def themes_announced(s: Session, office_id: int, period: str) -> Announcement | None:
    """The office's announcement of a month's plan themes, if it made one."""
    stmt = select(Announcement).where(
        col(Announcement.office_id) == office_id,
        col(Announcement.period) == period,
        col(Announcement.themes).is_(True),
    )
    return s.exec(stmt).first()


@dataclass(frozen=True)
class Receipts:
    """An announcement's confirmations among some schools: schools and people, confirmed of all."""

    schools: int
    schools_confirmed: int
    people: int
    people_confirmed: int


def receipts(s: Session, announcement_id: int, seen: SchoolIds) -> Receipts:
    """How many of the recipients in the schools of `seen` confirmed."""
    r = AnnouncementReceipt
    base = [col(r.announcement_id) == announcement_id, col(r.school_id).in_(seen)]
    people, people_confirmed = s.execute(
        select(func.count(), func.count(col(r.confirmed_at))).where(*base)
    ).one()
    schools = s.execute(select(func.count(func.distinct(col(r.school_id)))).where(*base)).scalar_one()
    confirmed = s.execute(
        select(func.count(func.distinct(col(r.school_id)))).where(*base, col(r.confirmed_at).is_not(None))
    ).scalar_one()
    return Receipts(int(schools), int(confirmed), int(people), int(people_confirmed))


def unconfirmed_schools(s: Session, announcement_id: int, seen: SchoolIds, limit: int) -> list[School]:
    """The schools of `seen` that received an announcement where nobody has confirmed it, by name."""
    r = AnnouncementReceipt
    confirmed = select(r.school_id).where(
        col(r.announcement_id) == announcement_id, col(r.confirmed_at).is_not(None)
    )
    received = select(r.school_id).where(col(r.announcement_id) == announcement_id)
    stmt = (
        select(School)
        .where(col(School.id).in_(seen), col(School.id).in_(received), col(School.id).not_in(confirmed))
        .order_by(col(School.name_folded), col(School.id))
        .limit(limit)
    )
    return list(s.exec(stmt))


def delivery_counts(s: Session, announcement_id: int) -> dict[str, int]:
    """An announcement's messages by outbox status (pending, claimed, sent, blocked, dead...)."""
    stmt = (
        select(Outbox.status, func.count())
        .where(col(Outbox.kind) == ANNOUNCE, col(Outbox.period) == announcement_period(announcement_id))
        .group_by(col(Outbox.status))
    )
    return {status: int(n) for status, n in s.exec(stmt)}
