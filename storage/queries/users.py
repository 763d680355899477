"""Chat accounts: who wrote, their menu and language, whether they blocked the bot."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from storage.db import insert_ignore, table_of
from storage.models import User

# How stale `last_seen_at` may get before a message rewrites it (it only orders a person's accounts).
SEEN_EVERY = timedelta(hours=1)


# Built once: every update reads its writer (the statement's building and cache key cost more than the read).
_USER = select(User).where(
    col(User.channel) == bindparam("channel"), col(User.external_id) == bindparam("external_id")
)
_USERS = table_of(User)
_SET_MENU = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"))
    .values(menu=bindparam("new_menu", type_=_USERS.c.menu.type))
)


def get_user(s: Session, channel: str, external_id: str) -> User | None:
    """The account for (channel, external id), if it has written before."""
    return s.exec(_USER, params={"channel": channel, "external_id": external_id}).first()


def touch_user(
    s: Session,
    channel: str,
    external_id: str,
    chat_id: str,
    display_name: str,
    now: datetime,
    language: str = "",
) -> User:
    """The account for this chat user, created on first contact; written only when something changed
    (chat, name, language, blocked), or when it was last seen over `SEEN_EVERY` ago.

    The platform's language is kept until the user picks one with /language, so that alerts sent
    to them later come in the language they read.
    """
    user = get_user(s, channel, external_id)
    if user is None:
        insert_ignore(
            s,
            User,
            {
                "channel": channel,
                "external_id": external_id,
                "chat_id": chat_id,
                "display_name": display_name[:200],
                "menu": {},
                "created_at": now,
                "last_seen_at": now,
                "blocked": False,
                "locale": language,
            },
        )
        user = get_user(s, channel, external_id)
        assert user is not None
    fresh = {
        "chat_id": chat_id or user.chat_id,
        "display_name": display_name[:200] if display_name else user.display_name,
        "blocked": False,
        "locale": user.locale or language,
    }
    seen = user.last_seen_at
    if seen is None or now - seen >= SEEN_EVERY:
        fresh["last_seen_at"] = now
    changed = {key: value for key, value in fresh.items() if getattr(user, key) != value}
    if changed:  # an unchanged writer costs no write (no UPDATE, no write lock)
        for key, value in changed.items():
            setattr(user, key, value)
        s.add(user)
    return user


def set_menu(s: Session, user_id: int, menu: dict[str, Any]) -> None:
    """Remember the choices last shown to a user (channels without buttons answer by number)."""
    s.execute(_SET_MENU, {"user_id": user_id, "new_menu": menu})


def set_locale(s: Session, user_id: int, locale: str) -> None:
    """Save a user's language."""
    s.execute(update(User).where(col(User.id) == user_id).values(locale=locale))


def mark_blocked(s: Session, user_id: int) -> None:
    """Remember that a user blocked the bot; `touch_user` clears it when they write again."""
    s.execute(update(User).where(col(User.id) == user_id).values(blocked=True))
