"""Incidents as cases: their record, who took them, the moves of their state, the messages on them.

Every move of a case is one conditional UPDATE on the state it starts from (`move`): of two officers
pressing at the same moment, one moves it and the other finds it already moved (and is told who holds
it), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, update
from sqlmodel import Session, col, select

from storage import scope
from storage.db import insert_entity, insert_ignore
from storage.models import Incident, IncidentAck, IncidentMessage, Outbox, School, Submission, User

OPEN_STATES = ("new", "acked", "working", "resolved")  # every state but closed
NEXT = {"acked": "working", "working": "resolved", "resolved": "closed"}  # the moves after taking it


def create_incident(
    s: Session,
    submission: Submission,
    severity: str,
    now: datetime,
    happened_at: datetime | None = None,
    phone: str = "",
) -> Incident:
    """The incident record of a submission, created once."""
    made = insert_entity(
        s,
        Incident,
        {
            "submission_id": submission.id,
            "school_id": submission.school_id,
            "severity": severity,
            "created_at": now,
            "happened_at": happened_at,
            "phone": phone,
            "state": "new",
        },
    )
    if made is not None:
        return made
    return s.exec(select(Incident).where(col(Incident.submission_id) == submission.id)).one()


def acknowledge(s: Session, incident_id: int, user_id: int, now: datetime) -> bool:
    """Take a case: the first acknowledgement moves it from new to acked, with its holder; False when
    someone had taken it already (their acknowledgement is still recorded, once)."""
    insert_ignore(s, IncidentAck, {"incident_id": incident_id, "user_id": user_id, "created_at": now})
    return move(s, incident_id, ("new",), "acked", holder_id=user_id, acked_at=now)


def move(s: Session, incident_id: int, from_states: tuple[str, ...], to: str, **values: Any) -> bool:
    """Move a case to `to` if it is still in one of `from_states` (one conditional UPDATE); the other
    columns in `values`. False when it had moved meanwhile."""
    stmt = (
        update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.state).in_(from_states))
        .values(state=to, **values)
    )
    done = bool(getattr(s.execute(stmt), "rowcount", 0) == 1)
    s.expire_all()
    return done


def acks_of(s: Session, incident_id: int) -> list[User]:
    """Who acknowledged an incident, in order."""
    stmt = (
        select(User)
        .join(IncidentAck, col(IncidentAck.user_id) == col(User.id))
        .where(col(IncidentAck.incident_id) == incident_id)
        .order_by(col(IncidentAck.created_at))
    )
    return list(s.exec(stmt))


def incidents_in_scope(s: Session, user: User, limit: int = 10) -> list[tuple[Incident, School]]:
    """The incidents a user may see (their school's, or their offices' schools' of every level): the
    open cases first, latest first, then the closed ones, latest first."""
    closed = case((col(Incident.state) == "closed", 1), else_=0)
    stmt = (
        select(Incident, School)
        .join(School, col(School.id) == col(Incident.school_id))
        .where(*scope.seen_by(user, by_level=False))
        .order_by(closed, col(Incident.id).desc())
    )
    return list(s.exec(stmt.limit(limit)))


def incident_seen_by(s: Session, user: User, incident_id: int) -> tuple[Incident, School] | None:
    """The incident, if the user may see it (the same rule as /incidents)."""
    stmt = (
        select(Incident, School)
        .join(School, col(School.id) == col(Incident.school_id))
        .where(col(Incident.id) == incident_id, *scope.seen_by(user, by_level=False))
    )
    found = s.exec(stmt).first()
    return (found[0], found[1]) if found is not None else None


def add_message(
    s: Session,
    incident_id: int,
    user_id: int,
    side: str,
    text: str,
    now: datetime,
    links: list[str] | None = None,
    media: list[dict[str, Any]] | None = None,
) -> IncidentMessage:
    """One more message on a case (`side`: "office" or "school")."""
    row = IncidentMessage(
        incident_id=incident_id,
        user_id=user_id,
        side=side,
        text=text,
        links=list(links or []),
        media=list(media or []),
        created_at=now,
    )
    s.add(row)
    s.flush()
    return row


def messages_of(s: Session, incident_id: int) -> list[tuple[IncidentMessage, User]]:
    """The messages on a case, in the order they were written, with their writers."""
    stmt = (
        select(IncidentMessage, User)
        .join(User, col(User.id) == col(IncidentMessage.user_id))
        .where(col(IncidentMessage.incident_id) == incident_id)
        .order_by(col(IncidentMessage.created_at), col(IncidentMessage.id))
    )
    return [(m, u) for m, u in s.exec(stmt)]


def unacknowledged_before(s: Session, before: datetime) -> list[Incident]:
    """Cases still new (nobody took them) raised before `before` and not yet escalated."""
    stmt = select(Incident).where(
        col(Incident.state) == "new",
        col(Incident.escalated_at).is_(None),
        col(Incident.created_at) <= before,
    )
    return list(s.exec(stmt.order_by(col(Incident.id))))


def mark_escalated(s: Session, incident_id: int, now: datetime) -> bool:
    """Record the escalation once; False when it was (another sweep got there first)."""
    stmt = (
        update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.escalated_at).is_(None))
        .values(escalated_at=now)
    )
    return bool(getattr(s.execute(stmt), "rowcount", 0) == 1)


def leaders_over(s: Session, school_id: int) -> list[User]:
    """The leaders of the nearest office over the school that has any (its district, else above)."""
    from storage.queries.organisation import office_chain

    school = s.get(School, school_id)
    if school is None:
        return []
    for office in office_chain(s, school.office_id):
        stmt = select(User).where(
            col(User.office_id) == office.id, col(User.role) == "leader", col(User.blocked).is_(False)
        )
        found = list(s.exec(stmt.order_by(col(User.id))))
        if found:
            return found
    return []


def alert_rows(s: Session, periods: list[str]) -> list[Outbox]:
    """The alerts written for a case (its first alerts and its escalations), in order."""
    stmt = select(Outbox).where(col(Outbox.kind) == "alert", col(Outbox.period).in_(periods))
    return list(s.exec(stmt.order_by(col(Outbox.id))))
