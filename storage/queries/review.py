"""The review desk: what waits, review transitions, the month's bundle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage import scope
from storage.models import MediaFile, ReviewAction, School, Submission
from storage.queries.submissions import move_submission, search_text

REVIEWED_KINDS = ("article", "nomination", "report")  # what officers vet (incidents are acknowledged)
PUBLISHED_KINDS = ("article",)  # what the office publishes on its website


def awaiting_review(s: Session, school_ids: scope.SchoolIds, limit: int = 20) -> tuple[list[Submission], int]:
    """Sent articles, nominations and reports of these schools that nobody has reviewed yet: the
    oldest `limit` of them, and how many there are in all."""
    waiting = (
        col(Submission.school_id).in_(school_ids),
        col(Submission.kind).in_(REVIEWED_KINDS),
        col(Submission.status) == "submitted",
    )
    rows = list(s.exec(select(Submission).where(*waiting).order_by(col(Submission.updated_at)).limit(limit)))
    total = (
        len(rows)
        if len(rows) < limit
        else s.exec(select(func.count()).select_from(Submission).where(*waiting)).one()
    )
    return rows, int(total)


def review(
    s: Session,
    submission_id: int,
    version: int,
    user_id: int,
    action: str,
    now: datetime,
    from_status: tuple[str, ...],
    to_status: str,
    note: str = "",
) -> bool:
    """Move a submission from one of `from_status` to `to_status` if it is still at `version`.

    Two officers acting at once: the second finds the row changed and gets False.
    """
    values: dict[str, Any] = {
        "status": to_status,
        "reviewed_by_id": user_id,
        "reviewed_at": now,
        "updated_at": now,
    }
    if action == "return":
        values["review_note"] = note
    if not move_submission(s, submission_id, version, from_status, values):
        return False
    s.add(
        ReviewAction(
            submission_id=submission_id,
            user_id=user_id,
            action=action,
            version=version,
            note=note,
            created_at=now,
        )
    )
    return True


def record_consent(
    s: Session, submission_id: int, user_id: int, now: datetime, answers: dict[str, Any]
) -> bool:
    """The parents' consent arrived after sending: the nomination's answers say so from now on (its version
    and status unchanged), and who recorded it and when is kept as a "consent" action. False when it was
    recorded already (two officers at once)."""
    row = s.get(Submission, submission_id)
    if row is None or row.answers.get("consent") == "yes":
        return False
    s.add(
        ReviewAction(
            submission_id=submission_id,
            user_id=user_id,
            action="consent",
            version=row.version,
            created_at=now,
        )
    )
    result = s.execute(
        update(Submission)
        .where(col(Submission.id) == submission_id, col(Submission.version) == row.version)
        .values(answers=answers, search=search_text("nomination", answers))
    )
    return bool(getattr(result, "rowcount", 0))


def review_actions(s: Session, submission_id: int) -> list[ReviewAction]:
    """Everything officers did to a submission, oldest first."""
    stmt = select(ReviewAction).where(col(ReviewAction.submission_id) == submission_id)
    return list(s.exec(stmt.order_by(col(ReviewAction.id))))


def media_files(s: Session, ids: list[int]) -> list[MediaFile]:
    """The stored records of these files."""
    if not ids:
        return []
    return list(s.exec(select(MediaFile).where(col(MediaFile.id).in_(ids))))


def bundle_rows(
    s: Session,
    school_ids: scope.SchoolIds,
    month_key: str,
    statuses: tuple[str, ...],
    start: datetime,
    end: datetime,
) -> list[tuple[Submission, School]]:
    """A month's articles (by period) and nominations (sent in the month), in school order."""
    stmt = (
        select(Submission, School)
        .join(School, col(School.id) == col(Submission.school_id))
        .where(col(Submission.school_id).in_(school_ids), col(Submission.status).in_(statuses))
        .where(
            or_(
                (col(Submission.kind) == "article") & (col(Submission.period) == month_key),
                (col(Submission.kind) == "nomination")
                & (col(Submission.created_at) >= start.astimezone(UTC))
                & (col(Submission.created_at) < end.astimezone(UTC)),
            )
        )
        .order_by(col(School.name_folded), col(Submission.kind), col(Submission.id))
    )
    return list(s.exec(stmt))


def submissions_since(s: Session, school_ids: scope.SchoolIds, since: datetime) -> list[Submission]:
    """Articles, nominations and reports of these schools sent or resent since `since`, oldest first."""
    stmt = select(Submission).where(
        col(Submission.school_id).in_(school_ids),
        col(Submission.kind).in_(("article", "nomination", "report")),
        col(Submission.updated_at) > since,
        col(Submission.status) == "submitted",
    )
    return list(s.exec(stmt.order_by(col(Submission.updated_at))))


def awaiting_publication(
    s: Session, school_ids: scope.SchoolIds, limit: int, offset: int = 0
) -> tuple[list[tuple[Submission, School]], int]:
    """Approved articles of these schools not yet marked published, approved longest ago first; and how
    many there are in all."""
    waiting = (
        col(Submission.school_id).in_(school_ids),
        col(Submission.kind).in_(PUBLISHED_KINDS),
        col(Submission.status) == "approved",
    )
    stmt = (
        select(Submission, School)
        .join(School, col(School.id) == col(Submission.school_id))
        .where(*waiting)
        .order_by(col(Submission.reviewed_at), col(Submission.id))
    )
    rows = [(row, school) for row, school in s.exec(stmt.offset(offset).limit(limit))]
    total = s.exec(select(func.count()).select_from(Submission).where(*waiting)).one()
    return rows, int(total)


def published_with(s: Session, link: str) -> ReviewAction | None:
    """The latest "published" record that gave this link, if any."""
    stmt = select(ReviewAction).where(col(ReviewAction.action) == "publish", col(ReviewAction.note) == link)
    return s.exec(stmt.order_by(col(ReviewAction.id).desc()).limit(1)).first()


def find_submissions(
    s: Session,
    school_ids: scope.SchoolIds,
    words: list[str],
    *,
    month: tuple[str, datetime, datetime] | None = None,
    statuses: tuple[str, ...] = (),
    limit: int = 10,
    offset: int = 0,
) -> tuple[list[tuple[Submission, School]], int]:
    """Articles, nominations and reports of these schools matching every folded word at the start of a
    word of their title, theme, report, nominee, school name or code; of a month (an article by its
    period, the others by when they were sent: (key, start, end)) and of `statuses` when given. Newest
    first, `limit` from `offset`, and how many match in all."""
    haystack = (
        literal(" ")
        + col(Submission.search)
        + literal(" ")
        + col(School.name_folded)
        + literal(" ")
        + func.lower(col(School.code))
    )
    where: list[ColumnElement[bool]] = [
        col(Submission.school_id).in_(school_ids),
        col(Submission.kind).in_(REVIEWED_KINDS),
        *(haystack.like(f"% {word}%") for word in words),
    ]
    if statuses:
        where.append(col(Submission.status).in_(statuses))
    if month is not None:
        key, start, end = month
        where.append(
            or_(
                and_(col(Submission.kind) == "article", col(Submission.period) == key),
                and_(
                    col(Submission.kind) != "article",
                    col(Submission.created_at) >= start,
                    col(Submission.created_at) < end,
                ),
            )
        )
    joined = select(Submission, School).join(School, col(School.id) == col(Submission.school_id))
    stmt = joined.where(*where).order_by(col(Submission.created_at).desc(), col(Submission.id).desc())
    rows = [(row, school) for row, school in s.exec(stmt.offset(offset).limit(limit))]
    counted = (
        select(func.count())
        .select_from(Submission)
        .join(School, col(School.id) == col(Submission.school_id))
        .where(*where)
    )
    return rows, int(s.exec(counted).one())


def report_rows(
    s: Session, school_ids: scope.SchoolIds, period: str, statuses: tuple[str, ...]
) -> list[tuple[School, Submission | None]]:
    """Every school of the scope, by name, with its report for `period` (None when it sent none)."""
    sent = (
        select(Submission)
        .where(
            col(Submission.kind) == "report",
            col(Submission.period) == period,
            col(Submission.status).in_(statuses),
        )
        .subquery()
    )
    report = aliased(Submission, sent)
    stmt = (
        select(School, report)
        .outerjoin(report, col(report.school_id) == col(School.id))
        .where(col(School.id).in_(school_ids))
        .order_by(col(School.name_folded), col(School.id))
    )
    return [(school, row) for school, row in s.execute(stmt)]
