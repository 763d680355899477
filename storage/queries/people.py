"""A school's people: their profile, removing one who has left, and who is on board (codes outstanding).

A person who leaves is not deleted: their accounts lose their role and binding (the next message is
an unregistered one), while their name and position stay on the rows, so what they sent still shows
who sent it. Everything that counts a school as registered reads `role == "principal"`, so a removed
person stops counting at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from storage.models import Inbox, Invite, Outbox, School, Submission, User
from storage.queries.channels import accounts_of
from storage.queries.invites import InviteTarget, create_invites
from storage.stats import forget_rollup

SCHOOL_ROLE = "principal"  # every account of a school (principal, vice, media) has this role


def save_profile(s: Session, user: User, full_name: str, position: str, phone: str) -> list[User]:
    """Write the person's name, position and phone on every account of theirs (linked channels)."""
    accounts = accounts_of(s, user)
    for account in accounts:
        account.full_name, account.position, account.phone = full_name, position, phone
        s.add(account)
    return accounts


def is_last_person(s: Session, user: User) -> bool:
    """Whether removing this person leaves their school with no registered account."""
    if user.school_id is None:
        return False
    mine = {a.id for a in accounts_of(s, user)}
    stmt = select(User.id).where(col(User.school_id) == user.school_id, col(User.role) == SCHOOL_ROLE)
    return all(i in mine for i in s.exec(stmt))


def remove_person(s: Session, user: User, now: datetime) -> list[User]:
    """End a school person's access on every channel: role and binding cleared, name and position kept;
    what still waits for them (outbox rows, messages kept for their next visit) is dropped.

    The month rollup is dropped (recomputed when next read): a school's joining date may have moved.
    """
    accounts = [a for a in accounts_of(s, user) if a.role is not None]
    ids = [a.id for a in accounts]
    if not ids:
        return []
    s.execute(
        update(User)
        .where(col(User.id).in_(ids))
        .values(role=None, school_id=None, office_id=None, levels="", menu={})
    )
    s.execute(
        update(Outbox)
        .where(col(Outbox.user_id).in_(ids), col(Outbox.status) == "pending")
        .values(status="cancelled", updated_at=now, last_error="removed from the school")
    )
    s.execute(delete(Inbox).where(col(Inbox.user_id).in_(ids)))
    forget_rollup(s)
    for account in accounts:
        s.refresh(account)
    return accounts


# ---- who is on board ---------------------------------------------------------------------------------


@dataclass
class Boarding:
    """One school of a scope: its people (registered accounts) and its codes still outstanding."""

    school: School
    people: list[User] = field(default_factory=list)
    codes: list[Invite] = field(default_factory=list)

    @property
    def registered(self) -> bool:
        """Whether the school has at least one registered account."""
        return bool(self.people)

    @property
    def since(self) -> datetime | None:
        """When the school joined: its first registered account."""
        moments = [p.registered_at or p.created_at for p in self.people]
        return min(moments) if moments else None


def outstanding(now: datetime) -> list[Any]:
    """Conditions on Invite for a principal's code that can still be redeemed."""
    return [
        col(Invite.role) == SCHOOL_ROLE,
        col(Invite.used_at).is_(None),
        col(Invite.expires_at) > now,
    ]


def boarding(s: Session, conditions: list[Any], now: datetime) -> list[Boarding]:
    """Every school matching `conditions` (a scope's, storage.scope.in_scope) by name, with its people
    and outstanding codes: three statements whatever the number of schools."""
    schools = list(
        s.exec(select(School).where(*conditions).order_by(col(School.name_folded), col(School.id)))
    )
    by_id = {school.id: Boarding(school) for school in schools}
    ids = select(School.id).where(*conditions)
    people = select(User).where(col(User.role) == SCHOOL_ROLE, col(User.school_id).in_(ids))
    for user in s.exec(people.order_by(col(User.id))):
        by_id[user.school_id].people.append(user)
    codes = select(Invite).where(col(Invite.school_id).in_(ids), *outstanding(now))
    for invite in s.exec(codes.order_by(col(Invite.expires_at))):
        by_id[invite.school_id].codes.append(invite)
    return list(by_id.values())


def reissue_code(s: Session, school_id: int, now: datetime, days: int) -> Invite:
    """A new principal's code for the school; its codes still outstanding stop working at once."""
    s.execute(
        update(Invite).where(col(Invite.school_id) == school_id, *outstanding(now)).values(expires_at=now)
    )
    return create_invites(s, InviteTarget(SCHOOL_ROLE, school_id=school_id), 1, now, days)[0]


def senders_by_school(s: Session, conditions: list[Any], kind: str, period: str) -> dict[str, list[User]]:
    """Per school code (of the schools matching `conditions`), the accounts that sent `kind` for `period`,
    the first sender first."""
    stmt = (
        select(School.code, User)
        .select_from(Submission)
        .join(User, col(User.id) == col(Submission.user_id))
        .join(School, col(School.id) == col(Submission.school_id))
        .where(col(Submission.kind) == kind, col(Submission.period) == period, *conditions)
        .order_by(col(Submission.created_at), col(Submission.id))
    )
    out: dict[str, list[User]] = {}
    for code, user in s.exec(stmt):
        found = out.setdefault(code, [])
        if user not in found:
            found.append(user)
    return out
