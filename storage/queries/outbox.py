"""The named queries handlers use; every one takes an open session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage import scope
from storage.db import insert_ignore
from storage.errors import StaleDraft
from storage.models import (
    ChannelUsage,
    CodeAttempt,
    Draft,
    Inbox,
    Incident,
    IncidentAck,
    Invite,
    Lease,
    LinkCode,
    MediaFile,
    Office,
    Outbox,
    ProcessedUpdate,
    ReviewAction,
    School,
    Submission,
    SubmissionVersion,
    User,
)
from storage.text import fold

# Unambiguous on a phone screen: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


# ---- users ---------------------------------------------------------------------------------


def get_user(s: Session, channel: str, external_id: str) -> User | None:
    """The account for (channel, external id), if it has written before."""
    return s.exec(select(User).where(User.channel == channel, User.external_id == external_id)).first()


def touch_user(
    s: Session,
    channel: str,
    external_id: str,
    chat_id: str,
    display_name: str,
    now: datetime,
    language: str = "",
) -> User:
    """The account for this chat user, created on first contact; last seen now.

    The platform's language is kept until the user picks one with /language, so that alerts sent
    to them later come in the language they read.
    """
    user = get_user(s, channel, external_id)
    if user is None:
        insert_ignore(
            s,
            User.__table__,
            {
                "channel": channel,
                "external_id": external_id,
                "chat_id": chat_id,
                "display_name": display_name[:200],
                "menu": {},
                "created_at": now,
                "blocked": False,
                "locale": "",
            },
        )
        user = get_user(s, channel, external_id)
        assert user is not None
    user.last_seen_at = now
    user.chat_id = chat_id or user.chat_id
    if display_name:
        user.display_name = display_name[:200]
    user.blocked = False
    if language and not user.locale:
        user.locale = language
    s.add(user)
    return user


def set_menu(s: Session, user_id: int, menu: dict[str, Any]) -> None:
    """Remember the choices last shown to a user (channels without buttons answer by number)."""
    s.execute(update(User).where(col(User.id) == user_id).values(menu=menu))


def set_locale(s: Session, user_id: int, locale: str) -> None:
    """Save a user's language."""
    s.execute(update(User).where(col(User.id) == user_id).values(locale=locale))


# ---- updates -------------------------------------------------------------------------------


def first_time_seen(s: Session, key: str, now: datetime) -> bool:
    """Record an update key; False when it was recorded before (a redelivery)."""
    return insert_ignore(s, ProcessedUpdate.__table__, {"key": key, "created_at": now}) == 1


def forget_updates_before(s: Session, cutoff: datetime) -> int:
    """Drop update keys older than `cutoff` (platforms redeliver for a day at most)."""
    result = s.execute(delete(ProcessedUpdate).where(col(ProcessedUpdate.created_at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# ---- organisation --------------------------------------------------------------------------


def office_by_code(s: Session, code: str) -> Office | None:
    """The office with this code."""
    return s.exec(select(Office).where(Office.code == code)).first()


def school_by_code(s: Session, code: str) -> School | None:
    """The school with this code."""
    return s.exec(select(School).where(School.code == code)).first()


def find_schools(s: Session, query: str, limit: int = 20) -> list[School]:
    """Schools whose name or code contains `query`, ignoring accents and case."""
    needle = fold(query)
    if not needle:
        return []
    stmt = (
        select(School)
        .where(or_(col(School.name_folded).contains(needle), func.lower(School.code) == needle))
        .order_by(School.name_folded)
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
        .order_by(User.id)
    )
    return list(s.exec(stmt))


def school_users(s: Session, school_id: int) -> list[User]:
    """The registered principal-role users of a school."""
    stmt = select(User).where(User.school_id == school_id, User.role == "principal").order_by(User.id)
    return list(s.exec(stmt))


# ---- invites -------------------------------------------------------------------------------


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
        .where(CodeAttempt.user_id == user_id, col(CodeAttempt.created_at) >= since)
    )
    return int(s.exec(stmt).one())


def redeem_invite(
    s: Session, user: User, code: str, now: datetime, max_wrong: int, window: timedelta
) -> Redeem:
    """Bind `user` to the invite's school or office; every failure is counted for the throttle."""
    if recent_wrong_codes(s, user.id or 0, now - window) >= max_wrong:
        return Redeem.THROTTLED
    invite = s.exec(select(Invite).where(Invite.code == code.strip().upper())).first()
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


# ---- drafts --------------------------------------------------------------------------------


def get_draft(s: Session, user_id: int, form: str) -> Draft | None:
    """The user's draft of `form`, if any."""
    return s.exec(select(Draft).where(Draft.user_id == user_id, Draft.form == form)).first()


def drafts_of(s: Session, user_id: int) -> list[Draft]:
    """Every draft the user has, most recent first."""
    stmt = select(Draft).where(Draft.user_id == user_id).order_by(col(Draft.updated_at).desc())
    return list(s.exec(stmt))


def start_draft(
    s: Session, user_id: int, form: str, step: str, now: datetime, answers: dict[str, Any]
) -> Draft:
    """A new draft of `form`, replacing any older one."""
    s.execute(delete(Draft).where(col(Draft.user_id) == user_id, col(Draft.form) == form))
    draft = Draft(
        user_id=user_id,
        form=form,
        step=step,
        mode="fill",
        answers=answers,
        token=secrets.token_hex(16),
        version=1,
        created_at=now,
        updated_at=now,
    )
    s.add(draft)
    s.flush()
    return draft


def save_draft(
    s: Session, draft: Draft, *, step: str, mode: str, answers: dict[str, Any], now: datetime
) -> Draft:
    """Write the draft's next state if nobody else did since it was read; else raise StaleDraft."""
    result = s.execute(
        update(Draft)
        .where(col(Draft.id) == draft.id, col(Draft.version) == draft.version)
        .values(step=step, mode=mode, answers=answers, version=draft.version + 1, updated_at=now)
    )
    if not getattr(result, "rowcount", 0):
        raise StaleDraft(f"draft {draft.id} changed since version {draft.version}")
    refreshed = s.get(Draft, draft.id, populate_existing=True)
    assert refreshed is not None
    return refreshed


def delete_draft(s: Session, draft_id: int) -> None:
    """Forget a draft (sent or cancelled)."""
    s.execute(delete(Draft).where(col(Draft.id) == draft_id))


# ---- submissions ---------------------------------------------------------------------------


def submission_by_token(s: Session, token: str) -> Submission | None:
    """The submission made from the draft with this token, if it was sent already."""
    return s.exec(select(Submission).where(Submission.token == token)).first()


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
    created = (
        insert_ignore(
            s,
            Submission.__table__,
            {
                "kind": kind,
                "school_id": school_id,
                "user_id": user_id,
                "period": period,
                "status": status,
                "answers": answers,
                "token": token,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            },
        )
        == 1
    )
    row = submission_by_token(s, token)
    assert row is not None
    return row, created


# ---- incidents -----------------------------------------------------------------------------


def create_incident(s: Session, submission: Submission, severity: str, now: datetime) -> Incident:
    """The incident record of a submission, created once."""
    insert_ignore(
        s,
        Incident.__table__,
        {
            "submission_id": submission.id,
            "school_id": submission.school_id,
            "severity": severity,
            "created_at": now,
        },
    )
    row = s.exec(select(Incident).where(Incident.submission_id == submission.id)).one()
    return row


def acknowledge(s: Session, incident_id: int, user_id: int, now: datetime) -> bool:
    """Record that a user saw an incident; False when they had already."""
    return (
        insert_ignore(
            s, IncidentAck.__table__, {"incident_id": incident_id, "user_id": user_id, "created_at": now}
        )
        == 1
    )


def acks_of(s: Session, incident_id: int) -> list[User]:
    """Who acknowledged an incident, in order."""
    stmt = (
        select(User)
        .join(IncidentAck, col(IncidentAck.user_id) == col(User.id))
        .where(IncidentAck.incident_id == incident_id)
        .order_by(IncidentAck.created_at)
    )
    return list(s.exec(stmt))


# ---- inbox -------------------------------------------------------------------------


def keep_for_later(s: Session, user_id: int, payload: dict[str, Any], now: datetime) -> None:
    """Keep a message for a user who cannot be reached now."""
    s.add(Inbox(user_id=user_id, payload=payload, created_at=now))


def take_kept(s: Session, user_id: int, now: datetime) -> list[dict[str, Any]]:
    """The messages kept for a user, marked delivered."""
    rows = list(
        s.exec(
            select(Inbox)
            .where(Inbox.user_id == user_id, col(Inbox.delivered_at).is_(None))
            .order_by(col(Inbox.id))
        )
    )
    for row in rows:
        row.delivered_at = now
        s.add(row)
    return [r.payload for r in rows]


def incidents_in_scope(s: Session, user: User, limit: int = 10) -> list[tuple[Incident, School]]:
    """The latest incidents a user may see: their school's, or their offices' schools' (every level)."""
    stmt = (
        select(Incident, School)
        .join(School, col(School.id) == col(Incident.school_id))
        .where(*scope.seen_by(user, by_level=False))
    )
    return list(s.exec(stmt.order_by(col(Incident.id).desc()).limit(limit)))


# ---- delivery ------------------------------------------------------------------------------


def mark_blocked(s: Session, user_id: int) -> None:
    """Remember that a user blocked the bot; `touch_user` clears it when they write again."""
    s.execute(update(User).where(col(User.id) == user_id).values(blocked=True))


# ---- articles and other submissions ----------------------------------------------------------

EDITABLE = ("submitted", "returned")


def submissions_of(
    s: Session, school_id: int, kind: str, periods: list[str] | None = None
) -> list[Submission]:
    """A school's submissions of one kind, oldest first (optionally only for these periods)."""
    stmt = select(Submission).where(Submission.school_id == school_id, Submission.kind == kind)
    if periods is not None:
        stmt = stmt.where(col(Submission.period).in_(periods))
    return list(s.exec(stmt.order_by(col(Submission.id))))


def fulfilled_periods(s: Session, school_id: int, kind: str = "article") -> set[str]:
    """The periods for which the school has sent something (the first one sent fulfils the month)."""
    stmt = (
        select(Submission.period).where(Submission.school_id == school_id, Submission.kind == kind).distinct()
    )
    return {p for p in s.exec(stmt) if p}


def latest_submission(s: Session, school_id: int, kind: str) -> Submission | None:
    """The school's most recent submission of a kind."""
    stmt = select(Submission).where(Submission.school_id == school_id, Submission.kind == kind)
    return s.exec(stmt.order_by(col(Submission.id).desc()).limit(1)).first()


def add_version(s: Session, submission: Submission, now: datetime) -> None:
    """Keep the submission's current answers as a numbered version."""
    insert_ignore(
        s,
        SubmissionVersion.__table__,
        {
            "submission_id": submission.id,
            "version": submission.version,
            "answers": submission.answers,
            "created_at": now,
        },
    )


def resubmit(
    s: Session, submission_id: int, expected_version: int, answers: dict[str, Any], now: datetime
) -> Submission | None:
    """Replace an editable submission's answers as a new version; None when it changed or was reviewed."""
    result = s.execute(
        update(Submission)
        .where(
            col(Submission.id) == submission_id,
            col(Submission.version) == expected_version,
            col(Submission.status).in_(EDITABLE),
        )
        .values(
            answers=answers, version=expected_version + 1, status="submitted", review_note="", updated_at=now
        )
    )
    if not getattr(result, "rowcount", 0):
        return None
    row = s.get(Submission, submission_id, populate_existing=True)
    assert row is not None
    add_version(s, row, now)
    return row


def versions_of(s: Session, submission_id: int) -> list[SubmissionVersion]:
    """Every version of a submission, oldest first."""
    stmt = select(SubmissionVersion).where(SubmissionVersion.submission_id == submission_id)
    return list(s.exec(stmt.order_by(col(SubmissionVersion.version))))


# ---- the outbox and leases (reminders issue) --------------------------------------------------

OUTBOX_CHUNK = 500  # rows per INSERT: keeps SQLite under its bound-parameter limit


def enqueue(s: Session, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows, skipping any whose key exists; how many were new."""
    return sum(
        insert_ignore(s, Outbox.__table__, rows[i : i + OUTBOX_CHUNK])
        for i in range(0, len(rows), OUTBOX_CHUNK)
    )


def outbox_row(s: Session, channel: str, user_id: int, kind: str, period: str, step: str) -> Outbox | None:
    """The row with this key, if any."""
    stmt = select(Outbox).where(
        Outbox.channel == channel,
        Outbox.user_id == user_id,
        Outbox.kind == kind,
        Outbox.period == period,
        Outbox.step == step,
    )
    return s.exec(stmt).first()


def outbox_keys(s: Session, kinds: list[str], periods: list[str]) -> set[tuple[int, str, str, str]]:
    """(user_id, kind, period, step) of every row of these kinds and periods."""
    stmt = select(Outbox.user_id, Outbox.kind, Outbox.period, Outbox.step).where(
        col(Outbox.kind).in_(kinds), col(Outbox.period).in_(periods)
    )
    return {(u, k, p, st) for u, k, p, st in s.exec(stmt)}


def claim_outbox(
    s: Session,
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    channels: list[str],
    bulk: bool,
    skip_chats: list[str] | None = None,
    ids: list[int] | None = None,
    priority_only: bool = False,
) -> list[Outbox]:
    """Lease up to `limit` due rows to `owner`, alerts first; SKIP LOCKED on PostgreSQL.

    `bulk` False (quiet hours, a pause) claims only rows that ignore the quiet hours (alerts).
    """
    if not channels or limit <= 0:
        return []
    pick = select(Outbox.id).where(
        Outbox.status == "pending", col(Outbox.not_before) <= now, col(Outbox.channel).in_(channels)
    )
    if not bulk:
        pick = pick.where(col(Outbox.quiet).is_(False))
    if priority_only:
        pick = pick.where(Outbox.priority == 0)
    if skip_chats:
        pick = pick.where(col(Outbox.chat_id).not_in(skip_chats))
    if ids is not None:
        pick = pick.where(col(Outbox.id).in_(ids))
    pick = pick.order_by(col(Outbox.priority), col(Outbox.id)).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(Outbox)
        .where(col(Outbox.id).in_(pick.scalar_subquery()))
        .values(status="claimed", lease_owner=owner, lease_until=lease_until, updated_at=now)
        .returning(Outbox)
        .execution_options(synchronize_session=False)
    )
    rows = list(s.scalars(stmt))
    return sorted(rows, key=lambda r: (r.priority, r.id or 0))


def outbox_sent(s: Session, row_id: int, now: datetime) -> None:
    """Record a delivery (even when the lease ran out meanwhile: it was sent)."""
    s.execute(
        update(Outbox)
        .where(col(Outbox.id) == row_id)
        .values(status="sent", sent_at=now, updated_at=now, lease_owner="", lease_until=None, last_error="")
    )


def outbox_failed(
    s: Session,
    row_id: int,
    owner: str,
    *,
    status: str,
    now: datetime,
    error: str,
    attempts: int | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Record a failed attempt on a row `owner` still holds: back to pending, or a final status."""
    values: dict[str, Any] = {
        "status": status,
        "updated_at": now,
        "lease_owner": "",
        "lease_until": None,
        "last_error": error[:500],
    }
    if attempts is not None:
        values["attempts"] = attempts
    if not_before is not None:
        values["not_before"] = not_before
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.id) == row_id, Outbox.status == "claimed", Outbox.lease_owner == owner)
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


def release_outbox(s: Session, ids: list[int], owner: str, now: datetime) -> int:
    """Hand claimed rows back to the queue unchanged (a 429, a graceful stop)."""
    if not ids:
        return 0
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.id).in_(ids), Outbox.status == "claimed", Outbox.lease_owner == owner)
        .values(status="pending", lease_owner="", lease_until=None, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def renew_outbox_leases(s: Session, ids: list[int], owner: str, until: datetime) -> int:
    """Extend the lease on rows `owner` still holds."""
    if not ids:
        return 0
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.id).in_(ids), Outbox.status == "claimed", Outbox.lease_owner == owner)
        .values(lease_until=until)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def requeue_expired(s: Session, now: datetime, not_owner: str = "") -> int:
    """The janitor: claimed rows whose lease ran out go back to the queue (their sender died).

    `not_owner`: a live sender running the janitor spares its own claims.
    """
    result = s.execute(
        update(Outbox)
        .where(Outbox.status == "claimed", col(Outbox.lease_until) < now, Outbox.lease_owner != not_owner)
        .values(status="pending", lease_owner="", lease_until=None, updated_at=now, last_error="reclaimed")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def stop_sending_to(s: Session, user_id: int, status: str, now: datetime, error: str) -> int:
    """Every row still waiting for a user who cannot be reached gets `status`."""
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.user_id) == user_id, Outbox.status == "pending")
        .values(status=status, updated_at=now, last_error=error[:500])
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cancel_fulfilled_reminders(s: Session, now: datetime, kinds: dict[str, str]) -> int:
    """Waiting reminders for a period the school has fulfilled since are cancelled.

    `kinds` maps an outbox kind ("article-remind") to the submission kind that fulfils it ("article").
    """
    done = 0
    for outbox_kind, submission_kind in kinds.items():
        fulfilled = (
            select(Submission.id)
            .where(
                col(Submission.school_id) == col(Outbox.school_id),
                Submission.kind == submission_kind,
                col(Submission.period) == col(Outbox.period),
            )
            .exists()
        )
        result = s.execute(
            update(Outbox)
            .where(Outbox.status == "pending", Outbox.kind == outbox_kind, fulfilled)
            .values(status="cancelled", updated_at=now, last_error="fulfilled")
            .execution_options(synchronize_session=False)
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def cancel_superseded(s: Session, now: datetime) -> int:
    """A waiting bulk row is cancelled when a newer step for the same recipient, kind and period exists."""
    newer = aliased(Outbox)
    exists_newer = (
        select(newer.id)
        .where(
            newer.user_id == Outbox.user_id,
            newer.channel == Outbox.channel,
            newer.kind == Outbox.kind,
            newer.period == Outbox.period,
            col(newer.id) > col(Outbox.id),
        )
        .exists()
    )
    result = s.execute(
        update(Outbox)
        .where(Outbox.status == "pending", col(Outbox.quiet).is_(True), exists_newer)
        .values(status="cancelled", updated_at=now, last_error="superseded by a later step")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def outbox_counts(s: Session) -> list[tuple[str, str, int]]:
    """(status, kind, count) over the whole outbox."""
    stmt = (
        select(Outbox.status, Outbox.kind, func.count())
        .group_by(col(Outbox.status), col(Outbox.kind))
        .order_by(col(Outbox.status), col(Outbox.kind))
    )
    return [(st, k, int(n)) for st, k, n in s.exec(stmt)]


def outbox_errors(s: Session, limit: int = 10) -> list[Outbox]:
    """The latest rows that recorded an error."""
    stmt = (
        select(Outbox)
        .where(Outbox.last_error != "", col(Outbox.status).not_in(["cancelled"]))
        .order_by(col(Outbox.updated_at).desc(), col(Outbox.id).desc())
        .limit(limit)
    )
    return list(s.exec(stmt))


def requeue_dead(s: Session, now: datetime) -> int:
    """An operator's retry: dead rows go back to the queue with a fresh attempt count."""
    result = s.execute(
        update(Outbox)
        .where(Outbox.status == "dead")
        .values(status="pending", attempts=0, not_before=now, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def prune_outbox(s: Session, before: datetime) -> int:
    """Forget finished rows last touched before `before`."""
    result = s.execute(
        delete(Outbox).where(
            col(Outbox.status).in_(["sent", "cancelled", "blocked", "dead"]), col(Outbox.updated_at) < before
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def take_lease(s: Session, name: str, owner: str, now: datetime, until: datetime) -> bool:
    """Hold the lease `name` until `until` if it is free, expired or already ours."""
    insert_ignore(s, Lease.__table__, {"name": name, "owner": owner, "until": until})
    result = s.execute(
        update(Lease)
        .where(col(Lease.name) == name, or_(col(Lease.owner) == owner, col(Lease.until) < now))
        .values(owner=owner, until=until)
    )
    return bool(getattr(result, "rowcount", 0))


def drop_lease(s: Session, name: str, owner: str) -> None:
    """Give the lease up (at a clean stop), so another process can take it at once."""
    s.execute(delete(Lease).where(col(Lease.name) == name, col(Lease.owner) == owner))


def lease_holder(s: Session, name: str) -> Lease | None:
    """Who holds a lease, if anyone ever did."""
    return s.get(Lease, name)


# ---- what the sweep reads ----------------------------------------------------------------------


def reachable_principals(s: Session) -> dict[int, list[User]]:
    """Registered principal-role users who have not blocked the bot, by school."""
    stmt = (
        select(User)
        .where(User.role == "principal", col(User.school_id).is_not(None), col(User.blocked).is_(False))
        .order_by(col(User.id))
    )
    out: dict[int, list[User]] = {}
    for user in s.exec(stmt):
        out.setdefault(user.school_id or 0, []).append(user)
    return out


def reachable_staff(s: Session, roles: tuple[str, ...] = ("officer", "leader")) -> list[User]:
    """Officers and leaders with an office who have not blocked the bot."""
    stmt = (
        select(User)
        .where(col(User.role).in_(roles), col(User.office_id).is_not(None), col(User.blocked).is_(False))
        .order_by(col(User.id))
    )
    return list(s.exec(stmt))


def schools_that_sent(s: Session, kind: str, period: str) -> set[int]:
    """Ids of the schools with a submission of `kind` for `period`."""
    stmt = select(Submission.school_id).where(Submission.kind == kind, Submission.period == period).distinct()
    return set(s.exec(stmt))


def all_schools(s: Session) -> list[School]:
    """Every school, by name."""
    return list(s.exec(select(School).order_by(col(School.name_folded), col(School.id))))


def nominations_in_scope(s: Session, user: User, limit: int = 15) -> list[tuple[Submission, School]]:
    """The latest nominations a user may see: their school's, or their offices' schools' (every level)."""
    stmt = (
        select(Submission, School)
        .join(School, col(School.id) == col(Submission.school_id))
        .where(Submission.kind == "nomination", *scope.seen_by(user, by_level=False))
    )
    return list(s.exec(stmt.order_by(col(Submission.id).desc()).limit(limit)))


def submissions_between(s: Session, school_id: int, after: datetime, until: datetime) -> list[Submission]:
    """A school's submissions first sent in (after, until]."""
    stmt = select(Submission).where(
        Submission.school_id == school_id,
        col(Submission.created_at) > after,
        col(Submission.created_at) <= until,
    )
    return list(s.exec(stmt.order_by(col(Submission.id))))


def pending_periods(s: Session, kinds: list[str]) -> set[tuple[str, str]]:
    """(kind, period) of the rows of these kinds still waiting to be sent."""
    stmt = (
        select(Outbox.kind, Outbox.period)
        .where(col(Outbox.kind).in_(kinds), col(Outbox.status).in_(["pending"]))
        .distinct()
    )
    return {(k, p) for k, p in s.exec(stmt)}


def cancel_pending(s: Session, kind: str, period: str, now: datetime, reason: str) -> int:
    """Cancel every waiting row of one kind and period."""
    result = s.execute(
        update(Outbox)
        .where(Outbox.kind == kind, Outbox.period == period, Outbox.status == "pending")
        .values(status="cancelled", updated_at=now, last_error=reason[:500])
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ---- review --------------------------------------------------------------------------------------


def awaiting_review(s: Session, school_ids: scope.SchoolIds, limit: int = 20) -> tuple[list[Submission], int]:
    """Sent articles, nominations and reports of these schools that nobody has reviewed yet: the
    oldest `limit` of them, and how many there are in all."""
    waiting = (
        col(Submission.school_id).in_(school_ids),
        col(Submission.kind).in_(("article", "nomination", "report")),
        Submission.status == "submitted",
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
    result = s.execute(
        update(Submission)
        .where(
            col(Submission.id) == submission_id,
            col(Submission.version) == version,
            col(Submission.status).in_(from_status),
        )
        .values(**values)
    )
    if not getattr(result, "rowcount", 0):
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


def review_actions(s: Session, submission_id: int) -> list[ReviewAction]:
    """Everything officers did to a submission, oldest first."""
    stmt = select(ReviewAction).where(ReviewAction.submission_id == submission_id)
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
                & (col(Submission.created_at) >= start.replace(tzinfo=UTC))
                & (col(Submission.created_at) < end.replace(tzinfo=UTC)),
            )
        )
        .order_by(School.name_folded, col(Submission.kind), col(Submission.id))
    )
    return list(s.exec(stmt))


def submissions_since(s: Session, school_ids: scope.SchoolIds, since: datetime) -> list[Submission]:
    """Articles, nominations and reports of these schools sent or resent since `since`, oldest first."""
    stmt = select(Submission).where(
        col(Submission.school_id).in_(school_ids),
        col(Submission.kind).in_(("article", "nomination", "report")),
        col(Submission.updated_at) > since,
        Submission.status == "submitted",
    )
    return list(s.exec(stmt.order_by(col(Submission.updated_at))))


# ---- channels: quotas and one person on several channels -----------------------------------------


def add_usage(s: Session, channel: str, month: str, count: int) -> int:
    """Count `count` more messages sent on `channel` in `month`; the month's new total."""
    insert_ignore(s, ChannelUsage.__table__, {"channel": channel, "month": month, "sent": 0})
    s.execute(
        update(ChannelUsage)
        .where(col(ChannelUsage.channel) == channel, col(ChannelUsage.month) == month)
        .values(sent=col(ChannelUsage.sent) + count)
    )
    return usage(s, channel, month)


def usage(s: Session, channel: str, month: str) -> int:
    """Messages sent on `channel` in `month`."""
    row = s.get(ChannelUsage, (channel, month))
    return row.sent if row else 0


def create_link_code(s: Session, user_id: int, now: datetime, hours: int = 24) -> str:
    """A one-time code that joins another channel's account to this user."""
    code = new_code()
    s.add(LinkCode(code=code, user_id=user_id, expires_at=now + timedelta(hours=hours)))
    return code


def link_accounts(s: Session, code: str, user: User, now: datetime) -> User | None:
    """Join `user` (on another channel) to the code's account: same person, role, school or office.

    None for an unknown or expired code, or one made on the same channel; the code is used once.
    """
    row = s.get(LinkCode, code.strip().upper())
    if row is None or row.expires_at <= now:
        return None
    source = s.get(User, row.user_id)
    s.delete(row)
    if source is None or source.channel == user.channel or source.role is None:
        return None
    person = source.person_id or source.id
    source.person_id = person
    user.person_id = person
    user.role, user.school_id, user.office_id, user.levels = (
        source.role,
        source.school_id,
        source.office_id,
        source.levels,
    )
    user.registered_at = now
    s.add(source)
    s.add(user)
    return source


def accounts_of(s: Session, user: User) -> list[User]:
    """Every account of the same person (at least the user's own)."""
    if user.person_id is None:
        return [user]
    return list(s.exec(select(User).where(User.person_id == user.person_id).order_by(col(User.id))))


def one_per_person(users: list[User], prefer: str = "last_used") -> list[User]:
    """One account per person, so a message reaches them once.

    `prefer`: "last_used" (the account seen most recently), a channel name ("telegram", "zalo":
    that channel's account when the person has one), or "both" (every account).
    """
    if prefer == "both":
        return users
    people: dict[int, list[User]] = {}
    for user in users:
        people.setdefault(user.person_id or -(user.id or 0), []).append(user)
    chosen = []
    for accounts in people.values():
        on_channel = [a for a in accounts if a.channel == prefer]
        pool = on_channel or accounts
        chosen.append(
            max(pool, key=lambda a: (a.last_seen_at is not None, a.last_seen_at or a.created_at, a.id or 0))
        )
    return sorted(chosen, key=lambda a: a.id or 0)


def last_sent(s: Session, kind: str) -> dict[int, datetime]:
    """For each recipient, when the latest outbox row of `kind` was made (its digest's "since")."""
    stmt = (
        select(Outbox.user_id, func.max(Outbox.created_at))
        .where(Outbox.kind == kind)
        .group_by(Outbox.user_id)
    )
    return {user_id: when for user_id, when in s.exec(stmt)}
