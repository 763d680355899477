"""Half-filled forms, one per user and form, written with a version check."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlmodel import Session, col, select

from storage.db import insert_entity, table_of, take_ahead
from storage.errors import StaleDraft
from storage.models import CancelledDraft, Draft, DraftMode

# Built once: each update reads its writer's drafts and saves one (the statements' building and cache
# keys cost more than the SQL).
_DRAFTS_OF = (
    select(Draft)
    .where(col(Draft.user_id) == bindparam("user_id"))
    .order_by(col(Draft.updated_at).desc(), col(Draft.id).desc())
)
_DRAFT = select(Draft).where(col(Draft.id) == bindparam("draft_id"))
_DRAFT_OF_FORM = select(Draft).where(
    col(Draft.user_id) == bindparam("user_id"), col(Draft.form) == bindparam("form")
)
_TABLE = table_of(Draft)
_DROP = delete(_TABLE).where(_TABLE.c.user_id == bindparam("user_id"), _TABLE.c.form == bindparam("form"))
_SAVE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("draft_id"), _TABLE.c.version == bindparam("read_version"))
    .values(
        step=bindparam("new_step"),
        mode=bindparam("new_mode"),
        answers=bindparam("new_answers", type_=_TABLE.c.answers.type),
        version=bindparam("new_version"),
        updated_at=bindparam("now", type_=_TABLE.c.updated_at.type),
    )
)


DRAFTS = _TABLE.name  # the writer's drafts are read ahead with the writer (storage/queries/users.py)


def drafts_of(s: Session, user_id: int) -> list[Draft]:
    """Every draft the user has, most recent first."""
    ahead = take_ahead(s, DRAFTS, user_id)
    return ahead if ahead is not None else list(s.exec(_DRAFTS_OF, params={"user_id": user_id}))


def get_draft(s: Session, user_id: int, form: str) -> Draft | None:
    """The user's draft of `form`, if any."""
    ahead = take_ahead(s, DRAFTS, user_id)
    if ahead is not None:
        return next((d for d in ahead if d.form == form), None)
    return s.exec(_DRAFT_OF_FORM, params={"user_id": user_id, "form": form}).first()


def draft_by_id(s: Session, draft_id: int) -> Draft | None:
    """The draft with this id, if it is still there."""
    found = next((d for d in take_ahead(s, DRAFTS) or () if d.id == draft_id), None)
    return found or s.exec(_DRAFT, params={"draft_id": draft_id}).first()


def start_draft(
    s: Session, user_id: int, form: str, step: str, now: datetime, answers: dict[str, Any]
) -> Draft:
    """A new draft of `form`, replacing any older one (its answers as the JSON column gives them back).
    StaleDraft when another transaction made one meanwhile (the unique user and form)."""
    s.execute(_DROP, {"user_id": user_id, "form": form})
    values = {
        "user_id": user_id,
        "form": form,
        "step": step,
        "mode": DraftMode.FILL,
        "answers": answers,
        "token": secrets.token_hex(16),
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    draft = insert_entity(s, Draft, values)
    if draft is None:
        raise StaleDraft(f"a draft of {form} was started meanwhile for user {user_id}")
    return draft


def save_draft(
    s: Session, draft: Draft, *, step: str, mode: DraftMode, answers: dict[str, Any], now: datetime
) -> Draft:
    """Write the draft's next state if nobody else did since it was read; else raise StaleDraft.
    The draft as written (its answers as the database gives them back), without reading it again."""
    values = {
        "draft_id": draft.id,
        "read_version": draft.version,
        "new_step": step,
        "new_mode": mode,
        "new_answers": answers,
        "new_version": draft.version + 1,
        "now": now,
    }
    result = s.execute(_SAVE, values)
    if not getattr(result, "rowcount", 0):
        raise StaleDraft(f"draft {draft.id} changed since version {draft.version}")
    return Draft(
        id=draft.id,
        user_id=draft.user_id,
        form=draft.form,
        step=step,
        mode=mode,
        answers=json.loads(json.dumps(answers)),  # as the JSON column gives them back
        token=draft.token,
        version=draft.version + 1,
        created_at=draft.created_at,
        updated_at=now,
    )


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
