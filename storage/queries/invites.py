"""Registration codes: made by an operator, redeemed once by a principal, officer or leader."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.models import CodeAttempt, Invite, School, User

# Unambiguous on a phone screen: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


class Redeem(StrEnum):
    """What became of a registration code."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class InviteTarget:
    """What an invite binds to."""

    role: str
    school_id: int | None = None
    office_id: int | None = None
    levels: str = ""  # an officer limited to some school levels, e.g. "MN"


def new_code(length: int = CODE_LENGTH) -> str:
    """A random registration code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def create_invites(s: Session, target: InviteTarget, count: int, now: datetime, days: int) -> list[Invite]:
    """`count` fresh single-use codes for `target`, valid for `days`."""
    invites = []
    for _ in range(count):
        invite = Invite(
            code=new_code(),
            role=target.role,
            school_id=target.school_id,
            office_id=target.office_id,
            levels=target.levels,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        s.add(invite)
        invites.append(invite)
    s.flush()
    return invites


def recent_wrong_codes(s: Session, user_id: int, since: datetime) -> int:
    """How many wrong codes a user sent since `since`."""
    stmt = (
        select(func.count())
        .select_from(CodeAttempt)
        .where(col(CodeAttempt.user_id) == user_id, col(CodeAttempt.created_at) >= since)
    )
    return int(s.exec(stmt).one())


def redeem_invite(
    s: Session, user: User, code: str, now: datetime, max_wrong: int, window: timedelta
) -> Redeem:
    """Bind `user` to the invite's school or office; every failure is counted for the throttle."""
    if recent_wrong_codes(s, user.id or 0, now - window) >= max_wrong:
        return Redeem.THROTTLED
    invite = s.exec(select(Invite).where(col(Invite.code) == code.strip().upper())).first()
    outcome = Redeem.OK
    if invite is None:
        outcome = Redeem.UNKNOWN
    elif invite.used_at is not None:
        outcome = Redeem.USED
    elif invite.expires_at <= now:
        outcome = Redeem.EXPIRED
    if outcome is not Redeem.OK or invite is None:
        s.add(CodeAttempt(user_id=user.id or 0, created_at=now))
        return outcome
    # Claim the code atomically: a second worker redeeming it at the same moment updates nothing.
    claimed = s.execute(
        update(Invite)
        .where(col(Invite.id) == invite.id, col(Invite.used_at).is_(None))
        .values(used_at=now, used_by_id=user.id)
    )
    if not getattr(claimed, "rowcount", 0):
        return Redeem.USED
    user.role = invite.role
    user.school_id = invite.school_id
    user.office_id = invite.office_id
    user.levels = invite.levels
    user.registered_at = now
    if invite.school_id is not None:
        school = s.get(School, invite.school_id)
        user.office_id = school.office_id if school else None
    s.add(user)
    return Redeem.OK


@dataclass(frozen=True)
class LetterSchool:
    """A school a principal's invitation letter goes to."""

    id: int
    code: str
    name: str
    level: str


def schools_to_invite(s: Session, conditions: list[Any], include_registered: bool) -> list[LetterSchool]:
    """The schools matching `conditions` (a scope's, storage.scope.in_scope), by code.

    Schools that already have a registered principal are left out unless `include_registered`.
    """
    stmt = select(School.id, School.code, School.name, School.level).where(*conditions)
    if not include_registered:
        registered = select(col(User.school_id)).where(
            col(User.role) == "principal", col(User.school_id).is_not(None)
        )
        stmt = stmt.where(col(School.id).not_in(registered))
    rows = s.execute(stmt.order_by(col(School.code))).all()
    return [LetterSchool(int(r[0]), r[1], r[2], r[3]) for r in rows]


def create_codes(s: Session, codes: list[tuple[int, str]], now: datetime, days: int) -> list[Invite]:
    """One principal's code per (school id, code) pair, made beforehand (the letters already hold them)."""
    invites = [
        Invite(
            code=code,
            role="principal",
            school_id=school_id,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        for school_id, code in codes
    ]
    s.add_all(invites)
    s.flush()
    return invites
