"""Offices and schools, and who works over a school."""

from __future__ import annotations

import functools

from sqlalchemy import CTE, bindparam, func, literal, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

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
    chain: list[Office] = []
    for office in s.exec(_chain_stmt(), params={"office_id": office_id}):
        if office in chain:
            break  # a loop in the parents: the offices up to it, once
        chain.append(office)
    return chain


def _offices_up() -> CTE:
    """The office `:office_id` and those above it (id, depth), as a recursive CTE of at most
    MAX_LEVELS + 1 rows."""
    up = (
        select(
            col(Office.id).label("id"), col(Office.parent_id).label("parent_id"), literal(0).label("depth")
        )
        .where(col(Office.id) == bindparam("office_id"))
        .cte("up", recursive=True)
    )
    return up.union_all(
        select(col(Office.id), col(Office.parent_id), up.c.depth + 1)
        .join(up, col(Office.id) == up.c.parent_id)
        .where(up.c.depth < MAX_LEVELS)
    )


# The statements over `_offices_up` are built once (its office a parameter): building a recursive CTE
# and what selects from it cost more than running it, on the hot path of an incident's **Gửi**.


@functools.cache
def _chain_stmt() -> SelectOfScalar[Office]:
    """The offices of `_offices_up`, nearest first."""
    up = _offices_up()
    return select(Office).join(up, col(Office.id) == up.c.id).order_by(up.c.depth)


@functools.cache
def _staff_stmt(roles: tuple[str, ...]) -> SelectOfScalar[User]:
    """The users with one of `roles` in an office of `_offices_up`, not blocked, by id."""
    up = _offices_up()
    return (
        select(User)
        .where(
            col(User.office_id).in_(select(up.c.id)),
            col(User.role).in_(roles),
            col(User.blocked).is_(False),
        )
        .order_by(col(User.id))
    )


def staff_over_school(
    s: Session, school_id: int, roles: tuple[str, ...] = ("officer", "leader")
) -> list[User]:
    """Officers and leaders of the school's office and of the offices above it (one statement, the
    school read before unless the session has it)."""
    school = s.get(School, school_id)
    if school is None:
        return []
    return list(s.exec(_staff_stmt(roles), params={"office_id": school.office_id}))


def school_users(s: Session, school_id: int) -> list[User]:
    """The registered principal-role users of a school."""
    stmt = (
        select(User)
        .where(col(User.school_id) == school_id, col(User.role) == "principal")
        .order_by(col(User.id))
    )
    return list(s.exec(stmt))
