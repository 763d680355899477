"""Chat accounts: who wrote, their menu and language, whether they blocked the bot."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, literal, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from storage.db import dialect_insert, insert_ignore, read_ahead, table_of
from storage.models import Draft, Inbox, ProcessedUpdate, User
from storage.queries.drafts import DRAFTS
from storage.queries.updates import seen_before

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


_KEYS = table_of(ProcessedUpdate)
_INBOX = table_of(Inbox)
# An update's first read, built once: its writer, whether the update was handled already, whether
# messages are kept for the writer, their drafts (one round trip where four reads were).
_KEPT = exists().where(_INBOX.c.user_id == User.id, _INBOX.c.delivered_at.is_(None)).label("kept")
_THE_WRITER = and_(
    col(User.channel) == bindparam("channel"), col(User.external_id) == bindparam("external_id")
)
_SEEN = exists().where(_KEYS.c.key == bindparam("key")).label("seen")
# The writer's drafts come with it, most recent first (one row each; one with none when there is none),
# for the handler's first read of them (`read_ahead`): one round trip fewer an update.
_THEIR_DRAFTS = col(Draft.user_id) == User.id
_NEWEST = (col(Draft.updated_at).desc(), col(Draft.id).desc())
_WRITER = (
    select(User, _SEEN, _KEPT, Draft).where(_THE_WRITER).outerjoin(Draft, _THEIR_DRAFTS).order_by(*_NEWEST)
)


@functools.cache
def _writer_marking() -> Select[User, bool, bool, Draft]:
    """PostgreSQL: the same read, with the update's key marked handled in it (a data-modifying WITH;
    a key there already marks nothing: seen). Built on first use, as PostgreSQL's INSERT needs its
    dialect's module (a SQLite process does not load it)."""
    marked = (
        dialect_insert("postgresql", _KEYS)
        .values(key=bindparam("key"), created_at=bindparam("now", type_=_KEYS.c.created_at.type))
        .on_conflict_do_nothing()
        .returning(_KEYS.c.key)
        .cte("marked")
    )
    one = select(literal(1).label("one")).subquery("one")  # a row whether or not the writer is known
    seen = ~select(marked.c.key).exists()
    return (
        select(User, seen.label("seen"), _KEPT, Draft)
        .select_from(one)
        .outerjoin(User, _THE_WRITER)
        .outerjoin(Draft, _THEIR_DRAFTS)
        .order_by(*_NEWEST)
    )


def get_user(s: Session, channel: str, external_id: str) -> User | None:
    """The account for (channel, external id), if it has written before."""
    return s.exec(_USER, params={"channel": channel, "external_id": external_id}).first()


@dataclass(frozen=True)
class Writer:
    """What an update's handling reads first (`writer_of`)."""

    user: User | None  # the account, None on first contact
    seen: bool  # the update's key was handled already (a redelivery)
    kept: bool  # messages are kept for the account (storage/queries/inbox.py `take_kept`)
    marked: bool = False  # the key is marked handled now, in this transaction (`writer_of`'s `mark`)


def writer_of(s: Session, channel: str, external_id: str, key: str, mark: datetime | None = None) -> Writer:
    """The writer of an update with this key, whether the key was handled already, whether messages are
    kept for them: one read (a first contact: two, the key's on its own). Their drafts come with it,
    held for the unit's first read of them (storage/queries/drafts.py `drafts_of`).

    `mark` (PostgreSQL only): the key is also marked handled at that time, in the same round trip (a
    unit that fails rolls it back with the rest). A second unit of the same update waits at that mark
    for this one's end, then finds it seen. SQLite marks it at its unit's end instead (`first_time_seen`):
    its first write takes the database's one write lock for the rest of the unit."""
    params = {"channel": channel, "external_id": external_id, "key": key}
    marking = bool(key) and mark is not None and s.get_bind().dialect.name == "postgresql"
    if marking:
        rows = s.exec(_writer_marking(), params=params | {"now": mark}).all()
    else:
        rows = s.exec(_WRITER, params=params).all()
    if not rows:  # SQLite's read, a first contact
        return Writer(None, bool(key) and seen_before(s, key), False)
    user, seen, kept, _ = rows[0]
    if user is not None:
        read_ahead(s, DRAFTS, user.id, [draft for *_, draft in rows if draft is not None])
    return Writer(user, bool(seen), bool(kept), marked=marking and not seen)


def touch_user(
    s: Session,
    channel: str,
    external_id: str,
    chat_id: str,
    display_name: str,
    now: datetime,
    language: str = "",
    found: Writer | None = None,
) -> User:
    """The account for this chat user, created on first contact; written only when something changed
    (chat, name, language, blocked), or when it was last seen over `SEEN_EVERY` ago. `found`: the
    account read already in this transaction (`writer_of`).

    The platform's language is kept until the user picks one with /language, so that alerts sent
    to them later come in the language they read.
    """
    user = found.user if found is not None else get_user(s, channel, external_id)
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
