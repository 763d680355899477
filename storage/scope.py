"""Scope: which schools a person sees, written once, in SQL that callers compose.

A principal sees their school. An officer, leader or admin sees the schools of their office and of every
office below it (`office_tree`, a recursive query over `Office.parent_id`); an officer may be limited to
some school levels (`User.levels`, "MN" or "TH,THCS"), where a combined level ("TH&THCS") matches each of
its parts (`level_filter`).

Everything here is a SQL condition or a SELECT of school ids, put into the caller's statement as a
subquery (`School.id IN (SELECT ...)`): no caller builds a list of ids, which for a national officer
would run past SQLite's limit on bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import CTE, ColumnElement, Select, false, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlmodel import Session, col

from storage.models import Office, School, User

BROAD = 0.5  # a scope holding more than this share of all schools builds its derived tables whole

SchoolIds: TypeAlias = Select[int | None]
"""A SELECT of school ids, to compose as `School.id IN (...)`."""


@dataclass(frozen=True)
class Scope:
    """The schools a leader or officer sees: under `office_id`, of `levels` when given.

    `broad` and `everything` are planning facts from `sized`: the scope holds most schools of the
    database, or all of them (then no row needs its school checked).
    """

    office_id: int
    levels: tuple[str, ...] = ()
    schools: int = 0
    broad: bool = False
    everything: bool = False


def tree_of(roots: ColumnElement[bool], name: str) -> CTE:
    """(root, id): each office where `roots` holds, paired with itself and every office below it.

    UNION, not UNION ALL: a cycle in the data ends the walk.
    """
    tree = (
        select(col(Office.id).label("root"), col(Office.id).label("id"))
        .where(roots)
        .cte(name, recursive=True)
    )
    child = aliased(Office)
    return tree.union(select(tree.c.root, col(child.id)).where(col(child.parent_id) == tree.c.id))


@lru_cache(maxsize=1024)
def office_tree(office_id: int) -> CTE:
    """The office and every office below it (column `id`).

    The same CTE object for the same office, so a statement that names the scope twice renders it once.
    """
    return tree_of(col(Office.id) == office_id, "office_tree")


def offices_under(office_id: int) -> Select[int]:
    """The ids of the office and of every office below it."""
    tree = office_tree(office_id)
    return select(tree.c.id)


def parse_levels(levels: str | None) -> tuple[str, ...]:
    """ "mn, TH" -> ("MN", "TH"); empty: no limit."""
    return tuple(x.strip().upper() for x in (levels or "").split(",") if x.strip())


def levels_of(user: User) -> tuple[str, ...]:
    """The levels a user is limited to: an officer's, if any; leaders and admins see every level."""
    return parse_levels(user.levels) if user.role == "officer" else ()


def level_filter(
    levels: Sequence[str], column: InstrumentedAttribute[str] | Any = School.level
) -> ColumnElement[bool]:
    """A school (or rollup row) of one of `levels`; a combined level ("TH&THCS") matches each of its parts."""
    level = func.upper(column)
    parts: list[ColumnElement[bool]] = []
    for wanted in (x.strip().upper() for x in levels if x.strip()):
        parts += [
            level == wanted,
            level.like(f"{wanted}&%"),
            level.like(f"%&{wanted}"),
            level.like(f"%&{wanted}&%"),
        ]
    return or_(*parts) if parts else true()


def level_matches(levels: str, school_level: str) -> bool:
    """`level_filter` for a school already in hand: its level ("TH&THCS") is among `levels` ("MN,TH")."""
    wanted = set(parse_levels(levels))
    return not wanted or bool(wanted & set(school_level.upper().split("&")))


def in_scope(scope: Scope) -> list[ColumnElement[bool]]:
    """Conditions on School for the schools of a scope (none when it is every school)."""
    if scope.everything:
        return []
    conditions: list[ColumnElement[bool]] = [col(School.office_id).in_(offices_under(scope.office_id))]
    if scope.levels:
        conditions.append(level_filter(scope.levels))
    return conditions


def school_ids(scope: Scope) -> SchoolIds:
    """The ids of the scope's schools."""
    return select(col(School.id)).where(*in_scope(scope))


def sized(s: Session, scope: Scope) -> Scope:
    """The scope with its size and planning facts."""
    inside = int(s.execute(select(func.count()).select_from(School).where(*in_scope(scope))).scalar_one())
    total = int(s.execute(select(func.count()).select_from(School)).scalar_one())
    return replace(scope, schools=inside, broad=inside > BROAD * total, everything=0 < total == inside)


# ---- a person's scope ------------------------------------------------------------------------------


def of_user(user: User, by_level: bool = True) -> Scope | None:
    """The office scope of an officer, leader or admin (None for a principal or one with no office).

    `by_level` False ignores an officer's levels (the lists of incidents and nominations do).
    """
    if user.role == "principal" or user.office_id is None:
        return None
    return Scope(user.office_id, levels_of(user) if by_level else ())


def seen_by(user: User, by_level: bool = True) -> list[ColumnElement[bool]]:
    """Conditions on School for the schools a user sees: their own, or their offices' (within levels)."""
    if user.role == "principal":
        return [col(School.id) == user.school_id] if user.school_id is not None else [false()]
    scope = of_user(user, by_level)
    return in_scope(scope) if scope is not None else [false()]


def ids_seen_by(user: User, by_level: bool = True) -> SchoolIds:
    """The ids of the schools a user sees."""
    return select(col(School.id)).where(*seen_by(user, by_level))


def schools_seen_by(s: Session, user: User) -> list[School]:
    """The schools a user sees, by name."""
    stmt = select(School).where(*seen_by(user)).order_by(col(School.name_folded), col(School.id))
    return list(s.scalars(stmt))


def sees(s: Session, user: User, school_id: int) -> bool:
    """Whether a user may see this school."""
    stmt = select(col(School.id)).where(col(School.id) == school_id, *seen_by(user))
    return s.execute(stmt).first() is not None


def schools_under_each(s: Session, levels: Sequence[str] = ()) -> dict[int, set[int]]:
    """For every office, the ids of the schools of `levels` under it (in one statement, for a sweep)."""
    tree = tree_of(true(), "office_trees")
    stmt = (
        select(tree.c.root, col(School.id))
        .join(School, col(School.office_id) == tree.c.id)
        .where(level_filter(levels))
    )
    out: dict[int, set[int]] = {}
    for root, school_id in s.execute(stmt):
        out.setdefault(int(root), set()).add(int(school_id))
    return out
