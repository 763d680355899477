"""What the reminder sweep reads: reachable users, the schools, who sent what."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select as columns
from sqlmodel import Session, col, select

from storage.models import School, Submission, User


class Principal(NamedTuple):
    """A principal's account as the sweep reads it: what its outbox row and its reminder's words need,
    and what picks one account per person (`one_per_person`). A plain tuple, not a User: a wave reads
    thousands at once, and the ORM object (its state, its JSON menu) weighs about four times more."""

    id: int
    channel: str
    external_id: str
    chat_id: str
    display_name: str
    locale: str
    school_id: int
    person_id: int | None
    created_at: datetime
    last_seen_at: datetime | None


class SchoolName(NamedTuple):
    """A school as the sweep reads it: its id and its name (and the name folded, to sort by)."""

    id: int
    name: str
    name_folded: str


def _reachable_principal() -> tuple[Any, ...]:
    """Who a reminder can reach: a registered principal-role account that has not blocked the bot."""
    return (col(User.role) == "principal", col(User.school_id).is_not(None), col(User.blocked).is_(False))


def reachable_principals(s: Session, school_ids: Collection[int]) -> list[Principal]:
    """The reachable principal-role accounts of these schools, by id."""
    stmt = (
        columns(
            col(User.id),
            col(User.channel),
            col(User.external_id),
            col(User.chat_id),
            col(User.display_name),
            col(User.locale),
            col(User.school_id),
            col(User.person_id),
            col(User.created_at),
            col(User.last_seen_at),
        )
        .where(col(User.school_id).in_(school_ids), *_reachable_principal())
        .order_by(col(User.id))
    )
    return [Principal(*row) for row in s.execute(stmt)]


def schools_with_principals(s: Session) -> set[int]:
    """Ids of the schools with at least one reachable principal-role account."""
    stmt = columns(col(User.school_id)).where(*_reachable_principal()).distinct()
    return {school_id for (school_id,) in s.execute(stmt)}


def reachable_staff(s: Session, roles: tuple[str, ...] = ("officer", "leader")) -> list[User]:
    """Officers and leaders with an office who have not blocked the bot."""
    stmt = (
        select(User)
        .where(col(User.role).in_(roles), col(User.office_id).is_not(None), col(User.blocked).is_(False))
        .order_by(col(User.id))
    )
    return list(s.exec(stmt))


def schools_that_sent(s: Session, kind: str, period: str) -> set[int]:
    """Ids of the schools with a submission of `kind` for `period`."""
    stmt = (
        select(Submission.school_id)
        .where(col(Submission.kind) == kind, col(Submission.period) == period)
        .distinct()
    )
    return set(s.exec(stmt))


def all_schools(s: Session) -> list[SchoolName]:
    """Every school's id and name, by name."""
    stmt = columns(col(School.id), col(School.name), col(School.name_folded)).order_by(
        col(School.name_folded), col(School.id)
    )
    return [SchoolName(*row) for row in s.execute(stmt)]


def submissions_between(s: Session, school_id: int, after: datetime, until: datetime) -> list[Submission]:
    """A school's submissions first sent in (after, until]."""
    stmt = select(Submission).where(
        col(Submission.school_id) == school_id,
        col(Submission.created_at) > after,
        col(Submission.created_at) <= until,
    )
    return list(s.exec(stmt.order_by(col(Submission.id))))
