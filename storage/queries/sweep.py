"""What the reminder sweep reads: reachable users, the schools, who sent what."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import School, Submission, User


def reachable_principals(s: Session) -> dict[int, list[User]]:
    """Registered principal-role users who have not blocked the bot, by school."""
    stmt = (
        select(User)
        .where(col(User.role) == "principal", col(User.school_id).is_not(None), col(User.blocked).is_(False))
        .order_by(col(User.id))
    )
    out: dict[int, list[User]] = {}
    for user in s.exec(stmt):
        out.setdefault(user.school_id or 0, []).append(user)
    return out


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


def all_schools(s: Session) -> list[School]:
    """Every school, by name."""
    return list(s.exec(select(School).order_by(col(School.name_folded), col(School.id))))


def submissions_between(s: Session, school_id: int, after: datetime, until: datetime) -> list[Submission]:
    """A school's submissions first sent in (after, until]."""
    stmt = select(Submission).where(
        col(Submission.school_id) == school_id,
        col(Submission.created_at) > after,
        col(Submission.created_at) <= until,
    )
    return list(s.exec(stmt.order_by(col(Submission.id))))
