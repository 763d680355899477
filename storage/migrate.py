"""Alembic, driven from code: `schoolbot db upgrade` and the automatic upgrade at start.

A start with nothing to migrate does not import Alembic (a third of a second): `at_head` reads the
database's revision and compares it with `head()`, the newest revision in the versions folder, read
from the file names (`0008_user_registered_at.py` is revision "0008"; a test checks it is Alembic's head).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storage.db import Database
from storage.errors import StartFailed

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    """An Alembic config pointing at our scripts and this database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def _run(db: Database, step: Callable[[Config], None]) -> None:
    """Run a migration command in one transaction.

    On SQLite, a batch migration copies tables; with foreign keys enforced, dropping the old copy of
    a referenced table fails. They are turned off for the migration (outside the transaction, where
    SQLite honours the pragma) and back on afterwards.
    """
    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection if db.is_sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg)
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision`."""
    from alembic import command

    _run(db, lambda cfg: command.upgrade(cfg, revision))


def downgrade(db: Database, revision: str) -> None:
    """Take the schema back to `revision`."""
    from alembic import command

    _run(db, lambda cfg: command.downgrade(cfg, revision))


def current(db: Database) -> str | None:
    """The revision the database is at, or None when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    """The newest revision, from the versions folder's file names (no Alembic import)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def stored(db: Database) -> str | None:
    """The revision the database says it is at, read without Alembic (None: no schema yet)."""
    with db.engine.connect() as conn:
        try:
            found = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except DBAPIError:  # no alembic_version table: a new database
            return None
    return found[0] if len(found) == 1 else None


def at_head(db: Database) -> bool:
    """Whether the database is at the newest revision (one cheap read; False when it has no schema)."""
    return stored(db) == head()


def require_head(db: Database) -> None:
    """StartFailed, naming the fix, unless the database is at this version's schema (PostgreSQL is
    upgraded by `schoolbot db upgrade`, once for all its workers, never by a worker's start)."""
    found = stored(db)
    if found == head():
        return
    refuse_newer(db, found)
    raise StartFailed(
        f"database_url = {db.where}: schema {found or 'none'}, this schoolbot needs {head()}:"
        " run `schoolbot db upgrade` first"
    )


def refuse_newer(db: Database, found: str | None) -> None:
    """StartFailed if the database was migrated by a newer schoolbot (this one cannot go back)."""
    if found is not None and found > head():
        raise StartFailed(
            f"database_url = {db.where}: schema {found} is newer than this schoolbot's ({head()})"
        )


def upgrade_if_behind(db: Database) -> bool:
    """Upgrade to the newest revision unless the database is already there; whether it migrated."""
    found = stored(db)
    if found == head():
        return False
    refuse_newer(db, found)
    upgrade(db)
    return True
