"""Half-filled forms, one per user and form, written with a version check."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from storage.errors import StaleDraft
from storage.models import Draft, DraftMode


def get_draft(s: Session, user_id: int, form: str) -> Draft | None:
    """The user's draft of `form`, if any."""
    return s.exec(select(Draft).where(col(Draft.user_id) == user_id, col(Draft.form) == form)).first()


def drafts_of(s: Session, user_id: int) -> list[Draft]:
    """Every draft the user has, most recent first."""
    stmt = select(Draft).where(col(Draft.user_id) == user_id).order_by(col(Draft.updated_at).desc())
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
