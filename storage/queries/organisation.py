"""Offices and schools, and who works over a school."""

from __future__ import annotations

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from storage.models import Office, School, User
from storage.text import fold


def office_by_code(s: Session, code: str) -> Office | None:
    """The office with this code."""
    return s.exec(select(Office).where(col(Office.code) == code)).first()


def school_by_code(s: Session, code: str) -> School | None:
    """The school with this code."""
    return s.exec(select(School).where(col(School.code) == code)).first()


def find_schools(s: Session, query: str, limit: int = 20) -> list[School]:
    """Schools whose name or code contains `query`, ignoring accents and case."""
    needle = fold(query)
    if not needle:
        return []
    stmt = (
        select(School)
        .where(or_(col(School.name_folded).contains(needle), func.lower(School.code) == needle))
        .order_by(col(School.name_folded))
        .limit(limit)
    )
    return list(s.exec(stmt))


def office_chain(s: Session, office_id: int) -> list[Office]:
    """The office and every office above it, nearest first."""
    chain: list[Office] = []
    seen: set[int] = set()
    current = s.get(Office, office_id)
    while current is not None and current.id not in seen:
        chain.append(current)
        seen.add(current.id or 0)
        current = s.get(Office, current.parent_id) if current.parent_id else None
    return chain


def staff_over_school(
    s: Session, school_id: int, roles: tuple[str, ...] = ("officer", "leader")
) -> list[User]:
    """Officers and leaders of the school's office and of the offices above it."""
    school = s.get(School, school_id)
    if school is None:
        return []
    office_ids = [o.id for o in office_chain(s, school.office_id)]
    stmt = (
        select(User)
        .where(col(User.office_id).in_(office_ids), col(User.role).in_(roles), col(User.blocked).is_(False))
        .order_by(col(User.id))
    )
    return list(s.exec(stmt))


def school_users(s: Session, school_id: int) -> list[User]:
    """The registered principal-role users of a school."""
    stmt = (
        select(User)
        .where(col(User.school_id) == school_id, col(User.role) == "principal")
        .order_by(col(User.id))
    )
    return list(s.exec(stmt))
