"""Incident alerts and who acknowledged them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage import scope
from storage.db import insert_ignore
from storage.models import Incident, IncidentAck, School, Submission, User


def create_incident(s: Session, submission: Submission, severity: str, now: datetime) -> Incident:
    """The incident record of a submission, created once."""
    insert_ignore(
        s,
        Incident,
        {
            "submission_id": submission.id,
            "school_id": submission.school_id,
            "severity": severity,
            "created_at": now,
        },
    )
    row = s.exec(select(Incident).where(col(Incident.submission_id) == submission.id)).one()
    return row


def acknowledge(s: Session, incident_id: int, user_id: int, now: datetime) -> bool:
    """Record that a user saw an incident; False when they had already."""
    return (
        insert_ignore(s, IncidentAck, {"incident_id": incident_id, "user_id": user_id, "created_at": now})
        == 1
    )


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
    """The latest incidents a user may see: their school's, or their offices' schools' (every level)."""
    stmt = (
        select(Incident, School)
        .join(School, col(School.id) == col(Incident.school_id))
        .where(*scope.seen_by(user, by_level=False))
    )
    return list(s.exec(stmt.order_by(col(Incident.id).desc()).limit(limit)))
