"""The outbox (bulk delivery: enqueue, claim, record, requeue, prune) and the leases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage.db import insert_ignore, insert_rows, table_of
from storage.models import Lease, Outbox, Submission, User
from storage.queries.sweep import Principal

OUTBOX_CHUNK = 500  # rows per INSERT: keeps SQLite under its bound-parameter limit


def enqueue(s: Session, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows (each with the same keys, as `pending_row` makes them), skipping any whose
    key exists; how many were new. The rows are the parameters of one statement built once
    (`insert_rows`), not VALUES compiled into a statement of their own: for a wave's 500 rows that
    compiling took two thirds of the sweep's CPU and some 6 MB at its peak."""
    return len(enqueued(s, rows))


def enqueued(s: Session, rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """`enqueue`, saying (id, user_id) of the rows that were new."""
    return [
        (int(row_id), int(user_id))
        for i in range(0, len(rows), OUTBOX_CHUNK)
        for row_id, user_id in insert_rows(s, Outbox, rows[i : i + OUTBOX_CHUNK], ("id", "user_id"))
    ]


def pending_row(
    user: User | Principal,
    kind: str,
    period: str,
    step: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    school_id: int | None,
    priority: int,
    quiet: bool,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The values of a new outbox row for `user`, waiting to be sent (from `not_before`, or now)."""
    return {
        "channel": user.channel,
        "user_id": user.id,
        "chat_id": user.chat_id,
        "kind": kind,
        "period": period,
        "step": step,
        "school_id": school_id,
        "payload": payload,
        "priority": priority,
        "quiet": quiet,
        "status": "pending",
        "attempts": 0,
        "not_before": not_before or now,
        "lease_owner": "",
        "last_error": "",
        "created_at": now,
        "updated_at": now,
    }


def outbox_row(s: Session, channel: str, user_id: int, kind: str, period: str, step: str) -> Outbox | None:
    """The row with this key, if any."""
    stmt = select(Outbox).where(
        col(Outbox.channel) == channel,
        col(Outbox.user_id) == user_id,
        col(Outbox.kind) == kind,
        col(Outbox.period) == period,
        col(Outbox.step) == step,
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
        col(Outbox.status) == "pending", col(Outbox.not_before) <= now, col(Outbox.channel).in_(channels)
    )
    if not bulk:
        pick = pick.where(col(Outbox.quiet).is_(False))
    if priority_only:
        pick = pick.where(col(Outbox.priority) == 0)
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


def outbox_sent(s: Session, row_id: int, now: datetime, ref: str = "") -> None:
    """Record a delivery (even when the lease ran out meanwhile: it was sent), with the platform's id
    of the message when the channel gave one (for a later edit)."""
    s.execute(
        update(Outbox)
        .where(col(Outbox.id) == row_id)
        .values(
            status="sent",
            sent_at=now,
            updated_at=now,
            lease_owner="",
            lease_until=None,
            last_error="",
            ref=ref[:64],
        )
    )


def outbox_ref(s: Session, row_id: int) -> str:
    """The platform's id of the message a sent row became ("" when unsent or not known)."""
    row = s.get(Outbox, row_id)
    return row.ref if row is not None and row.status == "sent" else ""


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
        .where(col(Outbox.id) == row_id, col(Outbox.status) == "claimed", col(Outbox.lease_owner) == owner)
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


def _update_held(s: Session, ids: list[int], owner: str, **values: object) -> int:
    """Set `values` on those of `ids` that `owner` still holds claimed; how many."""
    if not ids:
        return 0
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.status) == "claimed", col(Outbox.lease_owner) == owner)
        .values(**values)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def release_outbox(s: Session, ids: list[int], owner: str, now: datetime) -> int:
    """Hand claimed rows back to the queue unchanged (a 429, a graceful stop)."""
    return _update_held(s, ids, owner, status="pending", lease_owner="", lease_until=None, updated_at=now)


def renew_outbox_leases(s: Session, ids: list[int], owner: str, until: datetime) -> int:
    """Extend the lease on rows `owner` still holds."""
    return _update_held(s, ids, owner, lease_until=until)


def requeue_expired(s: Session, now: datetime, not_owner: str = "") -> int:
    """The janitor: claimed rows whose lease ran out go back to the queue (their sender died).

    `not_owner`: a live sender running the janitor spares its own claims.
    """
    result = s.execute(
        update(Outbox)
        .where(
            col(Outbox.status) == "claimed",
            col(Outbox.lease_until) < now,
            col(Outbox.lease_owner) != not_owner,
        )
        .values(status="pending", lease_owner="", lease_until=None, updated_at=now, last_error="reclaimed")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def claim_owners(s: Session) -> list[str]:
    """Everyone holding a claim on a row now (the janitor asks which of them are gone)."""
    stmt = select(Outbox.lease_owner).where(col(Outbox.status) == "claimed").distinct()
    return sorted(s.exec(stmt))


def requeue_owned(s: Session, owners: list[str], now: datetime) -> int:
    """Claims of these owners (processes known to be dead) go back to the queue, lease or not."""
    if not owners:
        return 0
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.status) == "claimed", col(Outbox.lease_owner).in_(owners))
        .values(status="pending", lease_owner="", lease_until=None, updated_at=now, last_error="reclaimed")
    )
    return int(getattr(result, "rowcount", 0) or 0)


STANDBY = "standby"  # a reply to the writer the live process is sending itself (bot/outbox.py `stand_by`)


def stand_by(s: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert one update's replies to its writer as standby rows, in one statement (a key that exists
    adds nothing); the new rows' ids by their step."""
    return {str(step): int(rid) for rid, step in insert_rows(s, Outbox, rows, returning=("id", "step"))}


def standby_holders(s: Session) -> list[tuple[str, datetime | None]]:
    """(owner, lease_until) of the standby rows: the janitor asks which owners are gone or silent."""
    stmt = select(Outbox.lease_owner, Outbox.lease_until).where(col(Outbox.status) == STANDBY).distinct()
    return [(owner, until) for owner, until in s.exec(stmt)]


def reply_owed(s: Session, period: str) -> bool:
    """Whether a reply to the writer of this update (`reply:<key>`) is still to be sent: on standby with
    the process that handled it, or waiting for the sender."""
    stmt = select(Outbox.id).where(
        col(Outbox.kind) == "reply",
        col(Outbox.period) == period,
        col(Outbox.status).in_((STANDBY, "pending", "claimed")),
    )
    return s.exec(stmt.limit(1)).first() is not None


def held_replies(s: Session, period: str, owner: str) -> list[Outbox]:
    """The replies to the writer of this update (`reply:<key>`) that `owner` holds on standby, in order:
    its unit committed, but the commit's answer was lost with the connection and the unit ran again."""
    stmt = (
        select(Outbox)
        .where(
            col(Outbox.kind) == "reply",
            col(Outbox.period) == period,
            col(Outbox.status) == STANDBY,
            col(Outbox.lease_owner) == owner,
        )
        .order_by(col(Outbox.id))
    )
    return list(s.exec(stmt))


_OUTBOX = table_of(Outbox)
# Built once, on the table (not the ORM entity, whose bulk DELETE looks for the rows in the session):
# every update's replies are settled, and building the statement cost more than running it.
_SETTLE = delete(_OUTBOX).where(
    _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
    _OUTBOX.c.status == STANDBY,
    _OUTBOX.c.lease_owner == bindparam("owner"),
)


def settle_standby(s: Session, ids: list[int], owner: str) -> int:
    """Standby rows whose reply the channel sent (or dropped, as malformed) go: nothing is left to
    deliver. Only those `owner` still holds; how many."""
    if not ids:
        return 0
    result = s.execute(_SETTLE, {"ids": list(ids), "owner": owner})
    return int(getattr(result, "rowcount", 0) or 0)


def release_standby(s: Session, ids: list[int], owner: str, now: datetime) -> int:
    """Standby rows whose reply could not go directly are handed to the sender: pending, due now."""
    if not ids:
        return 0
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.status) == STANDBY, col(Outbox.lease_owner) == owner)
        .values(status="pending", lease_owner="", lease_until=None, not_before=now, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def renew_standby(s: Session, owner: str, until: datetime) -> int:
    """The live process's standby rows stay its own until `until` (renewed with its sender's lease)."""
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.status) == STANDBY, col(Outbox.lease_owner) == owner)
        .values(lease_until=until)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def requeue_standby(s: Session, gone: list[str], silent: list[str], now: datetime) -> list[tuple[int, str]]:
    """Standby rows go to the sender, due now: all those of processes known to be dead (`gone`), and
    those of `silent` ones (on another machine) whose lease ran out: they stopped renewing it. The rows
    released: (id, channel), in their order."""
    if not gone and not silent:
        return []
    dead = or_(
        col(Outbox.lease_owner).in_(gone),
        col(Outbox.lease_owner).in_(silent) & (col(Outbox.lease_until) < now),
    )
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.status) == STANDBY, dead)
        .values(
            status="pending",
            lease_owner="",
            lease_until=None,
            not_before=now,
            updated_at=now,
            last_error="its process stopped before sending it",
        )
        .returning(col(Outbox.id), col(Outbox.channel))
    )
    return sorted((int(rid), str(channel)) for rid, channel in result)


def stop_sending_to(s: Session, user_id: int, status: str, now: datetime, error: str) -> int:
    """Every row still waiting for a user who cannot be reached gets `status`."""
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.user_id) == user_id, col(Outbox.status) == "pending")
        .values(status=status, updated_at=now, last_error=error[:500])
    )
    return int(getattr(result, "rowcount", 0) or 0)


def waiting_alerts(s: Session, user_id: int) -> list[dict[str, Any]]:
    """The payloads of a user's rows still waiting that quiet hours do not hold (alerts, replies), oldest first."""
    stmt = (
        select(Outbox.payload)
        .where(col(Outbox.user_id) == user_id, col(Outbox.status) == "pending", col(Outbox.quiet).is_(False))
        .order_by(col(Outbox.id))
    )
    return [dict(p) for p in s.exec(stmt)]


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
                col(Submission.kind) == submission_kind,
                col(Submission.period) == col(Outbox.period),
            )
            .exists()
        )
        result = s.execute(
            update(Outbox)
            .where(col(Outbox.status) == "pending", col(Outbox.kind) == outbox_kind, fulfilled)
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
        .where(col(Outbox.status) == "pending", col(Outbox.quiet).is_(True), exists_newer)
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
        .where(col(Outbox.last_error) != "", col(Outbox.status).not_in(["cancelled"]))
        .order_by(col(Outbox.updated_at).desc(), col(Outbox.id).desc())
        .limit(limit)
    )
    return list(s.exec(stmt))


def requeue_dead(s: Session, now: datetime) -> int:
    """An operator's retry: dead rows go back to the queue with a fresh attempt count."""
    result = s.execute(
        update(Outbox)
        .where(col(Outbox.status) == "dead")
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


def take_lease(
    s: Session,
    name: str,
    owner: str,
    now: datetime,
    until: datetime,
    gone: Callable[[str], bool] | None = None,
) -> bool:
    """Hold the lease `name` until `until` if it is free, expired or already ours.

    `gone` tells a holder that is known to be dead (`storage.holders.gone`): its lease is taken at once,
    still only if nobody else took it meanwhile.
    """
    insert_ignore(s, Lease, {"name": name, "owner": owner, "until": until})
    result = s.execute(
        update(Lease)
        .where(col(Lease.name) == name, or_(col(Lease.owner) == owner, col(Lease.until) < now))
        .values(owner=owner, until=until)
    )
    if getattr(result, "rowcount", 0) or gone is None:
        return bool(getattr(result, "rowcount", 0))
    holder = s.exec(select(Lease.owner).where(col(Lease.name) == name)).first()
    if holder is None or not gone(holder):
        return False
    result = s.execute(
        update(Lease)
        .where(col(Lease.name) == name, col(Lease.owner) == holder)
        .values(owner=owner, until=until)
    )
    return bool(getattr(result, "rowcount", 0))


def drop_lease(s: Session, name: str, owner: str) -> None:
    """Give the lease up (at a clean stop), so another process can take it at once."""
    s.execute(delete(Lease).where(col(Lease.name) == name, col(Lease.owner) == owner))


def lease_holder(s: Session, name: str) -> Lease | None:
    """Who holds a lease, if anyone ever did."""
    return s.get(Lease, name)


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
        .where(col(Outbox.kind) == kind, col(Outbox.period) == period, col(Outbox.status) == "pending")
        .values(status="cancelled", updated_at=now, last_error=reason[:500])
    )
    return int(getattr(result, "rowcount", 0) or 0)


def last_sent(s: Session, kind: str) -> dict[int, datetime]:
    """For each recipient, when the latest outbox row of `kind` was made (its digest's "since")."""
    stmt = (
        select(Outbox.user_id, func.max(Outbox.created_at))
        .where(col(Outbox.kind) == kind)
        .group_by(col(Outbox.user_id))
    )
    return {user_id: when for user_id, when in s.exec(stmt)}


def outbox_waiting(s: Session) -> list[tuple[str, int, int]]:
    """(channel, priority, count) of the rows still to send (pending or claimed)."""
    stmt = (
        select(Outbox.channel, Outbox.priority, func.count())
        .where(col(Outbox.status).in_(("pending", "claimed")))
        .group_by(col(Outbox.channel), col(Outbox.priority))
    )
    return [(channel, int(priority), int(n)) for channel, priority, n in s.exec(stmt)]


def leases_held(s: Session, now: datetime) -> list[tuple[str, str]]:
    """(lease, owner) of every lease held at `now`."""
    stmt = select(Lease.name, Lease.owner).where(col(Lease.until) > now).order_by(col(Lease.name))
    return [(name, owner) for name, owner in s.exec(stmt)]
