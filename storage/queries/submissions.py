"""Articles, nominations, reports and incidents as sent, their versions and resubmissions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage import scope
from storage.db import insert_entity, insert_ignore
from storage.models import School, Submission, SubmissionVersion, User
from storage.text import fold

SEARCHED = ("title", "theme_text", "which_text", "name")  # the answers /find matches, besides the school


def search_text(kind: str, answers: dict[str, Any]) -> str:
    """The folded words /find matches a submission by; a nominee's name only when it may be shown."""
    shown = kind != "nomination" or answers.get("publishable") is True
    parts = [str(answers.get(key) or "") for key in SEARCHED if key != "name" or shown]
    return fold(" ".join(parts))[:1000]


def submission_by_token(s: Session, token: str) -> Submission | None:
    """The submission made from the draft with this token, if it was sent already."""
    return s.exec(select(Submission).where(col(Submission.token) == token)).first()


def create_submission(
    s: Session,
    *,
    kind: str,
    school_id: int,
    user_id: int,
    token: str,
    answers: dict[str, Any],
    status: str,
    now: datetime,
    period: str | None = None,
) -> tuple[Submission, bool]:
    """The submission for `token`, created once; (row, created)."""
    made = insert_entity(
        s,
        Submission,
        {
            "kind": kind,
            "school_id": school_id,
            "user_id": user_id,
            "period": period,
            "status": status,
            "answers": answers,
            "token": token,
            "search": search_text(kind, answers),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
    )
    if made is not None:
        return made, True
    row = submission_by_token(s, token)  # sent already (a double tap, a redelivery)
    assert row is not None
    return row, False


EDITABLE = ("submitted", "returned")


def submissions_of(
    s: Session, school_id: int, kind: str, periods: Sequence[str] | None = None, *, newest_first: bool = False
) -> list[Submission]:
    """A school's submissions of one kind, oldest first unless `newest_first` (only of `periods` when given)."""
    stmt = select(Submission).where(col(Submission.school_id) == school_id, col(Submission.kind) == kind)
    if periods is not None:
        stmt = stmt.where(col(Submission.period).in_(periods))
    order = col(Submission.id).desc() if newest_first else col(Submission.id)
    return list(s.exec(stmt.order_by(order)))


def fulfilled_periods(s: Session, school_id: int, kind: str = "article") -> set[str]:
    """The periods for which the school has sent something (the first one sent fulfils the month)."""
    stmt = (
        select(Submission.period)
        .where(col(Submission.school_id) == school_id, col(Submission.kind) == kind)
        .distinct()
    )
    return {p for p in s.exec(stmt) if p}


def latest_submission(s: Session, school_id: int, kind: str) -> Submission | None:
    """The school's most recent submission of a kind."""
    stmt = select(Submission).where(col(Submission.school_id) == school_id, col(Submission.kind) == kind)
    return s.exec(stmt.order_by(col(Submission.id).desc()).limit(1)).first()


def add_version(
    s: Session, submission: Submission, now: datetime, user_id: int | None, drafted_at: datetime | None
) -> None:
    """Keep the submission's current answers as a numbered version: who sent it, when its draft began."""
    insert_ignore(
        s,
        SubmissionVersion,
        {
            "submission_id": submission.id,
            "version": submission.version,
            "answers": submission.answers,
            "created_at": now,
            "user_id": user_id,
            "drafted_at": drafted_at,
        },
    )


def move_submission(
    s: Session, submission_id: int, version: int, from_status: tuple[str, ...], values: dict[str, Any]
) -> bool:
    """Write `values` to a submission still at `version` and in one of `from_status`; False when it is not."""
    result = s.execute(
        update(Submission)
        .where(
            col(Submission.id) == submission_id,
            col(Submission.version) == version,
            col(Submission.status).in_(from_status),
        )
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


def resubmit(
    s: Session,
    submission_id: int,
    expected_version: int,
    answers: dict[str, Any],
    now: datetime,
    user_id: int,
    drafted_at: datetime | None,
) -> Submission | None:
    """Replace an editable submission's answers as a new version; None when it changed or was reviewed."""
    current = s.get(Submission, submission_id)
    values = {
        "answers": answers,
        "search": search_text(current.kind if current else "", answers),
        "version": expected_version + 1,
        "status": "submitted",
        "review_note": "",
        "updated_at": now,
    }
    if not move_submission(s, submission_id, expected_version, EDITABLE, values):
        return None
    row = s.get(Submission, submission_id, populate_existing=True)
    assert row is not None
    add_version(s, row, now, user_id, drafted_at)
    return row


def versions_of(s: Session, submission_id: int) -> list[SubmissionVersion]:
    """Every version of a submission, oldest first."""
    stmt = select(SubmissionVersion).where(col(SubmissionVersion.submission_id) == submission_id)
    return list(s.exec(stmt.order_by(col(SubmissionVersion.version))))


def nominee_answers(
    s: Session, school_ids: scope.SchoolIds | Sequence[int]
) -> list[tuple[int, dict[str, Any]]]:
    """(school id, answers) of every nomination of these schools: whose names the consent rule withholds."""
    stmt = select(Submission.school_id, Submission.answers).where(
        col(Submission.kind) == "nomination", col(Submission.school_id).in_(school_ids)
    )
    return [(school_id, dict(answers or {})) for school_id, answers in s.exec(stmt)]


def nominations_in_scope(s: Session, user: User, limit: int = 15) -> list[tuple[Submission, School]]:
    """The latest nominations a user may see: their school's, or their offices' schools' (every level)."""
    stmt = (
        select(Submission, School)
        .join(School, col(School.id) == col(Submission.school_id))
        .where(col(Submission.kind) == "nomination", *scope.seen_by(user, by_level=False))
    )
    return list(s.exec(stmt.order_by(col(Submission.id).desc()).limit(limit)))
