"""Half-filled forms, one per user and form, written with a version check."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from storage.errors import StaleDraft
from storage.models import CancelledDraft, Draft, DraftMode


def get_draft(s: Session, user_id: int, form: str) -> Draft | None:
    """The user's draft of `form`, if any."""
    return s.exec(select(Draft).where(col(Draft.user_id) == user_id, col(Draft.form) == form)).first()


def drafts_of(s: Session, user_id: int) -> list[Draft]:
    """Every draft the user has, most recent first."""
    stmt = (
        select(Draft)
        .where(col(Draft.user_id) == user_id)
        .order_by(col(Draft.updated_at).desc(), col(Draft.id).desc())
    )
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
        mode=DraftMode.FILL,
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
    s: Session, draft: Draft, *, step: str, mode: DraftMode, answers: dict[str, Any], now: datetime
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


KEEP_CANCELLED = timedelta(hours=24)  # how long /drafts can bring a cancelled draft back


def cancel_draft(s: Session, draft: Draft, keys: list[str], now: datetime) -> CancelledDraft:
    """Move a draft to the cancelled ones (kept for KEEP_CANCELLED) and forget older cancelled ones."""
    forget_cancelled(s, now)
    kept = CancelledDraft(
        user_id=draft.user_id,
        form=draft.form,
        step=draft.step,
        mode=draft.mode,
        answers=dict(draft.answers),
        steps={"keys": keys},
        created_at=draft.created_at,
        cancelled_at=now,
    )
    s.add(kept)
    s.execute(delete(Draft).where(col(Draft.id) == draft.id))
    s.flush()
    return kept


def cancelled_of(s: Session, user_id: int, now: datetime) -> list[CancelledDraft]:
    """The user's drafts cancelled within KEEP_CANCELLED, most recent first."""
    stmt = (
        select(CancelledDraft)
        .where(
            col(CancelledDraft.user_id) == user_id, col(CancelledDraft.cancelled_at) > now - KEEP_CANCELLED
        )
        .order_by(col(CancelledDraft.cancelled_at).desc(), col(CancelledDraft.id).desc())
    )
    return list(s.exec(stmt))


def take_cancelled(s: Session, kept_id: int, user_id: int, now: datetime) -> CancelledDraft | None:
    """A cancelled draft of this user still within KEEP_CANCELLED, removed from the kept ones."""
    kept = s.get(CancelledDraft, kept_id)
    if kept is None or kept.user_id != user_id or kept.cancelled_at <= now - KEEP_CANCELLED:
        return None
    s.delete(kept)
    s.flush()
    return kept


def forget_cancelled(s: Session, now: datetime) -> None:
    """Drop the cancelled drafts older than KEEP_CANCELLED."""
    s.execute(delete(CancelledDraft).where(col(CancelledDraft.cancelled_at) <= now - KEEP_CANCELLED))
