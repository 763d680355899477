"""Offices and schools, and who works over a school."""

from __future__ import annotations

from sqlalchemy import CTE, func, literal, or_
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


MAX_LEVELS = 8  # offices above offices; a province has three (province, district, and the school's own)


def office_chain(s: Session, office_id: int) -> list[Office]:
    """The office and every office above it, nearest first: one recursive query (it was one a level),
    which stops at a loop in the parents and after MAX_LEVELS."""
    up = _offices_up(office_id)
    chain: list[Office] = []
    for office in s.exec(select(Office).join(up, col(Office.id) == up.c.id).order_by(up.c.depth)):
        if office in chain:
            break  # a loop in the parents: the offices up to it, once
        chain.append(office)
    return chain


def _offices_up(office_id: int) -> CTE:
    """The office and those above it (id, depth), as a recursive CTE of at most MAX_LEVELS + 1 rows."""
    up = (
        select(
            col(Office.id).label("id"), col(Office.parent_id).label("parent_id"), literal(0).label("depth")
        )
        .where(col(Office.id) == office_id)
        .cte("up", recursive=True)
    )
    return up.union_all(
        select(col(Office.id), col(Office.parent_id), up.c.depth + 1)
        .join(up, col(Office.id) == up.c.parent_id)
        .where(up.c.depth < MAX_LEVELS)
    )


def staff_over_school(
    s: Session, school_id: int, roles: tuple[str, ...] = ("officer", "leader")
) -> list[User]:
    """Officers and leaders of the school's office and of the offices above it (one statement, the
    school read before unless the session has it)."""
    school = s.get(School, school_id)
    if school is None:
        return []
    up = _offices_up(school.office_id)
    stmt = (
        select(User)
        .where(
            col(User.office_id).in_(select(up.c.id)),
            col(User.role).in_(roles),
            col(User.blocked).is_(False),
        )
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
